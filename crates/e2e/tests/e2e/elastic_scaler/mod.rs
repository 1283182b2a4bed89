//! ElasticScaler controller, end to end: the real `elastic-scaler` binary runs as a local process
//! against the local cluster, scoped to the test's namespace, with a short decision period. Fake
//! inference pods (real HTTP servers on pod IPs) are loaded with real requests; their
//! `vllm:num_requests_waiting` is read by scraping every pod and through Prometheus.

mod load;
mod metrics;
mod metrics_api;
mod panic;
mod plugins;
mod rbac;
mod rsg;
mod spec;
mod zero;

use std::time::Duration;

use api_types::ElasticScaler;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use test_kit::{Env, Process, TestNamespace, wait_until};

/// A test's namespace and its controller.
pub struct Rig {
    pub env: Env,
    pub ns: TestNamespace,
    pub ctrl: Process,
}

/// Starts `bin` (elastic-scaler or a plugin build of it) watching `ns` only, deciding every second.
pub fn controller(env: &Env, bin: &str, ns: &str, extra: &[(&str, &str)]) -> Process {
    let kubeconfig = env
        .kubectl
        .kubeconfig()
        .to_str()
        .expect("utf-8 path")
        .to_string();
    let mut envs = vec![
        ("WATCH_NAMESPACE", ns),
        ("LEADER_ELECT", "false"),
        ("ADMIN_ADDR", "127.0.0.1:0"),
        ("ES_PROMETHEUS_URL", env.prometheus_url.as_str()),
        ("ES_SYNC_PERIOD_SECONDS", "1"),
        ("ES_RETRY_SECONDS", "1"),
        ("ES_METRIC_TIMEOUT_SECONDS", "2"),
        ("RUST_LOG", "info,elastic_scaler=debug"),
        ("KUBECONFIG", kubeconfig.as_str()),
    ];
    envs.extend_from_slice(extra);
    Process::spawn(bin, &[], &envs)
}

impl Rig {
    pub async fn new(test: &str) -> Rig {
        Self::with_binary(test, "elastic-scaler").await
    }

    pub async fn with_binary(test: &str, bin: &str) -> Rig {
        let env = Env::get().await;
        let ns = env.namespace(test).await;
        let ctrl = controller(&env, bin, &ns.name, &[]);
        Rig { env, ns, ctrl }
    }

    pub async fn apply(&self, yaml: &str) {
        self.env
            .kubectl
            .run(&["apply", "-n", &self.ns.name, "-f", "-"], Some(yaml))
            .await
            .ok();
    }

    pub fn scalers(&self) -> Api<ElasticScaler> {
        Api::namespaced(self.env.client.clone(), &self.ns.name)
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.env.client.clone(), &self.ns.name)
    }

    pub async fn replicas(&self, deployment: &str) -> i32 {
        self.deployments()
            .get(deployment)
            .await
            .ok()
            .and_then(|d| d.spec?.replicas)
            .unwrap_or(-1)
    }

    /// Waits until `check(replicas)` holds for Deployment `name`; returns the replicas.
    pub async fn wait_replicas(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(i32) -> bool,
    ) -> i32 {
        let what = format!("Deployment {name} replicas {what}");
        wait_until(&what, timeout, || async {
            let r = self.replicas(name).await;
            Ok::<_, String>(check(r).then_some(r))
        })
        .await
    }

    /// Waits until at least `min` Events with `reason` exist in the namespace (they are published from a
    /// background queue, after the write they report); returns their names.
    pub async fn wait_events(&self, reason: &str, min: usize) -> String {
        let what = format!("{min} Event(s) with reason {reason}");
        wait_until(&what, Duration::from_secs(30), || async {
            let out = self
                .env
                .kubectl
                .run(
                    &[
                        "get",
                        "events",
                        "-n",
                        &self.ns.name,
                        "--field-selector",
                        &format!("reason={reason}"),
                        "-o",
                        "name",
                    ],
                    None,
                )
                .await
                .ok();
            Ok::<_, String>((out.lines().count() >= min).then_some(out))
        })
        .await
    }

    /// Waits until condition `type_` of ElasticScaler `name` has `status` and a message containing
    /// `needle`; returns the message.
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        needle: &str,
    ) -> String {
        let api = self.scalers();
        let what = format!("ElasticScaler {name} condition {type_}={status} mentioning {needle:?}");
        wait_until(&what, Duration::from_secs(60), || async {
            let es = api.get(name).await?;
            let msg = es
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .find(|c| c.type_ == type_ && c.status == status && c.message.contains(needle))
                .map(|c| c.message.clone());
            Ok::<_, kube::Error>(msg)
        })
        .await
    }
}

/// A Deployment `name` of fake inference servers that each run one request at a time, plus its Service.
pub fn inference(name: &str, replicas: i32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "8000"}}
    spec:
      containers:
      - name: server
        image: pd-orchestrator/fake-inference:dev
        ports: [{{name: http, containerPort: 8000}}]
        env:
        - {{name: FAKE_MAX_CONCURRENCY, value: "1"}}
        - {{name: FAKE_TOKENS_PER_SECOND, value: "20"}}
        - {{name: FAKE_TTFT_MS, value: "20"}}
        readinessProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    )
}

#[tokio::test]
async fn elastic_scaler_serves_probes_elects_a_leader_and_stops_on_sigterm() {
    let env = Env::get().await;
    let ns = env.namespace("es-lifecycle").await;
    let bin = test_kit::bin_path("elastic-scaler");
    let kubeconfig = env.kubectl.kubeconfig().to_str().unwrap().to_string();
    let ns_name = ns.name.clone();
    tokio::task::spawn_blocking(move || {
        pdo_runtime::testing::assert_serves_and_stops_with(
            bin.to_str().unwrap(),
            "elastic_scaler",
            &[
                ("KUBECONFIG", &kubeconfig),
                ("WATCH_NAMESPACE", &ns_name),
                ("POD_NAMESPACE", &ns_name),
                ("LEADER_ELECT", "true"),
            ],
        )
    })
    .await
    .unwrap();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), &ns.name);
    assert!(
        leases.get_opt("elastic-scaler").await.unwrap().is_some(),
        "the controller's Lease exists"
    );
}
