//! `tidal-bench`: the load driver behind `cargo xtask bench tidal` (run it through xtask, which builds
//! it in release mode and points it at the local cluster).
//!
//! In its own namespace it creates `--tidals` Tidals of `--rules` rules each — half drive an RSG's group
//! count through `/scale`, half hand off to an ElasticScaler (status only) — starts `tidal-scheduler`, and
//! lets five waves of firings happen: wave 0 fires every Tidal at the same second, waves 1–4 spread them
//! over 5 s. The other rules are decoys in five zones that do not fire during the run. It measures:
//!
//! - **firing lag**: from a rule's time to the Tidal's status showing it, seen through a watch (the
//!   status is written after the scale write, so this bounds the whole path);
//! - **idle CPU** of the controller in the quiet seconds between waves, from `/proc/<pid>/stat`;
//! - **RSS** (current and peak) from `/proc/<pid>/status`;
//! - **the API server's own floor** (`api_only_wave`): with the controller stopped, the bench itself sends
//!   the writes one all-at-once wave costs (a `/scale` merge patch for the RSG half, a status merge patch
//!   of the controller's shape for every Tidal, at the controller's concurrency) and times when each
//!   completes — how fast this API server can land a wave with no controller in the way.
//!
//! Prints one JSON object on stdout; deletes its namespace at the end.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api_types::Tidal;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

#[derive(Parser, Debug)]
struct Args {
    /// The tidal-scheduler binary to run.
    #[arg(long)]
    scheduler_bin: String,
    /// Namespace to work in (deleted and recreated).
    #[arg(long, default_value = "tidal-bench")]
    namespace: String,
    /// Number of Tidals.
    #[arg(long, default_value_t = 1000)]
    tidals: usize,
    /// Rules per Tidal (1 to 100).
    #[arg(long, default_value_t = 100)]
    rules: usize,
    /// Seconds between waves.
    #[arg(long, default_value_t = 12)]
    wave_gap: i64,
    /// Writes in flight in the API-only wave (the controller's default concurrency).
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
}

const WAVES: usize = 5;
/// `status.activeRule` of the API-only wave's writes.
const API_ONLY_RULE: &str = "api-only";
const ZONES: [&str; 5] = [
    "UTC",
    "Asia/Shanghai",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
];

fn cron_at(at: Timestamp, zone: &str) -> String {
    let z = at.to_zoned(TimeZone::get(zone).expect("zone"));
    format!(
        "CRON_TZ={zone} {} {} {} {} {} *",
        z.second(),
        z.minute(),
        z.hour(),
        z.day(),
        z.month()
    )
}

/// When Tidal `i` fires in wave `w`.
fn firing(start: Timestamp, gap: i64, i: usize, w: usize) -> Timestamp {
    let spread = if w == 0 { 0 } else { (i % 5) as i64 };
    start + SignedDuration::from_secs(gap * w as i64 + spread)
}

fn tidal(ns: &str, i: usize, rules: usize, start: Timestamp, gap: i64) -> Result<Tidal> {
    let mut rs =
        vec![serde_json::json!({"name": "base", "cron": "CRON_TZ=UTC 0 0 * * *", "replicas": 1})];
    for w in 0..WAVES {
        rs.push(serde_json::json!({
            "name": format!("wave-{w}"),
            "cron": cron_at(firing(start, gap, i, w), ZONES[(i + w) % ZONES.len()]),
            "replicas": w + 2,
        }));
    }
    // Decoys: yearly rules six months away, varied fields and zones.
    let later = start.to_zoned(TimeZone::UTC).month() % 12 + 1;
    let decoy_month = (later + 4) % 12 + 1;
    for d in rs.len()..rules {
        rs.push(serde_json::json!({
            "name": format!("decoy-{d}"),
            "cron": format!("CRON_TZ={} {} {} {} {} {} *", ZONES[d % ZONES.len()], d % 60, (d * 7) % 60, d % 24, d % 28 + 1, decoy_month),
            "replicas": d % 10,
        }));
    }
    let labels = if i % 2 == 1 {
        serde_json::json!({"elasticscaler.io/name": format!("es-{i}"), "elasticscaler.io/namespace": ns})
    } else {
        serde_json::json!({})
    };
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "tidal.io/v1alpha1", "kind": "Tidal",
        "metadata": {"name": format!("t-{i}"), "labels": labels},
        "spec": {
            "targetRef": {"apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup", "name": format!("g-{i}"), "namespace": ns},
            "triggers": {"times": {"rules": rs}}
        }
    }))?)
}

fn rsg(i: usize) -> Result<api_types::ResourceScalingGroup> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
        "metadata": {"name": format!("g-{i}")},
        "spec": {
            "targetResources": [{"name": "main", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("d-{i}")}}],
            "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"groupName": "g", "replicas": 1}}
        }
    }))?)
}

/// utime + stime of `pid`, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// (VmRSS, VmHWM) of `pid` in MiB.
fn rss_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    Ok((kb("VmRSS:"), kb("VmHWM:")))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    serde_json::json!({
        "count": v.len(),
        "p50_s": r(percentile(&v, 50.0)),
        "p90_s": r(percentile(&v, 90.0)),
        "p99_s": r(percentile(&v, 99.0)),
        "max_s": r(v.last().copied().unwrap_or(f64::NAN)),
    })
}

async fn sleep_until(t: Timestamp) {
    if let Ok(d) = Duration::try_from(t.duration_since(Timestamp::now())) {
        tokio::time::sleep(d).await;
    }
}

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
    let args = Args::parse();
    // kube's rustls needs one process-wide crypto provider; the workspace builds rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !(WAVES + 1..=100).contains(&args.rules) {
        bail!("--rules must be {} to 100", WAVES + 1);
    }
    let client = kube::Client::try_default().await.context("KUBECONFIG")?;
    let ns = args.namespace.as_str();
    let nss: Api<Namespace> = Api::all(client.clone());
    if nss.get_opt(ns).await?.is_some() {
        let _ = nss.delete(ns, &DeleteParams::default()).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while nss.get_opt(ns).await?.is_some() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "namespace {ns} still terminating"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
    )
    .await?;
    let result = run(&args, client.clone()).await;
    let _ = nss.delete(ns, &DeleteParams::default()).await;
    let v = result?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

async fn run(args: &Args, client: kube::Client) -> Result<serde_json::Value> {
    let ns = args.namespace.as_str();
    let n = args.tidals;
    // Time for creating the objects and the controller's first pass over them, then the waves.
    let create_budget = 30 + (n as i64 * 2) / 25;
    let start = Timestamp::from_second(Timestamp::now().as_second())?
        + SignedDuration::from_secs(create_budget);
    let rsgs: Api<api_types::ResourceScalingGroup> = Api::namespaced(client.clone(), ns);
    let tidals: Api<Tidal> = Api::namespaced(client.clone(), ns);
    let t_create = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (rsgs, tidals) = (rsgs.clone(), tidals.clone());
            async move {
                if i % 2 == 0 {
                    rsgs.create(&PostParams::default(), &rsg(i)?).await?;
                }
                tidals
                    .create(
                        &PostParams::default(),
                        &tidal(ns, i, args.rules, start, args.wave_gap)?,
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let create_s = t_create.elapsed().as_secs_f64();
    eprintln!(
        "created {n} Tidals (+{} RSGs) in {create_s:.1}s",
        n.div_ceil(2)
    );

    // Watch statuses: when each Tidal shows each wave active.
    let seen: std::sync::Arc<std::sync::Mutex<HashMap<(String, String), f64>>> = Default::default();
    let s2 = seen.clone();
    let watch = tokio::spawn(async move {
        let stream = watcher(tidals.clone(), watcher::Config::default()).applied_objects();
        futures::pin_mut!(stream);
        while let Some(Ok(t)) = stream.next().await {
            let now = Timestamp::now();
            let Some(s) = t.status else { continue };
            let (Some(rule), Some(at)) = (s.active_rule, s.active_rule_effective_time) else {
                continue;
            };
            if rule.starts_with("wave-") || rule == API_ONLY_RULE {
                let lag = now.duration_since(at.0).as_secs_f64();
                s2.lock()
                    .expect("lock")
                    .entry((t.metadata.name.unwrap_or_default(), rule))
                    .or_insert(lag);
            }
        }
    });

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let t_start = Instant::now();
    let child = Command::new(&args.scheduler_bin)
        .env("WATCH_NAMESPACE", ns)
        .env("POD_NAMESPACE", ns)
        .env("LEADER_ELECT", "true")
        .env("ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", args.scheduler_bin))?;
    let pid = child.id();
    let guard = Killer(child);

    // Wait until every Tidal shows its base rule (the first pass is done).
    let all: Api<Tidal> = Api::namespaced(client.clone(), ns);
    let sync_s = loop {
        let list = all.list(&Default::default()).await?;
        let done = list
            .items
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.active_rule.as_deref()) == Some("base"))
            .count();
        if done == n {
            break t_start.elapsed().as_secs_f64();
        }
        anyhow::ensure!(
            Timestamp::now() < start - SignedDuration::from_secs(3),
            "the controller's first pass did not finish before the first wave ({done}/{n} Tidals)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let sync_cpu = cpu_ticks(pid)?;
    let (rss_synced, _) = rss_mib(pid)?;
    eprintln!("first pass over {n} Tidals: {sync_s:.1}s");

    // Idle before the first wave.
    let mut idle = Vec::new();
    let idle_from = Timestamp::now() + SignedDuration::from_secs(1);
    let idle_to = start - SignedDuration::from_secs(1);
    if idle_to > idle_from + SignedDuration::from_secs(2) {
        sleep_until(idle_from).await;
        let c0 = cpu_ticks(pid)?;
        sleep_until(idle_to).await;
        let secs = idle_to.duration_since(idle_from).as_secs_f64();
        idle.push(((cpu_ticks(pid)? - c0) as f64 / 100.0, secs));
    }
    // The waves, measuring idle CPU in the quiet part between them (from 5 s after a wave's spread ends).
    for w in 0..WAVES {
        let wave_end = firing(start, args.wave_gap, 4, w);
        let quiet_from = wave_end + SignedDuration::from_secs(5);
        let quiet_to = firing(start, args.wave_gap, 0, w + 1) - SignedDuration::from_secs(1);
        if w + 1 < WAVES && quiet_to > quiet_from + SignedDuration::from_secs(1) {
            sleep_until(quiet_from).await;
            let c0 = cpu_ticks(pid)?;
            sleep_until(quiet_to).await;
            idle.push((
                (cpu_ticks(pid)? - c0) as f64 / 100.0,
                quiet_to.duration_since(quiet_from).as_secs_f64(),
            ));
        } else {
            sleep_until(wave_end + SignedDuration::from_secs(5)).await;
        }
    }
    let (rss, hwm) = rss_mib(pid)?;
    let total_cpu = cpu_ticks(pid)? as f64 / 100.0;
    drop(guard);
    let mut api_only = api_only_wave(&client, ns, n, args.concurrency).await?;
    // The same watch sees the API-only statuses: their lag is measured exactly as the controller's.
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen_api_only = || {
        seen.lock()
            .expect("lock")
            .iter()
            .filter(|((_, r), _)| r == API_ONLY_RULE)
            .map(|(_, l)| *l)
            .collect::<Vec<f64>>()
    };
    while seen_api_only().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api_only["lag_seen_by_watch"] = summary(seen_api_only());
    watch.abort();
    let seen: HashMap<(String, String), f64> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|((_, r), _)| r != API_ONLY_RULE)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let expected = n * WAVES;
    let missing = expected - seen.len();
    let all_lags: Vec<f64> = seen.values().copied().collect();
    let wave0: Vec<f64> = seen
        .iter()
        .filter(|((_, r), _)| r == "wave-0")
        .map(|(_, l)| *l)
        .collect();
    let spread: Vec<f64> = seen
        .iter()
        .filter(|((_, r), _)| r != "wave-0")
        .map(|(_, l)| *l)
        .collect();
    let scale_path: Vec<f64> = seen
        .iter()
        .filter(|((t, _), _)| {
            t.trim_start_matches("t-")
                .parse::<usize>()
                .is_ok_and(|i| i % 2 == 0)
        })
        .map(|(_, l)| *l)
        .collect();
    let es_path: Vec<f64> = seen
        .iter()
        .filter(|((t, _), _)| {
            t.trim_start_matches("t-")
                .parse::<usize>()
                .is_ok_and(|i| i % 2 == 1)
        })
        .map(|(_, l)| *l)
        .collect();
    let (idle_cpu_s, idle_wall_s) = idle
        .iter()
        .fold((0.0, 0.0), |(a, b), (c, w)| (a + c, b + w));
    Ok(serde_json::json!({
        "tidals": n,
        "rules_per_tidal": args.rules,
        "waves": WAVES,
        "firings_expected": expected,
        "firings_missed": missing,
        "create_seconds": (create_s * 10.0).round() / 10.0,
        "first_pass_seconds": (sync_s * 10.0).round() / 10.0,
        "first_pass_cpu_seconds": sync_cpu as f64 / 100.0,
        "lag_all": summary(all_lags),
        "lag_wave0_all_at_once": summary(wave0),
        "lag_waves_spread_over_5s": summary(spread),
        "lag_scale_path": summary(scale_path),
        "lag_elasticscaler_path": summary(es_path),
        "idle_cpu_percent": if idle_wall_s > 0.0 { ((idle_cpu_s / idle_wall_s) * 10000.0).round() / 100.0 } else { f64::NAN },
        "idle_window_seconds": (idle_wall_s * 10.0).round() / 10.0,
        "controller_cpu_seconds_total": total_cpu,
        "rss_mib_after_first_pass": (rss_synced * 10.0).round() / 10.0,
        "rss_mib_end": (rss * 10.0).round() / 10.0,
        "rss_mib_peak": (hwm * 10.0).round() / 10.0,
        "lag_measured_as": "wall time when a watch saw status.activeRule change, minus the rule's firing time",
        "api_only_wave": api_only,
    }))
}

/// The writes of one all-at-once wave, sent by the bench with the controller stopped: per Tidal a status
/// merge patch shaped like the controller's (every field, three conditions), and for the RSG half first a
/// `/scale` merge patch. Returns when each Tidal's writes completed, from the wave's start.
async fn api_only_wave(
    client: &kube::Client,
    ns: &str,
    n: usize,
    concurrency: usize,
) -> Result<serde_json::Value> {
    use kube::api::{Patch, PatchParams};
    let tidals: Api<Tidal> = Api::namespaced(client.clone(), ns);
    let rsgs: Api<api_types::ResourceScalingGroup> = Api::namespaced(client.clone(), ns);
    let pp = PatchParams {
        field_manager: Some("tidal-scheduler".into()),
        ..PatchParams::default()
    };
    let now = Timestamp::now();
    let condition = |ty: &str, status: &str, reason: &str, message: String| {
        serde_json::json!({"type": ty, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now.to_string(), "observedGeneration": 1})
    };
    let t0 = Instant::now();
    let done: Vec<f64> = futures::stream::iter(0..n)
        .map(|i| {
            let (tidals, rsgs, pp) = (tidals.clone(), rsgs.clone(), pp.clone());
            let status = serde_json::json!({"status": {
                "activeRule": API_ONLY_RULE, "activeRuleEffectiveTime": now.to_string(), "desiredReplicas": 9,
                "lastTriggerRule": "api-only", "lastTriggerTime": now.to_string(),
                "nextTriggerRule": "base", "nextTriggerTime": now.to_string(),
                "conditions": [
                    condition("Ready", "True", "Reconciled", format!("rule api-only active since {now}: 9 replicas for ResourceScalingGroup {ns}/g-{i}")),
                    condition("Progressing", "False", "WaitingForNextRule", format!("next: rule base at {now}")),
                    condition("Degraded", "False", "Reconciled", String::new()),
                ]}});
            async move {
                if i % 2 == 0 {
                    let scale = serde_json::json!({"spec": {"replicas": 9}});
                    rsgs.patch_scale(&format!("g-{i}"), &PatchParams::default(), &Patch::Merge(&scale))
                        .await?;
                }
                tidals
                    .patch_status(&format!("t-{i}"), &pp, &Patch::Merge(&status))
                    .await?;
                anyhow::Ok(t0.elapsed().as_secs_f64())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let wall = t0.elapsed().as_secs_f64();
    eprintln!("API-only wave: {n} Tidals' writes in {wall:.1}s");
    Ok(serde_json::json!({
        "writes": n + n.div_ceil(2),
        "concurrency": concurrency,
        "wall_seconds": (wall * 1000.0).round() / 1000.0,
        "tidal_done_after": summary(done),
        "measured_as": "tidal_done_after: time from the wave's start until a Tidal's writes (its /scale patch, then its status patch) completed, sent by the bench with the controller stopped; lag_seen_by_watch: when the bench's watch saw that status, measured as the controller's firing lag",
    }))
}
