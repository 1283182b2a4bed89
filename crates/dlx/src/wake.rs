//! Asking for a wake-up: the `elasticscaler.io/wake-requested` annotation on the target's ElasticScaler.
//!
//! The ElasticScaler controller owns scaling and the Service hand-over; the DLX only signals. One write
//! per target across every DLX replica: read the ElasticScaler, skip if the annotation is there, else a
//! merge patch carrying `metadata.resourceVersion`, so of two replicas racing the second gets 409 and
//! knows another one asked. The controller removes the annotation once the workload serves again.
//!
//! Within a process one write task runs per target at a time. A failed write (API down, RBAC, no such
//! ElasticScaler) is retried with backoff while requests are still held and no pod is ready; a
//! wake-up that was written but never produced a pod expires after the wake timeout in the target
//! state, so the next request writes again if the annotation is gone by then.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::ElasticScaler;
use api_types::keys::annotations;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use pdo_runtime::events::EventQueue;
use tokio::time::Instant;

use crate::catalog::Handed;
use crate::metrics::{Metrics, WakeLabels};
use crate::target::{Key, Target};

/// How often [`keep_warm`] talks to the API server: well inside the 90 s after which the Kubernetes
/// client's pool drops an idle connection.
pub const KEEP_WARM_EVERY: Duration = Duration::from_secs(30);

/// Keeps an idle connection to the API server in the client's pool until `stop`: `GET /version` now
/// and every `every`.
///
/// The watches hold their own connections (HTTP/1.1, one request each), so without this the first
/// wake-up write of the process — and any after a quiet spell longer than the pool's idle timeout —
/// starts with a TCP and TLS handshake (measured: 58 ms instead of under 15 ms). `/version` is open to
/// every authenticated client, so this needs no RBAC rule.
pub async fn keep_warm(
    client: kube::Client,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Err(e) = client.apiserver_version().await {
            tracing::debug!(error = %e, "keeping the API server connection warm failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Event reason on the ElasticScaler when this DLX asked for a wake-up.
// `api_types::keys::reasons` has no scale-to-zero reasons yet; this moves there with the hand-over's own.
pub const REASON_WAKE_REQUESTED: &str = "WakeRequested";

/// The result of one write attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This replica wrote the annotation.
    Requested,
    /// The annotation was already there.
    AlreadyRequested,
    /// Another writer changed the ElasticScaler first (most likely another DLX replica asking).
    Conflict,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Requested => "requested",
            Outcome::AlreadyRequested => "already_requested",
            Outcome::Conflict => "conflict",
        }
    }
}

/// Writes the wake-up annotation on ElasticScaler `name` unless it is there (one attempt).
pub async fn request(
    api: &Api<ElasticScaler>,
    name: &str,
) -> Result<(Outcome, ObjectReference), kube::Error> {
    let es = api.get(name).await?;
    let reference = es.object_ref(&());
    if es.annotations().contains_key(annotations::WAKE_REQUESTED) {
        return Ok((Outcome::AlreadyRequested, reference));
    }
    let now = jiff::Timestamp::now();
    let now = now.round(jiff::Unit::Millisecond).unwrap_or(now);
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": es.resource_version(),
            "annotations": {annotations::WAKE_REQUESTED: now.to_string()},
        }
    });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok((Outcome::Requested, reference)),
        Err(kube::Error::Api(s)) if s.is_conflict() => Ok((Outcome::Conflict, reference)),
        Err(e) => Err(e),
    }
}

/// Starts wake-up writes, one task per target at a time.
pub struct Waker {
    client: kube::Client,
    events: EventQueue,
    identity: String,
    metrics: Metrics,
    writing: Mutex<HashSet<Key>>,
}

impl Waker {
    /// A waker writing through `client`, publishing Events as `identity`.
    pub fn new(
        client: kube::Client,
        events: EventQueue,
        identity: String,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            events,
            identity,
            metrics,
            writing: Mutex::default(),
        })
    }

    /// Asks for a wake-up of `handed` (its `target`) unless this process is writing one already;
    /// `asked_at` is when the request that found no pod arrived.
    pub fn wake(self: &Arc<Self>, handed: Arc<Handed>, target: Arc<Target>, asked_at: Instant) {
        {
            let mut w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            if !w.insert(handed.key.clone()) {
                return;
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.write_until_done(&handed, &target, asked_at).await;
            let mut w = this.writing.lock().unwrap_or_else(|e| e.into_inner());
            w.remove(&handed.key);
        });
    }

    async fn write_until_done(&self, handed: &Handed, target: &Target, asked_at: Instant) {
        let api: Api<ElasticScaler> = Api::namespaced(self.client.clone(), &handed.key.namespace);
        let mut backoff = Duration::from_millis(250);
        loop {
            let result = request(&api, &handed.scaler).await;
            let label = match &result {
                Ok((outcome, _)) => outcome.label(),
                Err(_) => "error",
            };
            self.metrics
                .wakeups
                .get_or_create(&WakeLabels {
                    namespace: handed.key.namespace.clone(),
                    service: handed.key.service.clone(),
                    result: label,
                })
                .inc();
            match result {
                Ok((outcome, reference)) => {
                    self.metrics
                        .wake_write_seconds
                        .observe(asked_at.elapsed().as_secs_f64());
                    tracing::info!(target = %handed.key, scaler = %handed.scaler, result = label, "wake-up asked");
                    if outcome == Outcome::Requested {
                        self.publish(handed, target, reference);
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(target = %handed.key, scaler = %handed.scaler, error = %e, retry_in = ?backoff,
                        "writing the wake-up annotation failed");
                    if target.ready_pods() > 0 || target.held() == 0 {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn publish(&self, handed: &Handed, target: &Target, reference: ObjectReference) {
        let note = format!(
            "{} request(s) for Service {} held by DLX {}; no ready pod of workload Service {}",
            target.held().max(1),
            handed.key,
            self.identity,
            handed.workload
        );
        self.events.publish(
            Event {
                type_: EventType::Normal,
                reason: REASON_WAKE_REQUESTED.into(),
                note: Some(note),
                action: "WakeUp".into(),
                secondary: None,
            },
            reference,
        );
    }
}
