//! `cargo xtask bench tidal`: 1,000 Tidals of 100 rules each on the local cluster. Firing lag (rule time →
//! status visible through a watch), the controller's CPU while idle between firings, and its RSS.
//!
//! The load driver is the `tidal-bench` binary of `crates/tidal-scheduler` (it needs a Kubernetes client,
//! which xtask does not carry); this builds it and `tidal-scheduler` in release mode, brings the cluster
//! up if needed, runs it in its own namespace `tidal-bench` (deleted afterwards) and returns its JSON.
//! Knobs after the name are passed through, e.g. `cargo xtask bench tidal --tidals 200 --rules 50`.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Bench, Ctx};

/// The entry in `BENCHES`.
pub(super) const BENCH: Bench = Bench {
    name: "tidal",
    about: "1,000 Tidals x 100 rules: firing lag p99, idle CPU between firings, RSS",
    run,
};

/// Runs the benchmark.
fn run(ctx: &Ctx) -> Result<serde_json::Value> {
    let dir = ctx.release_binaries(&["tidal-scheduler"])?;
    let env = ctx.cluster_env()?;
    let out = Command::new(dir.join("tidal-bench"))
        .arg("--scheduler-bin")
        .arg(dir.join("tidal-scheduler"))
        .args(&ctx.args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()
        .context("running tidal-bench")?;
    if !out.status.success() {
        bail!("tidal-bench failed: {}", out.status);
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing tidal-bench's JSON")?;
    v["goal"] =
        serde_json::json!("firing lag p99 <= 1 s; idle CPU ~ 0 between firings; RSS reported");
    v["command"] = serde_json::json!("cargo xtask bench tidal");
    Ok(v)
}
