//! A test metrics adapter behind the API server's aggregation layer, serving the three Kubernetes metrics
//! APIs with values a test sets at run time:
//!
//! - `external.metrics.k8s.io/v1beta1` `namespaces/{ns}/{metric}`: one series with the value set by
//!   [`MetricsAdapter::set_external`];
//! - `custom.metrics.k8s.io/v1beta1` `namespaces/{ns}/pods/*/{metric}`: a total set by
//!   [`MetricsAdapter::set_custom`], split evenly over the ready pods labelled `app=<app>`;
//! - `metrics.k8s.io/v1beta1` `namespaces/{ns}/pods`: total cpu cores set by [`MetricsAdapter::set_cpu`],
//!   split the same way.
//!
//! The flow, as in a real cluster: an HTTPS server (rcgen CA and serving certificate, rustls, hyper) on the
//! host end of the pod network, `10.244.0.1:<free port>`; a selectorless Service and a hand-written
//! EndpointSlice pointing at it; one APIService per group, `caBundle` = the CA, so the aggregator verifies the
//! serving certificate for `<service>.<ns>.svc`. The API server authenticates and authorizes each request
//! (RBAC of the caller) and proxies it to an endpoint of the Service (`--enable-aggregator-routing=true`; a
//! ClusterIP is blackholed here). The adapter answers only for its own namespace, so an HPA elsewhere in the
//! cluster never sees a value, and answers discovery (`/apis/<group>/<version>`), which the aggregator's
//! availability check reads. It trusts the front proxy without checking its client certificate: it is a test.
//!
//! The APIServices are cluster-scoped and the groups global: one adapter runs at a time in a process (a
//! lock), they are deleted when the adapter is dropped (on panic too) and before its server stops, and a
//! leftover of a killed run (labelled [`E2E_LABEL`]) is replaced, while a group served by anything else
//! fails the test.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

use crate::{Env, Kubectl, wait_until};

/// The host end of the pod network: the API server reaches it, and only loopback and the pod network are
/// ever dialled.
pub const HOST_IP: &str = "10.244.0.1";
/// The label on the APIServices this adapter registers (`<key>=<value>`).
pub const E2E_LABEL: (&str, &str) = ("pd-orchestrator.io/e2e", "metrics-adapter");
/// The groups served, each at `v1beta1`.
pub const GROUPS: [&str; 3] = [
    "external.metrics.k8s.io",
    "custom.metrics.k8s.io",
    "metrics.k8s.io",
];
const SERVICE: &str = "metrics-adapter";

/// What the adapter answers for a metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The value (external) or the total over the app's ready pods (custom, cpu cores).
    Value(f64),
    /// An error: HTTP status and message, as a `Status` object.
    Fail(u16, String),
}

/// A request the adapter saw, as the aggregator forwarded it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path (percent-decoded) and query (as sent).
    pub uri: String,
    /// `X-Remote-User`: the caller, as the API server authenticated it.
    pub user: String,
}

#[derive(Default)]
struct State {
    external: BTreeMap<String, Answer>,
    /// metric → (app label, answer).
    custom: BTreeMap<String, (String, Answer)>,
    /// app label → answer (cores).
    cpu: BTreeMap<String, Answer>,
    seen: Vec<Seen>,
}

struct Ctx {
    namespace: String,
    pods: Api<Pod>,
    state: Mutex<State>,
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Deletes the adapter's APIServices when dropped, unless already done.
struct ApiServices {
    kubectl: Kubectl,
    done: bool,
}

impl ApiServices {
    fn delete(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for g in GROUPS {
            if let Err(e) = self.kubectl.run_blocking(&[
                "delete",
                "apiservice",
                &format!("v1beta1.{g}"),
                "--ignore-not-found",
                "--wait=false",
            ]) {
                eprintln!("deleting APIService v1beta1.{g}: {e}");
            }
        }
    }
}

impl Drop for ApiServices {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A running adapter registered for the three groups; dropping it unregisters them, then stops it.
pub struct MetricsAdapter {
    ctx: Arc<Ctx>,
    apiservices: ApiServices,
    server: tokio::task::JoinHandle<()>,
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for MetricsAdapter {
    fn drop(&mut self) {
        // Unregister first: an APIService left pointing at a stopped server makes discovery fail for the
        // whole cluster (namespace deletion and garbage collection stall on it).
        self.apiservices.delete();
        self.server.abort();
    }
}

impl MetricsAdapter {
    /// Starts the adapter for `namespace`, registers it and waits until the three APIServices are Available.
    pub async fn start(env: &Env, namespace: &str) -> MetricsAdapter {
        let lock = ONE_AT_A_TIME.lock().await;
        let kubectl = env.kubectl.clone();
        check_groups_free(&kubectl).await;

        let (ca_pem, certs, key) = certificates(namespace);
        let listener = tokio::net::TcpListener::bind((HOST_IP, 0))
            .await
            .unwrap_or_else(|e| {
                panic!("binding {HOST_IP}:0 (is the cluster's pod network up?): {e}")
            });
        let addr = listener.local_addr().expect("local address");
        let ctx = Arc::new(Ctx {
            namespace: namespace.to_string(),
            pods: Api::namespaced(env.client.clone(), namespace),
            state: Mutex::default(),
        });
        let server = tokio::spawn(serve(listener, tls_config(certs, key), ctx.clone()));

        kubectl
            .run(
                &["apply", "-n", namespace, "-f", "-"],
                Some(&service_yaml(addr)),
            )
            .await
            .ok();
        // From here on the APIServices exist: the guard deletes them whatever happens next.
        let apiservices = ApiServices {
            kubectl: kubectl.clone(),
            done: false,
        };
        let api: Api<APIService> = Api::all(env.client.clone());
        for g in GROUPS {
            api.create(&PostParams::default(), &apiservice(namespace, g, &ca_pem))
                .await
                .unwrap_or_else(|e| panic!("creating APIService v1beta1.{g}: {e}"));
        }
        for g in GROUPS {
            wait_available(&kubectl, g).await;
        }
        MetricsAdapter {
            ctx,
            apiservices,
            server,
            _lock: lock,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.ctx.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets external metric `metric` (one series).
    pub fn set_external(&self, metric: &str, a: Answer) {
        self.state().external.insert(metric.into(), a);
    }

    /// Sets custom pods metric `metric` to a total split over the ready pods labelled `app=<app>`.
    pub fn set_custom(&self, metric: &str, app: &str, a: Answer) {
        self.state().custom.insert(metric.into(), (app.into(), a));
    }

    /// Sets the cpu usage (cores) of the ready pods labelled `app=<app>`, split evenly.
    pub fn set_cpu(&self, app: &str, a: Answer) {
        self.state().cpu.insert(app.into(), a);
    }

    /// The metric requests seen so far (discovery excluded).
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }
}

/// Panics when a group is served by something other than an earlier run of this adapter; deletes such
/// leftovers (a killed test process runs no destructor).
async fn check_groups_free(kubectl: &Kubectl) {
    for g in GROUPS {
        let name = format!("v1beta1.{g}");
        let out = kubectl
            .run(&["get", "apiservice", &name, "-o", "json"], None)
            .await;
        if !out.success {
            assert!(
                out.stderr.contains("NotFound"),
                "reading APIService {name}: {}",
                out.stderr
            );
            continue;
        }
        let v: Value = serde_json::from_str(&out.stdout).expect("APIService JSON");
        let ours = v["metadata"]["labels"][E2E_LABEL.0].as_str() == Some(E2E_LABEL.1);
        assert!(
            ours,
            "APIService {name} is already registered by someone else (service {}): this test would replace \
             a real metrics server; remove it or run elsewhere",
            v["spec"]["service"]
        );
        eprintln!("deleting APIService {name} left by an earlier, killed run");
        kubectl
            .run(&["delete", "apiservice", &name, "--ignore-not-found"], None)
            .await
            .ok();
    }
}

async fn wait_available(kubectl: &Kubectl, group: &str) {
    let name = format!("v1beta1.{group}");
    wait_until(
        &format!("APIService {name} to be Available"),
        Duration::from_secs(30),
        || async {
            let out = kubectl
                .run(
                    &[
                        "get",
                        "apiservice",
                        &name,
                        "-o",
                        "jsonpath={.status.conditions[?(@.type=='Available')]}",
                    ],
                    None,
                )
                .await;
            if !out.success {
                return Err(out.stderr);
            }
            let c: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
            if c["status"] == "True" {
                Ok(Some(()))
            } else {
                Err(format!("{} {}", c["reason"], c["message"]))
            }
        },
    )
    .await
}

/// A CA (its PEM for `caBundle`) and a serving certificate for the Service's DNS names, with its key.
fn certificates(
    namespace: &str,
) -> (
    String,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "e2e metrics-adapter CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("serving key");
    let sans = vec![
        format!("{SERVICE}.{namespace}.svc"),
        format!("{SERVICE}.{namespace}.svc.cluster.local"),
        HOST_IP.to_string(),
    ];
    let mut leaf = CertificateParams::new(sans).expect("serving params");
    leaf.distinguished_name.push(DnType::CommonName, SERVICE);
    let cert = leaf.signed_by(&key, &issuer).expect("serving certificate");
    (
        ca_cert.pem(),
        vec![cert.der().clone()],
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
}

fn tls_config(
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("serving certificate");
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}

fn service_yaml(addr: SocketAddr) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {SERVICE}}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {SERVICE}
  labels: {{kubernetes.io/service-name: {SERVICE}}}
addressType: IPv4
ports: [{{name: https, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["{ip}"], conditions: {{ready: true}}}}]
"#,
        port = addr.port(),
        ip = addr.ip(),
    )
}

fn apiservice(namespace: &str, group: &str, ca_pem: &str) -> APIService {
    let mut a: APIService = serde_json::from_value(json!({
        "metadata": {"name": format!("v1beta1.{group}"), "labels": {E2E_LABEL.0: E2E_LABEL.1}},
        "spec": {
            "group": group, "version": "v1beta1",
            "service": {"namespace": namespace, "name": SERVICE, "port": 443},
            "groupPriorityMinimum": 100, "versionPriority": 100,
        },
    }))
    .expect("APIService object");
    if let Some(spec) = a.spec.as_mut() {
        spec.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
    }
    a
}

async fn serve(listener: tokio::net::TcpListener, tls: Arc<rustls::ServerConfig>, ctx: Arc<Ctx>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn reply(code: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn status(code: u16, message: &str) -> Response<Full<Bytes>> {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": code.canonical_reason().unwrap_or_default().replace(' ', ""),
            "code": code.as_u16(),
        }),
    )
}

fn quantity(v: f64) -> String {
    format!("{}m", (v * 1000.0).round() as i64)
}

fn discovery(group: &str) -> Value {
    let r = |name: &str, namespaced: bool, kind: &str, verbs: &[&str]| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs});
    let resources = match group {
        "external.metrics.k8s.io" => vec![r(
            "externalmetrics",
            true,
            "ExternalMetricValueList",
            &["get"],
        )],
        "custom.metrics.k8s.io" => vec![r("pods/*", true, "MetricValueList", &["get"])],
        _ => vec![
            r("pods", true, "PodMetrics", &["get", "list"]),
            r("nodes", false, "NodeMetrics", &["get", "list"]),
        ],
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/v1beta1"), "resources": resources})
}

/// The ready pods labelled `app=<app>` (and matching the request's `labelSelector`, if any), by name.
async fn ready_pods(ctx: &Ctx, app: &str, selector: Option<&str>) -> Result<Vec<Pod>, String> {
    let mut labels = format!("app={app}");
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        labels = format!("{labels},{s}");
    }
    let list = ctx
        .pods
        .list(&ListParams::default().labels(&labels))
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        })
        .collect())
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'%', Some(c)) => {
                out.push(c);
                i += 3;
            }
            (c, _) => {
                out.push(if c == b'+' { b' ' } else { c });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(ctx: &Ctx, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = percent_decode(req.uri().path());
    let query = req.uri().query().unwrap_or_default().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Discovery, read by the aggregator's availability check and discovery merge.
    if let ["apis", group, "v1beta1"] = parts[..]
        && GROUPS.contains(&group)
    {
        return reply(StatusCode::OK, discovery(group));
    }
    let ["apis", group, "v1beta1", "namespaces", ns, ref rest @ ..] = parts[..] else {
        return status(404, &format!("{path} is not served by the test adapter"));
    };
    if !GROUPS.contains(&group) {
        return status(404, "unknown group");
    }
    let user = req
        .headers()
        .get("x-remote-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let uri = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let now = jiff::Timestamp::now().to_string();
    let answer = {
        let mut st = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
        st.seen.push(Seen { uri, user });
        match (group, rest) {
            ("external.metrics.k8s.io", [metric]) => {
                st.external.get(*metric).map(|a| (String::new(), a.clone()))
            }
            ("custom.metrics.k8s.io", ["pods", "*", metric]) => st.custom.get(*metric).cloned(),
            ("metrics.k8s.io", ["pods"]) => {
                // One list for every app: an error for one fails the list, as a broken metrics-server would.
                let fail = st.cpu.values().find(|a| matches!(a, Answer::Fail(..)));
                Some(match fail {
                    Some(f) => (String::new(), f.clone()),
                    None => (String::new(), Answer::Value(0.0)),
                })
            }
            _ => None,
        }
    };
    // Only the adapter's own namespace has metrics: an HPA elsewhere must never read these values.
    let Some((app, answer)) = answer.filter(|_| ns == ctx.namespace) else {
        return status(404, &format!("no metric at {path} in the test adapter"));
    };
    let value = match answer {
        Answer::Fail(code, msg) => return status(code, &msg),
        Answer::Value(v) => v,
    };
    let selector = query_param(&query, "labelSelector");
    match (group, rest) {
        ("external.metrics.k8s.io", [metric]) => reply(
            StatusCode::OK,
            json!({
                "kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
                "metadata": {},
                "items": [{"metricName": metric, "metricLabels": {"selector": selector.unwrap_or_default()},
                           "timestamp": now, "value": quantity(value)}],
            }),
        ),
        ("custom.metrics.k8s.io", [_, _, metric]) => {
            let pods = match ready_pods(ctx, &app, selector.as_deref()).await {
                Ok(p) => p,
                Err(e) => return status(500, &e),
            };
            let each = value / pods.len().max(1) as f64;
            let items: Vec<Value> = pods
                .iter()
                .map(|p| {
                    json!({
                        "describedObject": {"kind": "Pod", "namespace": ns, "name": p.metadata.name, "apiVersion": "/v1"},
                        "metricName": metric, "timestamp": now, "value": quantity(each),
                    })
                })
                .collect();
            reply(
                StatusCode::OK,
                json!({"kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
            )
        }
        _ => {
            let apps: Vec<(String, f64)> = {
                let st = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
                st.cpu
                    .iter()
                    .filter_map(|(app, a)| match a {
                        Answer::Value(v) => Some((app.clone(), *v)),
                        Answer::Fail(..) => None,
                    })
                    .collect()
            };
            let mut items = Vec::new();
            for (app, cores) in apps {
                let pods = match ready_pods(ctx, &app, None).await {
                    Ok(p) => p,
                    Err(e) => return status(500, &e),
                };
                let each = cores / pods.len().max(1) as f64;
                for p in &pods {
                    let container = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    items.push(json!({
                        "metadata": {"name": p.metadata.name, "namespace": ns},
                        "timestamp": now, "window": "10s",
                        "containers": [{"name": container, "usage": {"cpu": quantity(each), "memory": "16Mi"}}],
                    }));
                }
            }
            reply(
                StatusCode::OK,
                json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
            )
        }
    }
}
