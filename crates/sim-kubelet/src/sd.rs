//! Prometheus HTTP service discovery for this node's pods (`GET /sd/pods` on the admin server).
//!
//! A real cluster's Prometheus discovers pods with `kubernetes_sd_configs`; Debian's Prometheus is built
//! without it, so the local cluster's Prometheus asks sim-kubelet instead, through `http_sd_configs`. The
//! targets carry the same `__meta_kubernetes_pod_*` labels Kubernetes discovery would, so the relabelling
//! rules (keep `prometheus.io/scrape: "true"`, address from the pod IP and `prometheus.io/port`) are the ones a
//! real cluster uses. Every address is a pod IP inside the pod network namespace.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

#[derive(Clone)]
struct SdState {
    client: kube::Client,
    node: String,
}

/// The `/sd/pods` route.
pub fn router(client: kube::Client, node: String) -> Router {
    Router::new()
        .route("/sd/pods", get(handler))
        .with_state(SdState { client, node })
}

async fn handler(State(s): State<SdState>) -> Result<Json<Value>, (StatusCode, String)> {
    let pods = Api::<Pod>::all(s.client)
        .list(&ListParams::default().fields(&format!("spec.nodeName={}", s.node)))
        .await
        .map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("listing pods: {e}"),
            )
        })?;
    Ok(Json(targets(&pods.items)))
}

/// Prometheus label names allow `[a-zA-Z0-9_]`; Kubernetes SD maps every other character to `_`.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// One target group per pod with an IP, labelled like Kubernetes pod discovery.
pub fn targets(pods: &[Pod]) -> Value {
    let groups: Vec<Value> = pods
        .iter()
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            let ip = status.pod_ip.as_deref()?;
            let meta = &p.metadata;
            let mut labels = BTreeMap::new();
            labels.insert(
                "__meta_kubernetes_namespace".to_string(),
                meta.namespace.clone().unwrap_or_default(),
            );
            labels.insert(
                "__meta_kubernetes_pod_name".into(),
                meta.name.clone().unwrap_or_default(),
            );
            labels.insert("__meta_kubernetes_pod_ip".into(), ip.to_string());
            labels.insert(
                "__meta_kubernetes_pod_phase".into(),
                status.phase.clone().unwrap_or_default(),
            );
            let ready = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .map_or(
                    "unknown",
                    |c| if c.status == "True" { "true" } else { "false" },
                );
            labels.insert("__meta_kubernetes_pod_ready".into(), ready.into());
            for (k, v) in meta.labels.iter().flatten() {
                labels.insert(
                    format!("__meta_kubernetes_pod_label_{}", sanitize(k)),
                    v.clone(),
                );
            }
            for (k, v) in meta.annotations.iter().flatten() {
                labels.insert(
                    format!("__meta_kubernetes_pod_annotation_{}", sanitize(k)),
                    v.clone(),
                );
            }
            Some(json!({"targets": [ip], "labels": labels}))
        })
        .collect();
    Value::Array(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_with_ips_become_targets_with_kubernetes_meta_labels() {
        let pods: Vec<Pod> = serde_json::from_value(json!([
            {"metadata": {"name": "a", "namespace": "ns", "labels": {"rsg.io/group-id": "2"},
                          "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8000"}},
             "status": {"phase": "Running", "podIP": "10.244.1.3",
                        "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "pending", "namespace": "ns"}, "status": {"phase": "Pending"}}
        ]))
        .unwrap();
        let t = targets(&pods);
        let groups = t.as_array().unwrap();
        assert_eq!(groups.len(), 1, "a pod without an IP is not a target");
        let l = &groups[0]["labels"];
        assert_eq!(groups[0]["targets"], json!(["10.244.1.3"]));
        assert_eq!(
            l["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
            "true"
        );
        assert_eq!(
            l["__meta_kubernetes_pod_annotation_prometheus_io_port"],
            "8000"
        );
        assert_eq!(l["__meta_kubernetes_pod_label_rsg_io_group_id"], "2");
        assert_eq!(l["__meta_kubernetes_pod_ready"], "true");
        assert_eq!(l["__meta_kubernetes_namespace"], "ns");
    }
}
