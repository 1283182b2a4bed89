//! `rsg-bench`: the load driver of `cargo xtask bench rsg` (it needs a Kubernetes client, which xtask does
//! not carry). It runs the `rsg-controller` binary given by `--controller-bin` against the cluster of
//! `KUBECONFIG`, in its own namespace (recreated, then deleted), and prints one JSON object:
//!
//! 1. an RSG of 2 Deployment targets scaled 1 → N → 1 groups: wall time from the `/scale` write to a status
//!    showing the new count (polled every 20 ms), API writes counted by the controller
//!    (`rsg_controller_api_writes_total`) against the minimum the change needs, controller CPU seconds;
//! 2. M idle RSGs through 3 resync periods: writes (must be 0) and CPU seconds;
//! 3. the controller's peak RSS (`VmHWM`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api_types::ResourceScalingGroup;
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The rsg-controller binary to measure (release build).
    #[arg(long)]
    controller_bin: PathBuf,
    /// Namespace to work in (recreated, deleted at the end).
    #[arg(long, default_value = "rsg-bench")]
    namespace: String,
    /// Groups to scale to and back from.
    #[arg(long, default_value_t = 50)]
    groups: i32,
    /// Idle RSGs for the no-write check.
    #[arg(long, default_value_t = 200)]
    idle_rsgs: usize,
    /// The controller's resync period during the run.
    #[arg(long, default_value_t = 10)]
    resync_seconds: u64,
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": format!("registry.local/{name}:1")}]}}}
    }))
    .expect("valid Deployment")
}

fn rsg(name: &str, targets: &[&str], replicas: i32) -> ResourceScalingGroup {
    let t: Vec<_> = targets
        .iter()
        .map(|d| json!({"name": d, "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": d}}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
        "metadata": {"name": name},
        "spec": {"targetResources": t,
            "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"groupName": name, "replicas": replicas}}}
    }))
    .expect("valid RSG")
}

fn settled(r: &ResourceScalingGroup, groups: i32) -> bool {
    let Some(s) = &r.status else { return false };
    s.current_replicas == Some(groups)
        && s.observed_generation == r.metadata.generation
        && s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// CPU seconds (user + system) of `pid` so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based, whole line).
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmHWM")?
        .parse()?;
    Ok(kb / 1024.0)
}

struct Controller {
    child: Child,
    admin: String,
    http: reqwest::Client,
}

impl Controller {
    /// Writes by kind so far, from the controller's own counter.
    async fn writes(&self) -> Result<BTreeMap<String, u64>> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await?
            .text()
            .await?;
        let mut out = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("rsg_controller_api_writes_total{"))
        {
            let (labels, value) = line.rsplit_once(' ').context("metric line")?;
            let kind = labels
                .split("kind=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?");
            let verb = labels
                .split("verb=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?");
            *out.entry(format!("{verb} {kind}")).or_default() += value.parse::<f64>()? as u64;
        }
        Ok(out)
    }
}

fn delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    b.iter()
        .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn sum_without_events(d: &BTreeMap<String, u64>) -> u64 {
    d.iter()
        .filter(|(k, _)| !k.ends_with(" Event"))
        .map(|(_, v)| v)
        .sum()
}

async fn wait_settled(
    api: &Api<ResourceScalingGroup>,
    name: &str,
    groups: i32,
    limit: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if settled(&api.get(name).await?, groups) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("RSG {name} did not reach {groups} groups within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn recreate_namespace(client: &kube::Client, ns: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(ns).await?.is_some() {
        let _ = api.delete(ns, &DeleteParams::default()).await;
        let start = Instant::now();
        while api.get_opt(ns).await?.is_some() {
            if start.elapsed() > Duration::from_secs(120) {
                bail!("namespace {ns} from an earlier run is still terminating");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    api.create(&PostParams::default(), &n).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let client = kube::Client::try_default().await.context("KUBECONFIG")?;
    let ns = args.namespace.as_str();
    recreate_namespace(&client, ns).await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let rsgs: Api<ResourceScalingGroup> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    for d in ["prefill", "decode"] {
        deploys.create(&pp, &deployment(d, 1)).await?;
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let admin = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(std::env::temp_dir().join("rsg-bench-controller.log"))?;
    let child = Command::new(&args.controller_bin)
        .env("WATCH_NAMESPACE", ns)
        .env("LEADER_ELECT", "false")
        .env("ADMIN_ADDR", &admin)
        .env("RSG_RESYNC_SECONDS", args.resync_seconds.to_string())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting {}", args.controller_bin.display()))?;
    let ctrl = Controller {
        child,
        admin,
        http: reqwest::Client::new(),
    };
    let pid = ctrl.child.id();
    let result = run(&args, &ctrl, &deploys, &rsgs, pid).await;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = Api::<Namespace>::all(client)
        .delete(ns, &DeleteParams::default())
        .await;
    let v = result?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

async fn run(
    args: &Args,
    ctrl: &Controller,
    deploys: &Api<Deployment>,
    rsgs: &Api<ResourceScalingGroup>,
    pid: u32,
) -> Result<serde_json::Value> {
    let limit = Duration::from_secs(120);
    let start = Instant::now();
    while ctrl.writes().await.is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("the controller's admin server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rsgs.create(
        &PostParams::default(),
        &rsg("pd", &["prefill", "decode"], 1),
    )
    .await?;
    wait_settled(rsgs, "pd", 1, limit).await?;

    let mut phases = Vec::new();
    for (from, to) in [(1, args.groups), (args.groups, 1)] {
        let w0 = ctrl.writes().await?;
        let c0 = cpu_seconds(pid)?;
        rsgs.patch_scale(
            "pd",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": to}})),
        )
        .await?;
        let took = wait_settled(rsgs, "pd", to, limit).await?;
        // Let stragglers (events of our own writes) land before counting.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let d = delta(&w0, &ctrl.writes().await?);
        let changed = 2 * (to - from).unsigned_abs() as u64;
        let minimum = changed + 1; // every clone created/deleted, plus one status write
        let writes = sum_without_events(&d);
        phases.push(json!({
            "from_groups": from, "to_groups": to,
            "wall_seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
            "writes": writes, "writes_by_verb_kind": d, "minimum_writes": minimum,
            "writes_over_minimum": ((writes as f64 / minimum as f64) * 1000.0).round() / 1000.0,
            "events": d.iter().filter(|(k, _)| k.ends_with(" Event")).map(|(_, v)| v).sum::<u64>(),
            "controller_cpu_seconds": ((cpu_seconds(pid)? - c0) * 100.0).round() / 100.0,
        }));
    }

    // Idle: M RSGs, one zero-replica Deployment each, settled; then nothing may be written for 3 resyncs.
    let pp = PostParams::default();
    for i in 0..args.idle_rsgs {
        let d = format!("idle-{i}");
        deploys.create(&pp, &deployment(&d, 0)).await?;
        rsgs.create(&pp, &rsg(&d, &[&d], 1)).await?;
    }
    for i in 0..args.idle_rsgs {
        wait_settled(rsgs, &format!("idle-{i}"), 1, limit).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let w0 = ctrl.writes().await?;
    let c0 = cpu_seconds(pid)?;
    let idle_for = Duration::from_secs(3 * args.resync_seconds + 2);
    tokio::time::sleep(idle_for).await;
    let d = delta(&w0, &ctrl.writes().await?);
    let idle = json!({
        "rsgs": args.idle_rsgs + 1,
        "resync_seconds": args.resync_seconds,
        "observed_seconds": idle_for.as_secs(),
        "writes": d.values().sum::<u64>(),
        "writes_by_verb_kind": d,
        "controller_cpu_seconds": ((cpu_seconds(pid)? - c0) * 100.0).round() / 100.0,
    });
    Ok(json!({
        "scale": phases,
        "idle": idle,
        "controller_peak_rss_mib": (peak_rss_mib(pid)? * 10.0).round() / 10.0,
    }))
}
