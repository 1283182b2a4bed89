//! Scale to zero, the elastic-scaler's side: an idle workload's Service is handed to the DLX pods, the
//! hand-over is verified in the Service's EndpointSlices before the workload goes to 0; a wake request (as a
//! DLX writes it) scales it up, hands the Service back once a pod is ready and clears the request; a
//! controller killed in the middle of a hand-over converges when it restarts. The DLX pods here are
//! placeholders (the proxy itself has its own tests): what is checked is every step on the real API.

use std::collections::BTreeMap;
use std::time::Duration;

use api_types::keys::annotations;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use test_kit::wait_until;

use super::{Rig, controller, inference};

const DLX: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: dlx}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: dlx}}
  template:
    metadata: {labels: {app.kubernetes.io/name: dlx}}
    spec: {containers: [{name: dlx, image: registry.local/dlx:placeholder, ports: [{name: http, containerPort: 8000}]}]}
"#;

const SCALER: &str = r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: llm}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 0
  maxReplicas: 2
  scaleToZero: {service: llm, idleSeconds: 10}
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: HPA
      metrics:
      - {type: Pods, pods: {metricsName: "vllm:num_requests_running", target: {type: AverageValue, averageValue: "1"}}}
"#;

async fn selector(rig: &Rig, name: &str) -> BTreeMap<String, String> {
    let api: Api<Service> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    api.get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap_or_default()
}

async fn phase(rig: &Rig) -> String {
    let es = rig.scalers().get("llm").await.unwrap();
    es.status
        .and_then(|s| s.scale_to_zero)
        .map(|z| format!("{:?}", z.phase))
        .unwrap_or_default()
}

async fn wait_phase(rig: &Rig, want: &str, timeout: Duration) {
    wait_until(&format!("scale-to-zero phase {want}"), timeout, || async {
        Ok::<_, String>((phase(rig).await == want).then_some(()))
    })
    .await;
}

/// The pods the Service's EndpointSlices list as ready.
async fn service_pods(rig: &Rig, service: &str) -> Vec<String> {
    let api: Api<EndpointSlice> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    let list = api
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .unwrap();
    let mut pods: Vec<String> = list
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .filter_map(|e| e.target_ref.as_ref()?.name.clone())
        .collect();
    pods.sort();
    pods
}

#[tokio::test]
async fn an_idle_workload_is_handed_to_the_dlx_scaled_to_zero_and_woken() {
    let mut rig = Rig::new("es-zero").await;
    rig.apply(DLX).await;
    rig.apply(&inference("llm", 1)).await;
    rig.wait_replicas("llm", "1", Duration::from_secs(30), |r| r == 1)
        .await;
    rig.apply(SCALER).await;

    // Idle for 10 s → handed over → verified → 0.
    wait_phase(&rig, "AtZero", Duration::from_secs(60)).await;
    assert_eq!(rig.replicas("llm").await, 0);
    let dlx_labels: BTreeMap<String, String> =
        [("app.kubernetes.io/name".to_string(), "dlx".to_string())].into();
    assert_eq!(
        selector(&rig, "llm").await,
        dlx_labels,
        "the Service selects the DLX"
    );
    let svc: Api<Service> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    let s = svc.get("llm").await.unwrap();
    let ann = s.metadata.annotations.unwrap_or_default();
    assert_eq!(
        ann.get(annotations::ORIGINAL_SELECTOR).map(String::as_str),
        Some(r#"{"app":"llm"}"#)
    );
    assert_eq!(
        ann.get(annotations::SCALER).map(String::as_str),
        Some("llm")
    );
    assert_eq!(
        ann.get(annotations::WORKLOAD_SERVICE).map(String::as_str),
        Some("llm-workload")
    );
    let eps = service_pods(&rig, "llm").await;
    assert!(
        !eps.is_empty() && eps.iter().all(|p| p.starts_with("dlx-")),
        "only DLX endpoints: {eps:?}"
    );
    assert_eq!(
        selector(&rig, "llm-workload")
            .await
            .get("app")
            .map(String::as_str),
        Some("llm")
    );

    // A DLX asks to wake it.
    let patch = serde_json::json!({"metadata": {"annotations": {annotations::WAKE_REQUESTED: "2026-11-23T16:00:00Z"}}});
    rig.scalers()
        .patch("llm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    rig.wait_replicas("llm", "woken to 1", Duration::from_secs(30), |r| r == 1)
        .await;
    wait_phase(&rig, "Active", Duration::from_secs(60)).await;
    assert_eq!(
        selector(&rig, "llm").await.get("app").map(String::as_str),
        Some("llm"),
        "selector restored"
    );
    wait_until(
        "the Service lists the workload's pod",
        Duration::from_secs(30),
        || async {
            let eps = service_pods(&rig, "llm").await;
            Ok::<_, String>(
                (!eps.is_empty() && eps.iter().all(|p| p.starts_with("llm-"))).then_some(()),
            )
        },
    )
    .await;
    let es = rig.scalers().get("llm").await.unwrap();
    assert!(
        !es.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(annotations::WAKE_REQUESTED),
        "wake request cleared"
    );
    rig.wait_events("ScaleToZero", 2).await;

    // Idle again: kill the controller as soon as the Service is handed over; the restarted one finishes.
    wait_until(
        "the second hand-over to start",
        Duration::from_secs(60),
        || async { Ok::<_, String>((selector(&rig, "llm").await == dlx_labels).then_some(())) },
    )
    .await;
    rig.ctrl.crash();
    rig.ctrl = controller(&rig.env, "elastic-scaler", &rig.ns.name, &[]);
    wait_phase(&rig, "AtZero", Duration::from_secs(60)).await;
    assert_eq!(rig.replicas("llm").await, 0);
    assert_eq!(selector(&rig, "llm").await, dlx_labels);
}
