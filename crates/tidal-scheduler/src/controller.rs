//! The Tidal reconciler: validate → plan → act → status → sleep until the next firing.
//!
//! One kube-runtime `Controller` watches Tidals. Each reconcile computes the [`Plan`](crate::plan::Plan)
//! at the current wall-clock time, applies the active rule if it was not applied yet (through the
//! target's `/scale`, or only `status.desiredReplicas` for a linked ElasticScaler), writes status (a merge
//! patch), and returns `requeue(next firing − now)`: the controller sleeps until exactly the
//! next firing, with no polling. Wall-clock steps are caught by [`crate::clock`], which re-runs every
//! reconcile when the wall clock and the monotonic clock disagree.

use std::sync::Arc;
use std::time::Duration;

use api_types::Tidal;
use api_types::keys::{conditions, labels, reasons};
use api_types::tidal::TidalStatus;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use pdo_runtime::events::EventQueue;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::plan::{self, Action, Plan};
use crate::target::{Scaler, TargetError};

/// Field manager of the status writes.
pub const MANAGER: &str = "tidal-scheduler";

/// Every field of `TidalStatus`, nulled in the merge patch when absent.
const STATUS_FIELDS: [&str; 8] = [
    "activeRule",
    "activeRuleEffectiveTime",
    "conditions",
    "desiredReplicas",
    "lastTriggerRule",
    "lastTriggerTime",
    "nextTriggerRule",
    "nextTriggerTime",
];

/// Settings from the flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// Allow `targetRef.namespace` to differ from the Tidal's namespace.
    pub allow_cross_namespace: bool,
    /// Delay before a failed scale write is retried.
    pub retry: Duration,
    /// Tidals reconciled at once.
    pub concurrency: u16,
    /// Watch only this namespace.
    pub namespace: Option<String>,
}

/// Everything a reconcile needs.
pub struct Ctx {
    /// API client.
    pub client: kube::Client,
    /// Scale-subresource writer.
    pub scaler: Scaler,
    /// Events, published off the hot path.
    pub events: EventQueue,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings.
    pub config: Config,
}

/// A reconcile failure (retried after `Config::retry`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing status failed.
    #[error("writing status of Tidal {0}: {1}")]
    Status(String, #[source] kube::Error),
}

/// How the Tidal acts.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// Write the target's scale subresource.
    Scale,
    /// Publish `status.desiredReplicas` for this ElasticScaler (namespace, name).
    ElasticScaler(String, String),
}

/// Reads the ElasticScaler link labels: both or neither.
fn mode(t: &Tidal) -> Result<Mode, String> {
    let l = t.labels();
    match (l.get(labels::ES_NAME), l.get(labels::ES_NAMESPACE)) {
        (Some(n), Some(ns)) if !n.is_empty() && !ns.is_empty() => {
            Ok(Mode::ElasticScaler(ns.clone(), n.clone()))
        }
        (None, None) => Ok(Mode::Scale),
        _ => Err(format!(
            "metadata.labels: set both {} and {} (non-empty) to hand desiredReplicas to an ElasticScaler, or neither to scale spec.targetRef directly",
            labels::ES_NAME,
            labels::ES_NAMESPACE
        )),
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: Time(Timestamp::now()),
        observed_generation: generation,
    }
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn keep_transition_times(new: &mut [Condition], old: Option<&TidalStatus>) {
    let Some(old) = old else { return };
    for c in new.iter_mut() {
        if let Some(o) = old.conditions.iter().find(|o| o.type_ == c.type_)
            && o.status == c.status
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}

fn rule_name(t: &Tidal, f: Option<plan::Firing>) -> Option<String> {
    f.map(|f| t.spec.triggers.times.rules[f.rule].name.clone())
}

fn time(f: Option<plan::Firing>) -> Option<Time> {
    f.map(|f| Time(f.at))
}

/// The status fields that come from the plan (conditions are set by the caller).
fn planned_status(t: &Tidal, p: &Plan, action: &Action) -> TidalStatus {
    let mut s = TidalStatus {
        last_trigger_rule: rule_name(t, p.previous),
        last_trigger_time: time(p.previous),
        next_trigger_rule: rule_name(t, p.next),
        next_trigger_time: time(p.next),
        ..TidalStatus::default()
    };
    if *action == Action::KeepNewer
        && let Some(old) = t.status.as_ref()
    {
        s.active_rule = old.active_rule.clone();
        s.active_rule_effective_time = old.active_rule_effective_time.clone();
        s.desired_replicas = old.desired_replicas;
        s.last_trigger_rule = old.last_trigger_rule.clone();
        s.last_trigger_time = old.last_trigger_time.clone();
    } else if let Some(a) = p.active {
        s.active_rule = rule_name(t, p.active);
        s.active_rule_effective_time = Some(Time(a.at));
        s.desired_replicas = Some(t.spec.triggers.times.rules[a.rule].replicas);
    }
    s
}

async fn write_status(ctx: &Ctx, t: &Tidal, mut status: TidalStatus) -> Result<bool, Error> {
    keep_transition_times(&mut status.conditions, t.status.as_ref());
    if t.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let ns = t.namespace().unwrap_or_default();
    let api: Api<Tidal> = Api::namespaced(ctx.client.clone(), &ns);
    // A JSON merge patch of the whole status, absent fields as explicit nulls: cheaper for the API server
    // than server-side apply on an object of up to 100 rules, which matters when 1,000 Tidals fire at once.
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(m) = body.as_object_mut() {
        for key in STATUS_FIELDS {
            m.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    api.patch_status(
        &t.name_any(),
        &PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(serde_json::json!({ "status": body })),
    )
    .await
    .map_err(|e| Error::Status(format!("{ns}/{}", t.name_any()), e))?;
    Ok(true)
}

/// Requeue at the next firing (a few ms late, so the wall clock has passed it when we look).
fn until(next: Option<plan::Firing>) -> Requeue {
    match next {
        Some(n) => {
            let d = Duration::try_from(n.at.duration_since(Timestamp::now())).unwrap_or_default();
            Requeue::requeue(d + Duration::from_millis(5))
        }
        None => Requeue::await_change(),
    }
}

/// Reconciles one Tidal.
pub async fn reconcile(t: Arc<Tidal>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let generation = t.metadata.generation;
    let invalid = |msg: String| {
        let c =
            |ty: &str, ok: bool| condition(ty, ok, reasons::INVALID_SPEC, msg.clone(), generation);
        TidalStatus {
            conditions: vec![
                c(conditions::READY, false),
                c(conditions::PROGRESSING, false),
                c(conditions::DEGRADED, true),
            ],
            ..TidalStatus::default()
        }
    };
    // 1. Validate: the same rules as the webhook; an invalid Tidal is reported, never acted on.
    let schedules = match plan::schedules(&t) {
        Ok(s) => s,
        Err(errs) => {
            let msg = errs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            write_status(&ctx, &t, invalid(msg)).await?;
            return Ok(Requeue::await_change());
        }
    };
    let mode = match mode(&t) {
        Ok(m) => m,
        Err(msg) => {
            write_status(&ctx, &t, invalid(msg)).await?;
            return Ok(Requeue::await_change());
        }
    };
    let own_ns = t.namespace().unwrap_or_default();
    if mode == Mode::Scale
        && !ctx.config.allow_cross_namespace
        && t.spec.target_ref.namespace != own_ns
    {
        let msg = format!(
            "spec.targetRef.namespace {:?} differs from the Tidal's namespace {own_ns:?}: create the Tidal in the target's namespace (cross-namespace targets need --allow-cross-namespace-targets)",
            t.spec.target_ref.namespace
        );
        write_status(&ctx, &t, invalid(msg)).await?;
        return Ok(Requeue::await_change());
    }

    // 2. Plan at the current wall-clock time.
    let now = Timestamp::now();
    let p = plan::plan(&schedules, now);
    let action = plan::decide(&t, &p);
    let mut status = planned_status(&t, &p, &action);
    let next_msg = match p.next {
        Some(n) => format!(
            "next: rule {} at {}",
            t.spec.triggers.times.rules[n.rule].name, n.at
        ),
        None => "no rule fires again".into(),
    };

    // 3. Act.
    let target = &t.spec.target_ref;
    let acted_on = match &mode {
        Mode::Scale => format!("{} {}/{}", target.kind, target.namespace, target.name),
        Mode::ElasticScaler(ns, n) => format!("ElasticScaler {ns}/{n} (status.desiredReplicas)"),
    };
    let mut applied = false;
    if action == Action::Apply
        && let Some(a) = p.active
    {
        let rule = &t.spec.triggers.times.rules[a.rule];
        if mode == Mode::Scale
            && let Err(e) = ctx.scaler.scale(target, rule.replicas).await
        {
            ctx.metrics.scale_errors.inc();
            tracing::warn!(tidal = %t.name_any(), namespace = %own_ns, error = %e, "scaling the target failed");
            status = keep_old_active(&t, status);
            let reason = e.reason();
            status.conditions = vec![
                condition(conditions::READY, false, reason, e.to_string(), generation),
                condition(
                    conditions::PROGRESSING,
                    true,
                    reasons::RULE_TRIGGERED,
                    format!("rule {} fired at {}: retrying", rule.name, a.at),
                    generation,
                ),
                condition(
                    conditions::DEGRADED,
                    true,
                    reason,
                    e.to_string(),
                    generation,
                ),
            ];
            write_status(&ctx, &t, status).await?;
            let retry = retry_or_next(&ctx, &p, &e);
            return Ok(retry);
        }
        applied = true;
    }

    // 4. Status.
    let (ready_reason, ready_msg) = match (&action, p.active) {
        (Action::Nothing, _) | (_, None) => (
            reasons::NO_RULE_FIRED,
            format!("no rule has fired yet; {next_msg}"),
        ),
        (_, Some(_)) => (
            reasons::RECONCILED,
            format!(
                "rule {} active since {}: {} replicas for {acted_on}",
                status.active_rule.as_deref().unwrap_or_default(),
                status
                    .active_rule_effective_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                status.desired_replicas.unwrap_or_default()
            ),
        ),
    };
    status.conditions = vec![
        condition(conditions::READY, true, ready_reason, ready_msg, generation),
        condition(
            conditions::PROGRESSING,
            false,
            reasons::WAITING_FOR_NEXT_RULE,
            next_msg.clone(),
            generation,
        ),
        condition(
            conditions::DEGRADED,
            false,
            reasons::RECONCILED,
            String::new(),
            generation,
        ),
    ];
    write_status(&ctx, &t, status.clone()).await?;

    if applied && let Some(a) = p.active {
        let lag = Timestamp::now().duration_since(a.at).as_secs_f64().max(0.0);
        let path = if mode == Mode::Scale {
            "scale"
        } else {
            "elasticscaler"
        };
        ctx.metrics.record_firing(path, lag);
        let rule = &t.spec.triggers.times.rules[a.rule];
        tracing::info!(tidal = %t.name_any(), namespace = %own_ns, rule = %rule.name, replicas = rule.replicas, at = %a.at, lag_seconds = lag, target = %acted_on, "rule applied");
        let ev = Event {
            type_: EventType::Normal,
            reason: reasons::RULE_TRIGGERED.into(),
            note: Some(format!(
                "rule {} (fired {}): {} replicas for {acted_on}",
                rule.name, a.at, rule.replicas
            )),
            action: "Scale".into(),
            secondary: None,
        };
        ctx.events.publish(ev, t.object_ref(&()));
    }
    Ok(until(p.next))
}

/// On a failed apply the active rule is not in effect yet: keep the recorded active fields.
fn keep_old_active(t: &Tidal, mut s: TidalStatus) -> TidalStatus {
    let old = t.status.clone().unwrap_or_default();
    s.active_rule = old.active_rule;
    s.active_rule_effective_time = old.active_rule_effective_time;
    s.desired_replicas = old.desired_replicas;
    s
}

fn retry_or_next(ctx: &Ctx, p: &Plan, _e: &TargetError) -> Requeue {
    let retry = ctx.config.retry;
    match p.next {
        Some(n)
            if Duration::try_from(n.at.duration_since(Timestamp::now())).unwrap_or_default()
                < retry =>
        {
            until(p.next)
        }
        _ => Requeue::requeue(retry),
    }
}

fn error_policy(t: Arc<Tidal>, e: &Error, ctx: Arc<Ctx>) -> Requeue {
    ctx.metrics.reconcile_errors.inc();
    tracing::warn!(tidal = %t.name_any(), error = %e, "reconcile failed; retrying");
    Requeue::requeue(ctx.config.retry)
}

/// What a reconcile reads from a Tidal besides the clock: its generation and labels.
fn spec_or_labels(t: &Tidal) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.metadata.generation.hash(&mut h);
    t.metadata.labels.hash(&mut h);
    Some(h.finish())
}

/// Checks that the Tidal CRD is installed, with a message that says what to do if not.
pub async fn check_crd(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<Tidal> = Api::all(client.clone());
    api.list(&ListParams::default().limit(1)).await.map_err(|e| {
        anyhow::anyhow!(
            "listing tidals.tidal.io failed ({e}): is the Tidal CRD installed (deploy/crds) and may this account list Tidals?"
        )
    })?;
    Ok(())
}

/// Runs the controller until `token` is cancelled; `reconcile_all` re-runs every reconcile (clock jumps).
pub async fn run(
    ctx: Arc<Ctx>,
    token: CancellationToken,
    reconcile_all: impl futures::Stream<Item = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let api: Api<Tidal> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let cfg = kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
    tracing::info!("tidal controller started");
    // Only a change of what a reconcile reads (spec → generation, the ElasticScaler link labels) starts
    // one; our own status writes do not. When 1,000 Tidals fire at once that halves the controller's work,
    // leaving the CPU to the writes that matter.
    let (reader, writer) = kube::runtime::reflector::store();
    let tidals = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_labels, Default::default());
    Controller::for_stream(tidals, reader)
        .with_config(cfg)
        .reconcile_all_on(reconcile_all)
        .graceful_shutdown_on(token.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    tracing::info!("tidal controller stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tidal(labels: serde_json::Value) -> Tidal {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tidal.io/v1alpha1", "kind": "Tidal",
            "metadata": {"name": "t", "namespace": "ns", "labels": labels},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "ns"},
                "triggers": {"times": {"rules": [{"name": "a", "cron": "CRON_TZ=UTC 0 9 * * *", "replicas": 1}]}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn elastic_scaler_link_needs_both_labels() {
        assert_eq!(mode(&tidal(serde_json::json!({}))), Ok(Mode::Scale));
        assert_eq!(
            mode(&tidal(
                serde_json::json!({"elasticscaler.io/name": "es", "elasticscaler.io/namespace": "prod"})
            )),
            Ok(Mode::ElasticScaler("prod".into(), "es".into()))
        );
        let err = mode(&tidal(serde_json::json!({"elasticscaler.io/name": "es"}))).unwrap_err();
        assert!(
            err.contains("set both elasticscaler.io/name and elasticscaler.io/namespace"),
            "{err}"
        );
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let old = TidalStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Reconciled".into(),
                message: "old".into(),
                last_transition_time: Time("2026-01-01T00:00:00Z".parse().unwrap()),
                observed_generation: Some(1),
            }],
            ..TidalStatus::default()
        };
        let mut new = vec![
            condition("Ready", true, "Reconciled", "new".into(), Some(1)),
            condition("Degraded", false, "Reconciled", String::new(), Some(1)),
        ];
        keep_transition_times(&mut new, Some(&old));
        assert_eq!(
            new[0].last_transition_time.0.to_string(),
            "2026-01-01T00:00:00Z"
        );
        assert_ne!(
            new[1].last_transition_time.0.to_string(),
            "2026-01-01T00:00:00Z"
        );
    }
}
