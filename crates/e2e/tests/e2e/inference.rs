//! A Deployment of fake inference pods behind a Service: the pods are scheduled, run by sim-kubelet as
//! real servers on pod IPs, become Ready, appear in EndpointSlices, answer a streamed completion through an
//! EndpointSlice address, and are scraped by Prometheus with their `group_id` label.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use test_kit::{Env, ServiceClient, wait_until};

fn manifest(cold_start_ms: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: llm}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: llm}}}}
  template:
    metadata:
      labels: {{app: llm, rsg.io/group-id: "3"}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "8000"}}
    spec:
      containers:
      - name: server
        image: pd-orchestrator/fake-inference:dev
        ports: [{{name: http, containerPort: 8000}}]
        env:
        - {{name: FAKE_COLD_START_MS, value: "{cold_start_ms}"}}
        - {{name: FAKE_TOKENS_PER_SECOND, value: "40"}}
        readinessProbe: {{httpGet: {{path: /health, port: http}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: llm}}
spec:
  selector: {{app: llm}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    )
}

#[tokio::test]
async fn fake_inference_pods_serve_a_streamed_completion_through_endpointslices() {
    let env = Env::get().await;
    let ns = env.namespace("inference").await;
    let started = Instant::now();
    env.kubectl
        .run(&["apply", "-n", &ns.name, "-f", "-"], Some(&manifest(1500)))
        .await
        .ok();

    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &ns.name);
    wait_until(
        "Deployment llm to have 2 ready replicas",
        Duration::from_secs(90),
        || async {
            let d = deployments.get("llm").await?;
            Ok::<_, kube::Error>((d.status.and_then(|s| s.ready_replicas) == Some(2)).then_some(()))
        },
    )
    .await;
    // The cold start holds readiness back: Ready cannot come before the server reports healthy.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "pods were Ready before their cold start ended"
    );

    let svc = ServiceClient::new(env.client.clone(), &ns.name, "llm");
    let eps = wait_until(
        "2 ready endpoints of Service llm",
        Duration::from_secs(30),
        || async {
            let eps = svc.ready_endpoints(Some("http")).await?;
            Ok::<_, anyhow::Error>((eps.len() == 2).then_some(eps))
        },
    )
    .await;
    assert!(
        eps.iter()
            .all(|e| e.starts_with("10.244.") && e.ends_with(":8000")),
        "{eps:?}"
    );

    let body = serde_json::json!({"model": "fake-llm", "prompt": "hello", "max_tokens": 6, "stream": true});
    let resp = svc
        .request(reqwest::Method::POST, "/v1/completions")
        .await
        .unwrap()
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let t0 = Instant::now();
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut first_chunk_at = None;
    while let Some(chunk) = stream.next().await {
        first_chunk_at.get_or_insert(t0.elapsed());
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let total = t0.elapsed();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| e.starts_with("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "{text}");
    assert_eq!(events.len(), 7, "6 token events and [DONE]: {text}");
    // Streamed, not buffered: the first token arrives well before the whole answer (6 tokens at 40/s).
    assert!(
        first_chunk_at.unwrap() * 2 < total,
        "first chunk {first_chunk_at:?}, total {total:?}"
    );

    // Prometheus discovers the pods and scrapes them, group_id label included.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let query = format!(
        "vllm:num_requests_running{{namespace=\"{}\",group_id=\"3\"}}",
        ns.name
    );
    wait_until(
        "Prometheus to scrape both fake inference pods",
        Duration::from_secs(60),
        || async {
            let v: serde_json::Value = http
                .get(format!("{}/api/v1/query", env.prometheus_url))
                .query(&[("query", query.as_str())])
                .send()
                .await?
                .json()
                .await?;
            let n = v["data"]["result"].as_array().map_or(0, Vec::len);
            Ok::<_, reqwest::Error>((n == 2).then_some(()))
        },
    )
    .await;
}

#[tokio::test]
async fn deleting_a_pod_frees_its_address_and_the_deployment_replaces_it() {
    let env = Env::get().await;
    let ns = env.namespace("inference-delete").await;
    env.kubectl
        .run(&["apply", "-n", &ns.name, "-f", "-"], Some(&manifest(0)))
        .await
        .ok();
    let svc = ServiceClient::new(env.client.clone(), &ns.name, "llm");
    let before = wait_until("2 ready endpoints", Duration::from_secs(90), || async {
        let eps = svc.ready_endpoints(None).await?;
        Ok::<_, anyhow::Error>((eps.len() == 2).then_some(eps))
    })
    .await;
    let pod = env
        .kubectl
        .run(
            &[
                "get",
                "pods",
                "-n",
                &ns.name,
                "-l",
                "app=llm",
                "-o",
                "jsonpath={.items[0].metadata.name}",
            ],
            None,
        )
        .await
        .ok();
    env.kubectl
        .run(
            &[
                "delete",
                "pod",
                "-n",
                &ns.name,
                &pod,
                "--wait=true",
                "--timeout=60s",
            ],
            None,
        )
        .await
        .ok();
    let after = wait_until(
        "the replacement pod to be a ready endpoint",
        Duration::from_secs(90),
        || async {
            let eps = svc.ready_endpoints(None).await?;
            Ok::<_, anyhow::Error>((eps.len() == 2 && eps != before).then_some(eps))
        },
    )
    .await;
    // Every endpoint answers: the deleted pod's server is gone from the list, the new one serves.
    for _ in 0..after.len() {
        let r = svc
            .request(reqwest::Method::GET, "/health")
            .await
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}
