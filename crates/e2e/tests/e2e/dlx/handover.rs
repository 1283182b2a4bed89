//! The whole hand-over with the real elastic-scaler: it hands the idle workload's Service to the DLX and
//! scales it to 0; clients then reach the DLX (two replicas on loopback; the Service's DLX endpoints are
//! placeholder pods, since sim-kubelet runs only fake-inference processes); the DLX asks for the wake-up,
//! the elastic-scaler scales up, restores the Service and clears the request; the DLX releases every held
//! request. Repeated for `DLX_E2E_CYCLES` cycles (default 3) with zero errors.

use std::time::Duration;

use api_types::ElasticScaler;
use kube::Api;
use test_kit::{Env, wait_until};

use super::{Rig, check_answer, completion, start_dlx};

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: dlx}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: dlx}}
  template:
    metadata: {labels: {app.kubernetes.io/name: dlx}}
    spec: {containers: [{name: dlx, image: registry.local/dlx:placeholder, ports: [{name: http, containerPort: 8000}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm}
spec:
  replicas: 1
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec:
      containers:
      - name: server
        image: pd-orchestrator/fake-inference:dev
        ports: [{name: http, containerPort: 8000}]
        env:
        - {name: FAKE_COLD_START_MS, value: "2000"}
        - {name: FAKE_TOKENS_PER_SECOND, value: "100"}
        - {name: FAKE_TTFT_MS, value: "10"}
        - {name: FAKE_MAX_CONCURRENCY, value: "16"}
        readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: llm}
spec:
  selector: {app: llm}
  ports: [{name: http, port: 80, targetPort: http}]
---
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

async fn phase(scalers: &Api<ElasticScaler>) -> String {
    let Ok(es) = scalers.get("llm").await else {
        return String::new();
    };
    es.status
        .and_then(|s| s.scale_to_zero)
        .map(|z| format!("{:?}", z.phase))
        .unwrap_or_default()
}

#[tokio::test]
async fn dlx_and_elastic_scaler_scale_to_zero_and_back_with_zero_errors() {
    let cycles: usize = std::env::var("DLX_E2E_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let env = Env::get().await;
    let ns = env.namespace("dlx-handover").await;
    env.kubectl
        .run(&["apply", "-n", &ns.name, "-f", "-"], Some(MANIFEST))
        .await
        .ok();
    let _es = crate::elastic_scaler::controller(&env, "elastic-scaler", &ns.name, &[]);
    let dlx = (0..2)
        .map(|i| start_dlx(&env, &ns.name, &format!("dlx-{i}"), &[]))
        .collect();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let rig = Rig { env, ns, dlx, http };
    rig.wait_ready(0).await;
    rig.wait_ready(1).await;
    let scalers = rig.scalers();
    for cycle in 1..=cycles {
        wait_until(
            &format!("cycle {cycle}: the workload handed to the DLX and at zero"),
            Duration::from_secs(90),
            || async {
                let at_zero = phase(&scalers).await == "AtZero";
                Ok::<_, String>(
                    (at_zero
                        && rig
                            .deployments()
                            .get("llm")
                            .await
                            .ok()
                            .and_then(|d| d.spec?.replicas)
                            == Some(0))
                    .then_some(()),
                )
            },
        )
        .await;
        let clients: Vec<_> = (0..50)
            .map(|i| {
                let stream = i % 2 == 0;
                let req = rig.post((i / 2) % 2, completion(stream, 4));
                tokio::spawn(async move {
                    let resp = req.send().await.map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    let text = resp.text().await.map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(format!("{status}: {text}"));
                    }
                    check_answer(&text, stream, 4)
                })
            })
            .collect();
        let mut failures = Vec::new();
        for c in clients {
            if let Err(e) = c.await.unwrap() {
                failures.push(e);
            }
        }
        assert!(failures.is_empty(), "cycle {cycle}: {failures:?}");
        let mut requested = 0.0;
        for i in 0..2 {
            requested += rig
                .metric(i, "dlx_wakeups_total", &[r#"result="requested""#])
                .await;
        }
        assert_eq!(
            requested, cycle as f64,
            "one wake-up written per cycle across both replicas"
        );
        wait_until(
            &format!("cycle {cycle}: the Service handed back"),
            Duration::from_secs(60),
            || async { Ok::<_, String>((phase(&scalers).await == "Active").then_some(())) },
        )
        .await;
    }
    let mut ok = 0.0;
    for i in 0..2 {
        ok += rig
            .metric(i, "dlx_requests_total", &[r#"code="200""#])
            .await;
    }
    assert_eq!(ok, 50.0 * cycles as f64);
}
