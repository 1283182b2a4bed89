//! The DLX end to end: the real `dlx` binary, two replicas run as local processes listening on
//! loopback, against the local cluster. The workload is a Deployment of fake inference pods (real
//! servers on pod IPs, with a cold start) that starts at 0 replicas, behind a Service handed to the DLX
//! (the contract's annotations) and its workload Service (label `elasticscaler.io/shadow-of`).
//!
//! The elastic-scaler is not running: the test plays the ElasticScaler's part of the hand-over
//! ([`Scaler`]): it sees the wake-up annotation the DLX writes, scales the Deployment up, and once a pod
//! is ready restores the Service's selector and removes the annotation. Clients send to a DLX replica
//! on loopback with `Host: llm.<ns>.svc.cluster.local`, as a pod would through the Service.

mod handover;
mod load;
mod pods;
mod protocols;
mod rbac;
mod shutdown;
mod wake;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api_types::ElasticScaler;
use api_types::keys::{annotations, labels};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use test_kit::{Env, Process, TestNamespace, wait_until};

/// The workload: fake inference pods (cold start `cold_start_ms`) behind Service `llm`, handed to the
/// DLX, and workload Service `llm-workload`; ElasticScaler `llm`.
fn manifest(cold_start_ms: u64, max_concurrency: u32) -> String {
    let (scaler, workload, original) = (
        annotations::SCALER,
        annotations::WORKLOAD_SERVICE,
        annotations::ORIGINAL_SELECTOR,
    );
    let shadow = labels::SHADOW_OF;
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: llm}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: llm}}}}
  template:
    metadata: {{labels: {{app: llm}}}}
    spec:
      containers:
      - name: server
        image: pd-orchestrator/fake-inference:dev
        ports: [{{name: http, containerPort: 8000}}]
        env:
        - {{name: FAKE_COLD_START_MS, value: "{cold_start_ms}"}}
        - {{name: FAKE_TOKENS_PER_SECOND, value: "100"}}
        - {{name: FAKE_TTFT_MS, value: "10"}}
        - {{name: FAKE_MAX_CONCURRENCY, value: "{max_concurrency}"}}
        - {{name: FAKE_MODEL, value: "llm"}}
        readinessProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata:
  name: llm
  annotations:
    {scaler}: llm
    {workload}: llm-workload
    {original}: '{{"app":"llm"}}'
spec:
  selector: {{app.kubernetes.io/name: dlx}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata:
  name: llm-workload
  labels: {{{shadow}: llm}}
spec:
  clusterIP: None
  selector: {{app: llm}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {{name: llm}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: llm}}
  minReplicas: 1
  maxReplicas: 4
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      metrics:
      - {{type: Pods, pods: {{metricsName: "vllm:num_requests_waiting", target: {{type: AverageValue, averageValue: "1"}}}}}}
"#
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One DLX replica.
pub struct Dlx {
    pub process: Process,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

/// Starts a DLX replica watching `ns`, with extra env.
pub fn start_dlx(env: &Env, ns: &str, name: &str, extra: &[(&str, &str)]) -> Dlx {
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let kubeconfig = env.kubectl.kubeconfig().to_str().unwrap().to_string();
    let (p, a) = (proxy.to_string(), admin.to_string());
    let mut envs = vec![
        ("KUBECONFIG", kubeconfig.as_str()),
        ("WATCH_NAMESPACE", ns),
        ("PROXY_ADDR", p.as_str()),
        ("ADMIN_ADDR", a.as_str()),
        ("POD_NAME", name),
        ("DLX_SHUTDOWN_DELAY", "0s"),
        ("DLX_DRAIN_TIMEOUT", "2s"),
        ("RUST_LOG", "info,dlx=debug"),
    ];
    envs.extend_from_slice(extra);
    Dlx {
        process: Process::spawn("dlx", &[], &envs),
        proxy,
        admin,
    }
}

/// A test's namespace, workload and DLX replicas.
pub struct Rig {
    pub env: Env,
    pub ns: TestNamespace,
    pub dlx: Vec<Dlx>,
    pub http: reqwest::Client,
}

impl Rig {
    /// The workload (cold start `cold_start_ms`) and `replicas` DLX processes with `extra` env, ready.
    pub async fn new(
        test: &str,
        replicas: usize,
        cold_start_ms: u64,
        extra: &[(&str, &str)],
    ) -> Rig {
        let env = Env::get().await;
        let ns = env.namespace(test).await;
        env.kubectl
            .run(
                &["apply", "-n", &ns.name, "-f", "-"],
                Some(&manifest(cold_start_ms, 16)),
            )
            .await
            .ok();
        let dlx = (0..replicas)
            .map(|i| start_dlx(&env, &ns.name, &format!("dlx-{i}"), extra))
            .collect();
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let rig = Rig { env, ns, dlx, http };
        for i in 0..replicas {
            rig.wait_ready(i).await;
        }
        rig
    }

    pub async fn wait_ready(&self, i: usize) {
        let url = format!("http://{}/readyz", self.dlx[i].admin);
        wait_until(
            &format!("DLX {i} /readyz"),
            Duration::from_secs(30),
            || async {
                Ok::<_, reqwest::Error>(
                    (self.http.get(&url).send().await?.status() == 200).then_some(()),
                )
            },
        )
        .await;
    }

    pub fn host(&self) -> String {
        format!("llm.{}.svc.cluster.local", self.ns.name)
    }

    /// A completion request to DLX replica `i`, addressed to Service llm.
    pub fn post(&self, i: usize, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("http://{}/v1/completions", self.dlx[i].proxy))
            .header("host", self.host())
            .json(&body)
    }

    /// The sum of metric `name`'s samples whose labels contain every one of `having`, at replica `i`.
    pub async fn metric(&self, i: usize, name: &str, having: &[&str]) -> f64 {
        let url = format!("http://{}/metrics", self.dlx[i].admin);
        let Ok(resp) = self.http.get(&url).send().await else {
            return f64::NAN;
        };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter(|l| having.iter().all(|h| l.contains(h)))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// Requests held for Service llm at replica `i`.
    pub async fn held(&self, i: usize) -> f64 {
        self.metric(i, "dlx_held_requests", &[r#"service="llm""#])
            .await
    }

    /// Waits until replica `i` holds `n` requests.
    pub async fn wait_held(&self, i: usize, n: f64) {
        wait_until(
            &format!("DLX {i} to hold {n} requests"),
            Duration::from_secs(30),
            || async { Ok::<_, String>((self.held(i).await == n).then_some(())) },
        )
        .await;
    }

    pub fn scalers(&self) -> Api<ElasticScaler> {
        Api::namespaced(self.env.client.clone(), &self.ns.name)
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.env.client.clone(), &self.ns.name)
    }

    /// The wake-up annotation on ElasticScaler llm, if present.
    pub async fn wake_requested(&self) -> Option<String> {
        let es = self.scalers().get("llm").await.ok()?;
        es.annotations().get(annotations::WAKE_REQUESTED).cloned()
    }
}

/// The ElasticScaler's side of the hand-over, played by the test: on the wake-up annotation, scale the
/// Deployment to `replicas`; once a pod is ready, restore the Service's selector and remove the
/// annotation. Counts the wake-ups it saw.
pub struct Scaler {
    pub wakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Scaler {
    pub fn start(rig: &Rig, replicas: i32) -> Scaler {
        let wakes = Arc::new(AtomicUsize::new(0));
        let (scalers, deployments) = (rig.scalers(), rig.deployments());
        let services: Api<Service> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
        let w = wakes.clone();
        let task = tokio::spawn(async move {
            let mut waking = false;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(es) = scalers.get("llm").await else {
                    continue;
                };
                let asked = es.annotations().contains_key(annotations::WAKE_REQUESTED);
                if asked && !waking {
                    waking = true;
                    w.fetch_add(1, Ordering::SeqCst);
                    let scale = serde_json::json!({"spec": {"replicas": replicas}});
                    let _ = deployments
                        .patch_scale("llm", &PatchParams::default(), &Patch::Merge(&scale))
                        .await;
                }
                if !waking {
                    continue;
                }
                let ready = deployments
                    .get("llm")
                    .await
                    .ok()
                    .and_then(|d| d.status?.ready_replicas)
                    .unwrap_or(0);
                if ready >= 1 {
                    let restore = serde_json::json!({
                        "metadata": {"annotations": {annotations::ORIGINAL_SELECTOR: null}},
                        "spec": {"selector": {"app": "llm", "app.kubernetes.io/name": null}}
                    });
                    let _ = services
                        .patch("llm", &PatchParams::default(), &Patch::Merge(&restore))
                        .await;
                    let clear = serde_json::json!({"metadata": {"annotations": {annotations::WAKE_REQUESTED: null}}});
                    if scalers
                        .patch("llm", &PatchParams::default(), &Patch::Merge(&clear))
                        .await
                        .is_ok()
                    {
                        waking = false;
                    }
                }
            }
        });
        Scaler { wakes, task }
    }

    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A completion body; streaming or not.
pub fn completion(stream: bool, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({"model": "llm", "prompt": "hello", "max_tokens": max_tokens, "stream": stream})
}

/// Checks a completion answer: SSE with `max_tokens` token events and `[DONE]`, or one JSON body.
pub fn check_answer(text: &str, stream: bool, max_tokens: u32) -> Result<(), String> {
    if stream {
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        if events.len() as u32 != max_tokens + 1 || events.last() != Some(&"data: [DONE]") {
            return Err(format!("bad stream: {text}"));
        }
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))?;
    let want: Vec<String> = (0..max_tokens).map(|i| format!("tok{i}")).collect();
    if v["choices"][0]["text"] != want.join(" ") {
        return Err(format!("bad answer: {text}"));
    }
    Ok(())
}

#[tokio::test]
async fn dlx_serves_probes_and_metrics_and_stops_on_sigterm() {
    let env = Env::get().await;
    let ns = env.namespace("dlx-lifecycle").await;
    let bin = test_kit::bin_path("dlx");
    let kubeconfig = env.kubectl.kubeconfig().to_str().unwrap().to_string();
    let ns_name = ns.name.clone();
    let proxy = format!("127.0.0.1:{}", free_port());
    tokio::task::spawn_blocking(move || {
        pdo_runtime::testing::assert_serves_and_stops_with(
            bin.to_str().unwrap(),
            "dlx",
            &[
                ("KUBECONFIG", &kubeconfig),
                ("WATCH_NAMESPACE", &ns_name),
                ("PROXY_ADDR", &proxy),
                ("DLX_SHUTDOWN_DELAY", "0s"),
            ],
        )
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn dlx_unknown_targets_get_404_saying_why() {
    let rig = Rig::new("dlx-404", 1, 0, &[]).await;
    let get = |host: String| {
        rig.http
            .get(format!("http://{}/v1/models", rig.dlx[0].proxy))
            .header("host", host)
            .send()
    };
    let resp = get(format!("nope.{}.svc.cluster.local", rig.ns.name))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "Service {}/nope is not handed to the DLX",
            rig.ns.name
        )),
        "{text}"
    );
    // The workload Service exists but carries no hand-over annotations.
    let resp = get(format!("llm-workload.{}", rig.ns.name)).await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = get("api.example.com".into()).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("names no Service"));
    assert_eq!(
        rig.metric(0, "dlx_requests_total", &[r#"code="404""#])
            .await,
        3.0
    );
}
