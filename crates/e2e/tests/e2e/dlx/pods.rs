//! Scale to zero through the Service, with the DLX deployed as the user deploys it: the `dlx` subchart
//! installed by Helm (image `pd-orchestrator/dlx:dev`, which sim-kubelet runs as the real `dlx` binary in
//! the pod network, with a token of the chart's ServiceAccount and so exactly the chart's Role), two
//! replicas, and the real elastic-scaler.
//!
//! Clients reach Service `llm` the way kube-proxy sends them: to a ready endpoint of its EndpointSlices,
//! picked per request, with `Host: llm.<ns>.svc.cluster.local`. When the workload is idle the
//! elastic-scaler points the Service at the DLX pods and scales to 0, so the clients' requests land on a DLX
//! pod, which holds them, asks for the wake-up and releases them to the woken workload pod; once the
//! Service is restored the clients reach the workload directly. Repeated for `DLX_E2E_CYCLES` cycles
//! (default 2) with zero errors.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use api_types::ElasticScaler;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;
use test_kit::{Env, repo_root, wait_until};

use super::{check_answer, completion};

const RELEASE: &str = "edge";

fn manifest() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: llm}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: llm}}}}
  template:
    metadata: {{labels: {{app: llm}}}}
    spec:
      containers:
      - name: server
        image: pd-orchestrator/fake-inference:dev
        ports: [{{name: http, containerPort: 8000}}]
        env:
        - {{name: FAKE_COLD_START_MS, value: "2000"}}
        - {{name: FAKE_TOKENS_PER_SECOND, value: "100"}}
        - {{name: FAKE_TTFT_MS, value: "10"}}
        - {{name: FAKE_MAX_CONCURRENCY, value: "64"}}
        readinessProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: llm}}
spec:
  selector: {{app: llm}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {{name: llm}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: llm}}
  minReplicas: 0
  maxReplicas: 2
  scaleToZero:
    service: llm
    idleSeconds: 10
    dlxSelector: {{app.kubernetes.io/name: dlx, app.kubernetes.io/instance: {RELEASE}}}
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: HPA
      metrics:
      - {{type: Pods, pods: {{metricsName: "vllm:num_requests_running", target: {{type: AverageValue, averageValue: "4"}}}}}}
"#
    )
}

/// The ready endpoints of Service `svc` (port `http`), as kube-proxy would program them.
async fn endpoints(client: &kube::Client, ns: &str, svc: &str) -> BTreeSet<SocketAddr> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    let Ok(list) = slices.list(&lp).await else {
        return BTreeSet::new();
    };
    let mut out = BTreeSet::new();
    for s in list.items {
        let Some(port) = s
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("http"))
            .and_then(|p| p.port)
        else {
            continue;
        };
        for e in s.endpoints.into_iter().flatten() {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            for a in e.addresses {
                if let Ok(ip) = a.parse::<std::net::IpAddr>() {
                    out.insert(SocketAddr::new(ip, u16::try_from(port).unwrap_or(0)));
                }
            }
        }
    }
    out
}

/// The IPs of the running pods labelled `selector`.
async fn pod_ips(client: &kube::Client, ns: &str, selector: &str) -> BTreeSet<std::net::IpAddr> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let Ok(list) = pods.list(&ListParams::default().labels(selector)).await else {
        return BTreeSet::new();
    };
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status?.pod_ip?.parse().ok())
        .collect()
}

async fn phase(scalers: &Api<ElasticScaler>) -> String {
    let Ok(es) = scalers.get("llm").await else {
        return String::new();
    };
    es.status
        .and_then(|s| s.scale_to_zero)
        .map(|z| format!("{:?}", z.phase))
        .unwrap_or_default()
}

/// Sends `n` completions (every other one streaming) to Service llm's endpoints, each client picking an
/// endpoint as kube-proxy would; returns the failures.
async fn send(http: &reqwest::Client, targets: &[SocketAddr], host: &str, n: usize) -> Vec<String> {
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let stream = i % 2 == 0;
            let to = targets[i % targets.len()];
            let req = http
                .post(format!("http://{to}/v1/completions"))
                .header("host", host)
                .json(&completion(stream, 4));
            tokio::spawn(async move {
                let resp = req.send().await.map_err(|e| format!("{to}: {e}"))?;
                let status = resp.status().as_u16();
                let text = resp.text().await.map_err(|e| format!("{to}: {e}"))?;
                if status != 200 {
                    return Err(format!("{to}: {status}: {text}"));
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
    failures
}

/// The sum of `name` samples containing `having` over the DLX pods' `/metrics` (admin port 8080).
async fn dlx_metric(
    http: &reqwest::Client,
    ips: &BTreeSet<std::net::IpAddr>,
    name: &str,
    having: &str,
) -> f64 {
    let mut sum = 0.0;
    for ip in ips {
        let text = match http.get(format!("http://{ip}:8080/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => return f64::NAN,
        };
        sum += text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(having))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

#[tokio::test]
async fn dlx_pods_take_the_service_to_zero_and_back_through_the_pod_network() {
    let cycles: usize = std::env::var("DLX_E2E_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let env = Env::get().await;
    let ns = env.namespace("dlx-pods").await;
    let chart = repo_root().join("charts/pd-orchestrator/charts/dlx");
    let out = std::process::Command::new(&env.helm)
        .arg("--kubeconfig")
        .arg(env.kubectl.kubeconfig())
        .args(["install", RELEASE])
        .arg(&chart)
        .args(["-n", &ns.name, "--wait", "--timeout", "90s"])
        .args(["--set", "image.tag=dev", "--set", "listenOnPodIP=true"])
        .args(["--set", &format!("watchNamespace={}", ns.name)])
        .args(["--set", "extraProxyPorts[0].name=http"])
        .args(["--set", "extraProxyPorts[0].port=8000"])
        .args([
            "--set",
            "logFormat=text",
            "--set",
            "logFilter=info\\,dlx=debug",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install of the dlx chart failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let client = env.client.clone();
    let dlx_selector = format!("app.kubernetes.io/name=dlx,app.kubernetes.io/instance={RELEASE}");
    let dlx_ips = pod_ips(&client, &ns.name, &dlx_selector).await;
    assert_eq!(dlx_ips.len(), 2, "two DLX pods with IPs: {dlx_ips:?}");

    env.kubectl
        .run(&["apply", "-n", &ns.name, "-f", "-"], Some(&manifest()))
        .await
        .ok();
    let _es = crate::elastic_scaler::controller(&env, "elastic-scaler", &ns.name, &[]);
    let scalers: Api<ElasticScaler> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let host = format!("llm.{}.svc.cluster.local", ns.name);

    for cycle in 1..=cycles {
        // Idle: the Service's endpoints become the DLX pods (port 8000 of the chart's extra proxy port),
        // then the workload goes to 0.
        let dlx_endpoints = wait_until(
            &format!("cycle {cycle}: Service llm on the DLX pods, workload at 0"),
            Duration::from_secs(90),
            || async {
                let eps = endpoints(&client, &ns.name, "llm").await;
                let on_dlx = eps.len() == 2
                    && eps
                        .iter()
                        .all(|e| dlx_ips.contains(&e.ip()) && e.port() == 8000);
                let at_zero = phase(&scalers).await == "AtZero"
                    && deployments
                        .get("llm")
                        .await
                        .ok()
                        .and_then(|d| d.spec?.replicas)
                        == Some(0);
                Ok::<_, String>((on_dlx && at_zero).then_some(eps))
            },
        )
        .await;
        assert!(
            pod_ips(&client, &ns.name, "app=llm").await.is_empty(),
            "cycle {cycle}: no workload pod left at zero"
        );

        // 200 clients through the Service: all land on the DLX pods, which wake the workload.
        let targets: Vec<SocketAddr> = dlx_endpoints.into_iter().collect();
        let failures = send(&http, &targets, &host, 200).await;
        assert!(failures.is_empty(), "cycle {cycle}: {failures:?}");
        let requested = dlx_metric(
            &http,
            &dlx_ips,
            "dlx_wakeups_total",
            r#"result="requested""#,
        )
        .await;
        assert_eq!(
            requested, cycle as f64,
            "cycle {cycle}: one wake-up written per cycle across both DLX pods"
        );

        // Woken: the Service is restored, its endpoints are the workload's pods, and clients reach them
        // directly.
        let direct = wait_until(
            &format!("cycle {cycle}: Service llm back on the workload"),
            Duration::from_secs(60),
            || async {
                let eps = endpoints(&client, &ns.name, "llm").await;
                let workload = pod_ips(&client, &ns.name, "app=llm").await;
                let back = phase(&scalers).await == "Active"
                    && !eps.is_empty()
                    && eps.iter().all(|e| workload.contains(&e.ip()));
                Ok::<_, String>(back.then_some(eps))
            },
        )
        .await;
        let targets: Vec<SocketAddr> = direct.into_iter().collect();
        let failures = send(&http, &targets, &host, 20).await;
        assert!(failures.is_empty(), "cycle {cycle}, direct: {failures:?}");
    }
    let served = dlx_metric(&http, &dlx_ips, "dlx_requests_total", r#"code="200""#).await;
    assert_eq!(
        served,
        200.0 * cycles as f64,
        "every held request answered 200 by the DLX pods"
    );
}
