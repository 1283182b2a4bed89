//! Adoption of the base workloads: one ControllerRevision snapshot per target, the replica-baseline
//! ConfigMap, and the group-0 labels. Each step creates or patches only what is missing, so it runs on
//! every reconcile at the cost of reads alone.
//!
//! Snapshots and the ConfigMap carry `rsg.io/name` and a controller ownerReference to the RSG and no label
//! of the workload's own controller, so neither the StatefulSet nor the LeaderWorkerSet controller adopts
//! or truncates them. They are never refreshed when a base changes; deleting them re-snapshots. A snapshot
//! whose recorded source no longer matches the target reference is replaced.

use std::collections::BTreeMap;

use api_types::keys::{annotations, labels, reasons};
use api_types::rsg::{ResourceScalingGroup, replica_config_name};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::Error;
use crate::clone::{base_label_patch, snapshot_data};
use crate::context::Ctx;
use crate::kinds::replicas;
use crate::targets::Workload;

/// The snapshot's name: `<rsg>-<target>-snapshot`, the target name lowercased to a valid object name.
pub fn snapshot_name(rsg: &str, target: &str) -> String {
    let t: String = target
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{rsg}-{}-snapshot", t.trim_matches('-'))
}

fn source_of(w: &Workload) -> String {
    format!("{}/{}/{}", w.kind.as_str(), w.namespace, w.name)
}

fn owned_meta(rsg: &ResourceScalingGroup, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: rsg.namespace(),
        labels: Some(BTreeMap::from([
            (labels::RSG_NAME.to_string(), rsg.name_any()),
            (
                labels::MANAGED_BY.to_string(),
                labels::MANAGED_BY_VALUE.to_string(),
            ),
        ])),
        owner_references: rsg.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Makes sure every target has a snapshot; returns each target's snapshot payload by target name.
pub async fn ensure_snapshots(
    rsg: &ResourceScalingGroup,
    workloads: &[Workload],
    bases: &[Value],
    ctx: &Ctx,
) -> Result<BTreeMap<String, Value>, Error> {
    let name = rsg.name_any();
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &rsg.namespace().unwrap_or_default());
    let existing = api
        .list(&ListParams::default().labels(&format!("{}={name}", labels::RSG_NAME)))
        .await
        .map_err(|e| ctx.api_error(e, "list controllerrevisions"))?;
    let mut out = BTreeMap::new();
    for (w, base) in workloads.iter().zip(bases) {
        let found = existing.items.iter().find(|cr| {
            cr.annotations().get(annotations::RSG_TARGET) == Some(&w.target)
                && cr.metadata.deletion_timestamp.is_none()
        });
        if let Some(cr) = found {
            if cr.annotations().get(annotations::RSG_SOURCE) == Some(&source_of(w)) {
                out.insert(
                    w.target.clone(),
                    cr.data.as_ref().map(|d| d.0.clone()).unwrap_or(Value::Null),
                );
                continue;
            }
            // The target now names another workload: the old snapshot is of something else.
            ctx.metrics.write("delete", "ControllerRevision");
            api.delete(&cr.name_any(), &DeleteParams::background())
                .await
                .map_err(|e| ctx.api_error(e, "delete controllerrevisions"))?;
        }
        let data = snapshot_data(base);
        let mut meta = owned_meta(rsg, snapshot_name(&name, &w.target));
        meta.annotations = Some(BTreeMap::from([
            (annotations::RSG_TARGET.to_string(), w.target.clone()),
            (annotations::RSG_SOURCE.to_string(), source_of(w)),
        ]));
        let cr = ControllerRevision {
            metadata: meta,
            data: Some(RawExtension(data.clone())),
            revision: 1,
        };
        ctx.metrics.write("create", "ControllerRevision");
        match api.create(&PostParams::default(), &cr).await {
            Ok(_) => tracing::info!(rsg = %name, target = %w.target, source = %w, "snapshot taken"),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                return Err(ctx.blocked(
                    reasons::NAME_CONFLICT,
                    format!(
                        "ControllerRevision {} already exists and is not this RSG's snapshot of target {:?}: delete or rename it; nothing was overwritten",
                        cr.metadata.name.as_deref().unwrap_or_default(),
                        w.target
                    ),
                ));
            }
            Err(e) => return Err(ctx.api_error(e, "create controllerrevisions")),
        }
        out.insert(w.target.clone(), data);
    }
    Ok(out)
}

/// Makes sure the replica-baseline ConfigMap exists with a key per target; returns the baselines.
pub async fn ensure_baseline(
    rsg: &ResourceScalingGroup,
    workloads: &[Workload],
    bases: &[Value],
    snapshots: &BTreeMap<String, Value>,
    ctx: &Ctx,
) -> Result<BTreeMap<String, i32>, Error> {
    let ns = rsg.namespace().unwrap_or_default();
    let cm_name = replica_config_name(&rsg.name_any());
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let cm = api
        .get_opt(&cm_name)
        .await
        .map_err(|e| ctx.api_error(e, "get configmaps"))?;
    let data = cm.as_ref().and_then(|c| c.data.clone()).unwrap_or_default();
    // A target's first baseline is its current replicas; a base that was scaled to 0 by a scale to zero
    // falls back to its snapshot's count, then to 1.
    let initial = |w: &Workload, base: &Value| -> i32 {
        let current = replicas(base).unwrap_or(1);
        if current > 0 {
            return current;
        }
        snapshots
            .get(&w.target)
            .and_then(replicas)
            .filter(|r| *r > 0)
            .unwrap_or(current)
    };
    let missing: BTreeMap<String, String> = workloads
        .iter()
        .zip(bases)
        .filter(|(w, _)| !data.contains_key(&w.target))
        .map(|(w, b)| (w.target.clone(), initial(w, b).to_string()))
        .collect();
    if cm.is_none() {
        let cm = ConfigMap {
            metadata: owned_meta(rsg, cm_name.clone()),
            data: Some(missing.clone()),
            ..ConfigMap::default()
        };
        ctx.metrics.write("create", "ConfigMap");
        match api.create(&PostParams::default(), &cm).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                // Created since we read it (or not ours): re-read next time.
                return Err(Error::Kube(kube::Error::Api(s)));
            }
            Err(e) => return Err(ctx.api_error(e, "create configmaps")),
        }
    } else if !missing.is_empty() {
        ctx.metrics.write("patch", "ConfigMap");
        api.patch(
            &cm_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": missing})),
        )
        .await
        .map_err(|e| ctx.api_error(e, "patch configmaps"))?;
    }
    let mut out = BTreeMap::new();
    for w in workloads {
        let raw = data
            .get(&w.target)
            .or_else(|| missing.get(&w.target))
            .cloned()
            .unwrap_or_default();
        match raw.trim().parse::<i32>() {
            Ok(n) if n >= 0 => {
                out.insert(w.target.clone(), n);
            }
            _ => {
                return Err(ctx.blocked(
                    reasons::INVALID_BASELINE,
                    format!(
                        "ConfigMap {ns}/{cm_name} key {:?} is {raw:?}, not a replica count: set it to a non-negative integer",
                        w.target
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// Labels each base workload and its pod templates as group 0 (only those not labelled yet).
pub async fn label_bases(
    rsg: &ResourceScalingGroup,
    workloads: &[Workload],
    bases: &[Value],
    ctx: &Ctx,
) -> Result<(), Error> {
    let name = rsg.name_any();
    for (w, base) in workloads.iter().zip(bases) {
        if let Some(patch) = base_label_patch(w.kind, base, &name) {
            ctx.metrics.write("patch", w.kind.as_str());
            ctx.workload_api(w.kind, &w.api_version, &w.namespace)
                .patch(&w.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| ctx.api_error(e, &format!("patch {w}")))?;
            tracing::info!(rsg = %name, workload = %w, "labelled base workload as group 0");
        }
    }
    Ok(())
}

/// Removes this RSG's snapshots and ConfigMap (the finalizer); workloads and Services are kept.
pub async fn cleanup(rsg: &ResourceScalingGroup, ctx: &Ctx) -> Result<(), Error> {
    let ns = rsg.namespace().unwrap_or_default();
    let name = rsg.name_any();
    let crs: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let list = crs
        .list(&ListParams::default().labels(&format!("{}={name}", labels::RSG_NAME)))
        .await?;
    for cr in list.items {
        ctx.metrics.write("delete", "ControllerRevision");
        match crs
            .delete(&cr.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.metrics.write("delete", "ConfigMap");
    match cms
        .delete(&replica_config_name(&name), &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(rsg = %name, namespace = %ns, "removed snapshots and replica ConfigMap; workloads and Services kept");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_valid_object_names() {
        assert_eq!(snapshot_name("pd", "prefill"), "pd-prefill-snapshot");
        assert_eq!(
            snapshot_name("pd", "Prefill_Main"),
            "pd-prefill-main-snapshot"
        );
    }
}
