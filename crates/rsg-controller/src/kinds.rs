//! The workload kinds an RSG manages and where their replicas, pod templates and selectors live.
//!
//! Every target is handled as a [`DynamicObject`](kube::api::DynamicObject): Deployment and StatefulSet
//! (`apps/v1`) and LeaderWorkerSet (`leaderworkerset.x-k8s.io/v1`) differ only in the JSON paths below, so
//! one code path clones, labels and scales all three. A RoleBasedGroup target is resolved to its role's
//! workload first ([`crate::targets`]); the RBG itself is never written.

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// A workload kind the controller can clone, label and scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// leaderworkerset.x-k8s.io/v1 LeaderWorkerSet (`spec.replicas` counts leader/worker groups).
    LeaderWorkerSet,
}

/// The LeaderWorkerSet API group.
pub const LWS_GROUP: &str = "leaderworkerset.x-k8s.io";

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 3] = [Kind::Deployment, Kind::StatefulSet, Kind::LeaderWorkerSet];

    /// Parses a `resourceRef.kind` (or a RoleBasedGroup `workloadKind`).
    pub fn parse(kind: &str) -> Option<Kind> {
        match kind {
            "Deployment" => Some(Kind::Deployment),
            "StatefulSet" => Some(Kind::StatefulSet),
            "LeaderWorkerSet" => Some(Kind::LeaderWorkerSet),
            _ => None,
        }
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::LeaderWorkerSet => "LeaderWorkerSet",
        }
    }

    /// The API version used when a reference does not say.
    pub fn default_api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::StatefulSet => "apps/v1",
            Kind::LeaderWorkerSet => "leaderworkerset.x-k8s.io/v1",
        }
    }

    /// The API resource for `api_version` (e.g. `apps/v1`).
    pub fn api_resource(self, api_version: &str) -> ApiResource {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, self.as_str()))
    }

    /// JSON paths of the pod templates. A LeaderWorkerSet's `leaderTemplate` is optional.
    fn template_paths(self) -> &'static [&'static [&'static str]] {
        match self {
            Kind::Deployment | Kind::StatefulSet => &[&["spec", "template"]],
            Kind::LeaderWorkerSet => &[
                &["spec", "leaderWorkerTemplate", "leaderTemplate"],
                &["spec", "leaderWorkerTemplate", "workerTemplate"],
            ],
        }
    }

    /// Whether the kind has a `spec.selector` that must be narrowed to one group in a clone (a
    /// LeaderWorkerSet's selector is internal and follows its name).
    pub fn has_selector(self) -> bool {
        !matches!(self, Kind::LeaderWorkerSet)
    }
}

fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// `spec.replicas` of a workload object (`None` when unset: the API defaults it to 1).
pub fn replicas(obj: &Value) -> Option<i32> {
    get_path(obj, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .and_then(|r| i32::try_from(r).ok())
}

/// The pod templates of `obj` that exist, mutably (a LeaderWorkerSet's missing `leaderTemplate` is never
/// created).
pub fn templates_mut(kind: Kind, obj: &mut Value) -> Vec<&mut Value> {
    match kind {
        Kind::Deployment | Kind::StatefulSet => {
            obj.pointer_mut("/spec/template").into_iter().collect()
        }
        Kind::LeaderWorkerSet => obj
            .pointer_mut("/spec/leaderWorkerTemplate")
            .and_then(Value::as_object_mut)
            .map(|m| {
                m.iter_mut()
                    .filter(|(k, v)| {
                        (*k == "leaderTemplate" || *k == "workerTemplate") && v.is_object()
                    })
                    .map(|(_, v)| v)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The labels every pod of the workload carries, from its templates (the intersection when a
/// LeaderWorkerSet has two templates), plus the label its own controller adds that Services select on
/// (`leaderworkerset.sigs.k8s.io/name`).
pub fn pod_labels(
    kind: Kind,
    name: &str,
    obj: &Value,
) -> std::collections::BTreeMap<String, String> {
    let mut sets: Vec<std::collections::BTreeMap<String, String>> = Vec::new();
    for path in kind.template_paths() {
        if let Some(t) = get_path(obj, path) {
            let labels = t
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            sets.push(labels);
        }
    }
    let mut labels = sets.pop().unwrap_or_default();
    for other in &sets {
        labels.retain(|k, v| other.get(k) == Some(v));
    }
    if kind == Kind::LeaderWorkerSet {
        labels.insert(
            api_types::keys::labels::LWS_NAME.to_string(),
            name.to_string(),
        );
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lws_templates_only_those_present() {
        let mut lws = json!({"spec": {"leaderWorkerTemplate": {"size": 2, "workerTemplate": {"metadata": {}}}}});
        assert_eq!(templates_mut(Kind::LeaderWorkerSet, &mut lws).len(), 1);
        let mut both =
            json!({"spec": {"leaderWorkerTemplate": {"leaderTemplate": {}, "workerTemplate": {}}}});
        assert_eq!(templates_mut(Kind::LeaderWorkerSet, &mut both).len(), 2);
        let mut deploy = json!({"spec": {"template": {}}});
        assert_eq!(templates_mut(Kind::Deployment, &mut deploy).len(), 1);
        let mut none = json!({"spec": {}});
        assert!(templates_mut(Kind::Deployment, &mut none).is_empty());
    }

    #[test]
    fn pod_labels_intersect_lws_templates_and_add_name() {
        let lws = json!({"spec": {"leaderWorkerTemplate": {
            "leaderTemplate": {"metadata": {"labels": {"app": "m", "role": "leader"}}},
            "workerTemplate": {"metadata": {"labels": {"app": "m", "role": "worker"}}}}}});
        let l = pod_labels(Kind::LeaderWorkerSet, "m", &lws);
        assert_eq!(l.get("app").map(String::as_str), Some("m"));
        assert!(!l.contains_key("role"));
        assert_eq!(
            l.get(api_types::keys::labels::LWS_NAME).map(String::as_str),
            Some("m")
        );
    }

    #[test]
    fn api_resource_plural() {
        assert_eq!(
            Kind::LeaderWorkerSet
                .api_resource("leaderworkerset.x-k8s.io/v1")
                .plural,
            "leaderworkersets"
        );
        assert_eq!(Kind::Deployment.api_resource("apps/v1").group, "apps");
    }
}
