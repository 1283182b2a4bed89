//! Scaling on `vllm:num_requests_waiting`: up under load and back down after the stabilization window,
//! through pod scraping and through Prometheus; a pod whose `/metrics` fails never causes a scale-down.

use std::time::Duration;

use test_kit::wait_until;

use super::load::Load;
use super::{Rig, inference};

fn scaler(name: &str, target: &str, algorithm: &str, metric: &str) -> String {
    format!(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata:
  name: {name}
  annotations:
    elasticscaler.io/behavior.scaleDown.stabilizationWindowSeconds: "8"
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}
  minReplicas: 1
  maxReplicas: 4
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: {algorithm}
      metrics:
      - {metric}
"#
    )
}

const PODS_WAITING: &str = r#"{type: Pods, pods: {metricsName: "vllm:num_requests_waiting", target: {type: AverageValue, averageValue: "1"}}}"#;
const PROM_WAITING: &str = r#"{type: Prometheus, prometheus: {metricsName: "vllm:num_requests_waiting", target: {type: AverageValue, averageValue: "1"}}}"#;

async fn up_under_load_then_down(test: &str, algorithm: &str, metric: &str, source: &str) {
    let rig = Rig::new(test).await;
    rig.apply(&inference("llm", 1)).await;
    rig.wait_replicas("llm", "ready", Duration::from_secs(60), |r| r == 1)
        .await;
    wait_until(
        "llm to have a ready endpoint",
        Duration::from_secs(60),
        || async {
            let d = rig.deployments().get("llm").await?;
            Ok::<_, kube::Error>((d.status.and_then(|s| s.ready_replicas) == Some(1)).then_some(()))
        },
    )
    .await;
    rig.apply(&scaler("llm", "llm", algorithm, metric)).await;
    rig.wait_condition("llm", "ScalingCalculated", "True", "")
        .await;

    let mut load = Load::start(rig.env.client.clone(), &rig.ns.name, "llm", 8, 40);
    let up = rig
        .wait_replicas("llm", "≥ 3 under load", Duration::from_secs(90), |r| {
            r >= 3
        })
        .await;
    // The status write follows the scale write in the same reconcile: wait for it.
    let s = wait_until(
        "the rescale in status.history",
        Duration::from_secs(30),
        || async {
            let s = rig.scalers().get("llm").await?.status.unwrap_or_default();
            Ok::<_, kube::Error>(
                (!s.history.is_empty() && s.last_scale_time.is_some()).then_some(s),
            )
        },
    )
    .await;
    assert_eq!(s.algorithm.as_deref(), Some(algorithm));
    assert!(
        s.current_metrics
            .iter()
            .any(|m| m.name == format!("{source}/vllm:num_requests_waiting")),
        "{:?}",
        s.current_metrics
    );
    rig.wait_events("Rescaled", 1).await;
    wait_until(
        "completions to succeed",
        Duration::from_secs(30),
        || async {
            Ok::<_, String>(
                (load.completed.load(std::sync::atomic::Ordering::Relaxed) > 0).then_some(()),
            )
        },
    )
    .await;
    eprintln!("{test}: scaled up to {up} under load");

    load.stop();
    rig.wait_replicas(
        "llm",
        "back to 1 after the load stops",
        Duration::from_secs(90),
        |r| r == 1,
    )
    .await;
}

#[tokio::test]
async fn es_scales_on_waiting_requests_scraped_from_every_pod() {
    up_under_load_then_down("es-pods", "hpa", PODS_WAITING, "Pods").await;
}

#[tokio::test]
async fn es_scales_on_waiting_requests_through_prometheus() {
    up_under_load_then_down("es-prom", "apa", PROM_WAITING, "Prometheus").await;
}

#[tokio::test]
async fn a_pod_failing_its_metrics_does_not_cause_a_scale_down() {
    let rig = Rig::new("es-failing-pod").await;
    rig.apply(&inference("llm", 3)).await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    let ips = wait_until("3 ready llm pods", Duration::from_secs(60), || async {
        let list = pods
            .list(&kube::api::ListParams::default().labels("app=llm"))
            .await?;
        let ips: Vec<String> = list
            .items
            .iter()
            .filter_map(|p| {
                let s = p.status.as_ref()?;
                let ready = s
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then(|| s.pod_ip.clone()).flatten()
            })
            .collect();
        Ok::<_, kube::Error>((ips.len() == 3).then_some(ips))
    })
    .await;
    assert!(test_kit::in_pod_network(&ips[0]));
    let http = reqwest::Client::new();
    let fault = |body: &'static str| {
        let http = http.clone();
        let url = format!("http://{}:8000/fault/metrics", ips[0]);
        async move {
            http.put(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
        }
    };
    fault("fail").await;

    // No load: two pods report 0 waiting, which alone would scale 3 → 1.
    rig.apply(&scaler("llm", "llm", "hpa", PODS_WAITING)).await;
    let msg = rig
        .wait_condition(
            "llm",
            "MetricsCollected",
            "False",
            "1 of 3 ready pods excluded",
        )
        .await;
    assert!(msg.contains("scale-down is withheld"), "{msg}");
    tokio::time::sleep(Duration::from_secs(12)).await; // past the 8 s stabilization window
    assert_eq!(
        rig.replicas("llm").await,
        3,
        "a failing pod must not cause a scale-down"
    );
    let es = rig.scalers().get("llm").await.unwrap();
    let m = &es.status.unwrap().current_metrics[0];
    assert_eq!((m.ready_pods, m.excluded_pods), (Some(2), Some(1)), "{m:?}");
    assert!(
        m.error.as_deref().unwrap_or_default().contains("500"),
        "{m:?}"
    );

    // The fault cleared, the same data scales down: the fault was what held it.
    fault("ok").await;
    rig.wait_replicas(
        "llm",
        "down to 1 once every pod reports",
        Duration::from_secs(60),
        |r| r == 1,
    )
    .await;
    rig.wait_condition("llm", "MetricsCollected", "True", "")
        .await;
}
