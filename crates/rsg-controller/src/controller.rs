//! Wiring: the RSG watch, the watches that map workload, Service, snapshot and ConfigMap events back to
//! their RSGs, and the reconcile pipeline with its finalizer and status write.
//!
//! Triggers: RSG changes; changes of workloads an RSG references (InplaceScaling leaders that something
//! else scaled, deleted or edited bases) or labels `rsg.io/name` (clones); labelled Services (a deleted
//! clone Service is recreated); owned snapshots and ConfigMaps (deleting them re-snapshots); and a resync
//! every `--resync-seconds`. Nothing polls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_types::keys::{conditions, finalizers, labels, reasons};
use api_types::rsg::{ResourceScalingGroup, ResourceScalingGroupStatus, StrategyType};
use api_types::validation::{summarize, validate_rsg};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::context::Ctx;
use crate::kinds::Kind;
use crate::status::{Outcome, next_status};
use crate::targets::{Resolve, Workload, rbg_role_workload, references, resolve};
use crate::{group_replication, inplace};

/// The status this process last wrote for each RSG (by uid). A reconcile can run on a cached object that
/// predates our own last status write (its trigger, e.g. a Deployment event, outran the RSG's watch event);
/// carrying over fields from that stale status would undo the write, and comparing with it would write
/// the same status twice. So the freshest status is ours when we have one.
#[derive(Default)]
pub struct Written(
    Mutex<HashMap<ObjectRef<ResourceScalingGroup>, (String, ResourceScalingGroupStatus)>>,
);

impl Written {
    /// The freshest known status of `rsg`.
    pub fn freshest(&self, rsg: &ResourceScalingGroup) -> Option<ResourceScalingGroupStatus> {
        let uid = rsg.uid().unwrap_or_default();
        self.0
            .lock()
            .expect("not poisoned")
            .get(&ObjectRef::from_obj(rsg))
            .filter(|(u, _)| *u == uid)
            .map(|(_, s)| s.clone())
            .or_else(|| rsg.status.clone())
    }

    fn record(&self, rsg: &ResourceScalingGroup, status: ResourceScalingGroupStatus) {
        self.0.lock().expect("not poisoned").insert(
            ObjectRef::from_obj(rsg),
            (rsg.uid().unwrap_or_default(), status),
        );
    }

    fn forget(&self, rsg: &ResourceScalingGroup) {
        self.0
            .lock()
            .expect("not poisoned")
            .remove(&ObjectRef::from_obj(rsg));
    }
}

/// Reconciler context: [`Ctx`] plus the written-status memory.
pub struct State {
    /// Shared context.
    pub ctx: Ctx,
    /// Last status written per RSG.
    pub written: Written,
}

/// Runs the controller until `shutdown`; `namespace` limits every watch to one namespace.
pub async fn run(state: Arc<State>, namespace: Option<String>, shutdown: CancellationToken) {
    let client = state.ctx.client.clone();
    let api = |ns: &Option<String>| -> Api<ResourceScalingGroup> {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    };
    let labelled = watcher::Config::default().labels(labels::RSG_NAME);
    let mut ctrl = Controller::new(api(&namespace), watcher::Config::default());
    let store = ctrl.store();
    ctrl = ctrl
        .owns(
            scoped::<ControllerRevision>(&client, &namespace),
            labelled.clone(),
        )
        .owns(scoped::<ConfigMap>(&client, &namespace), labelled.clone())
        .watches(scoped::<Service>(&client, &namespace), labelled, |s| {
            by_label(s.labels(), s.namespace())
        });
    for kind in Kind::ALL {
        let ar = kind.api_resource(kind.default_api_version());
        if kind == Kind::LeaderWorkerSet
            && !api_installed(&client, kind.default_api_version()).await
        {
            tracing::info!(
                "LeaderWorkerSet API not installed: not watching it (RSGs targeting it report TargetNotFound)"
            );
            continue;
        }
        let dapi: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let store = store.clone();
        ctrl = ctrl.watches_with(dapi, ar, watcher::Config::default(), move |o| {
            map_workload(&store, kind, &o)
        });
    }
    ctrl.graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, state)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile stream");
            }
        })
        .await;
}

fn scoped<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn api_installed(client: &Client, api_version: &str) -> bool {
    client.list_api_group_resources(api_version).await.is_ok()
}

fn by_label(
    l: &std::collections::BTreeMap<String, String>,
    ns: Option<String>,
) -> Option<ObjectRef<ResourceScalingGroup>> {
    let name = l.get(labels::RSG_NAME)?;
    Some(ObjectRef::new(name).within(&ns?))
}

/// The RSGs a workload event concerns: the one its `rsg.io/name` label names (clones, same-namespace
/// bases) and every RSG whose targets reference it (InplaceScaling leaders, bases elsewhere).
fn map_workload(
    store: &Store<ResourceScalingGroup>,
    kind: Kind,
    o: &DynamicObject,
) -> Vec<ObjectRef<ResourceScalingGroup>> {
    let ns = o.namespace().unwrap_or_default();
    let name = o.name_any();
    let mut out: Vec<_> = by_label(o.labels(), o.namespace()).into_iter().collect();
    for rsg in store.state() {
        let rns = rsg.namespace().unwrap_or_default();
        if rsg
            .spec
            .target_resources
            .iter()
            .any(|t| references(t, &rns, kind, &ns, &name))
        {
            let r = ObjectRef::from_obj(&*rsg);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

async fn reconcile(rsg: Arc<ResourceScalingGroup>, state: Arc<State>) -> Result<Action, Error> {
    let start = Instant::now();
    let ctx = &state.ctx;
    let api: Api<ResourceScalingGroup> =
        Api::namespaced(ctx.client.clone(), &rsg.namespace().unwrap_or_default());
    let r = finalizer(&api, finalizers::RSG_CLEANUP, rsg, |ev| async {
        match ev {
            Finalizer::Apply(rsg) => apply(&rsg, &state).await,
            Finalizer::Cleanup(rsg) => {
                group_replication::adopt::cleanup(&rsg, ctx).await?;
                state.written.forget(&rsg);
                Ok(Action::await_change())
            }
        }
    })
    .await;
    ctx.metrics
        .reconcile_seconds
        .observe(start.elapsed().as_secs_f64());
    let result = if r.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&vec![("result", result.to_string())])
        .inc();
    r.map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

async fn apply(rsg: &ResourceScalingGroup, state: &State) -> Result<Action, Error> {
    let ctx = &state.ctx;
    let name = rsg.name_any();
    let errors = validate_rsg(&name, &rsg.spec);
    let outcome = if !errors.is_empty() {
        // Not acted on; re-validated when the spec changes.
        Outcome::blocked(reasons::INVALID_SPEC, summarize(&errors), ctx.config.resync)
    } else {
        let last = state.written.freshest(rsg);
        match strategy(rsg, last.as_ref(), ctx).await {
            Ok(o) => o,
            Err(Error::Blocked(o)) => *o,
            Err(e) => return Err(e),
        }
    };
    write_status(rsg, &outcome, state).await?;
    if let Some(after) = outcome.requeue {
        // Seed 002's FAQ: "requeue for convergence" while current and desired differ.
        tracing::info!(rsg = %name, reason = outcome.reason, after = ?after, "requeue for convergence");
    }
    Ok(Action::requeue(
        outcome.requeue.unwrap_or(ctx.config.resync),
    ))
}

async fn strategy(
    rsg: &ResourceScalingGroup,
    last: Option<&ResourceScalingGroupStatus>,
    ctx: &Ctx,
) -> Result<Outcome, Error> {
    let workloads = resolve_targets(rsg, ctx).await?;
    match rsg.spec.scaling_strategy.type_ {
        StrategyType::GroupReplication => group_replication::reconcile(rsg, &workloads, ctx).await,
        StrategyType::InplaceScaling => {
            let applied = last.and_then(|s| s.last_desired_replicas);
            inplace::reconcile(rsg, applied, &workloads, ctx).await
        }
    }
}

async fn resolve_targets(rsg: &ResourceScalingGroup, ctx: &Ctx) -> Result<Vec<Workload>, Error> {
    let ns = rsg.namespace().unwrap_or_default();
    let mut out = Vec::new();
    for t in &rsg.spec.target_resources {
        match resolve(t, &ns) {
            Resolve::Direct(w) => out.push(w),
            Resolve::RoleBasedGroup {
                api_version,
                namespace,
                name,
                ..
            } => {
                let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
                let ar =
                    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, "RoleBasedGroup"));
                let api: Api<DynamicObject> =
                    Api::namespaced_with(ctx.client.clone(), &namespace, &ar);
                let what = format!("get RoleBasedGroup {namespace}/{name}");
                let rbg = match api.get_opt(&name).await {
                    Ok(Some(o)) => serde_json::to_value(o).map_err(Error::Json)?,
                    Ok(None) => {
                        return Err(ctx.blocked(
                            reasons::TARGET_NOT_FOUND,
                            format!("target resource not found: RoleBasedGroup {namespace}/{name} (targetResources {:?})", t.name),
                        ));
                    }
                    Err(e) => return Err(ctx.api_error(e, &what)),
                };
                let w = rbg_role_workload(t, &rbg, &namespace)
                    .map_err(|m| ctx.blocked(reasons::TARGET_NOT_FOUND, m))?;
                out.push(w);
            }
            Resolve::Unsupported(kind) => {
                return Err(ctx.blocked(
                    reasons::INVALID_SPEC,
                    format!("kind {kind:?} is not supported: use Deployment, StatefulSet, LeaderWorkerSet or RoleBasedGroup"),
                ));
            }
        }
    }
    Ok(out)
}

async fn write_status(
    rsg: &ResourceScalingGroup,
    outcome: &Outcome,
    state: &State,
) -> Result<(), Error> {
    let ctx = &state.ctx;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let old = state.written.freshest(rsg);
    let next = next_status(rsg, old.as_ref(), outcome, now);
    if old.as_ref() == Some(&next) {
        return Ok(());
    }
    let old_ready = old
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY));
    let changed_ready =
        old_ready.is_none_or(|c| c.reason != outcome.reason || c.message != outcome.message);
    if !outcome.ready && changed_ready && outcome.reason != reasons::NAME_CONFLICT {
        tracing::warn!(rsg = %rsg.name_any(), reason = outcome.reason, message = %outcome.message, "not ready");
        ctx.event(rsg, true, outcome.reason, outcome.message.clone())
            .await;
    }
    let api: Api<ResourceScalingGroup> =
        Api::namespaced(ctx.client.clone(), &rsg.namespace().unwrap_or_default());
    ctx.metrics.write("patch", "ResourceScalingGroup/status");
    api.patch_status(
        &rsg.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": next})),
    )
    .await?;
    state.written.record(rsg, next);
    Ok(())
}

fn error_policy(rsg: Arc<ResourceScalingGroup>, err: &Error, state: Arc<State>) -> Action {
    tracing::warn!(rsg = %rsg.name_any(), namespace = ?rsg.namespace(), error = %err, "reconcile failed; retrying");
    let _ = &state;
    Action::requeue(Duration::from_secs(5))
}
