//! The ElasticScaler reconciler. Every period, per scaler:
//!
//! 1. **validate** the spec, the algorithm name, its `algorithmConfig` and the behavior annotations
//!    (the webhook's rules, applied again here for when the webhook is off) → `Validated`;
//! 2. **read the target** through its resource handler → `Available`;
//! 3. **decide**: MetricsTrigger reads every metric ([`crate::sources`]) and runs the scaler's
//!    [`Decider`](crate::engine::Decider) → `MetricsCollected`, `ScalingCalculated`; StateTrigger follows
//!    the `status.desiredReplicas` of the object linked by the `elasticscaler.io/name` and
//!    `elasticscaler.io/namespace` labels (a Tidal), clamped to min/max;
//! 4. **apply** a changed count through the handler, with an Event;
//! 5. **status**: computed by [`status::next`], written (server-side apply) only if it changed.
//!
//! The per-scaler decision state lives in memory; after a restart it is rebuilt from status
//! (recommendation change points, scale history, panic mode), see [`crate::engine`].

mod handover;
pub mod linked;
mod state;
pub mod status;
pub mod zero;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_types::elastic_scaler::{
    MetricSourceType, MetricStatus, RecommendationRecord, ScaleRecord, TriggerType,
};
use api_types::keys::{labels, reasons};
use api_types::{ElasticScaler, ElasticScalerStatus, Tidal};
use futures::StreamExt;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use pdo_runtime::events::EventQueue;
use tokio_util::sync::CancellationToken;

use crate::engine::Decision;
use crate::handlers::Handlers;
use crate::metrics::{DecisionLabels, Metrics};
use crate::plugin::{Context, HandlerError, Observation, Reading, SharedFactory, TargetRef};
use crate::registry::Registry;
use crate::sources::{Sources, TargetPods};
use state::{ScalerState, States};
use status::{Failure, Outcome};

/// Field manager of status writes.
pub const MANAGER: &str = "elastic-scaler";

/// How soon to look again while a scale-to-zero hand-over is in progress.
const SOON: Duration = Duration::from_millis(500);

/// Settings from the flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// The decision period.
    pub period: Duration,
    /// Delay before retrying after a failed reconcile.
    pub retry: Duration,
    /// Scalers reconciled at once.
    pub concurrency: u16,
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Let `targetRef.namespace` differ from the scaler's namespace.
    pub allow_cross_namespace: bool,
}

/// Everything a reconcile needs.
pub struct Ctx {
    /// API client.
    pub client: kube::Client,
    /// Metric sources.
    pub sources: Sources,
    /// Resource handlers.
    pub handlers: Handlers,
    /// Scaling algorithms.
    pub algorithms: Registry<SharedFactory>,
    /// Tidals linked to scalers (watch cache).
    pub tidals: Store<Tidal>,
    /// Events, published off the hot path.
    pub events: EventQueue,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings.
    pub config: Config,
    /// Per-scaler decision state.
    states: States,
}

impl Ctx {
    /// A context; decision state starts empty (rebuilt from status).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        sources: Sources,
        handlers: Handlers,
        algorithms: Registry<SharedFactory>,
        tidals: Store<Tidal>,
        events: EventQueue,
        metrics: Metrics,
        config: Config,
    ) -> Self {
        Ctx {
            client,
            sources,
            handlers,
            algorithms,
            tidals,
            events,
            metrics,
            config,
            states: Mutex::new(HashMap::new()),
        }
    }
}

/// A reconcile failure (retried after `Config::retry`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing status failed.
    #[error("writing status of ElasticScaler {0}: {1}")]
    Status(String, #[source] kube::Error),
}

fn now() -> (f64, Time) {
    let ts = Timestamp::now();
    (ts.as_millisecond() as f64 / 1000.0, Time(ts))
}

fn target_ref(es: &ElasticScaler) -> Result<TargetRef, String> {
    let t = &es.spec.target_ref;
    let kind = t.kind.clone().unwrap_or_default();
    let api_version = match (t.api_version.as_deref(), kind.as_str()) {
        (Some(v), _) if !v.is_empty() => v.to_string(),
        (_, "Deployment" | "StatefulSet") => "apps/v1".to_string(),
        _ => {
            return Err(format!(
                "spec.targetRef.apiVersion is required for kind {kind:?}: e.g. apps/v1 or autoscaling.openfuyao.com/v1alpha1"
            ));
        }
    };
    Ok(TargetRef {
        api_version,
        kind,
        namespace: t
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| es.namespace().unwrap_or_default()),
        name: t.name.clone().unwrap_or_default(),
    })
}

fn handler_failure(e: &HandlerError) -> Failure {
    let reason = match e {
        HandlerError::NotFound(_) => reasons::TARGET_NOT_FOUND,
        HandlerError::NotScalable(_) => reasons::TARGET_NOT_SCALABLE,
        HandlerError::Failed(m) if m.contains("forbidden") => reasons::FORBIDDEN,
        HandlerError::Failed(_) => reasons::SCALE_FAILED,
    };
    Failure::new(reason, e.to_string())
}

/// Validates everything the scaler needs and prepares its decision state. Err: Validated=False.
fn prepare(
    es: &ElasticScaler,
    ctx: &Ctx,
    st: &mut ScalerState,
    now: f64,
) -> Result<TargetRef, String> {
    let mut errs: Vec<String> = api_types::validation::validate_elastic_scaler(&es.spec)
        .into_iter()
        .map(|e| e.to_string())
        .collect();
    let target = target_ref(es).map_err(|e| errs.push(e.clone())).ok();
    if let Some(t) = &target
        && !ctx.config.allow_cross_namespace
        && Some(t.namespace.as_str()) != es.namespace().as_deref()
    {
        errs.push(format!(
            "spec.targetRef.namespace {:?} differs from the ElasticScaler's namespace: cross-namespace targets are disabled (--allow-cross-namespace-targets)",
            t.namespace
        ));
    }
    if let (Some(mt), TriggerType::MetricsTrigger) =
        (&es.spec.trigger.metrics_trigger, es.spec.trigger.type_)
        && errs.is_empty()
    {
        let name = mt.algorithm();
        match ctx.algorithms.get(&name) {
            Err(e) => errs.push(format!("spec.trigger.metricsTrigger.scalingAlgorithm: {e}")),
            Ok(factory) => {
                if let Err(e) = st.prepare(es, &name, factory.as_ref(), now) {
                    errs.extend(e);
                }
            }
        }
    }
    match (errs.is_empty(), target) {
        (true, Some(t)) => Ok(t),
        _ => Err(errs.join("; ")),
    }
}

fn metric_status(o: &Observation, detail: Option<&String>) -> MetricStatus {
    let (value, ready_pods, excluded_pods, error) = match &o.reading {
        Reading::PerPod(p) => (
            Some(p.ready.iter().sum::<f64>() / p.ready.len().max(1) as f64),
            Some(p.ready.len() as i32),
            Some((p.missing + p.unready) as i32),
            detail.cloned(),
        ),
        Reading::Total(v) => (Some(*v), None, None, None),
        Reading::Missing(e) => (None, None, None, Some(e.clone())),
    };
    MetricStatus {
        name: o.name.clone(),
        value: value.map(|v| format!("{}", (v * 1000.0).round() / 1000.0)),
        target: o.target.describe(),
        ready_pods,
        excluded_pods,
        error,
    }
}

fn needs_pods(es: &ElasticScaler) -> bool {
    es.spec
        .trigger
        .metrics_trigger
        .iter()
        .flat_map(|m| &m.metrics)
        .any(|m| match m.type_ {
            MetricSourceType::Pods | MetricSourceType::Resource | MetricSourceType::Custom => true,
            MetricSourceType::Prometheus => m
                .prometheus
                .as_ref()
                .is_some_and(|p| p.query.as_deref().is_none_or(|q| q.trim().is_empty())),
            MetricSourceType::External | MetricSourceType::ExternalServer => false,
        })
}

/// Reads the metrics and decides (MetricsTrigger).
async fn decide_on_metrics(
    es: &ElasticScaler,
    ctx: &Ctx,
    st: &mut ScalerState,
    target: &TargetRef,
    scale: &crate::plugin::Scale,
    now: f64,
    o: &mut Outcome,
) -> (Option<Decision>, (bool, bool)) {
    let Some(mt) = es.spec.trigger.metrics_trigger.as_ref() else {
        return (None, (false, false));
    };
    let pods: Option<TargetPods> = if needs_pods(es) {
        match &scale.selector {
            Some(sel) => match ctx.sources.pods(&target.namespace, sel).await {
                Ok(p) => Some(p),
                Err(e) => {
                    ctx.metrics.error("pods");
                    tracing::warn!(error = %e, %target, "listing the target's pods failed");
                    None
                }
            },
            None => None,
        }
    } else {
        None
    };
    let read = join_all(
        mt.metrics
            .iter()
            .map(|m| ctx.sources.read(&target.namespace, m, pods.as_ref())),
    )
    .await;
    let mut problems = Vec::new();
    let mut partial_only = true;
    let observations: Vec<Observation> = read
        .iter()
        .map(|(obs, detail)| {
            if let Reading::Missing(e) = &obs.reading {
                ctx.metrics
                    .error(obs.name.split('/').next().unwrap_or("metric"));
                problems.push(format!("{}: {e}", obs.name));
                partial_only = false;
            } else if let Some(d) = detail {
                problems.push(format!("{}: {d}", obs.name));
            }
            obs.clone()
        })
        .collect();
    o.metrics = read
        .iter()
        .map(|(obs, d)| metric_status(obs, d.as_ref()))
        .collect();
    let activity = zero::activity(&observations);
    if !problems.is_empty() {
        let reason = if partial_only {
            reasons::PARTIAL_METRICS
        } else {
            reasons::METRICS_UNAVAILABLE
        };
        o.metrics_problem = Some(Failure::new(
            reason,
            format!(
                "{}; scale-down is withheld until every value is back",
                problems.join("; ")
            ),
        ));
    }
    let Some(decider) = st.decider.as_mut() else {
        return (None, activity);
    };
    let name = es.name_any();
    let namespace = es.namespace().unwrap_or_default();
    let c = Context {
        namespace: &namespace,
        name: &name,
        now,
        current: scale.replicas,
        ready: scale.ready,
        min: es.spec.min_replicas,
        max: es.spec.max_replicas,
        metrics: &observations,
    };
    let d = decider.decide(&c).await;
    o.records = Some(
        decider
            .records()
            .iter()
            .map(|(at, replicas)| RecommendationRecord {
                at: *at,
                replicas: *replicas,
            })
            .collect(),
    );
    o.panicking = Some(d.panicking);
    o.calculation = Some(match &d.error {
        Some(e) => {
            ctx.metrics.error("algorithm");
            Err(Failure::new(
                reasons::ALGORITHM_FAILED,
                format!("{e}; replicas held at {}", scale.replicas),
            ))
        }
        None => Ok(d.explain()),
    });
    (Some(d), activity)
}

/// The linked Tidal's desired count (StateTrigger), clamped to min/max. The cache says which Tidal is
/// linked; its status is read fresh, because this reconcile may have been started by the change the
/// cache has not applied yet.
async fn decide_on_state(es: &ElasticScaler, ctx: &Ctx) -> Result<(i32, String), Failure> {
    let ns = es.namespace().unwrap_or_default();
    let name = es.name_any();
    let mut link = linked::lookup(&ctx.tidals, &ns, &name);
    if let linked::Link::Desired(..) | linked::Link::Unusable(_) = &link {
        let cached: Vec<Arc<Tidal>> = ctx.tidals.state();
        let mut fresh = Vec::new();
        for t in cached
            .iter()
            .filter(|t| linked::find(&[(*t).clone()], &ns, &name) != linked::Link::None)
        {
            let api: Api<Tidal> =
                Api::namespaced(ctx.client.clone(), &t.namespace().unwrap_or_default());
            match api.get_opt(&t.name_any()).await {
                Ok(Some(t)) => fresh.push(Arc::new(t)),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "reading the linked Tidal; using the cache"),
            }
        }
        if !fresh.is_empty() {
            link = linked::find(&fresh, &ns, &name);
        }
    }
    match link {
        linked::Link::Desired(d, why) => {
            let clamped = linked::with_floor(d, d, es.spec.min_replicas, es.spec.max_replicas);
            let mut reason = format!("StateTrigger: {why}");
            if clamped != d {
                reason.push_str(&format!(
                    "; bounded by minReplicas/maxReplicas to {clamped}"
                ));
            }
            Ok((clamped, reason))
        }
        linked::Link::None => Err(Failure::new(
            reasons::NO_LINKED_OBJECT,
            format!(
                "no Tidal is labelled {}={name},{}={ns}: label the Tidal that should drive this scaler",
                labels::ES_NAME,
                labels::ES_NAMESPACE
            ),
        )),
        linked::Link::Unusable(why) => Err(Failure::new(reasons::NO_LINKED_OBJECT, why)),
    }
}

fn publish(
    ctx: &Ctx,
    es: &ElasticScaler,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    ctx.events.publish(ev, es.object_ref(&()));
}

/// A MetricsTrigger decision raised to a linked Tidal's value, if one is linked.
fn with_tidal_floor(
    es: &ElasticScaler,
    ctx: &Ctx,
    desired: i32,
    mut reason: String,
    o: &mut Outcome,
) -> (Option<i32>, String) {
    let ns = es.namespace().unwrap_or_default();
    let out = match linked::lookup(&ctx.tidals, &ns, &es.name_any()) {
        linked::Link::None => desired,
        linked::Link::Desired(floor, why) => {
            let d = linked::with_floor(desired, floor, es.spec.min_replicas, es.spec.max_replicas);
            if d != desired {
                reason.push_str(&format!("; raised to the schedule's floor: {why}"));
            }
            d
        }
        linked::Link::Unusable(why) => {
            reason.push_str(&format!("; linked Tidal ignored: {why}"));
            desired
        }
    };
    if let Some(Ok(r)) = &mut o.calculation {
        *r = reason.clone();
    }
    (Some(out), reason)
}

/// Scale to zero: observes the Service, EndpointSlices and the wake request, takes the one next step of
/// [`zero::decide`], and returns the desired count (overriding the metrics while not Active), the reason,
/// and whether to look again soon.
#[allow(clippy::too_many_arguments)]
async fn zero_step(
    es: &ElasticScaler,
    ctx: &Ctx,
    z: &api_types::elastic_scaler::ScaleToZero,
    scale: &crate::plugin::Scale,
    now: f64,
    (activity, all_zero): (bool, bool),
    old: &ElasticScalerStatus,
    (decided, reason): (Option<i32>, String),
    o: &mut Outcome,
) -> (Option<i32>, String, bool) {
    use api_types::elastic_scaler::{ScaleToZeroStatus, ZeroPhase};
    let ns = es.namespace().unwrap_or_default();
    let client = &ctx.client;
    let serve = |reason: String| (decided.map(|d| d.max(1)), reason, false);
    let old_zero = old.scale_to_zero.clone();
    let fail = |o: &mut Outcome, msg: String| {
        o.calculation = Some(Err(Failure::new(
            reasons::SCALE_TO_ZERO_FAILED,
            msg.clone(),
        )));
        o.scale_to_zero = old_zero.clone();
    };
    let view = match handover::read_service(client, &ns, &z.service).await {
        Ok(v) => v,
        Err(e) => {
            fail(o, e);
            return (
                decided.map(|d| d.max(1).max(scale.replicas.min(1))),
                reason,
                false,
            );
        }
    };
    if let Err(e) = handover::ensure_workload_service(client, es, &z.service, &view).await {
        fail(o, e);
        return serve(reason);
    }
    let wake_requested = es
        .annotations()
        .contains_key(api_types::keys::annotations::WAKE_REQUESTED);
    let workload = handover::workload_name(&z.service);
    let mut observed = zero::Observed {
        handed: view.handed,
        replicas: scale.replicas,
        wake_requested,
        activity,
        all_zero,
        idle_since: old
            .scale_to_zero
            .as_ref()
            .and_then(|s| s.idle_since.as_ref())
            .map(|t| t.0.as_millisecond() as f64 / 1000.0),
        now,
        idle_seconds: z.idle_seconds as f64,
        wake_replicas: z.wake_replicas,
        ..Default::default()
    };
    let mut note = String::new();
    if view.handed || wake_requested || scale.replicas == 0 || activity {
        let read = async {
            let workload_eps = handover::ready_endpoints(client, &ns, &workload).await?;
            let service_eps = handover::ready_endpoints(client, &ns, &z.service).await?;
            let dlx = handover::pod_names(client, &ns, &z.dlx_labels()).await?;
            let pods = handover::pod_names(client, &ns, &view.original).await?;
            Ok::<_, String>((workload_eps, service_eps, dlx, pods))
        };
        match read.await {
            Ok((workload_eps, service_eps, dlx, pods)) => {
                observed.workload_ready = workload_eps.len();
                observed.service_on_dlx = !service_eps.is_empty()
                    && service_eps
                        .iter()
                        .all(|n| n.as_ref().is_some_and(|n| dlx.contains(n)));
                observed.service_on_workload = service_eps
                    .iter()
                    .any(|n| n.as_ref().is_some_and(|n| pods.contains(n)));
                if dlx.is_empty() {
                    note = format!(
                        "no DLX pod in {ns} matches {:?}: deploy the DLX in this namespace",
                        z.dlx_labels()
                    );
                }
            }
            Err(e) => {
                fail(o, e);
                return (
                    Some(scale.replicas.max(decided.unwrap_or(0).min(1))),
                    reason,
                    true,
                );
            }
        }
    }
    let (phase, step) = zero::decide(&observed);
    tracing::debug!(scaler = %es.name_any(), ?phase, ?step, "scale to zero");
    let mut soon = true;
    let (desired, what): (Option<i32>, String) = match &step {
        zero::Step::Serve => {
            soon = false;
            (decided.map(|d| d.max(1)), reason.clone())
        }
        zero::Step::HandOver => match handover::hand_over(client, es, z, &view).await {
            Ok(()) => (
                Some(scale.replicas),
                format!("idle: Service {} handed to the DLX", z.service),
            ),
            Err(e) => (Some(scale.replicas), e),
        },
        zero::Step::WaitForDlx => (
            Some(scale.replicas),
            if note.is_empty() {
                format!(
                    "waiting for Service {}'s EndpointSlices to list only DLX pods",
                    z.service
                )
            } else {
                note.clone()
            },
        ),
        zero::Step::ScaleToZero => (
            Some(0),
            format!("idle: scaled to 0; Service {} is on the DLX", z.service),
        ),
        zero::Step::Hold => {
            soon = false;
            (
                Some(0),
                format!("at zero; Service {} is on the DLX", z.service),
            )
        }
        zero::Step::WakeUp(n) => (
            Some(*n),
            format!("waking: a request is waiting; scaling to {n}"),
        ),
        zero::Step::WaitForReady => (
            Some(scale.replicas),
            "waking: waiting for a ready pod".into(),
        ),
        zero::Step::Restore => match handover::restore(client, &ns, z, &view).await {
            Ok(()) => (
                Some(scale.replicas),
                format!("waking: Service {} handed back to the workload", z.service),
            ),
            Err(e) => (Some(scale.replicas), e),
        },
        zero::Step::WaitForRestore => (
            Some(scale.replicas),
            format!(
                "waking: waiting for Service {}'s EndpointSlices to list the workload's pods",
                z.service
            ),
        ),
        zero::Step::ClearWake => match handover::clear_wake(client, es).await {
            Ok(()) => (
                Some(scale.replicas.max(decided.unwrap_or(1))),
                format!("serving again through Service {}", z.service),
            ),
            Err(e) => (Some(scale.replicas), e),
        },
    };
    let idle_since = if phase == ZeroPhase::Active {
        zero::next_idle_since(&observed)
    } else {
        None
    };
    let zero_status = ScaleToZeroStatus {
        phase,
        idle_since: idle_since
            .and_then(|t| jiff::Timestamp::from_millisecond((t * 1000.0) as i64).ok())
            .map(Time),
        message: if step == zero::Step::Serve {
            String::new()
        } else {
            what.clone()
        },
    };
    if old.scale_to_zero.as_ref().map(|s| s.phase) != Some(phase) {
        tracing::info!(scaler = %es.name_any(), namespace = %ns, ?phase, %what, "scale-to-zero phase");
        publish(
            ctx,
            es,
            EventType::Normal,
            reasons::SCALE_TO_ZERO,
            &format!("{phase:?}"),
            what.clone(),
        );
    }
    o.scale_to_zero = Some(zero_status);
    if step != zero::Step::Serve {
        o.calculation = Some(Ok(what.clone()));
    }
    (
        desired,
        if step == zero::Step::Serve {
            reason
        } else {
            what
        },
        soon,
    )
}

/// One reconcile of one ElasticScaler.
pub async fn reconcile(es: Arc<ElasticScaler>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let key = ObjectRef::from_obj(es.as_ref());
    let mut st = state::take(&ctx.states, &key);
    let inputs = spec_or_annotations(&es);
    if es.spec.trigger.type_ == TriggerType::MetricsTrigger
        && let Some(wait) = st.not_due(inputs)
    {
        // Woken by our own status write (or another status-only change): the next period is not due.
        state::put(&ctx.states, key, st);
        return Ok(Action::requeue(wait));
    }
    let result = run_once(&es, &ctx, &mut st).await;
    let next = ctx
        .config
        .period
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(100));
    let wait = match result {
        Ok(Next::Retry) => ctx.config.retry.min(next),
        Ok(Next::Soon) => SOON.min(next),
        _ => next,
    };
    st.due(inputs, wait);
    state::put(&ctx.states, key, st);
    ctx.metrics.scalers.set(state::len(&ctx.states) as i64);
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics.last_sync.set(now().0);
    result.map(|_| Action::requeue(wait))
}

/// When to decide again: at the period, after the retry delay, or at once (a hand-over in progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Period,
    Retry,
    Soon,
}

/// Returns when to decide again.
async fn run_once(es: &ElasticScaler, ctx: &Ctx, st: &mut ScalerState) -> Result<Next, Error> {
    let (now_s, now_t) = now();
    let old = st.freshest(es);
    let mut o = Outcome::default();
    let mut retry = false;
    let mut fast = false;
    let target = match prepare(es, ctx, st, now_s) {
        Ok(t) => Some(t),
        Err(msg) => {
            ctx.metrics.error("invalid");
            let was_invalid = api_types::conditions::find(
                &old.conditions,
                api_types::keys::conditions::VALIDATED,
            )
            .is_some_and(|c| c.status == "False" && c.message == msg);
            if !was_invalid {
                publish(
                    ctx,
                    es,
                    EventType::Warning,
                    reasons::INVALID_SPEC,
                    "Validate",
                    msg.clone(),
                );
            }
            o.invalid = Some(Failure::new(reasons::INVALID_SPEC, msg));
            None
        }
    };
    if let Some(target) = &target {
        let handler = ctx.handlers.for_target(target);
        match handler.get(target).await {
            Err(e) => {
                ctx.metrics.error("target");
                let f = handler_failure(&e);
                let already = api_types::conditions::find(
                    &old.conditions,
                    api_types::keys::conditions::AVAILABLE,
                )
                .is_some_and(|c| c.status == "False" && c.message == f.message);
                if !already {
                    publish(
                        ctx,
                        es,
                        EventType::Warning,
                        f.reason,
                        "ReadTarget",
                        f.message.clone(),
                    );
                }
                o.target = Some(f);
                retry = true;
            }
            Ok(scale) => {
                o.replicas = Some((scale.replicas, scale.ready));
                let (desired, reason) = match es.spec.trigger.type_ {
                    TriggerType::MetricsTrigger => {
                        o.algorithm = es
                            .spec
                            .trigger
                            .metrics_trigger
                            .as_ref()
                            .map(|m| m.algorithm());
                        let (decision, activity) =
                            decide_on_metrics(es, ctx, st, target, &scale, now_s, &mut o).await;
                        let decided = match decision {
                            Some(d) => with_tidal_floor(es, ctx, d.desired, d.explain(), &mut o),
                            None => (None, String::new()),
                        };
                        match &es.spec.scale_to_zero {
                            Some(z) => {
                                let (desired, reason, sooner) = zero_step(
                                    es, ctx, z, &scale, now_s, activity, &old, decided, &mut o,
                                )
                                .await;
                                if sooner {
                                    fast = true;
                                }
                                (desired, reason)
                            }
                            None => decided,
                        }
                    }
                    TriggerType::StateTrigger => match decide_on_state(es, ctx).await {
                        Ok((d, reason)) => {
                            o.calculation = Some(Ok(reason.clone()));
                            (Some(d), reason)
                        }
                        Err(f) => {
                            o.calculation = Some(Err(f));
                            (None, String::new())
                        }
                    },
                    TriggerType::SignalTrigger => {
                        o.calculation = Some(Err(Failure::new(
                            reasons::UNSUPPORTED_TRIGGER,
                            "SignalTrigger is not implemented by this elastic-scaler version: use MetricsTrigger (minReplicas ≥ 1) or StateTrigger",
                        )));
                        (None, String::new())
                    }
                };
                o.desired = desired;
                if let Some(d) = desired {
                    let algorithm = o.algorithm.clone().unwrap_or_else(|| "state".into());
                    let direction = match d.cmp(&scale.replicas) {
                        std::cmp::Ordering::Greater => "up",
                        std::cmp::Ordering::Less => "down",
                        std::cmp::Ordering::Equal => "none",
                    };
                    ctx.metrics
                        .decisions
                        .get_or_create(&DecisionLabels {
                            algorithm,
                            direction,
                        })
                        .inc();
                    if d != scale.replicas {
                        match handler.set_replicas(target, d).await {
                            Ok(()) => {
                                ctx.metrics.scale_writes.inc();
                                tracing::info!(scaler = %es.name_any(), namespace = ?es.namespace(), %target, from = scale.replicas, to = d, %reason, "rescaled");
                                publish(
                                    ctx,
                                    es,
                                    EventType::Normal,
                                    reasons::RESCALED,
                                    &format!(
                                        "Scale{}",
                                        if d > scale.replicas { "Up" } else { "Down" }
                                    ),
                                    format!(
                                        "{target}: {} → {d} replicas: {reason}",
                                        scale.replicas
                                    ),
                                );
                                o.replicas = Some((d, scale.ready));
                                o.scaled = Some(ScaleRecord {
                                    time: now_t.clone(),
                                    from: scale.replicas,
                                    to: d,
                                    reason: reason.chars().take(300).collect(),
                                });
                            }
                            Err(e) => {
                                ctx.metrics.error("scale");
                                let f = handler_failure(&e);
                                publish(
                                    ctx,
                                    es,
                                    EventType::Warning,
                                    reasons::SCALE_FAILED,
                                    "Scale",
                                    f.message.clone(),
                                );
                                o.scale_error = Some(f);
                                retry = true;
                            }
                        }
                    }
                }
            }
        }
    }
    let new = status::next(&old, &o, es.metadata.generation, &now_t);
    if new != old {
        write_status(ctx, es, &new).await?;
        ctx.metrics.status_writes.inc();
        st.written = Some((es.metadata.generation, new));
    }
    Ok(match (fast, retry) {
        (true, _) => Next::Soon,
        (false, true) => Next::Retry,
        (false, false) => Next::Period,
    })
}

async fn write_status(ctx: &Ctx, es: &ElasticScaler, s: &ElasticScalerStatus) -> Result<(), Error> {
    let api: Api<ElasticScaler> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": ElasticScaler::api_version(&()),
        "kind": ElasticScaler::kind(&()),
        "status": s,
    });
    api.patch_status(
        &es.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        ctx.metrics.error("status");
        Error::Status(es.name_any(), e)
    })
}

fn error_policy(es: Arc<ElasticScaler>, e: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(scaler = %es.name_any(), error = %e, "reconcile failed; retrying");
    Action::requeue(ctx.config.retry)
}

/// A hash of what a reconcile reads from the object: a change starts a reconcile before the period is
/// due; our own status writes do not.
fn spec_or_annotations(es: &ElasticScaler) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    es.metadata.generation.hash(&mut h);
    es.metadata.annotations.hash(&mut h);
    h.finish()
}

/// Checks that the ElasticScaler CRD is installed, with a message that says what to do if not.
pub async fn check_crd(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<ElasticScaler> = Api::all(client.clone());
    api.list(&ListParams::default().limit(1)).await.map_err(|e| {
        anyhow::anyhow!(
            "listing elasticscalers.elasticscaler.io failed ({e}): is the ElasticScaler CRD installed (deploy/crds) and may this account list ElasticScalers?"
        )
    })?;
    Ok(())
}

/// Runs the controller until `token` is cancelled.
pub async fn run(ctx: Arc<Ctx>, token: CancellationToken) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let api: Api<ElasticScaler> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let tidals: Api<Tidal> = Api::all(client.clone());
    let cfg = kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
    // The cache keeps what a reconcile reads: managedFields (stored as JSON trees, most of an object's
    // memory) and kubectl's last-applied copy of the spec are dropped before objects are stored.
    let (reader, writer) = kube::runtime::reflector::store();
    let scalers = kube::runtime::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|es: &mut ElasticScaler| {
            es.managed_fields_mut().clear();
            es.annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(scalers, reader.clone());
    let states_reader = reader.clone();
    let ctx2 = ctx.clone();
    tokio::spawn({
        let token = token.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => state::retain(&ctx2.states, |k| states_reader.get(k).is_some()),
                }
            }
        }
    });
    tracing::info!("elastic-scaler controller started");
    controller
        .with_config(cfg)
        .watches(
            tidals,
            watcher::Config::default()
                .labels(labels::ES_NAME)
                .any_semantic(),
            |t: Tidal| {
                let l = t.labels();
                Some(
                    ObjectRef::<ElasticScaler>::new(l.get(labels::ES_NAME)?)
                        .within(l.get(labels::ES_NAMESPACE)?),
                )
            },
        )
        .graceful_shutdown_on(token.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    tracing::info!("elastic-scaler controller stopped");
    Ok(())
}
