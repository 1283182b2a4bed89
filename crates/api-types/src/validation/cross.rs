//! Rules across objects: one workload in at most one RSG of a strategy type, and at most one autoscaler
//! per scale target (ElasticScalers and native HorizontalPodAutoscalers alike).
//!
//! The caller supplies the other objects (the webhook from its watch caches, a controller from its
//! reflector store); the rules themselves stay pure.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

use super::FieldError;
use crate::{ElasticScalerSpec, ResourceScalingGroup, ResourceScalingGroupSpec};

/// A workload something acts on: namespace, API group (`""` for the core group, or unknown), kind and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    /// Namespace of the workload.
    pub namespace: String,
    /// API group: the part of `apiVersion` before `/`; empty when `apiVersion` is `v1` or not given.
    pub group: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Object name.
    pub name: String,
}

impl WorkloadKey {
    /// A key from an `apiVersion` (`apps/v1`, `v1` or empty) and the rest.
    pub fn new(namespace: &str, api_version: &str, kind: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            group: api_version
                .rsplit_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default(),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    /// Same workload. An empty group on either side (an ObjectReference without `apiVersion`) matches any.
    pub fn same_workload(&self, other: &Self) -> bool {
        self.namespace == other.namespace
            && self.kind == other.kind
            && self.name == other.name
            && (self.group.is_empty() || other.group.is_empty() || self.group == other.group)
    }
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The workloads an RSG in `namespace` targets, in `targetResources` order (`resourceRef.namespace`
/// defaults to the RSG's namespace).
pub fn rsg_workloads(namespace: &str, spec: &ResourceScalingGroupSpec) -> Vec<WorkloadKey> {
    spec.target_resources
        .iter()
        .map(|t| {
            let r = &t.resource_ref;
            WorkloadKey::new(
                r.namespace.as_deref().unwrap_or(namespace),
                &r.api_version,
                &r.kind,
                &r.name,
            )
        })
        .collect()
}

/// Another RSG of the same strategy type that already manages one of this RSG's workloads.
/// `others` may include the object itself (same namespace and name); it is skipped.
pub fn rsg_conflicts<'a>(
    namespace: &str,
    name: &str,
    spec: &ResourceScalingGroupSpec,
    others: impl IntoIterator<Item = &'a ResourceScalingGroup> + Clone,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let strategy = spec.scaling_strategy.type_;
    for (i, w) in rsg_workloads(namespace, spec).iter().enumerate() {
        for o in others.clone() {
            let o_ns = o.metadata.namespace.as_deref().unwrap_or_default();
            let o_name = o.metadata.name.as_deref().unwrap_or_default();
            if (o_ns == namespace && o_name == name) || o.spec.scaling_strategy.type_ != strategy {
                continue;
            }
            // Compared field by field, without allocating: this runs for every RSG in the cluster on each
            // admission.
            let manages = o.spec.target_resources.iter().any(|t| {
                let r = &t.resource_ref;
                r.name == w.name
                    && r.kind == w.kind
                    && r.namespace.as_deref().unwrap_or(o_ns) == w.namespace
                    && {
                        let g = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
                        g.is_empty() || w.group.is_empty() || g == w.group
                    }
            });
            if manages {
                errs.push(FieldError::new(
                    format!("spec.targetResources[{i}].resourceRef"),
                    format!(
                        "{w} is already managed by ResourceScalingGroup {o_ns}/{o_name} with strategy {strategy:?}: a workload may belong to one {strategy:?} group; remove it from one of the two"
                    ),
                ));
                break;
            }
        }
    }
    errs
}

/// The scale target of an ElasticScaler in `namespace` (`targetRef.namespace` defaults to it).
pub fn elastic_scaler_target(namespace: &str, spec: &ElasticScalerSpec) -> WorkloadKey {
    let r = &spec.target_ref;
    WorkloadKey::new(
        r.namespace.as_deref().unwrap_or(namespace),
        r.api_version.as_deref().unwrap_or_default(),
        r.kind.as_deref().unwrap_or_default(),
        r.name.as_deref().unwrap_or_default(),
    )
}

/// The scale target of a native HorizontalPodAutoscaler.
pub fn hpa_target(hpa: &HorizontalPodAutoscaler) -> WorkloadKey {
    let ns = hpa.metadata.namespace.as_deref().unwrap_or_default();
    let t = &hpa.spec.scale_target_ref;
    WorkloadKey::new(
        ns,
        t.api_version.as_deref().unwrap_or_default(),
        &t.kind,
        &t.name,
    )
}

/// A second autoscaler on `target`. `existing` lists the other scalers as (description, e.g.
/// `HorizontalPodAutoscaler ns/web`, and their target); the caller leaves the object itself out.
pub fn scaler_conflicts(
    target: &WorkloadKey,
    existing: &[(String, WorkloadKey)],
) -> Vec<FieldError> {
    existing
        .iter()
        .filter(|(_, t)| t.same_workload(target))
        .map(|(who, _)| {
            FieldError::new(
                "spec.targetRef",
                format!(
                    "{target} is already scaled by {who}: two autoscalers on one target overwrite each other's replicas; delete {who} or point this ElasticScaler at another target"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsg(ns: &str, name: &str, strategy: &str, targets: &[(&str, &str)]) -> ResourceScalingGroup {
        let targets: Vec<_> = targets
            .iter()
            .map(|(n, w)| serde_json::json!({"name": n, "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": w}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"targetResources": targets, "scalingStrategy": {"type": strategy}}
        }))
        .unwrap()
    }

    #[test]
    fn same_strategy_same_workload_conflicts_other_strategy_does_not() {
        let me = rsg(
            "a",
            "me",
            "GroupReplication",
            &[("p", "prefill"), ("d", "decode")],
        );
        let others = [
            me.clone(),
            rsg("a", "x", "GroupReplication", &[("d", "decode")]),
            rsg("a", "y", "InplaceScaling", &[("p", "prefill")]),
            rsg("b", "z", "GroupReplication", &[("p", "prefill")]),
        ];
        let errs = rsg_conflicts("a", "me", &me.spec, &others);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.targetResources[1].resourceRef");
        assert!(
            errs[0]
                .message
                .contains("Deployment a/decode is already managed by ResourceScalingGroup a/x")
        );
    }

    #[test]
    fn scaler_conflict_names_the_other_scaler_and_ignores_missing_group() {
        let t = WorkloadKey::new("ns", "", "Deployment", "web");
        let existing = vec![
            (
                "HorizontalPodAutoscaler ns/h".to_string(),
                WorkloadKey::new("ns", "apps/v1", "Deployment", "web"),
            ),
            (
                "ElasticScaler ns/other".to_string(),
                WorkloadKey::new("ns", "apps/v1", "Deployment", "api"),
            ),
        ];
        let errs = scaler_conflicts(&t, &existing);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .message
                .contains("Deployment ns/web is already scaled by HorizontalPodAutoscaler ns/h")
        );
        assert!(
            !WorkloadKey::new("ns", "apps/v1", "Deployment", "web").same_workload(
                &WorkloadKey::new("ns", "example.com/v1", "Deployment", "web")
            )
        );
    }
}
