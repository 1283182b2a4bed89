//! `cargo xtask bench dlx`, the scenario. Everything runs on this machine against the local cluster:
//!
//! - the **backend** is one release-built fake-inference process listening on the host end of the pod
//!   network's veth (10.244.0.1, inside the pod network, never the default route), answering
//!   `GET /bytes/1024`; it is the workload Service's only endpoint, through an EndpointSlice the benchmark
//!   writes itself (a Service without selector), so it can make the pod "ready" and "gone" at will;
//! - the **DLX** is the release binary on loopback, watching the benchmark's namespace;
//! - **nginx** (Debian's) on loopback proxies to the same backend with upstream keep-alive.
//!
//! Three parts:
//! 1. passthrough: the same load generator against the backend directly, through nginx and through the
//!    DLX, at saturation and at a fixed rate (a quarter of the lowest saturation), 1 KiB responses,
//!    keep-alive;
//! 2. cold path, over `cycles` scale-from-zero cycles: the first request → the wake-up write, and the
//!    pod becoming ready (EndpointSlice update) → the held requests forwarded / answered;
//! 3. 10,000 held requests: the DLX's RSS while it holds them, then all released and answered.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use api_types::ElasticScaler;
use api_types::keys::{annotations, labels};
use bytes::Bytes;
use clap::ValueEnum as _;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::load::{self, Spec};

/// Knobs of the benchmark.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `dlx` binary (release).
    #[arg(long)]
    dlx_bin: PathBuf,
    /// The `fake-inference` binary (release), the backend.
    #[arg(long)]
    backend_bin: PathBuf,
    /// nginx; empty or missing skips it.
    #[arg(long, default_value = "nginx")]
    nginx_bin: String,
    /// Namespace of the benchmark's objects (deleted and recreated).
    #[arg(long, default_value = "dlx-bench")]
    namespace: String,
    /// Measured seconds of each passthrough run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Connections of the saturation runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Passthrough rounds (targets alternate within a round); the median round is reported. Five:
    /// with three, one disturbed run of a target moves its median.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Scale-from-zero cycles of the cold-path part.
    #[arg(long, default_value_t = 20)]
    cycles: usize,
    /// Requests held in each cycle.
    #[arg(long, default_value_t = 10)]
    cycle_requests: usize,
    /// Requests held at once in the memory part.
    #[arg(long, default_value_t = 10_000)]
    held: usize,
    /// The parts to run, in this order (a subset is for working on one of them; the result then
    /// lacks the others).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "passthrough,cold,held-h2,held-h1"
    )]
    parts: Vec<Part>,
}

/// A part of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Direct vs nginx vs DLX, at saturation and at a fixed rate.
    Passthrough,
    /// Scale-from-zero cycles: first request → wake-up write, pod ready → held requests forwarded.
    Cold,
    /// `--held` requests held over HTTP/2, 100 streams per connection.
    HeldH2,
    /// `--held` requests held over HTTP/1.1, one connection each.
    HeldH1,
}

const HOST_SUFFIX: &str = "svc.cluster.local";
const PATH: &str = "/bytes/1024";
const BACKEND_IP: &str = "10.244.0.1";

struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (name, c) in &mut self.0 {
            // SIGTERM first (the DLX drains), then make sure.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            eprintln!("stopped {name}");
        }
    }
}

fn free_port(ip: &str) -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

async fn wait_http(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(200) = get_status(addr, path).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{addr}{path} did not answer 200 within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let stream = TcpStream::connect(addr).await?;
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    Ok(s.send_request(req).await?.status().as_u16())
}

async fn get_text(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let stream = TcpStream::connect(addr).await?;
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let body = s.send_request(req).await?.into_body().collect().await?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

/// Sum of a metric's samples (all labels) in an exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A histogram's count, mean, and the upper bound of the bucket holding its p99 (all in ms).
fn histogram(text: &str, name: &str) -> Value {
    let count = sample(text, &format!("{name}_count"));
    let sum = sample(text, &format!("{name}_sum"));
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit_once(' ')?.1.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let p99 = buckets
        .iter()
        .find(|(_, c)| *c >= 0.99 * count)
        .map(|(le, _)| le * 1000.0);
    let cumulative: serde_json::Map<String, Value> = buckets
        .iter()
        .map(|(le, c)| (format!("le_{}ms", le * 1000.0), json!(c)))
        .collect();
    json!({"count": count, "mean_ms": if count > 0.0 { sum / count * 1000.0 } else { f64::NAN },
           "p99_at_most_ms": p99, "cumulative": cumulative})
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of `pid` and of its children (nginx's worker), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let mut pids = vec![pid];
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    let ticks: u64 = pids
        .iter()
        .map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // After "pid (comm) ": state is field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            n(11) + n(12)
        })
        .sum();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

struct Cluster {
    client: kube::Client,
    ns: String,
}

impl Cluster {
    fn slices(&self) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn scalers(&self) -> Api<ElasticScaler> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The workload's pod is ready (`true`) or gone (`false`).
    async fn pod(&self, ready: bool) -> anyhow::Result<()> {
        let endpoints = if ready {
            json!([{"addresses": [BACKEND_IP], "conditions": {"ready": true}}])
        } else {
            json!([])
        };
        let patch = json!({"endpoints": endpoints});
        self.slices()
            .patch(
                "llm-workload-bench",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    async fn clear_wake(&self) -> anyhow::Result<()> {
        let patch = json!({"metadata": {"annotations": {annotations::WAKE_REQUESTED: null}}});
        self.scalers()
            .patch("llm", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn setup(client: kube::Client, ns: &str, port: u16) -> anyhow::Result<Cluster> {
        let nss: Api<Namespace> = Api::all(client.clone());
        if nss.get_opt(ns).await?.is_some() {
            let _ = nss.delete(ns, &DeleteParams::default()).await;
            let deadline = Instant::now() + Duration::from_secs(120);
            while nss.get_opt(ns).await?.is_some() {
                if Instant::now() > deadline {
                    bail!("namespace {ns} from an earlier run is still terminating");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        let handed = json!({
            "metadata": {"name": "llm", "annotations": {
                annotations::SCALER: "llm", annotations::WORKLOAD_SERVICE: "llm-workload"}},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}
        });
        let workload = json!({
            "metadata": {"name": "llm-workload", "labels": {labels::SHADOW_OF: "llm"}},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}
        });
        for s in [handed, workload] {
            services
                .create(&PostParams::default(), &serde_json::from_value(s)?)
                .await?;
        }
        let slice = json!({
            "metadata": {"name": "llm-workload-bench", "labels": {
                "kubernetes.io/service-name": "llm-workload",
                "endpointslice.kubernetes.io/managed-by": "dlx-bench",
                labels::SHADOW_OF: "llm"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [BACKEND_IP], "conditions": {"ready": true}}]
        });
        Api::<EndpointSlice>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &serde_json::from_value(slice)?)
            .await?;
        let es = json!({
            "apiVersion": "elasticscaler.io/v1alpha1", "kind": "ElasticScaler",
            "metadata": {"name": "llm"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"},
                "minReplicas": 1, "maxReplicas": 2,
                "trigger": {"type": "MetricsTrigger", "metricsTrigger": {"metrics": [
                    {"type": "Pods", "pods": {"metricsName": "vllm:num_requests_waiting",
                        "target": {"type": "AverageValue", "averageValue": "1"}}}]}}}
        });
        Api::<ElasticScaler>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &serde_json::from_value(es)?)
            .await?;
        Ok(Cluster {
            client,
            ns: ns.to_string(),
        })
    }
}

fn nginx_conf(dir: &std::path::Path, listen: SocketAddr, backend: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream backend {{ server {backend}; keepalive 256; }}
  server {{
    listen {listen};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"#
    )
}

/// Runs the benchmark and returns its result.
pub async fn run(args: Args) -> anyhow::Result<Value> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the local cluster (KUBECONFIG)")?;
    let tmp = std::env::temp_dir().join(format!("dlx-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut procs = Procs(Vec::new());

    let backend_port = free_port(BACKEND_IP)
        .context("binding the pod network's host address (is the cluster up?)")?;
    let backend: SocketAddr = format!("{BACKEND_IP}:{backend_port}").parse()?;
    procs.0.push((
        "backend".into(),
        Command::new(&args.backend_bin)
            .args(["--listen", &backend.to_string(), "--model", "llm"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting the backend")?,
    ));
    wait_http(backend, "/health").await?;

    let cluster = Cluster::setup(client.clone(), &args.namespace, backend_port).await?;
    let host = format!("llm.{}.{HOST_SUFFIX}", cluster.ns);

    let dlx: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
    let dlx_log = std::fs::File::create(tmp.join("dlx.log"))?;
    let dlx_child = Command::new(&args.dlx_bin)
        .envs([
            ("PROXY_ADDR", dlx.to_string()),
            ("ADMIN_ADDR", admin.to_string()),
            ("WATCH_NAMESPACE", cluster.ns.clone()),
            ("DLX_POD_CONCURRENCY", "256".into()),
            ("DLX_MAX_HELD", "20000".into()),
            ("DLX_MAX_HELD_PER_TARGET", "20000".into()),
            ("DLX_SHUTDOWN_DELAY", "0s".into()),
            ("DLX_DRAIN_TIMEOUT", "2s".into()),
            ("POD_NAME", "dlx-bench".into()),
            // One core each for the DLX and nginx: the same budget, and the load generator and the
            // backend need the rest of a small machine.
            ("DLX_WORKER_THREADS", "1".into()),
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "warn".into()),
        ])
        .stdout(Stdio::from(dlx_log.try_clone()?))
        .stderr(Stdio::from(dlx_log))
        .spawn()
        .context("starting the dlx")?;
    let dlx_pid = dlx_child.id();
    procs.0.push(("dlx".into(), dlx_child));
    wait_http(admin, "/readyz").await?;

    let nginx =
        if args.nginx_bin.is_empty() || Command::new(&args.nginx_bin).arg("-v").output().is_err() {
            eprintln!(
                "nginx not found ({:?}): skipping it (Debian: apt-get install nginx-light)",
                args.nginx_bin
            );
            None
        } else {
            let listen: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
            std::fs::write(tmp.join("nginx.conf"), nginx_conf(&tmp, listen, backend))?;
            let p = tmp.display().to_string();
            procs.0.push((
                "nginx".into(),
                Command::new(&args.nginx_bin)
                    .args([
                        "-p",
                        &p,
                        "-c",
                        &format!("{p}/nginx.conf"),
                        "-e",
                        &format!("{p}/error.log"),
                    ])
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting nginx")?,
            ));
            Some(listen)
        };
    // The DLX sees the pod through its watch; a first request proves the path works.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_text_host(dlx, &host).await.is_err() {
        if Instant::now() > deadline {
            bail!(
                "no answer through the DLX; its log: {}",
                tmp.join("dlx.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(n) = nginx {
        wait_http(n, PATH).await?;
    }

    let nginx_pid = procs
        .0
        .iter()
        .find(|(n, _)| n == "nginx")
        .map(|(_, c)| c.id());
    let mut targets = vec![("direct", backend, None)];
    if let Some(n) = nginx {
        targets.push(("nginx", n, nginx_pid));
    }
    targets.push(("dlx", dlx, Some(dlx_pid)));
    let (mut passthrough_r, mut cold, mut held_h2, mut held_h1) =
        (Value::Null, Value::Null, Value::Null, Value::Null);
    for part in &args.parts {
        match part {
            Part::Passthrough => {
                passthrough_r = passthrough(&args, &host, &targets).await;
                eprintln!("passthrough: {passthrough_r}");
            }
            Part::Cold => {
                cold = cold_path(&args, &cluster, dlx, admin, &host).await?;
                eprintln!("cold path: {cold}");
            }
            Part::HeldH2 => {
                held_h2 = held(&args, &cluster, dlx, admin, dlx_pid, &host, Some(100)).await?;
                eprintln!("held over HTTP/2: {held_h2}");
            }
            Part::HeldH1 => {
                held_h1 = held(&args, &cluster, dlx, admin, dlx_pid, &host, None).await?;
                eprintln!("held over HTTP/1.1: {held_h1}");
            }
        }
    }

    drop(procs);
    let _ = Api::<Namespace>::all(client)
        .delete(&cluster.ns, &DeleteParams::default())
        .await;
    Ok(json!({
        "backend": format!("fake-inference (release) on {BACKEND_IP}, GET {PATH}"),
        "proxies": "one core each: the DLX with DLX_WORKER_THREADS=1, nginx with worker_processes 1 and upstream keep-alive",
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "parts": args.parts.iter().filter_map(|p| Some(p.to_possible_value()?.get_name().to_owned())).collect::<Vec<_>>(),
        "passthrough": passthrough_r,
        "cold_path": cold,
        "held": {"http1_one_connection_each": held_h1, "http2_100_streams_per_connection": held_h2},
    }))
}

async fn get_text_host(addr: SocketAddr, host: &str) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(PATH)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())?;
    let resp = s.send_request(req).await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.status());
    Ok(())
}

/// A target of the passthrough part: name, address, and the proxy's process (none for direct).
type Target<'a> = (&'a str, SocketAddr, Option<u32>);

/// One load run against `target`, with the proxy's CPU seconds over the run (warm-up included).
async fn measured(spec: &Spec, target: &Target<'_>) -> (load::Report, Option<f64>) {
    let before = target.2.map(cpu_seconds);
    let r = load::run(spec).await;
    let cpu = target.2.map(cpu_seconds).zip(before).map(|(a, b)| a - b);
    (r, cpu)
}

async fn passthrough(args: &Args, host: &str, targets: &[Target<'_>]) -> Value {
    let spec = |addr, connections, rate| Spec {
        addr,
        host: host.to_string(),
        path: PATH.into(),
        body_bytes: 1024,
        connections,
        rate,
        duration: Duration::from_secs_f64(args.seconds),
        warmup: Duration::from_secs(1),
    };
    let run_seconds = args.seconds + 1.0;
    let mut saturation: Vec<(String, Vec<load::Report>)> = targets
        .iter()
        .map(|(n, ..)| (n.to_string(), vec![]))
        .collect();
    // The proxy's CPU cores in use at saturation, per run.
    let mut sat_cpu: Vec<Vec<f64>> = vec![vec![]; targets.len()];
    for _ in 0..args.rounds {
        for (i, t) in targets.iter().enumerate() {
            let (r, cpu) = measured(&spec(t.1, args.connections, None), t).await;
            eprintln!("saturation {}: {r:?} cpu {cpu:?}", t.0);
            saturation[i].1.push(r);
            sat_cpu[i].extend(cpu.map(|c| c / run_seconds));
        }
    }
    // The median run: the machine is shared, one disturbed run must not decide.
    let mean = |rs: &[load::Report], f: fn(&load::Report) -> f64| {
        let mut v: Vec<f64> = rs.iter().map(f).collect();
        percentile(&mut v, 0.5)
    };
    let lowest = saturation
        .iter()
        .map(|(_, rs)| mean(rs, |r| r.rps))
        .fold(f64::INFINITY, f64::min);
    // A quarter of the slowest target's saturation: every component has headroom on a small shared
    // machine (load generator and backend included), so the latency added by a proxy is what shows.
    let rate = (lowest / 4.0 / 100.0).floor().max(1.0) * 100.0;
    let mut fixed: Vec<(String, Vec<load::Report>)> = targets
        .iter()
        .map(|(n, ..)| (n.to_string(), vec![]))
        .collect();
    // The proxy's CPU microseconds per request at the fixed rate, per run.
    let mut fix_cpu: Vec<Vec<f64>> = vec![vec![]; targets.len()];
    for _ in 0..args.rounds {
        for (i, t) in targets.iter().enumerate() {
            let (r, cpu) = measured(&spec(t.1, 32, Some(rate)), t).await;
            eprintln!("fixed {rate}/s {}: {r:?} cpu {cpu:?}", t.0);
            fixed[i].1.push(r);
            fix_cpu[i].extend(cpu.map(|c| c * 1e6 / (rate * run_seconds)));
        }
    }
    let summary =
        |runs: &[(String, Vec<load::Report>)], cpu: &[Vec<f64>], cpu_key: &str| -> Value {
            runs.iter()
                .zip(cpu)
                .map(|((n, rs), cpu)| {
                    let mut v = json!({
                        "rps": mean(rs, |r| r.rps).round(),
                        "p50_ms": (mean(rs, |r| r.p50_ms) * 1000.0).round() / 1000.0,
                        "p99_ms": (mean(rs, |r| r.p99_ms) * 1000.0).round() / 1000.0,
                        "errors": rs.iter().map(|r| r.errors).sum::<u64>(),
                        "runs": rs,
                    });
                    if !cpu.is_empty() {
                        let mut c = cpu.clone();
                        v[cpu_key] = json!((percentile(&mut c, 0.5) * 100.0).round() / 100.0);
                        v[format!("{cpu_key}_runs")] = json!(cpu);
                    }
                    (n.clone(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
    let sat = summary(&saturation, &sat_cpu, "proxy_cpu_cores");
    let fix = summary(&fixed, &fix_cpu, "proxy_cpu_us_per_request");
    let get = |v: &Value, t: &str, k: &str| v[t][k].as_f64();
    let mut goals = serde_json::Map::new();
    if let (Some(d), Some(n)) = (get(&sat, "dlx", "rps"), get(&sat, "nginx", "rps")) {
        // Judged on the ratio within each round, whose two runs are seconds apart (the machine's load
        // drifts less between them than between rounds; runs on this 2-core machine are bimodal,
        // which moves a median of 5 by ±15 %): the median of the rounds' ratios. The ratio of the two
        // medians is reported beside it.
        let by_round: Vec<f64> = (saturation.iter().find(|(t, _)| t == "dlx"))
            .zip(saturation.iter().find(|(t, _)| t == "nginx"))
            .map(|((_, d), (_, n))| {
                d.iter()
                    .zip(n)
                    .map(|(d, n)| (d.rps / n.rps * 100.0).round() / 100.0)
                    .collect()
            })
            .unwrap_or_default();
        let of_medians = (d / n * 100.0).round() / 100.0;
        let paired = if by_round.is_empty() {
            of_medians
        } else {
            percentile(&mut by_round.clone(), 0.5)
        };
        goals.insert(
            "dlx_rps_over_nginx".into(),
            json!({"value": paired, "goal": ">= 1.0 (median of the rounds' ratios)", "met": paired >= 1.0,
                "by_round": by_round, "ratio_of_medians": of_medians}),
        );
    }
    if let (Some(d), Some(n)) = (get(&fix, "dlx", "p99_ms"), get(&fix, "nginx", "p99_ms")) {
        goals.insert(
            "dlx_p99_vs_nginx_p99_ms".into(),
            json!({"dlx": d, "nginx": n, "goal": "dlx <= nginx", "met": d <= n}),
        );
    }
    if let (Some(d), Some(x)) = (get(&fix, "dlx", "p99_ms"), get(&fix, "direct", "p99_ms")) {
        let added = ((d - x) * 1000.0).round() / 1000.0;
        goals.insert(
            "dlx_added_p99_ms".into(),
            json!({"value": added, "goal": "<= 1", "met": added <= 1.0}),
        );
    }
    // Not a goal: what a request costs each proxy at the same fixed rate (steadier than req/s on a
    // shared machine, and what req/s at saturation follows from).
    let cpu_ratio = get(&fix, "dlx", "proxy_cpu_us_per_request")
        .zip(get(&fix, "nginx", "proxy_cpu_us_per_request"))
        .map(|(d, n)| (d / n * 100.0).round() / 100.0);
    json!({
        "response_bytes": 1024,
        "cpu_per_request_dlx_over_nginx": cpu_ratio,
        "saturation": {"connections": args.connections, "seconds": args.seconds, "targets": sat},
        "fixed_rate": {"rps": rate, "connections": 32, "seconds": args.seconds, "targets": fix},
        "goals": goals,
    })
}

/// One request on a fresh connection; the instant its response head arrived.
async fn first_byte(addr: SocketAddr, host: String) -> anyhow::Result<Instant> {
    let stream = TcpStream::connect(addr).await?;
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(PATH)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())?;
    let resp = s.send_request(req).await?;
    let at = Instant::now();
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(body.len() == 1024, "{} bytes", body.len());
    Ok(at)
}

/// Instants at which the wake-up annotation was seen appearing on the ElasticScaler (a watch).
fn wake_watch(cluster: &Cluster) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let api = cluster.scalers();
    tokio::spawn(async move {
        let cfg = watcher::Config::default().fields("metadata.name=llm");
        let mut stream = watcher::watcher(api, cfg).boxed();
        let mut present = false;
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(es) | watcher::Event::InitApply(es)) = ev {
                let now = es.annotations().contains_key(annotations::WAKE_REQUESTED);
                if now && !present && tx.send(Instant::now()).is_err() {
                    return;
                }
                present = now;
            }
        }
    });
    rx
}

async fn cold_path(
    args: &Args,
    cluster: &Cluster,
    dlx: SocketAddr,
    admin: SocketAddr,
    host: &str,
) -> anyhow::Result<Value> {
    let mut wakes = wake_watch(cluster);
    let (mut to_wake, mut to_first_byte) = (Vec::new(), Vec::new());
    let mut errors = 0;
    for cycle in 0..args.cycles {
        cluster.pod(false).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        while wakes.try_recv().is_ok() {}
        let t0 = Instant::now();
        let clients: Vec<_> = (0..args.cycle_requests)
            .map(|_| tokio::spawn(first_byte(dlx, host.to_string())))
            .collect();
        let seen = tokio::time::timeout(Duration::from_secs(10), wakes.recv())
            .await
            .ok()
            .flatten()
            .with_context(|| format!("cycle {cycle}: no wake-up annotation within 10 s"))?;
        to_wake.push((seen - t0).as_secs_f64() * 1000.0);
        cluster.pod(true).await?;
        let ready = Instant::now();
        cluster.clear_wake().await?;
        for c in clients {
            match c.await? {
                Ok(at) => {
                    to_first_byte.push(at.saturating_duration_since(ready).as_secs_f64() * 1000.0)
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("cycle {cycle}: {e:#}");
                }
            }
        }
    }
    let metrics = get_text(admin, "/metrics").await?;
    let release = histogram(&metrics, "dlx_release_delay_seconds");
    let write = histogram(&metrics, "dlx_wake_write_seconds");
    let release_p99 = release["p99_at_most_ms"].as_f64().unwrap_or(f64::INFINITY);
    let write_p99 = write["p99_at_most_ms"].as_f64().unwrap_or(f64::INFINITY);
    Ok(json!({
        "cycles": args.cycles,
        "requests_per_cycle": args.cycle_requests,
        "errors": errors,
        "dlx_release_delay_ms": release,
        "dlx_wake_write_ms": write,
        "client_first_request_to_annotation_seen_ms": {"p50": percentile(&mut to_wake.clone(), 0.5), "p99": percentile(&mut to_wake.clone(), 0.99), "each": to_wake},
        "client_slice_updated_to_first_byte_ms": {"p50": percentile(&mut to_first_byte, 0.5), "p99": percentile(&mut to_first_byte, 0.99)},
        "goals": {
            "ready_to_first_byte_forwarded_p99_ms": {"value": release_p99, "goal": "<= 50", "met": release_p99 <= 50.0},
            "first_request_to_wake_write_p99_ms": {"value": write_p99, "goal": "<= 20", "met": write_p99 <= 20.0},
        },
    }))
}

/// `streams` requests per HTTP/2 connection on one connection.
async fn h2_requests(
    addr: SocketAddr,
    host: String,
    streams: usize,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Instant>>> {
    let connected = async {
        let stream = TcpStream::connect(addr).await?;
        let (s, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await?;
        tokio::spawn(conn);
        anyhow::Ok(s)
    }
    .await;
    (0..streams)
        .map(|_| {
            let (sender, host) = (connected.as_ref().ok().cloned(), host.clone());
            tokio::spawn(async move {
                let mut s = sender.context("HTTP/2 connection failed")?;
                let req = hyper::Request::get(format!("http://{host}{PATH}"))
                    .body(Empty::<Bytes>::new())?;
                let resp = s.send_request(req).await?;
                let at = Instant::now();
                anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
                let body = resp.into_body().collect().await?.to_bytes();
                anyhow::ensure!(body.len() == 1024, "{} bytes", body.len());
                Ok(at)
            })
        })
        .collect()
}

async fn held(
    args: &Args,
    cluster: &Cluster,
    dlx: SocketAddr,
    admin: SocketAddr,
    pid: u32,
    host: &str,
    h2_streams: Option<usize>,
) -> anyhow::Result<Value> {
    cluster.pod(false).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_kib = rss_kib(pid);
    let opened = Instant::now();
    let mut clients = Vec::with_capacity(args.held);
    match h2_streams {
        None => {
            for i in 0..args.held {
                clients.push(tokio::spawn(first_byte(dlx, host.to_string())));
                // Do not overrun the listen backlog: a few hundred connects at a time.
                if i % 500 == 499 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Some(streams) => {
            for _ in 0..args.held.div_ceil(streams) {
                clients.extend(h2_requests(dlx, host.to_string(), streams).await);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = get_text(admin, "/metrics").await.unwrap_or_default();
        if sample(&m, "dlx_held_requests") as usize >= clients.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the DLX holds {} of {} requests after 120 s",
                sample(&m, "dlx_held_requests"),
                clients.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_held_after = opened.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held_kib = rss_kib(pid);
    cluster.pod(true).await?;
    let released = Instant::now();
    let mut errors = 0;
    let clients_total = clients.len();
    for c in clients {
        if !matches!(c.await, Ok(Ok(_))) {
            errors += 1;
        }
    }
    let drained = released.elapsed();
    cluster.clear_wake().await?;
    let rss_mib = held_kib as f64 / 1024.0;
    Ok(json!({
        "requests": clients_total,
        "all_held_after_s": (all_held_after.as_secs_f64() * 100.0).round() / 100.0,
        "rss_idle_mib": (idle_kib as f64 / 1024.0 * 10.0).round() / 10.0,
        "rss_holding_mib": (rss_mib * 10.0).round() / 10.0,
        "per_request_kib": ((held_kib.saturating_sub(idle_kib)) as f64 / clients_total as f64 * 100.0).round() / 100.0,
        "released_and_answered_s": (drained.as_secs_f64() * 100.0).round() / 100.0,
        "errors": errors,
        "goal": {"value": (rss_mib * 10.0).round() / 10.0, "goal": "RSS <= 50 MiB", "met": rss_mib <= 50.0},
    }))
}
