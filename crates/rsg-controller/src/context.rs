//! What every reconcile shares: the client, Prometheus, metrics, the Event recorder, and the small API
//! helpers that turn "not found" and "forbidden" into conditions that say what to fix.

use std::time::Duration;

use api_types::rsg::ResourceScalingGroup;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};

use crate::Error;
use crate::kinds::Kind;
use crate::metrics::Metrics;
use crate::prometheus::Prometheus;
use crate::status::Outcome;
use crate::targets::Workload;
use api_types::keys::reasons;

/// Tunables.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often an RSG is looked at when nothing happens.
    pub resync: Duration,
    /// How soon a blocked RSG (missing target, name conflict) is retried.
    pub retry: Duration,
    /// Groups created or removed concurrently.
    pub concurrency: usize,
}

/// Shared by every reconcile.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// Prometheus for scale-down ordering (`RSG_PROMETHEUS_URL`), if configured.
    pub prometheus: Option<Prometheus>,
    /// Metrics.
    pub metrics: Metrics,
    /// Publishes Events on RSGs.
    pub recorder: Recorder,
    /// Tunables.
    pub config: Config,
}

impl Ctx {
    /// The API of a workload kind in `namespace`.
    pub fn workload_api(
        &self,
        kind: Kind,
        api_version: &str,
        namespace: &str,
    ) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            namespace,
            &kind.api_resource(api_version),
        )
    }

    /// Reads a target workload as JSON; a missing or forbidden target blocks the RSG with a message that
    /// names it.
    pub async fn get_workload(&self, w: &Workload) -> Result<serde_json::Value, Error> {
        let api = self.workload_api(w.kind, &w.api_version, &w.namespace);
        match api.get_opt(&w.name).await {
            Ok(Some(obj)) => Ok(serde_json::to_value(obj).map_err(Error::Json)?),
            Ok(None) => Err(self.blocked(
                reasons::TARGET_NOT_FOUND,
                format!(
                    "target resource not found: {w} (targetResources {:?}): check its apiVersion ({}), kind, name and namespace",
                    w.target, w.api_version
                ),
            )),
            Err(e) => Err(self.api_error(e, &format!("get {w}"))),
        }
    }

    /// A blocked outcome retried after the configured delay.
    pub fn blocked(&self, reason: &'static str, message: String) -> Error {
        Error::Blocked(Box::new(Outcome::blocked(
            reason,
            message,
            self.config.retry,
        )))
    }

    /// Forbidden becomes a condition naming the permission; everything else is retried with backoff.
    pub fn api_error(&self, e: kube::Error, what: &str) -> Error {
        match &e {
            kube::Error::Api(s) if s.is_forbidden() => self.blocked(
                reasons::FORBIDDEN,
                format!(
                    "forbidden: the controller may not {what}: {}; grant it in the chart's RBAC",
                    s.message
                ),
            ),
            // An API group that is not installed (e.g. no LeaderWorkerSet CRD).
            kube::Error::Api(s) if s.is_not_found() => self.blocked(
                reasons::TARGET_NOT_FOUND,
                format!("{what}: {}: is the kind's CRD installed?", s.message),
            ),
            _ => Error::Kube(e),
        }
    }

    /// Sets `spec.replicas` of a workload (a merge patch: no conflict with other writers of other fields).
    pub async fn set_replicas(&self, w: &Workload, n: i32) -> Result<(), Error> {
        self.metrics.write("patch", w.kind.as_str());
        self.workload_api(w.kind, &w.api_version, &w.namespace)
            .patch(
                &w.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": n}})),
            )
            .await
            .map_err(|e| self.api_error(e, &format!("patch {w}")))?;
        Ok(())
    }

    /// Publishes an Event on `rsg`; failures are logged, never fatal.
    pub async fn event(
        &self,
        rsg: &ResourceScalingGroup,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.event_action(rsg, warning, reason, reason, note).await;
    }

    /// Publishes an Event with its own `action`. Events with the same reason and action within a few
    /// minutes become one series (kube's recorder), so a distinct action keeps distinct decisions visible.
    pub async fn event_action(
        &self,
        rsg: &ResourceScalingGroup,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        self.metrics.write("create", "Event");
        if let Err(e) = self.recorder.publish(&ev, &rsg.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "publishing event failed");
        }
    }
}
