//! `cargo xtask bench webhook`: AdmissionReviews over TLS from 100 concurrent clients on loopback (latency
//! percentiles, admissions per second per core of the webhook's CPU), and the latency the webhook adds to a
//! server-side dry-run apply through the real apiserver.
//!
//! The load driver is the `webhook-bench` binary of `crates/admission-webhook` (it needs TLS and a Kubernetes
//! client, which xtask does not carry); this builds it and `admission-webhook` in release mode, brings the
//! cluster up if needed and returns its JSON. Knobs after the name are passed through, e.g.
//! `cargo xtask bench webhook --duration 30 --concurrency 200 --samples 1000`.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Bench, Ctx};

/// The entry in `BENCHES`.
pub(super) const BENCH: Bench = Bench {
    name: "webhook",
    about: "admission webhook: TLS reviews at 100 clients (p50/p99/p99.9, per core); added apiserver latency",
    run,
};

fn run(ctx: &Ctx) -> Result<serde_json::Value> {
    let dir = ctx.release_binaries(&["admission-webhook"])?;
    let env = ctx.cluster_env()?;
    let out = Command::new(dir.join("webhook-bench"))
        .arg("--webhook-bin")
        .arg(dir.join("admission-webhook"))
        .args(&ctx.args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()
        .context("running webhook-bench")?;
    if !out.status.success() {
        bail!("webhook-bench failed: {}", out.status);
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing webhook-bench's JSON")?;
    v["goal"] = serde_json::json!(
        "loopback p99 <= 5 ms and >= 5,000 admissions/s per core at 100 clients; <= 5 ms added p99 through the apiserver"
    );
    v["command"] = serde_json::json!("cargo xtask bench webhook");
    Ok(v)
}
