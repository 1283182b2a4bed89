//! Load driver of `cargo xtask bench webhook`.
//!
//! 1. **Loopback.** Starts the release `admission-webhook` (file-mode TLS with a certificate made here; cluster
//!    checks and SubjectAccessReviews on, against the local cluster) and sends AdmissionReviews over TLS from
//!    `--concurrency` clients, each on its own keep-alive connection, for `--duration` after a warm-up. A mix of
//!    four reviews (validate RSG, mutate RSG, validate ElasticScaler, validate Tidal). Reports latency
//!    percentiles, throughput, and admissions per second per core of the webhook's own CPU time (from
//!    `/proc/<pid>/stat`). Twice: a closed loop (every client sends again at once: saturation throughput and
//!    the per-core figure) and paced to `--paced-rate` requests/s in total (latency below saturation; on a
//!    2-core machine shared with the load generator, a closed loop's latency is only queueing).
//! 2. **Through the apiserver.** With our Validating and MutatingWebhookConfigurations pointing at the webhook
//!    (`clientConfig.url` on 127.0.0.1) and scoped to one of two fresh namespaces, `--samples` sequential
//!    server-side dry-run applies of an RSG alternate between the covered namespace and the other; the
//!    difference of the percentiles is the latency the webhook adds. Configurations and namespaces are
//!    deleted afterwards.
//!
//! Prints one JSON object on stdout.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use admission_webhook::tls::{new_ca, new_leaf};
use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The admission-webhook binary to benchmark.
    #[arg(long)]
    webhook_bin: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Measured seconds of the loopback run.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Warm-up seconds before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Total request rate of the paced latency run (100 clients sharing it), per second.
    #[arg(long, default_value_t = 2000.0)]
    paced_rate: f64,
    /// Dry-run applies per phase (webhook off / on) through the apiserver.
    #[arg(long, default_value_t = 400)]
    samples: usize,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("stat format")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    let hz: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
        .trim()
        .parse()
        .unwrap_or(100.0);
    Ok(ticks / hz)
}

fn rsg(name: &str, invalid: bool) -> Value {
    json!({"apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
        "metadata": {"name": name},
        "spec": {"targetResources": [
            {"name": "prefill", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill"}},
            {"name": if invalid { "prefill" } else { "decode" }, "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "decode"}}],
          "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"replicas": 2,
            "scaleDown": {"metric": {"expr": "vllm:num_requests_running", "type": "Gauge"}, "order": "ascending"}}}}})
}

fn review(kind: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "bench", "kind": {"group": "", "version": "v1alpha1", "kind": kind},
          "operation": "CREATE", "namespace": "bench", "name": object["metadata"]["name"],
          "userInfo": {"username": "bench-admin", "groups": ["system:masters", "system:authenticated"]},
          "object": object}}))
    .expect("json")
}

fn bodies() -> Vec<(String, Vec<u8>)> {
    let es = json!({"apiVersion": "elasticscaler.io/v1alpha1", "kind": "ElasticScaler", "metadata": {"name": "s"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 8,
          "trigger": {"type": "MetricsTrigger", "metricsTrigger": {"scalingAlgorithm": "HPA", "metrics": [
            {"type": "Resource", "resource": {"metricsName": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]}}}});
    let tidal = json!({"apiVersion": "tidal.io/v1alpha1", "kind": "Tidal", "metadata": {"name": "t"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "bench"},
          "triggers": {"times": {"rules": [{"name": "day", "cron": "CRON_TZ=Asia/Shanghai 0 9 * * 1-5", "replicas": 4},
            {"name": "night", "cron": "CRON_TZ=Asia/Shanghai 0 21 * * *", "replicas": 1}]}}}});
    vec![
        (
            "validate/resourcescalinggroups".into(),
            review("ResourceScalingGroup", rsg("pd", false)),
        ),
        (
            "mutate/resourcescalinggroups".into(),
            review("ResourceScalingGroup", rsg("pd", false)),
        ),
        (
            "validate/elasticscalers".into(),
            review("ElasticScaler", es),
        ),
        ("validate/tidals".into(), review("Tidal", tidal)),
    ]
}

struct Server {
    child: Child,
    port: u16,
    admin: u16,
    ca_pem: String,
    _dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn start_server(bin: &PathBuf) -> Result<Server> {
    let dir = std::env::temp_dir().join(format!("webhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = new_ca(Duration::from_secs(86400))?;
    let leaf = new_leaf(&ca, &["127.0.0.1".into()], Duration::from_secs(86400))?;
    std::fs::write(dir.join("tls.crt"), &leaf.cert)?;
    std::fs::write(dir.join("tls.key"), &leaf.key)?;
    let (port, admin) = (free_port()?, free_port()?);
    let child = Command::new(bin)
        .env("WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env("ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("TLS_MODE", "files")
        .env("TLS_CERT_FILE", dir.join("tls.crt"))
        .env("TLS_KEY_FILE", dir.join("tls.key"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let server = Server {
        child,
        port,
        admin,
        ca_pem: ca.cert,
        _dir: dir,
    };
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{admin}/readyz")).await
            && r.status() == 200
        {
            return Ok(server);
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the webhook was not ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tls_client(ca_pem: &str) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// `rate`: `None` is a closed loop (each client sends again as soon as it has an answer: saturation
/// throughput); `Some(r)` paces the clients to `r` requests per second in total (latency below saturation).
/// The webhook's own latency histogram (all kinds and operations summed): `le` bound → cumulative count.
async fn server_histogram(server: &Server) -> Result<Vec<(f64, f64)>> {
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", server.admin))
        .await?
        .text()
        .await?;
    let mut buckets: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("admission_webhook_request_duration_seconds_bucket{")
        else {
            continue;
        };
        let (labels, count) = rest.split_once("} ").context("bucket line")?;
        let le = labels
            .split("le=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
            .context("le")?;
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse()?
        };
        let e = buckets.entry(le.to_bits()).or_insert((le, 0.0));
        e.1 += count.trim().parse::<f64>()?;
    }
    let mut v: Vec<(f64, f64)> = buckets.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(v)
}

/// Upper bound (bucket `le`, ms) of quantile `q` of the observations between two histogram snapshots.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            (
                *le,
                n - before
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0.0, |(_, m)| *m),
            )
        })
        .collect();
    let total = diff.last().map_or(0.0, |(_, n)| *n);
    diff.iter()
        .find(|(_, n)| *n >= q * total)
        .map_or(f64::NAN, |(le, _)| ms(le * 1e3))
}

async fn loopback(args: &Args, server: &Server, rate: Option<f64>) -> Result<Value> {
    let bodies = Arc::new(bodies());
    let warm_end = Instant::now() + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    let concurrency = args.concurrency;
    for c in 0..args.concurrency {
        let client = tls_client(&server.ca_pem)?;
        let bodies = bodies.clone();
        let base = format!("https://127.0.0.1:{}", server.port);
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let mut i = c;
            // Paced: client c sends at start + (k + c/concurrency) * period.
            let period = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r));
            let first = Instant::now();
            let mut k = 0u32;
            loop {
                if let Some(p) = period {
                    let at = first + p.mul_f64(f64::from(k) + c as f64 / concurrency as f64);
                    k += 1;
                    tokio::time::sleep_until(at.into()).await;
                }
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let (path, body) = &bodies[i % bodies.len()];
                i += 1;
                let t = Instant::now();
                let ok = match client
                    .post(format!("{base}/{path}"))
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r
                        .bytes()
                        .await
                        .is_ok_and(|b| b.windows(9).any(|w| w == b"\"allowed\"")),
                    _ => false,
                };
                if now >= warm_end {
                    if ok {
                        lat.push(t.elapsed().as_secs_f64());
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep_until(warm_end.into()).await;
    let hist0 = server_histogram(server).await?;
    let cpu0 = cpu_seconds(server.child.id())?;
    let self0 = cpu_seconds(std::process::id())?;
    let t0 = Instant::now();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.child.id())? - cpu0;
    let client_cpu = cpu_seconds(std::process::id())? - self0;
    let hist1 = server_histogram(server).await?;
    lat.sort_by(f64::total_cmp);
    let n = lat.len() as f64;
    Ok(json!({
        "load": match rate {
            None => "closed loop: every client sends again as soon as it has an answer".to_string(),
            Some(r) => format!("paced: {r} requests/s in total across the clients"),
        },
        "concurrency": args.concurrency,
        "measured_seconds": ms(wall),
        "admissions": lat.len(),
        "errors": errors,
        "admissions_per_second": (n / wall).round(),
        "webhook_cpu_seconds": ms(cpu),
        "admissions_per_second_per_core": (n / cpu).round(),
        "load_generator_cpu_seconds": ms(client_cpu),
        "latency_ms": {
            "p50": ms(percentile(&lat, 50.0) * 1e3),
            "p99": ms(percentile(&lat, 99.0) * 1e3),
            "p99_9": ms(percentile(&lat, 99.9) * 1e3),
            "max": ms(lat.last().copied().unwrap_or(f64::NAN) * 1e3),
        },
        "server_side_latency_ms_upper_bound": {
            "note": "the webhook's own request_duration_seconds histogram (body read to answer), bucket upper bounds",
            "p50": bucket_quantile(&hist0, &hist1, 0.5),
            "p99": bucket_quantile(&hist0, &hist1, 0.99),
            "p99_9": bucket_quantile(&hist0, &hist1, 0.999),
        },
        "mix": ["validate RSG", "mutate RSG", "validate ElasticScaler", "validate Tidal"],
        "server_flags": "files TLS, cluster checks on (watch caches), SubjectAccessReviews on (cached 10 s)",
    }))
}

fn configs(port: u16, ca_pem: &str, label: &str, id: &str) -> (Value, Value) {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let hooks = |path: &str| -> Vec<Value> {
        [("elasticscaler.io", "elasticscalers"), ("autoscaling.openfuyao.com", "resourcescalinggroups"), ("tidal.io", "tidals")]
            .iter()
            .map(|(g, r)| json!({
                "name": format!("{path}.{r}.bench.pd-orchestrator.io"), "admissionReviewVersions": ["v1"],
                "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 10,
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/{path}/{r}"), "caBundle": ca},
                "namespaceSelector": {"matchLabels": {label: id}},
                "rules": [{"apiGroups": [g], "apiVersions": ["v1alpha1"], "resources": [r], "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}]}))
            .collect()
    };
    let name = format!("pdo-bench-webhook-{id}");
    (
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name}, "webhooks": hooks("validate")}),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": name}, "webhooks": hooks("mutate")}),
    )
}

async fn dry_run(api: &Api<api_types::ResourceScalingGroup>) -> Result<f64> {
    let t = Instant::now();
    api.patch(
        "bench",
        &PatchParams::apply("webhook-bench").dry_run(),
        &Patch::Apply(rsg("bench", false)),
    )
    .await
    .context("dry-run apply")?;
    Ok(t.elapsed().as_secs_f64())
}

async fn through_apiserver(args: &Args, server: &Server) -> Result<Value> {
    let client = Client::try_default()
        .await
        .context("a client from KUBECONFIG")?;
    let id = format!("{:x}", std::process::id());
    let label = "pd-orchestrator.io/webhook-bench";
    let (on_ns, off_ns) = (
        format!("webhook-bench-on-{id}"),
        format!("webhook-bench-off-{id}"),
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (n, labelled) in [(&on_ns, true), (&off_ns, false)] {
        let labels = if labelled {
            json!({label: id})
        } else {
            json!({})
        };
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": n, "labels": labels}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = format!("pdo-bench-webhook-{id}");
    let result = async {
        let on: Api<api_types::ResourceScalingGroup> = Api::namespaced(client.clone(), &on_ns);
        let off: Api<api_types::ResourceScalingGroup> = Api::namespaced(client.clone(), &off_ns);
        let (v, m) = configs(server.port, &server.ca_pem, label, &id);
        vwcs.create(&PostParams::default(), &serde_json::from_value(v)?).await?;
        mwcs.create(&PostParams::default(), &serde_json::from_value(m)?).await?;
        // Active once an invalid object is denied with our message.
        let start = Instant::now();
        loop {
            let r = on
                .patch("bad", &PatchParams::apply("webhook-bench").dry_run(), &Patch::Apply(rsg("bad", true)))
                .await;
            if matches!(&r, Err(kube::Error::Api(e)) if e.message.contains("is already used by targetResources[0]")) {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the apiserver did not call the webhook within 30 s: {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The same request alternately in a namespace the webhook covers and one it does not, so both
        // phases see the same machine load; the first 20 pairs warm up.
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for i in 0..args.samples + 20 {
            let (a, b) = if i % 2 == 0 {
                (dry_run(&on).await?, dry_run(&off).await?)
            } else {
                let b = dry_run(&off).await?;
                (dry_run(&on).await?, b)
            };
            if i >= 20 {
                with.push(a);
                without.push(b);
            }
        }
        with.sort_by(f64::total_cmp);
        without.sort_by(f64::total_cmp);
        let p = |l: &[f64], q: f64| ms(percentile(l, q) * 1e3);
        Ok::<_, anyhow::Error>(json!({
            "samples_per_phase": args.samples,
            "request": "server-side apply of a ResourceScalingGroup with dryRun=All, sequential, alternating between a namespace the webhooks cover and one they do not",
            "webhook_off_ms": {"p50": p(&without, 50.0), "p99": p(&without, 99.0)},
            "webhook_on_ms": {"p50": p(&with, 50.0), "p99": p(&with, 99.0)},
            "added_ms": {"p50": ms(p(&with, 50.0) - p(&without, 50.0)), "p99": ms(p(&with, 99.0) - p(&without, 99.0))},
        }))
    }
    .await;
    let _ = vwcs.delete(&name, &DeleteParams::default()).await;
    let _ = mwcs.delete(&name, &DeleteParams::default()).await;
    for n in [&on_ns, &off_ns] {
        let _ = namespaces.delete(n, &DeleteParams::default()).await;
    }
    result
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = start_server(&args.webhook_bin).await?;
    let saturated = loopback(&args, &server, None).await?;
    eprintln!("loopback, closed loop: {saturated}");
    let paced = loopback(&args, &server, Some(args.paced_rate)).await?;
    eprintln!("loopback, paced: {paced}");
    let api_result = through_apiserver(&args, &server).await?;
    eprintln!("through the apiserver: {api_result}");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "machine_cores": cores,
            "loopback_tls_saturated": saturated,
            "loopback_tls_paced": paced,
            "apiserver_dry_run": api_result,
        }))?
    );
    Ok(())
}
