//! `cargo xtask bench rsg`: the ResourceScalingGroup controller at scale on the local cluster. An RSG of 2
//! Deployment targets scaled 1 → 50 → 1 groups (wall time to converge each way, API writes against the
//! minimum, controller CPU seconds, peak RSS) and 200 idle RSGs through 3 resync periods (writes must be 0).
//!
//! The load driver is `rsg-bench` (`crates/rsg-controller/src/bin/rsg-bench.rs`, it needs a Kubernetes
//! client); this builds it and the controller in release mode, brings the cluster up if needed and returns
//! the driver's JSON with the goals attached. Knobs after the name are passed through, e.g.
//! `cargo xtask bench rsg --groups 20 --idle-rsgs 50`.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Bench, Ctx};

/// The entry in `BENCHES`.
pub(super) const BENCH: Bench = Bench {
    name: "rsg",
    about: "RSG 1 -> 50 -> 1 groups (time, writes vs minimum, CPU, RSS); 200 idle RSGs write nothing",
    run,
};

fn run(ctx: &Ctx) -> Result<serde_json::Value> {
    let dir = ctx.release_binaries(&["rsg-controller"])?;
    let env = ctx.cluster_env()?;
    let out = Command::new(dir.join("rsg-bench"))
        .arg("--controller-bin")
        .arg(dir.join("rsg-controller"))
        .args(&ctx.args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()
        .context("running rsg-bench")?;
    if !out.status.success() {
        bail!("rsg-bench failed: {}", out.status);
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing rsg-bench's JSON")?;
    v["goal"] = serde_json::json!(
        "each way <= 10 s; writes <= 1.2 x minimum; controller RSS <= 60 MiB; idle RSGs: 0 writes over 3 resyncs"
    );
    v["command"] = serde_json::json!("cargo xtask bench rsg");
    Ok(v)
}
