//! `cargo xtask bench scaler`: the ElasticScaler controller at 1,000 and then 5,000 scalers on the local
//! cluster, each reading an ExternalServer metric from a local stub at a 15 s period. Effective period
//! (gaps between two reads of one scaler, against the configured period), status and scale writes when
//! nothing changed (the controller's counters and the objects' resourceVersions), CPU seconds per 1,000
//! reconciles, RSS and peak RSS.
//!
//! The load driver is `es-bench` (`crates/elastic-scaler/src/bin/es-bench.rs`, it needs a Kubernetes
//! client and serves the stub); this builds it and the controller in release mode, brings the cluster up if
//! needed and returns the driver's JSON with the goals attached. Knobs after the name are passed through,
//! e.g. `cargo xtask bench scaler --scalers 200,1000 --period-seconds 5`.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Bench, Ctx};

/// The entry in `BENCHES`.
pub(super) const BENCH: Bench = Bench {
    name: "scaler",
    about: "1,000 and 5,000 ElasticScalers at 15 s: effective period, writes when idle, CPU per 1,000 reconciles, RSS",
    run,
};

fn run(ctx: &Ctx) -> Result<serde_json::Value> {
    let dir = ctx.release_binaries(&["elastic-scaler"])?;
    let env = ctx.cluster_env()?;
    let out = Command::new(dir.join("es-bench"))
        .arg("--controller-bin")
        .arg(dir.join("elastic-scaler"))
        .args(&ctx.args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()
        .context("running es-bench")?;
    if !out.status.success() {
        bail!("es-bench failed: {}", out.status);
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing es-bench's JSON")?;
    v["goal"] = serde_json::json!(
        "effective period <= 1.1 x configured (p99 of the gaps between two reads of one scaler); RSS <= 150 MiB at 5,000 scalers; 0 status writes when nothing changed; CPU seconds per 1,000 reconciles reported"
    );
    v["command"] = serde_json::json!("cargo xtask bench scaler");
    Ok(v)
}
