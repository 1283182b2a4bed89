//! `cargo xtask bench dlx`: the scale-to-zero proxy's hot paths on the local cluster.
//!
//! 1. passthrough: the same load generator and backend (a release fake-inference answering 1 KiB) directly,
//!    through nginx (Debian's `nginx-light` or `nginx`, skipped with a note when absent) and through the DLX,
//!    at saturation and at a fixed rate, keep-alive;
//! 2. cold path: first request → wake-up write, pod ready (EndpointSlice event) → held request forwarded;
//! 3. 10,000 held requests: the DLX's RSS.
//!
//! The load driver is `dlx-bench bench` (crates/dlx; it needs a Kubernetes client, which xtask does not
//! carry). This builds `dlx` and `fake-inference` in release mode, brings the cluster up if needed and
//! returns the driver's JSON. Knobs after the name are passed through, e.g.
//! `cargo xtask bench dlx --seconds 10 --held 5000`, or `--parts held-h1` for one part (`passthrough`,
//! `cold`, `held-h2`, `held-h1`; the result file then holds only that part).

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Bench, Ctx};

/// The entry in `BENCHES`.
pub(super) const BENCH: Bench = Bench {
    name: "dlx",
    about: "DLX: passthrough vs direct vs nginx, cold path latencies, RSS holding 10,000 requests",
    run,
};

/// The nginx binary, if installed.
fn nginx() -> String {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_default()
        .to_string()
}

/// Runs the benchmark.
fn run(ctx: &Ctx) -> Result<serde_json::Value> {
    let dir = ctx.release_binaries(&["dlx", "fake-inference"])?;
    let env = ctx.cluster_env()?;
    let out = Command::new(dir.join("dlx-bench"))
        .arg("bench")
        .arg("--dlx-bin")
        .arg(dir.join("dlx"))
        .arg("--backend-bin")
        .arg(dir.join("fake-inference"))
        .args(["--nginx-bin", &nginx()])
        .args(&ctx.args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()
        .context("running dlx-bench")?;
    if !out.status.success() {
        bail!("dlx-bench failed: {}", out.status);
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing dlx-bench's JSON")?;
    v["goal"] = serde_json::json!(
        "passthrough: DLX >= 1.0 x nginx req/s, DLX p99 <= nginx p99, added p99 vs direct <= 1 ms; \
         cold path: ready -> first byte forwarded p99 <= 50 ms, first request -> wake-up write p99 <= 20 ms; \
         10,000 held requests: RSS <= 50 MiB"
    );
    v["command"] = serde_json::json!("cargo xtask bench dlx");
    Ok(v)
}
