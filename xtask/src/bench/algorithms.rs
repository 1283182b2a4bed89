//! `cargo xtask bench algorithms`: HPA, KPA, APA and tuned variants against an oracle on the two Azure LLM
//! traces, through the policy simulator (the controller's own decision code, no cluster), over targets and
//! `minReplicas`, with a reactive bound (the best hindsight-tuned causal rule of a family; not a policy).
//!
//! The driver is `algorithms-bench` (`crates/elastic-scaler/src/bin/algorithms-bench.rs`, which documents
//! the method and the goals); this builds it in release mode and returns its JSON. `--decisions <dir>` after
//! the name writes every decision as JSON lines.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Bench, Ctx};
use crate::util::root;

/// The entry in `BENCHES`.
pub(super) const BENCH: Bench = Bench {
    name: "algorithms",
    about: "HPA, KPA, APA vs an oracle and a reactive bound on the Azure LLM traces: replica-seconds / oracle, SLO attainment, scale events",
    run,
};

fn run(ctx: &Ctx) -> Result<serde_json::Value> {
    let dir = ctx.release_binaries(&["elastic-scaler"])?;
    let out = Command::new(dir.join("algorithms-bench"))
        .arg(root())
        .args(&ctx.args)
        .stderr(Stdio::inherit())
        .output()
        .context("running algorithms-bench")?;
    if !out.status.success() {
        bail!("algorithms-bench failed: {}", out.status);
    }
    serde_json::from_slice(&out.stdout).context("parsing algorithms-bench's JSON")
}
