//! GroupReplication: the whole set of targets is one group; groups beyond the first are clones.
//!
//! Pipeline of one reconcile (each step idempotent, the plan recomputed from observation every time):
//!
//! 1. read the bases; [`adopt`]: snapshot each, record the replica baseline, label them as group 0;
//! 2. find the Services that select base pods;
//! 3. [`groups::observe`] the clone groups, classify each complete or partial, and [`plan`](crate::plan);
//! 4. scale group 0 (to 0, or back to the baseline), remove groups (chosen by [`victims`](crate::victims)
//!    when the plan leaves a choice), create and complete groups — up to `concurrency` groups at a time;
//! 5. report: current groups, the selector, and the scale-down path when one ran.

pub mod adopt;
pub mod groups;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use api_types::keys::{labels, reasons};
use api_types::rsg::{ResourceScalingGroup, ScaleDownRecord};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::Error;
use crate::clone::selects;
use crate::context::Ctx;
use crate::kinds::{pod_labels, replicas};
use crate::plan::{Health, Observed, plan};
use crate::status::Outcome;
use crate::targets::Workload;
use crate::victims::{MetricValues, choose, promql};
use groups::{Created, Layout};

/// Reconciles a GroupReplication RSG whose targets resolved to `workloads`.
pub async fn reconcile(
    rsg: &ResourceScalingGroup,
    workloads: &[Workload],
    ctx: &Ctx,
) -> Result<Outcome, Error> {
    let name = rsg.name_any();
    let ns = rsg.namespace().unwrap_or_default();
    let Some(gc) = rsg.spec.scaling_strategy.group_config.clone() else {
        return Err(ctx.blocked(
            reasons::INVALID_SPEC,
            "spec.scalingStrategy.groupConfig is required for GroupReplication".into(),
        ));
    };
    let desired = u32::try_from(gc.replicas).unwrap_or(0);
    let group_name = rsg.group_name().to_string();

    let mut bases = Vec::with_capacity(workloads.len());
    for w in workloads {
        bases.push(ctx.get_workload(w).await?);
    }
    let snapshots = adopt::ensure_snapshots(rsg, workloads, &bases, ctx).await?;
    let baseline = adopt::ensure_baseline(rsg, workloads, &bases, &snapshots, ctx).await?;
    adopt::label_bases(rsg, workloads, &bases, ctx).await?;
    let services = associated_services(&name, workloads, &bases, ctx).await?;
    let layout = Layout {
        rsg: &name,
        namespace: &ns,
        group_name: &group_name,
        workloads,
        snapshots: &snapshots,
        baseline: &baseline,
        services: &services,
    };

    let seen = groups::observe(&name, &ns, workloads, ctx).await?;
    let all_zero_baseline = baseline.values().all(|b| *b == 0);
    let observed = Observed {
        group0_active: all_zero_baseline || bases.iter().any(|b| replicas(b).unwrap_or(1) > 0),
        clones: seen
            .iter()
            .map(|(g, objs)| (*g, layout.health(*g, objs)))
            .collect(),
    };
    let p = plan(desired, &observed);
    let mut outcome = Outcome::ready(String::new());

    // Group 0.
    if p.zero_group0 || p.restore_group0 {
        for (w, base) in workloads.iter().zip(&bases) {
            let want = if p.zero_group0 {
                0
            } else {
                baseline[&w.target]
            };
            if replicas(base) != Some(want) {
                ctx.set_replicas(w, want).await?;
            }
        }
        let what = if p.zero_group0 {
            "scaled group 0 (the base workloads) to 0".to_string()
        } else {
            "restored group 0 (the base workloads) to the replica baseline".to_string()
        };
        tracing::info!(rsg = %name, "{what}");
        ctx.event(rsg, false, reasons::GROUP0_SCALED, what).await;
    }

    // Removals: partial groups and everything for a scale to zero, then the chosen victims.
    let mut remove = p.remove.clone();
    if p.remove_count > 0 {
        let d = choose_victims(rsg, &layout, &gc, &p.candidates, p.remove_count, &seen, ctx).await;
        ctx.metrics
            .scale_down_decisions
            .get_or_create(&vec![("path", d.path.as_str().to_string())])
            .inc();
        tracing::info!(rsg = %name, path = d.path.as_str(), victims = ?d.victims, reason = %d.reason, "scale-down victims chosen");
        outcome.scale_down = Some(ScaleDownRecord {
            path: d.path.as_str().to_string(),
            groups: d.victims.iter().map(|g| *g as i32).collect(),
            reason: d.reason.clone(),
            time: k8s_openapi::jiff::Timestamp::now().to_string(),
        });
        let action = format!("RemoveGroupsBy{}", d.path.as_str());
        ctx.event_action(
            rsg,
            false,
            reasons::GROUPS_REMOVED,
            &action,
            format!(
                "removing groups {:?}, chosen by {}: {}",
                d.victims,
                d.path.as_str(),
                d.reason
            ),
        )
        .await;
        remove.extend(d.victims);
    }
    let empty = Vec::new();
    stream::iter(remove.iter().copied())
        .map(|g| groups::remove_group(&name, &ns, g, seen.get(&g).unwrap_or(&empty), ctx))
        .buffer_unordered(ctx.config.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    if !remove.is_empty() {
        ctx.metrics
            .groups
            .get_or_create(&vec![("op", "removed".to_string())])
            .inc_by(remove.len() as u64);
    }

    // Creation and completion.
    let build: Vec<u32> = p.complete.iter().chain(&p.create).copied().collect();
    let results: Vec<(u32, Created)> = stream::iter(build.iter().copied())
        .map(|g| {
            let layout = &layout;
            let seen_g = seen.get(&g).unwrap_or(&empty);
            async move {
                groups::create_group(layout, g, seen_g, ctx)
                    .await
                    .map(|c| (g, c))
            }
        })
        .buffer_unordered(ctx.config.concurrency)
        .try_collect()
        .await?;
    let mut conflicts: Vec<String> = Vec::new();
    let mut created: Vec<u32> = Vec::new();
    for (g, r) in results {
        match r {
            Created::Done => created.push(g),
            Created::Conflict(msg) => conflicts.push(msg),
        }
    }
    created.sort_unstable();
    conflicts.sort();
    let new_groups: Vec<u32> = created
        .iter()
        .copied()
        .filter(|g| p.create.contains(g))
        .collect();
    if !new_groups.is_empty() {
        ctx.metrics
            .groups
            .get_or_create(&vec![("op", "created".to_string())])
            .inc_by(new_groups.len() as u64);
        tracing::info!(rsg = %name, groups = ?new_groups, "created groups");
        ctx.event(
            rsg,
            false,
            reasons::GROUPS_CREATED,
            format!(
                "created groups {new_groups:?} (clones of {})",
                workloads
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await;
    }

    let mut complete: BTreeSet<u32> = observed
        .clones
        .iter()
        .filter(|(_, h)| **h == Health::Complete)
        .map(|(g, _)| *g)
        .collect();
    complete.extend(&created);
    for g in &remove {
        complete.remove(g);
    }
    let current = u32::from(desired > 0) as usize + complete.len();
    outcome.current = Some(current as i32);
    outcome.last_desired = Some(desired as i32);
    outcome.selector = Some(format!("{}={name}", labels::RSG_NAME));
    if conflicts.is_empty() {
        outcome.message = format!(
            "{current} of {desired} groups present (group 0 = the base workloads; clones {group_name}-<base>-<id> in {ns})"
        );
    } else {
        outcome.ready = false;
        outcome.reason = reasons::NAME_CONFLICT;
        outcome.message = conflicts.join("; ");
        outcome.requeue = Some(ctx.config.retry);
        tracing::warn!(rsg = %name, conflicts = %outcome.message, "groups blocked by name conflicts (already exists)");
        ctx.event(rsg, true, reasons::NAME_CONFLICT, outcome.message.clone())
            .await;
    }
    Ok(outcome)
}

/// Services in the bases' namespaces whose selector selects a base's pods (clones excluded), deduplicated.
async fn associated_services(
    rsg: &str,
    workloads: &[Workload],
    bases: &[Value],
    ctx: &Ctx,
) -> Result<Vec<Service>, Error> {
    let mut by_ns: BTreeMap<&str, Vec<Service>> = BTreeMap::new();
    for w in workloads {
        if !by_ns.contains_key(w.namespace.as_str()) {
            let api: Api<Service> = Api::namespaced(ctx.client.clone(), &w.namespace);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| ctx.api_error(e, &format!("list services in {}", w.namespace)))?;
            by_ns.insert(&w.namespace, list.items);
        }
    }
    let mut out: Vec<Service> = Vec::new();
    for (w, base) in workloads.iter().zip(bases) {
        let pods = pod_labels(w.kind, &w.name, base);
        for s in &by_ns[w.namespace.as_str()] {
            let is_clone = s
                .labels()
                .get(labels::RSG_GROUP_ID)
                .is_some_and(|g| g != "0")
                && s.labels().get(labels::RSG_NAME).is_some_and(|n| n == rsg);
            let sel = s
                .spec
                .as_ref()
                .and_then(|sp| sp.selector.clone())
                .unwrap_or_default();
            if !is_clone
                && selects(&sel, &pods)
                && !out.iter().any(|o| o.name_any() == s.name_any())
            {
                out.push(s.clone());
            }
        }
    }
    out.sort_by_key(|s| s.name_any());
    Ok(out)
}

async fn choose_victims(
    rsg: &ResourceScalingGroup,
    layout: &Layout<'_>,
    gc: &api_types::rsg::GroupConfig,
    candidates: &[u32],
    count: usize,
    seen: &groups::Observed,
    ctx: &Ctx,
) -> crate::victims::Decision {
    let sd = gc.scale_down.as_ref();
    let query = sd.and_then(|s| s.metric.as_ref()).and_then(promql);
    let values = match (&query, &ctx.prometheus) {
        (None, _) => MetricValues::NotConfigured,
        (Some(_), None) => {
            MetricValues::Failed("no Prometheus URL configured (RSG_PROMETHEUS_URL)".into())
        }
        (Some(q), Some(prom)) => match prom.values_by_group(q).await {
            Ok(v) => MetricValues::Values(v),
            Err(e) => {
                tracing::warn!(rsg = %rsg.name_any(), query = %q, error = %e, "prometheus query failed");
                MetricValues::Failed(e)
            }
        },
    };
    // Each group's copy of targetResources[0] carries the annotation fallback.
    let first = layout
        .workloads
        .first()
        .map(|w| w.name.as_str())
        .unwrap_or_default();
    let first_clone = |g: u32| api_types::rsg::clone_name(layout.group_name, first, g);
    let annotations: HashMap<u32, Option<f64>> = candidates
        .iter()
        .map(|g| {
            let v = seen
                .get(g)
                .into_iter()
                .flatten()
                .find(|s| {
                    matches!(s.kind, groups::ObjKind::Workload(..)) && s.name == first_clone(*g)
                })
                .and_then(|s| s.metric_value.as_deref())
                .and_then(|v| v.trim().parse::<f64>().ok());
            (*g, v)
        })
        .collect();
    choose(candidates, count, sd, values, &annotations)
}
