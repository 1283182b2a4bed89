//! KPA panic mode survives a controller restart: a burst puts the scaler in panic at a higher scale, the
//! controller is killed and the load stops, and the restarted controller keeps the scale for a whole
//! stable window before scaling down.

use std::time::{Duration, Instant};

use test_kit::wait_until;

use super::load::Load;
use super::{Rig, controller, inference};

const KPA: &str = r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: llm}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 1
  maxReplicas: 4
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: KPA
      algorithmConfig: {stableWindow: 20s, panicWindowPercentage: "15"}
      metrics:
      - {type: Pods, pods: {metricsName: "vllm:num_requests_waiting", target: {type: AverageValue, averageValue: "1"}}}
"#;

#[tokio::test]
async fn a_restart_in_the_middle_of_a_panic_does_not_scale_down() {
    let mut rig = Rig::new("es-kpa-restart").await;
    rig.apply(&inference("llm", 1)).await;
    rig.wait_replicas("llm", "1", Duration::from_secs(60), |r| r == 1)
        .await;
    wait_until("llm ready", Duration::from_secs(60), || async {
        let d = rig.deployments().get("llm").await?;
        Ok::<_, kube::Error>((d.status.and_then(|s| s.ready_replicas) == Some(1)).then_some(()))
    })
    .await;
    rig.apply(KPA).await;
    rig.wait_condition("llm", "ScalingCalculated", "True", "KPA")
        .await;

    let mut load = Load::start(rig.env.client.clone(), &rig.ns.name, "llm", 8, 60);
    rig.wait_replicas("llm", "4 in panic", Duration::from_secs(60), |r| r == 4)
        .await;
    let msg = rig
        .wait_condition("llm", "ScalingCalculated", "True", "panic mode")
        .await;
    let es = rig.scalers().get("llm").await.unwrap();
    assert_eq!(
        es.status.unwrap().panicking,
        Some(true),
        "panic recorded in status: {msg}"
    );

    rig.ctrl.crash();
    load.stop();
    let restarted = Instant::now();
    rig.ctrl = controller(&rig.env, "elastic-scaler", &rig.ns.name, &[]);
    // The restarted controller decides every second on an idle target; for most of the 20 s stable
    // window it must keep all 4 replicas.
    while restarted.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            rig.replicas("llm").await,
            4,
            "scaled down {:?} after the restart",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        rig.ctrl
            .logs()
            .contains("decision state rebuilt from status"),
        "the restart resumed from status"
    );
    rig.wait_replicas(
        "llm",
        "down after the stable window",
        Duration::from_secs(60),
        |r| r < 4,
    )
    .await;
    assert!(
        restarted.elapsed() >= Duration::from_secs(19),
        "scaled down only after the stable window: {:?}",
        restarted.elapsed()
    );
}
