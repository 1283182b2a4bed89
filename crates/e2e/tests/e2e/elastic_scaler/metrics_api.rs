//! The Kubernetes metrics APIs through the API server's aggregation layer: a test adapter
//! ([`MetricsAdapter`]) is registered with APIServices for external.metrics.k8s.io, custom.metrics.k8s.io
//! and metrics.k8s.io, and the real elastic-scaler — as the chart's ServiceAccount, so the chart's rules
//! for these reads are proven too — scales three Deployments, one per metric kind:
//!
//! - `ext`: two External metrics (`queue_depth` with a selector, `tokens_waiting`), AverageValue 10;
//! - `cus`: a Custom pods metric `requests_per_second` with a metric selector, AverageValue 10 per pod;
//! - `res`: Resource `cpu`, Utilization 50 % of the pods' 100m requests.
//!
//! Up when the values rise, held while the adapter answers errors (scale-down withheld on missing data,
//! though `tokens_waiting` alone would scale `ext` down), down after the stabilization window once they
//! fall. One test: the APIServices are cluster-wide.

use std::time::{Duration, Instant};

use api_types::elastic_scaler::MetricStatus;
use test_kit::{Answer, MetricsAdapter, wait_until};

use super::Rig;
use super::rbac::run_as_chart_service_account;

fn deployment(name: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: registry.k8s.io/pause:3.10, resources: {{requests: {{cpu: 100m}}}}}}]}}
"#
    )
}

fn scaler(name: &str, metrics: &[&str]) -> String {
    format!(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata:
  name: {name}
  annotations:
    elasticscaler.io/behavior.scaleDown.stabilizationWindowSeconds: "5"
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: 4
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: hpa
      metrics:
{}
"#,
        metrics
            .iter()
            .map(|m| format!("      - {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

const QUEUE: &str = r#"{type: External, external: {metricsName: queue_depth, selector: {matchLabels: {queue: llm}}, target: {type: AverageValue, averageValue: "10"}}}"#;
const TOKENS: &str = r#"{type: External, external: {metricsName: tokens_waiting, target: {type: AverageValue, averageValue: "10"}}}"#;
const RPS: &str = r#"{type: Custom, custom: {metricsName: requests_per_second, selector: {matchLabels: {model: llama}}, target: {type: AverageValue, averageValue: "10"}}}"#;
const CPU: &str = r#"{type: Resource, resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 50}}}"#;

/// Sets the adapter's values: `queue` for queue_depth, `rps` total requests per second of `cus`, `cores`
/// of cpu used by `res` (each split over the ready pods).
fn set(adapter: &MetricsAdapter, queue: f64, rps: f64, cores: f64) {
    adapter.set_external("queue_depth", Answer::Value(queue));
    adapter.set_external("tokens_waiting", Answer::Value(0.0));
    adapter.set_custom("requests_per_second", "cus", Answer::Value(rps));
    adapter.set_cpu("res", Answer::Value(cores));
}

/// Waits until ElasticScaler `name` reports `metrics` as `(status name, value, ready pods)` with
/// MetricsCollected=True.
async fn wait_metrics(rig: &Rig, name: &str, metrics: &[(&str, &str, Option<i32>)]) {
    let api = rig.scalers();
    let what = format!("ElasticScaler {name} to report {metrics:?} with MetricsCollected=True");
    wait_until(&what, Duration::from_secs(20), || async {
        let s = api.get(name).await?.status.unwrap_or_default();
        let collected = s
            .conditions
            .iter()
            .any(|c| c.type_ == "MetricsCollected" && c.status == "True");
        let got: Vec<(String, Option<String>, Option<i32>)> = s
            .current_metrics
            .iter()
            .map(|m| (m.name.clone(), m.value.clone(), m.ready_pods))
            .collect();
        let want: Vec<(String, Option<String>, Option<i32>)> = metrics
            .iter()
            .map(|(n, v, r)| (n.to_string(), Some(v.to_string()), *r))
            .collect();
        Ok::<_, kube::Error>((collected && got == want).then_some(()))
    })
    .await
}

async fn metric(rig: &Rig, scaler: &str, name: &str) -> MetricStatus {
    let es = rig.scalers().get(scaler).await.unwrap();
    es.status
        .unwrap_or_default()
        .current_metrics
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{scaler} has no status for {name}"))
}

#[tokio::test]
async fn es_scales_on_external_custom_and_resource_metrics_through_the_aggregator() {
    let started = Instant::now();
    let mut rig = Rig::new("es-metrics-api").await;
    let (_rbac, sa) = run_as_chart_service_account(&mut rig).await;
    for d in ["ext", "cus", "res"] {
        rig.apply(&deployment(d)).await;
    }
    // Declared after the rig: dropped first, so the APIServices go before the namespace (and on panic).
    let adapter = MetricsAdapter::start(&rig.env, &rig.ns.name).await;
    eprintln!("adapter Available after {:?}", started.elapsed());
    set(&adapter, 5.0, 5.0, 0.05);
    rig.apply(&scaler("ext", &[QUEUE, TOKENS])).await;
    rig.apply(&scaler("cus", &[RPS])).await;
    rig.apply(&scaler("res", &[CPU])).await;

    // At 1 replica: every value read, nothing to scale.
    wait_metrics(
        &rig,
        "ext",
        &[
            ("External/queue_depth", "5", None),
            ("External/tokens_waiting", "0", None),
        ],
    )
    .await;
    wait_metrics(&rig, "cus", &[("Custom/requests_per_second", "5", Some(1))]).await;
    wait_metrics(&rig, "res", &[("Resource/cpu", "50", Some(1))]).await;

    // Up: 30 queued / 10 → 3; 30 rps / 10 per pod → 3; 150 % of the request / 50 % → 3.
    set(&adapter, 30.0, 30.0, 0.15);
    for d in ["ext", "cus", "res"] {
        rig.wait_replicas(d, "3 as the metric rose", Duration::from_secs(20), |r| {
            r == 3
        })
        .await;
    }
    // The same load over 3 pods is on target: 10 rps each, 50 % cpu each.
    wait_metrics(
        &rig,
        "cus",
        &[("Custom/requests_per_second", "10", Some(3))],
    )
    .await;
    wait_metrics(&rig, "res", &[("Resource/cpu", "50", Some(3))]).await;
    eprintln!("scaled up after {:?}", started.elapsed());

    // The adapter fails: no value, so no scale-down, and the condition says why — the adapter's own words,
    // a 503 included (metric reads are not retried within a period; the next period reads again).
    adapter.set_external(
        "queue_depth",
        Answer::Fail(404, "queue backend has no series for queue_depth".into()),
    );
    adapter.set_custom(
        "requests_per_second",
        "cus",
        Answer::Fail(500, "rps backend unreachable".into()),
    );
    adapter.set_cpu("res", Answer::Fail(503, "cpu backend unreachable".into()));
    for (es, needle) in [
        ("ext", "queue backend has no series"),
        ("cus", "rps backend unreachable"),
        ("res", "cpu backend unreachable"),
    ] {
        let msg = rig
            .wait_condition(es, "MetricsCollected", "False", needle)
            .await;
        assert!(msg.contains("scale-down is withheld"), "{es}: {msg}");
    }
    // `ext` still reads tokens_waiting = 0, which alone would scale it to 1.
    assert_eq!(
        metric(&rig, "ext", "External/tokens_waiting")
            .await
            .value
            .as_deref(),
        Some("0")
    );
    let m = metric(&rig, "ext", "External/queue_depth").await;
    assert!(
        m.value.is_none() && m.error.as_deref().unwrap_or_default().contains("404"),
        "{m:?}"
    );
    tokio::time::sleep(Duration::from_secs(7)).await; // past the 5 s stabilization window
    for d in ["ext", "cus", "res"] {
        assert_eq!(
            rig.replicas(d).await,
            3,
            "{d}: a metric the adapter failed must not cause a scale-down"
        );
    }
    eprintln!("held through errors until {:?}", started.elapsed());

    // Back and low: down to 1 after the stabilization window.
    set(&adapter, 5.0, 5.0, 0.05);
    for d in ["ext", "cus", "res"] {
        rig.wait_replicas(d, "1 as the metric fell", Duration::from_secs(25), |r| {
            r == 1
        })
        .await;
    }
    wait_metrics(&rig, "cus", &[("Custom/requests_per_second", "5", Some(1))]).await;
    wait_metrics(&rig, "res", &[("Resource/cpu", "50", Some(1))]).await;
    eprintln!("scaled down after {:?}", started.elapsed());

    // What the API server forwarded: each API with its selectors (the target's pods as labelSelector where
    // the API reads pods), as the chart's ServiceAccount.
    let seen = adapter.seen();
    let ns = &rig.ns.name;
    for want in [
        format!(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/queue_depth?labelSelector=queue%3Dllm"
        ),
        format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/tokens_waiting"),
        format!(
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/pods/*/requests_per_second?labelSelector=app%3Dcus&metricLabelSelector=model%3Dllama"
        ),
        format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=app%3Dres"),
    ] {
        assert!(
            seen.iter().any(|s| s.uri == want && s.user == sa),
            "no request for {want} as {sa}; seen: {:?}",
            seen.iter().rev().take(8).collect::<Vec<_>>()
        );
    }
    let logs = rig.ctrl.logs();
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "the chart's RBAC allows every metrics API read:\n{logs}"
    );
    eprintln!("done after {:?}", started.elapsed());
}
