//! Spec handling: a bad metric spec is reported in `Validated=False`; the `external` algorithm and an
//! ExternalServer metric work against local HTTP stubs; a failing external algorithm holds replicas;
//! a StateTrigger follows a linked Tidal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use test_kit::{Process, wait_until};

use super::Rig;

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: registry.local/web:1}]}
"#;

/// A stub on loopback: `GET /metric` answers `{"value": <value>}`, `POST /decide` answers
/// `{"replicas": <replicas>}` (or 500 when replicas < 0) and counts calls.
pub(super) struct Stub {
    pub addr: SocketAddr,
    pub value: Arc<AtomicI32>,
    pub replicas: Arc<AtomicI32>,
    pub decisions: Arc<AtomicUsize>,
}

pub(super) async fn stub() -> Stub {
    let value = Arc::new(AtomicI32::new(0));
    let replicas = Arc::new(AtomicI32::new(0));
    let decisions = Arc::new(AtomicUsize::new(0));
    let (v, r, d) = (value.clone(), replicas.clone(), decisions.clone());
    let app = axum::Router::new()
        .route("/metric", get(move || async move { Json(serde_json::json!({"value": v.load(Ordering::Relaxed)})) }))
        .route(
            "/decide",
            post(move |Json(ctx): Json<serde_json::Value>| async move {
                d.fetch_add(1, Ordering::Relaxed);
                let n = r.load(Ordering::Relaxed);
                if n < 0 {
                    return Err((axum::http::StatusCode::INTERNAL_SERVER_ERROR, "policy down"));
                }
                assert!(ctx["metrics"].is_array() && ctx["current"].is_number(), "{ctx}");
                Ok(Json(serde_json::json!({"replicas": n, "reason": format!("stub saw {}", ctx["metrics"][0]["value"])})))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Stub {
        addr,
        value,
        replicas,
        decisions,
    }
}

#[tokio::test]
async fn a_bad_metric_spec_is_reported_in_validated() {
    let rig = Rig::new("es-invalid").await;
    rig.apply(WEB).await;
    rig.apply(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: bad}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: KPA
      algorithmConfig: {stableWindw: 30s}
      metrics:
      - {type: Pods, pods: {metricsName: "vllm:num_requests_waiting", target: {type: Value}}}
"#,
    )
    .await;
    let msg = rig
        .wait_condition("bad", "Validated", "False", "pods.target.value")
        .await;
    assert!(
        msg.contains("spec.trigger.metricsTrigger.metrics[0].pods.target.value"),
        "{msg}"
    );
    // Fix the metric: the unknown algorithmConfig key is the next error, with a hint.
    rig.env
        .kubectl
        .run(&["patch", "es", "bad", "-n", &rig.ns.name, "--type=json", "-p", r#"[{"op":"replace","path":"/spec/trigger/metricsTrigger/metrics/0/pods/target","value":{"type":"AverageValue","averageValue":"1"}}]"#], None)
        .await
        .ok();
    let msg = rig
        .wait_condition("bad", "Validated", "False", "stableWindw")
        .await;
    assert!(msg.contains("did you mean stableWindow?"), "{msg}");
    rig.wait_events("InvalidSpec", 1).await;
    assert_eq!(
        rig.replicas("web").await,
        1,
        "an invalid scaler scales nothing"
    );
}

#[tokio::test]
async fn the_external_algorithm_decides_from_an_external_server_metric() {
    let rig = Rig::new("es-external").await;
    let stub = stub().await;
    stub.value.store(42, Ordering::Relaxed);
    stub.replicas.store(3, Ordering::Relaxed);
    rig.apply(WEB).await;
    rig.apply(&format!(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {{name: ext}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 5
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: external
      algorithmConfig: {{url: "http://{addr}/decide", timeout: 2s}}
      metrics:
      - {{type: ExternalServer, externalServer: {{endpoint: "{addr}/metric", protocol: http, metricsName: queue, target: "10"}}}}
"#,
        addr = stub.addr
    ))
    .await;
    rig.wait_replicas(
        "web",
        "3 as the policy says",
        Duration::from_secs(30),
        |r| r == 3,
    )
    .await;
    let msg = rig
        .wait_condition("ext", "ScalingCalculated", "True", "stub saw 42")
        .await;
    assert!(msg.starts_with("external:"), "{msg}");
    assert!(stub.decisions.load(Ordering::Relaxed) > 0);

    // The policy service fails: replicas are held and the condition says why.
    stub.replicas.store(-1, Ordering::Relaxed);
    let msg = rig
        .wait_condition("ext", "ScalingCalculated", "False", "500")
        .await;
    assert!(msg.contains("replicas held at 3"), "{msg}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rig.replicas("web").await, 3);
}

#[tokio::test]
async fn a_state_trigger_follows_its_linked_tidal() {
    let rig = Rig::new("es-state").await;
    let kubeconfig = rig.env.kubectl.kubeconfig().to_str().unwrap().to_string();
    let _tidal = Process::spawn(
        "tidal-scheduler",
        &[],
        &[
            ("WATCH_NAMESPACE", rig.ns.name.as_str()),
            ("LEADER_ELECT", "false"),
            ("ADMIN_ADDR", "127.0.0.1:0"),
            ("KUBECONFIG", kubeconfig.as_str()),
        ],
    );
    rig.apply(WEB).await;
    rig.apply(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: tidal-driven}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  trigger: {type: StateTrigger, stateTrigger: {}}
"#,
    )
    .await;
    rig.wait_condition(
        "tidal-driven",
        "ScalingCalculated",
        "False",
        "no Tidal is labelled",
    )
    .await;
    // A rule that fired in the past (every minute) wants 6: the scaler clamps it to maxReplicas 4.
    rig.apply(&format!(
        r#"
apiVersion: tidal.io/v1alpha1
kind: Tidal
metadata:
  name: day
  labels: {{elasticscaler.io/name: tidal-driven, elasticscaler.io/namespace: {ns}}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web, namespace: {ns}}}
  triggers:
    times:
      rules:
      - {{name: peak, cron: "CRON_TZ=UTC * * * * *", replicas: 6}}
"#,
        ns = rig.ns.name
    ))
    .await;
    rig.wait_replicas(
        "web",
        "4 (6 clamped to maxReplicas)",
        Duration::from_secs(30),
        |r| r == 4,
    )
    .await;
    let msg = rig
        .wait_condition(
            "tidal-driven",
            "ScalingCalculated",
            "True",
            "rule \"peak\" wants 6",
        )
        .await;
    assert!(
        msg.contains("bounded by minReplicas/maxReplicas to 4"),
        "{msg}"
    );
    wait_until(
        "status.desiredReplicas 4",
        Duration::from_secs(10),
        || async {
            let es = rig.scalers().get("tidal-driven").await?;
            Ok::<_, kube::Error>(
                (es.status.and_then(|s| s.desired_replicas) == Some(4)).then_some(()),
            )
        },
    )
    .await;
}

#[tokio::test]
async fn a_linked_tidal_is_a_floor_under_a_metrics_decision() {
    let rig = Rig::new("es-floor").await;
    let stub = stub().await;
    stub.replicas.store(1, Ordering::Relaxed);
    let kubeconfig = rig.env.kubectl.kubeconfig().to_str().unwrap().to_string();
    let _tidal = Process::spawn(
        "tidal-scheduler",
        &[],
        &[
            ("WATCH_NAMESPACE", rig.ns.name.as_str()),
            ("LEADER_ELECT", "false"),
            ("ADMIN_ADDR", "127.0.0.1:0"),
            ("KUBECONFIG", kubeconfig.as_str()),
        ],
    );
    rig.apply(WEB).await;
    rig.apply(&format!(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {{name: ext}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 5
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: external
      algorithmConfig: {{url: "http://{addr}/decide"}}
      metrics:
      - {{type: ExternalServer, externalServer: {{endpoint: "{addr}/metric", protocol: http, metricsName: queue, target: "10"}}}}
---
apiVersion: tidal.io/v1alpha1
kind: Tidal
metadata:
  name: business-hours
  labels: {{elasticscaler.io/name: ext, elasticscaler.io/namespace: {ns}}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web, namespace: {ns}}}
  triggers:
    times:
      rules:
      - {{name: open, cron: "CRON_TZ=UTC * * * * *", replicas: 3}}
"#,
        addr = stub.addr,
        ns = rig.ns.name
    ))
    .await;
    rig.wait_replicas(
        "web",
        "3, the schedule's floor over the policy's 1",
        Duration::from_secs(30),
        |r| r == 3,
    )
    .await;
    let msg = rig
        .wait_condition(
            "ext",
            "ScalingCalculated",
            "True",
            "raised to the schedule's floor",
        )
        .await;
    assert!(msg.contains("business-hours"), "{msg}");
    // The metrics can go above the floor.
    stub.replicas.store(5, Ordering::Relaxed);
    rig.wait_replicas("web", "5 from the policy", Duration::from_secs(30), |r| {
        r == 5
    })
    .await;
}
