//! Scale-down victims (seed 002): by `scaleDown.metric` through a real Prometheus scraping fake inference
//! pods that export `vllm:num_requests_running{group_id}`; with Prometheus unreachable, by the
//! `autoscaling.rsg.metric.values` annotation; with an annotation missing, highest group id first.

use std::collections::BTreeMap;
use std::time::Duration;

use test_kit::{ServiceClient, wait_until};

use super::{Rig, controller};

fn manifests(ns: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: llm}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: llm}}}}
  template:
    metadata:
      labels: {{app: llm}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "8000"}}
    spec:
      containers:
      - name: server
        image: pd-orchestrator/fake-inference:dev
        ports: [{{name: http, containerPort: 8000}}]
        env: [{{name: FAKE_TOKENS_PER_SECOND, value: "2"}}]
        readinessProbe: {{httpGet: {{path: /health, port: http}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: llm}}
spec:
  selector: {{app: llm}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: g}}
spec:
  targetResources:
  - {{name: llm, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: llm}}}}
  scalingStrategy:
    type: GroupReplication
    groupConfig:
      groupName: pd
      replicas: 4
      scaleDown:
        metric: {{expr: 'vllm:num_requests_running{{namespace="{ns}"}}', type: Gauge, aggregator: avg}}
        order: ascending
"#
    )
}

/// Holds `n` streaming completions open on group `g`'s pods (through its cloned Service).
async fn load(rig: &Rig, g: u32, n: usize) -> Vec<reqwest::Response> {
    let name = format!("llm-pd-{g}");
    let svc = ServiceClient::new(rig.env.client.clone(), &rig.ns.name, &name);
    // The EndpointSlice controller may list the group's pod a moment after the Deployment counts it ready.
    let what = format!("Service {name} to have a ready endpoint");
    wait_until(&what, Duration::from_secs(60), || async {
        Ok::<_, anyhow::Error>((!svc.ready_endpoints(None).await?.is_empty()).then_some(()))
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..n {
        let req = svc
            .request(reqwest::Method::POST, "/v1/completions")
            .await
            .expect("endpoint");
        let resp = req
            .json(&serde_json::json!({"model": "m", "prompt": "hold", "max_tokens": 1000, "stream": true}))
            .send()
            .await
            .expect("completion accepted");
        assert!(resp.status().is_success(), "{}", resp.status());
        held.push(resp);
    }
    held
}

async fn prometheus_values(
    url: &str,
    query: &str,
) -> Result<BTreeMap<String, f64>, reqwest::Error> {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await?
        .json()
        .await?;
    Ok(v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some((
                s["metric"]["group_id"].as_str()?.to_string(),
                s["value"][1].as_str()?.parse().ok()?,
            ))
        })
        .collect())
}

async fn last_scale_down(rig: &Rig, groups: i32) -> api_types::rsg::ScaleDownRecord {
    rig.wait_ready("g", groups)
        .await
        .status
        .unwrap()
        .last_scale_down
        .expect("a scale-down was recorded")
}

#[tokio::test]
async fn rsg_scale_down_by_prometheus_then_annotation_then_max_group_id() {
    let mut rig = Rig::new("rsg-victims").await;
    rig.apply(&manifests(&rig.ns.name)).await;
    rig.wait_ready("g", 4).await;
    wait_until(
        "every group's pod ready",
        Duration::from_secs(90),
        || async {
            let out = rig
                .kubectl(&[
                    "get",
                    "deploy",
                    "-o",
                    "jsonpath={.items[*].status.readyReplicas}",
                ])
                .await;
            Ok::<_, String>(
                (out.split_whitespace().filter(|r| *r == "1").count() == 4).then_some(()),
            )
        },
    )
    .await;

    // Group 1 runs 3 requests, group 3 one, group 2 none.
    let _held1 = load(&rig, 1, 3).await;
    let _held3 = load(&rig, 3, 1).await;
    let query = format!(
        "avg by (group_id) (vllm:num_requests_running{{namespace=\"{}\"}})",
        rig.ns.name
    );
    wait_until(
        "Prometheus to see 3/0/1 running requests in groups 1/2/3",
        Duration::from_secs(60),
        || async {
            let v = prometheus_values(&rig.env.prometheus_url, &query).await?;
            let ok =
                v.get("1") == Some(&3.0) && v.get("2") == Some(&0.0) && v.get("3") == Some(&1.0);
            Ok::<_, reqwest::Error>(ok.then_some(()))
        },
    )
    .await;

    // Ascending: the group with the fewest running requests goes (2), not the highest id (3).
    rig.kubectl(&["scale", "rsg", "g", "--replicas=3"]).await;
    rig.wait_clones("deployments", "g", &["pd-llm-1", "pd-llm-3"])
        .await;
    let sd = last_scale_down(&rig, 3).await;
    assert_eq!(
        (sd.path.as_str(), sd.groups.clone()),
        ("Prometheus", vec![2]),
        "{sd:?}"
    );

    // Prometheus unreachable and an annotation missing (group 3): highest group id first.
    rig.ctrl.stop();
    rig.ctrl = controller(&rig.env, &rig.ns.name, "http://127.0.0.1:9");
    rig.kubectl(&[
        "annotate",
        "deploy",
        "pd-llm-1",
        "autoscaling.rsg.metric.values=5",
    ])
    .await;
    rig.kubectl(&["scale", "rsg", "g", "--replicas=2"]).await;
    rig.wait_clones("deployments", "g", &["pd-llm-1"]).await;
    let sd = last_scale_down(&rig, 2).await;
    assert_eq!(
        (sd.path.as_str(), sd.groups.clone()),
        ("MaxGroupId", vec![3]),
        "{sd:?}"
    );
    assert!(
        sd.reason.contains("prometheus query failed"),
        "{}",
        sd.reason
    );

    // Prometheus still unreachable, every group annotated: the annotation order decides (group 1, value 1,
    // goes before group 2, value 9, although 2 is the higher id).
    rig.kubectl(&["scale", "rsg", "g", "--replicas=3"]).await;
    rig.wait_clones("deployments", "g", &["pd-llm-1", "pd-llm-2"])
        .await;
    rig.wait_ready("g", 3).await;
    rig.kubectl(&[
        "annotate",
        "--overwrite",
        "deploy",
        "pd-llm-1",
        "autoscaling.rsg.metric.values=1",
    ])
    .await;
    rig.kubectl(&[
        "annotate",
        "deploy",
        "pd-llm-2",
        "autoscaling.rsg.metric.values=9",
    ])
    .await;
    rig.kubectl(&["scale", "rsg", "g", "--replicas=2"]).await;
    rig.wait_clones("deployments", "g", &["pd-llm-2"]).await;
    let sd = last_scale_down(&rig, 2).await;
    assert_eq!(
        (sd.path.as_str(), sd.groups.clone()),
        ("Annotation", vec![1]),
        "{sd:?}"
    );
    let logs = rig.ctrl.logs();
    assert!(
        logs.contains("fallback to annotation"),
        "the log names the fallback"
    );
    let events = rig
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=g",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert!(
        events.contains("chosen by Annotation") && events.contains("chosen by Prometheus"),
        "{events}"
    );
}
