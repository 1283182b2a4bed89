//! Pure builders for GroupReplication: group labels, the snapshot payload, clone workloads and clone
//! Services. No I/O; every function here is unit-tested without a cluster.
//!
//! A clone of base workload `B` in group `N` is the snapshot of `B` with:
//! - name `<groupName>-<B>-<N>` in the RSG's namespace, replicas from the baseline ConfigMap;
//! - labels `rsg.io/name`, `rsg.io/group-id: N` on the object and on every pod template that exists (a
//!   LeaderWorkerSet's absent `leaderTemplate` stays absent);
//! - for Deployments and StatefulSets, `rsg.io/group-id: N` added to `spec.selector.matchLabels`, so each
//!   group's controller owns only its own pods; a StatefulSet's `serviceName` follows its cloned Service.
//!
//! A Service is associated with a base when its selector is non-empty and selects the base's pods; its
//! clone `<svc>-<groupName>-<N>` selects only group `N` (selectors on `leaderworkerset.sigs.k8s.io/name`
//! are rewritten to the cloned LeaderWorkerSet's name).

use std::collections::BTreeMap;

use api_types::keys::{annotations, labels};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use crate::kinds::{Kind, templates_mut};

/// Annotations never copied from a base to its clones: tooling bookkeeping and the base's own scale-down
/// value (each group carries its own).
const DROPPED_ANNOTATIONS: [&str; 3] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    annotations::RSG_METRIC_VALUES,
];

/// The labels that mark an object (and its pods) as group `group_id` of RSG `rsg`.
pub fn group_labels(rsg: &str, group_id: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::RSG_NAME.to_string(), rsg.to_string()),
        (labels::RSG_GROUP_ID.to_string(), group_id.to_string()),
    ])
}

fn labels_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    v.pointer(pointer).and_then(Value::as_object)
}

fn has_labels(map: Option<&Map<String, Value>>, want: &BTreeMap<String, String>) -> bool {
    want.iter()
        .all(|(k, v)| map.and_then(|m| m.get(k)).and_then(Value::as_str) == Some(v))
}

fn merge_labels(obj: &mut Value, want: &BTreeMap<String, String>) {
    let Some(o) = obj.as_object_mut() else { return };
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let labels = meta
        .as_object_mut()
        .expect("made an object above")
        .entry("labels")
        .or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    let labels = labels.as_object_mut().expect("made an object above");
    for (k, v) in want {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
}

/// A merge patch that labels base workload `obj` as group 0 (object and existing templates), or `None`
/// when it already carries the labels. Applying it twice is harmless.
pub fn base_label_patch(kind: Kind, obj: &Value, rsg: &str) -> Option<Value> {
    let want = group_labels(rsg, 0);
    let mut probe = obj.clone();
    let templates_ok = templates_mut(kind, &mut probe)
        .into_iter()
        .all(|t| has_labels(labels_at(t, "/metadata/labels"), &want));
    if has_labels(labels_at(obj, "/metadata/labels"), &want) && templates_ok {
        return None;
    }
    let label_obj: Map<String, Value> = want
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let tmpl = json!({"metadata": {"labels": label_obj}});
    let spec = match kind {
        Kind::Deployment | Kind::StatefulSet => json!({"template": tmpl}),
        Kind::LeaderWorkerSet => {
            let mut lwt = Map::new();
            if let Some(m) = obj
                .pointer("/spec/leaderWorkerTemplate")
                .and_then(Value::as_object)
            {
                for key in ["leaderTemplate", "workerTemplate"] {
                    if m.get(key).is_some_and(Value::is_object) {
                        lwt.insert(key.to_string(), tmpl.clone());
                    }
                }
            }
            json!({"leaderWorkerTemplate": lwt})
        }
    };
    Some(json!({"metadata": {"labels": label_obj}, "spec": spec}))
}

fn filtered_annotations(obj: &Value) -> Map<String, Value> {
    labels_at(obj, "/metadata/annotations")
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !DROPPED_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// What a snapshot keeps of a base workload: its labels, annotations and `spec` (status and server
/// bookkeeping dropped). The ControllerRevision stores this and clones are built from it.
pub fn snapshot_data(obj: &Value) -> Value {
    let labels = labels_at(obj, "/metadata/labels")
        .cloned()
        .unwrap_or_default();
    json!({
        "metadata": {"labels": labels, "annotations": filtered_annotations(obj)},
        "spec": obj.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Everything that distinguishes one clone workload.
#[derive(Debug, Clone)]
pub struct CloneSpec<'a> {
    /// `<groupName>-<baseName>-<groupID>`.
    pub name: &'a str,
    /// The RSG's namespace.
    pub namespace: &'a str,
    /// The RSG's name.
    pub rsg: &'a str,
    /// The group.
    pub group_id: u32,
    /// Replicas from the baseline ConfigMap.
    pub replicas: i32,
    /// Base Service name → its clone's name in this group (a StatefulSet's `serviceName` follows).
    pub service_renames: &'a BTreeMap<String, String>,
}

/// The clone of a workload of `kind`/`api_version` built from `snapshot` ([`snapshot_data`]).
pub fn clone_workload(kind: Kind, api_version: &str, snapshot: &Value, c: &CloneSpec<'_>) -> Value {
    let want = group_labels(c.rsg, c.group_id);
    let mut labels = labels_at(snapshot, "/metadata/labels")
        .cloned()
        .unwrap_or_default();
    for (k, v) in &want {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    labels.insert(
        labels::MANAGED_BY.to_string(),
        Value::String(labels::MANAGED_BY_VALUE.to_string()),
    );
    let mut obj = json!({
        "apiVersion": api_version,
        "kind": kind.as_str(),
        "metadata": {
            "name": c.name,
            "namespace": c.namespace,
            "labels": labels,
            "annotations": filtered_annotations(snapshot),
        },
        "spec": snapshot.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    obj["spec"]["replicas"] = json!(c.replicas);
    for t in templates_mut(kind, &mut obj) {
        merge_labels(t, &want);
    }
    if kind.has_selector() {
        let spec = obj["spec"].as_object_mut().expect("spec is an object");
        let selector = spec.entry("selector").or_insert_with(|| json!({}));
        if !selector.is_object() {
            *selector = json!({});
        }
        let ml = selector
            .as_object_mut()
            .expect("made an object above")
            .entry("matchLabels")
            .or_insert_with(|| json!({}));
        if !ml.is_object() {
            *ml = json!({});
        }
        ml.as_object_mut().expect("made an object above").insert(
            labels::RSG_GROUP_ID.to_string(),
            Value::String(c.group_id.to_string()),
        );
    }
    if kind == Kind::StatefulSet {
        let renamed = obj["spec"]
            .get("serviceName")
            .and_then(Value::as_str)
            .and_then(|s| c.service_renames.get(s))
            .cloned();
        if let Some(n) = renamed {
            obj["spec"]["serviceName"] = Value::String(n);
        }
    }
    obj
}

/// Whether a Service `selector` selects pods carrying `pod_labels` (an empty selector selects nothing here:
/// such Services have manual endpoints and are not group-specific).
pub fn selects(selector: &BTreeMap<String, String>, pod_labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

/// The clone of Service `svc` for group `group_id`: same ports and type, a fresh cluster IP (headless stays
/// headless), no node ports, and a selector narrowed to the group. `lws_renames` maps a base
/// LeaderWorkerSet's name to its clone's, for selectors on `leaderworkerset.sigs.k8s.io/name`.
pub fn clone_service(
    svc: &Service,
    name: &str,
    namespace: &str,
    rsg: &str,
    group_id: u32,
    lws_renames: &BTreeMap<String, String>,
) -> Service {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.extend(group_labels(rsg, group_id));
    labels.insert(
        labels::MANAGED_BY.to_string(),
        labels::MANAGED_BY_VALUE.to_string(),
    );
    let annotations: BTreeMap<String, String> = svc
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !DROPPED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let base = svc.spec.clone().unwrap_or_default();
    let headless = base.cluster_ip.as_deref() == Some("None");
    let mut selector = base.selector.clone().unwrap_or_default();
    if let Some(v) = selector.get_mut(labels::LWS_NAME)
        && let Some(new) = lws_renames.get(v.as_str())
    {
        *v = new.clone();
    }
    selector.insert(labels::RSG_GROUP_ID.to_string(), group_id.to_string());
    let ports = base.ports.clone().map(|ps| {
        ps.into_iter()
            .map(|mut p| {
                p.node_port = None;
                p
            })
            .collect()
    });
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports,
            type_: base.type_.clone(),
            cluster_ip: headless.then(|| "None".to_string()),
            cluster_ips: headless.then(|| vec!["None".to_string()]),
            session_affinity: base.session_affinity.clone(),
            session_affinity_config: base.session_affinity_config.clone(),
            publish_not_ready_addresses: base.publish_not_ready_addresses,
            ip_families: base.ip_families.clone(),
            ip_family_policy: base.ip_family_policy.clone(),
            internal_traffic_policy: base.internal_traffic_policy.clone(),
            external_traffic_policy: base.external_traffic_policy.clone(),
            traffic_distribution: base.traffic_distribution.clone(),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "prefill", "namespace": "prod", "resourceVersion": "7", "uid": "u",
                "labels": {"app": "prefill"},
                "annotations": {"deployment.kubernetes.io/revision": "3", "team": "llm",
                    "autoscaling.rsg.metric.values": "10"}},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "prefill"}},
                "template": {"metadata": {"labels": {"app": "prefill"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"readyReplicas": 4}
        })
    }

    #[test]
    fn base_patch_labels_object_and_template_once() {
        let d = deployment();
        let patch =
            base_label_patch(Kind::Deployment, &d, "pd").expect("unlabelled base needs a patch");
        assert_eq!(patch["metadata"]["labels"]["rsg.io/group-id"], "0");
        assert_eq!(
            patch["spec"]["template"]["metadata"]["labels"]["rsg.io/name"],
            "pd"
        );
        let mut labelled = d.clone();
        json_patch_merge(&mut labelled, &patch);
        assert_eq!(base_label_patch(Kind::Deployment, &labelled, "pd"), None);
    }

    #[test]
    fn base_patch_never_creates_missing_leader_template() {
        let lws = json!({"metadata": {"name": "m"}, "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2,
            "workerTemplate": {"metadata": {"labels": {"app": "m"}}, "spec": {}}}}});
        let patch = base_label_patch(Kind::LeaderWorkerSet, &lws, "pd").unwrap();
        let lwt = patch["spec"]["leaderWorkerTemplate"].as_object().unwrap();
        assert!(lwt.contains_key("workerTemplate"));
        assert!(!lwt.contains_key("leaderTemplate"), "{patch}");
    }

    #[test]
    fn clone_narrows_selector_and_sets_replicas() {
        let snap = snapshot_data(&deployment());
        assert!(snap.get("status").is_none());
        let renames = BTreeMap::new();
        let c = clone_workload(
            Kind::Deployment,
            "apps/v1",
            &snap,
            &CloneSpec {
                name: "pd-prefill-2",
                namespace: "rsg-ns",
                rsg: "pd",
                group_id: 2,
                replicas: 1,
                service_renames: &renames,
            },
        );
        assert_eq!(c["metadata"]["name"], "pd-prefill-2");
        assert_eq!(c["metadata"]["namespace"], "rsg-ns");
        assert!(c["metadata"].get("resourceVersion").is_none());
        assert_eq!(c["metadata"]["labels"]["rsg.io/group-id"], "2");
        assert_eq!(c["metadata"]["labels"]["app"], "prefill");
        assert_eq!(c["metadata"]["annotations"]["team"], "llm");
        assert!(
            c["metadata"]["annotations"]
                .get("autoscaling.rsg.metric.values")
                .is_none()
        );
        assert!(
            c["metadata"]["annotations"]
                .get("deployment.kubernetes.io/revision")
                .is_none()
        );
        assert_eq!(c["spec"]["replicas"], 1);
        assert_eq!(c["spec"]["selector"]["matchLabels"]["rsg.io/group-id"], "2");
        assert_eq!(c["spec"]["selector"]["matchLabels"]["app"], "prefill");
        assert_eq!(
            c["spec"]["template"]["metadata"]["labels"]["rsg.io/group-id"],
            "2"
        );
        assert_eq!(
            c["spec"]["template"]["metadata"]["labels"]["rsg.io/name"],
            "pd"
        );
    }

    #[test]
    fn statefulset_clone_follows_its_service() {
        let sts = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db-hl", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}}}});
        let renames = BTreeMap::from([("db-hl".to_string(), "db-hl-pd-1".to_string())]);
        let c = clone_workload(
            Kind::StatefulSet,
            "apps/v1",
            &snapshot_data(&sts),
            &CloneSpec {
                name: "pd-db-1",
                namespace: "n",
                rsg: "pd",
                group_id: 1,
                replicas: 2,
                service_renames: &renames,
            },
        );
        assert_eq!(c["spec"]["serviceName"], "db-hl-pd-1");
    }

    #[test]
    fn lws_clone_keeps_absent_leader_template_absent() {
        let lws = json!({"metadata": {"name": "m"}, "spec": {"replicas": 3, "leaderWorkerTemplate": {"size": 2,
            "workerTemplate": {"metadata": {"labels": {"app": "m"}}, "spec": {}}}}});
        let renames = BTreeMap::new();
        let c = clone_workload(
            Kind::LeaderWorkerSet,
            "leaderworkerset.x-k8s.io/v1",
            &snapshot_data(&lws),
            &CloneSpec {
                name: "pd-m-1",
                namespace: "n",
                rsg: "pd",
                group_id: 1,
                replicas: 1,
                service_renames: &renames,
            },
        );
        assert!(
            c["spec"]["leaderWorkerTemplate"]
                .get("leaderTemplate")
                .is_none()
        );
        assert_eq!(
            c["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"]["rsg.io/group-id"],
            "1"
        );
        assert!(c["spec"].get("selector").is_none());
    }

    #[test]
    fn selects_requires_non_empty_subset() {
        let pods = BTreeMap::from([
            ("app".to_string(), "p".to_string()),
            ("tier".to_string(), "x".to_string()),
        ]);
        assert!(selects(
            &BTreeMap::from([("app".to_string(), "p".to_string())]),
            &pods
        ));
        assert!(!selects(
            &BTreeMap::from([("app".to_string(), "q".to_string())]),
            &pods
        ));
        assert!(!selects(&BTreeMap::new(), &pods));
    }

    #[test]
    fn service_clone_narrows_and_rewrites_lws_name() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "m-svc", "namespace": "prod", "labels": {"a": "b"}, "resourceVersion": "1"},
            "spec": {"selector": {"leaderworkerset.sigs.k8s.io/name": "m"}, "clusterIP": "10.96.0.5",
                "clusterIPs": ["10.96.0.5"], "type": "NodePort",
                "ports": [{"port": 80, "targetPort": 8000, "nodePort": 30080}]}
        })).unwrap();
        let renames = BTreeMap::from([("m".to_string(), "pd-m-3".to_string())]);
        let c = clone_service(&svc, "m-svc-pd-3", "rsg-ns", "pd", 3, &renames);
        let spec = c.spec.unwrap();
        let sel = spec.selector.unwrap();
        assert_eq!(sel["leaderworkerset.sigs.k8s.io/name"], "pd-m-3");
        assert_eq!(sel["rsg.io/group-id"], "3");
        assert_eq!(spec.cluster_ip, None);
        assert_eq!(spec.ports.unwrap()[0].node_port, None);
        assert_eq!(c.metadata.namespace.as_deref(), Some("rsg-ns"));
        assert_eq!(c.metadata.resource_version, None);
        assert_eq!(c.metadata.labels.unwrap()["a"], "b");
    }

    #[test]
    fn headless_service_stays_headless() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "h"},
            "spec": {"selector": {"app": "db"}, "clusterIP": "None"}}))
        .unwrap();
        let c = clone_service(&svc, "h-pd-1", "n", "pd", 1, &BTreeMap::new());
        assert_eq!(c.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    }

    fn json_patch_merge(target: &mut Value, patch: &Value) {
        if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                if v.is_object() {
                    json_patch_merge(t.entry(k.clone()).or_insert_with(|| json!({})), v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
    }
}
