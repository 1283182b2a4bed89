//! `es-bench`: the load driver of `cargo xtask bench scaler` (it needs a Kubernetes client, which xtask
//! does not carry). It runs the `elastic-scaler` binary given by `--controller-bin` against the cluster of
//! `KUBECONFIG`, in its own namespace (recreated, then deleted), with a local ExternalServer stub
//! ([`stub`]) that answers `0` and records when each scaler asked, and prints one JSON object.
//!
//! Each scaler is an APA ElasticScaler (`minReplicas: 0`) over its own paused zero-replica Deployment,
//! with an ExternalServer metric of its own name: desired = current = 0, so every period is one stub
//! call and no write. Paused, so the Deployment controller makes no ReplicaSet: 5,000 scalers cost 10,000
//! objects, no pods. For each size of `--scalers` (grown in place, default 1,000 then 5,000):
//!
//! 1. create the missing Deployments and ElasticScalers (`--create-concurrency` in flight) and wait until
//!    every scaler has a status (a watch);
//! 2. over `--periods` periods: the effective period (gaps between two asks of one scaler at the stub),
//!    status writes (the controller's counter, and the ElasticScalers' resourceVersions before and after),
//!    scale writes (counter, and Deployment generations), CPU seconds per 1,000 reconciles
//!    (`/proc/<pid>/stat` over `elastic_scaler_reconciles_total`), RSS and peak RSS (`/proc/<pid>/status`).

#[path = "es_bench/stub.rs"]
mod stub;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api_types::ElasticScaler;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The elastic-scaler binary to measure (release build).
    #[arg(long)]
    controller_bin: PathBuf,
    /// Namespace to work in (recreated, deleted at the end).
    #[arg(long, default_value = "es-bench")]
    namespace: String,
    /// Scaler counts to measure, ascending; the objects of one size are kept for the next.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    scalers: Vec<usize>,
    /// The controller's period (`ES_SYNC_PERIOD_SECONDS`).
    #[arg(long, default_value_t = 15)]
    period_seconds: u64,
    /// Periods measured at each size.
    #[arg(long, default_value_t = 4)]
    periods: u64,
    /// Object creations in flight.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// The controller's `ES_CONCURRENCY` (its default if unset).
    #[arg(long)]
    es_concurrency: Option<u16>,
}

fn deployment(i: usize) -> Result<Deployment> {
    let name = format!("d-{i}");
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 0, "paused": true, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "registry.local/idle:1"}]}}}
    }))?)
}

fn scaler(i: usize, stub: std::net::SocketAddr) -> Result<ElasticScaler> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "elasticscaler.io/v1alpha1", "kind": "ElasticScaler",
        "metadata": {"name": format!("es-{i}")},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("d-{i}")},
            "minReplicas": 0, "maxReplicas": 10,
            "trigger": {"type": "MetricsTrigger", "metricsTrigger": {"scalingAlgorithm": "APA", "metrics": [
                {"type": "ExternalServer", "externalServer": {
                    "endpoint": format!("{stub}/metric"), "protocol": "http",
                    "metricsName": metric(i), "target": "10"}}]}}
        }
    }))?)
}

fn metric(i: usize) -> String {
    format!("m-{i}")
}

/// CPU seconds (user + system) of `pid` so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: utime and stime are fields 14 and 15 of the whole line, in ticks of 1/100 s.
    Ok((f[11].parse::<f64>()? + f[12].parse::<f64>()?) / 100.0)
}

/// (VmRSS, VmHWM) of `pid` in MiB.
fn rss_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> Result<f64> {
        Ok(status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .with_context(|| format!("{key} in /proc/{pid}/status"))?
            .parse::<f64>()?
            / 1024.0)
    };
    Ok((kb("VmRSS:")?, kb("VmHWM:")?))
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The controller's `/metrics`, summed over labels, by series name.
async fn scrape(http: &reqwest::Client, admin: &str) -> Result<BTreeMap<String, f64>> {
    let text = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name.to_string()).or_default() += v;
        }
    }
    Ok(out)
}

fn delta(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, name: &str) -> f64 {
    b.get(name).copied().unwrap_or(0.0) - a.get(name).copied().unwrap_or(0.0)
}

/// name → (resourceVersion, generation) of every object, listed in pages of metadata only.
async fn versions<K>(api: &Api<K>) -> Result<BTreeMap<String, (String, i64)>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(500);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list_metadata(&lp).await?;
        for o in page.items {
            let m = o.metadata;
            out.insert(
                m.name.unwrap_or_default(),
                (
                    m.resource_version.unwrap_or_default(),
                    m.generation.unwrap_or(0),
                ),
            );
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

fn changed(
    a: &BTreeMap<String, (String, i64)>,
    b: &BTreeMap<String, (String, i64)>,
) -> (usize, usize) {
    let rv = b
        .iter()
        .filter(|(k, v)| a.get(*k).is_none_or(|o| o.0 != v.0))
        .count();
    let generation = b
        .iter()
        .filter(|(k, v)| a.get(*k).is_none_or(|o| o.1 != v.1))
        .count();
    (rv, generation)
}

async fn recreate_namespace(client: &kube::Client, ns: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(ns).await?.is_some() {
        let _ = api.delete(ns, &DeleteParams::default()).await;
        eprintln!("waiting for namespace {ns} of an earlier run to go");
        let start = Instant::now();
        while api.get_opt(ns).await?.is_some() {
            if start.elapsed() > Duration::from_secs(600) {
                bail!("namespace {ns} from an earlier run is still terminating");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    api.create(&PostParams::default(), &n).await?;
    Ok(())
}

/// Stops the controller when dropped.
struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // kube's rustls needs one process-wide crypto provider; the workspace builds rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.scalers.is_empty() || args.scalers.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--scalers must be ascending counts, e.g. 1000,5000");
    }
    let client = kube::Client::try_default().await.context("KUBECONFIG")?;
    let ns = args.namespace.as_str();
    recreate_namespace(&client, ns).await?;
    let stub = stub::start().await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let admin = format!("127.0.0.1:{port}");
    let log_path = std::env::temp_dir().join("es-bench-controller.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(&args.controller_bin);
    cmd.env("WATCH_NAMESPACE", ns)
        .env("LEADER_ELECT", "false")
        .env("ADMIN_ADDR", &admin)
        .env("ES_SYNC_PERIOD_SECONDS", args.period_seconds.to_string())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    if let Some(c) = args.es_concurrency {
        cmd.env("ES_CONCURRENCY", c.to_string());
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", args.controller_bin.display()))?;
    eprintln!(
        "controller pid {} (log {}), stub on {}",
        child.id(),
        log_path.display(),
        stub.addr
    );
    let controller = Killer(child);
    let result = tokio::select! {
        r = run(&args, &client, &stub, controller.0.id(), &admin) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    drop(controller);
    eprintln!("deleting namespace {ns}");
    let _ = Api::<Namespace>::all(client)
        .delete(ns, &DeleteParams::default())
        .await;
    let v = result?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

async fn run(
    args: &Args,
    client: &kube::Client,
    stub: &stub::Stub,
    pid: u32,
    admin: &str,
) -> Result<serde_json::Value> {
    let ns = args.namespace.as_str();
    let http = reqwest::Client::new();
    let start = Instant::now();
    while scrape(&http, admin).await.is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("the controller's admin server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let scalers: Api<ElasticScaler> = Api::namespaced(client.clone(), ns);
    // Which scalers have a status, from a watch (cheaper than listing thousands of objects every second).
    let (store, writer) = reflector::store();
    let watch = tokio::spawn(
        watcher(scalers.clone(), watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|_| async {}),
    );
    let period = args.period_seconds as f64;
    let mut phases = Vec::new();
    let mut created = 0;
    for &n in &args.scalers {
        // 1. Grow to n scalers; the controller is running, so they are reconciled as they arrive.
        let m0 = scrape(&http, admin).await?;
        let c0 = cpu_seconds(pid)?;
        let t_create = Instant::now();
        futures::stream::iter(created..n)
            .map(|i| {
                let (deploys, scalers) = (deploys.clone(), scalers.clone());
                async move {
                    let pp = PostParams::default();
                    // The Deployment first, so the scaler finds it in the controller's cache.
                    deploys.create(&pp, &deployment(i)?).await?;
                    scalers.create(&pp, &scaler(i, stub.addr)?).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(args.create_concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        let create_s = t_create.elapsed().as_secs_f64();
        eprintln!("{n} scalers: created {} in {create_s:.1}s", n - created);
        created = n;
        let limit = Duration::from_secs(120 + n as u64 / 20);
        let mut last_report = Instant::now();
        let first_pass_s = loop {
            let done = store
                .state()
                .iter()
                .filter(|e| {
                    e.status
                        .as_ref()
                        .is_some_and(|s| s.desired_replicas.is_some())
                })
                .count();
            if done >= n {
                break t_create.elapsed().as_secs_f64();
            }
            if t_create.elapsed() > limit {
                bail!("only {done} of {n} scalers have a status after {limit:?}");
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!("{n} scalers: {done} have a status");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let m1 = scrape(&http, admin).await?;
        let c1 = cpu_seconds(pid)?;
        eprintln!("{n} scalers: all have a status {first_pass_s:.1}s after creation began");

        // 2. The steady state over whole periods.
        let es0 = versions(&scalers).await?;
        let d0 = versions(&deploys).await?;
        let m2 = scrape(&http, admin).await?;
        let c2 = cpu_seconds(pid)?;
        let t0 = stub.now();
        eprintln!("{n} scalers: measuring {} periods", args.periods);
        tokio::time::sleep(Duration::from_secs_f64(period * args.periods as f64)).await;
        let t1 = stub.now();
        let c3 = cpu_seconds(pid)?;
        let m3 = scrape(&http, admin).await?;
        let (rss, hwm) = rss_mib(pid)?;
        let es1 = versions(&scalers).await?;
        let d1 = versions(&deploys).await?;
        let (es_rv, _) = changed(&es0, &es1);
        let (_, d_gen) = changed(&d0, &d1);
        let names: Vec<String> = (0..n).map(metric).collect();
        let effective = stub.periods(&names, t0, t1, period);
        let reconciles = delta(&m2, &m3, "elastic_scaler_reconciles_total");
        let cpu = c3 - c2;
        let seconds = delta(&m2, &m3, "elastic_scaler_reconcile_duration_seconds_sum");
        let phase = json!({
            "scalers": n,
            "create_seconds": r2(create_s),
            "first_pass": {
                "seconds_from_creation": r2(first_pass_s),
                "status_writes": delta(&m0, &m1, "elastic_scaler_status_writes_total"),
                "reconciles": delta(&m0, &m1, "elastic_scaler_reconciles_total"),
                "controller_cpu_seconds": r2(c1 - c0),
            },
            "window_seconds": r2(t1 - t0),
            "effective_period": effective,
            "reconciles": reconciles,
            "stub_asks_in_window": effective["asks_in_window"],
            "status_writes_counter": delta(&m2, &m3, "elastic_scaler_status_writes_total"),
            "scalers_with_new_resource_version": es_rv,
            "scale_writes_counter": delta(&m2, &m3, "elastic_scaler_scale_writes_total"),
            "deployments_with_new_generation": d_gen,
            "errors": delta(&m2, &m3, "elastic_scaler_errors_total"),
            "controller_cpu_seconds": r2(cpu),
            "cpu_seconds_per_1000_reconciles": r2(cpu * 1000.0 / reconciles.max(1.0)),
            "mean_reconcile_ms": r2(seconds * 1000.0 / reconciles.max(1.0)),
            "rss_mib": r2(rss),
            "peak_rss_mib": r2(hwm),
            "total_stub_asks": stub.total(),
        });
        eprintln!("{n} scalers: {phase}");
        phases.push(phase);
    }
    watch.abort();
    let ok = |p: &serde_json::Value| {
        let ratio = p["effective_period"]["p99_ratio"]
            .as_f64()
            .unwrap_or(f64::MAX);
        json!({
            "effective_period_p99_within_1_1x": ratio <= 1.1,
            "zero_status_writes": p["status_writes_counter"] == 0.0 && p["scalers_with_new_resource_version"] == 0,
            "zero_scale_writes": p["scale_writes_counter"] == 0.0 && p["deployments_with_new_generation"] == 0,
        })
    };
    let last = phases.last().cloned().unwrap_or_default();
    Ok(json!({
        "configured_period_seconds": args.period_seconds,
        "periods_measured": args.periods,
        "phases": phases,
        "goals_met": {
            "per_phase": phases.iter().map(ok).collect::<Vec<_>>(),
            "peak_rss_at_largest_le_150_mib": last["peak_rss_mib"].as_f64().unwrap_or(f64::MAX) <= 150.0,
        },
        "setup": "one APA ElasticScaler per paused zero-replica Deployment, minReplicas 0, ExternalServer metric from a local stub answering 0: desired = current, nothing to write",
    }))
}
