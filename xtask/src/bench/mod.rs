//! `cargo xtask bench <name>`: the performance benchmarks.
//!
//! Each benchmark lives in its own module with a `run(&Ctx) -> Result<serde_json::Value>`; this module
//! dispatches by name, builds the release binaries a benchmark asks for, and writes the result to
//! `bench/results/<name>.json` (pretty JSON, stable key order) so `docs/benchmarks.md` can quote it.
//! Benchmarks that need the local cluster bring it up themselves ([`Ctx::cluster_env`]).

mod algorithms;
mod dlx;
mod rsg;
mod scaler;
mod tidal;
mod webhook;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cluster::Cluster;
use crate::util::{self, root};

/// One benchmark: its name and entry point.
struct Bench {
    name: &'static str,
    about: &'static str,
    run: fn(&Ctx) -> Result<serde_json::Value>,
}

/// Every benchmark. Add a module and one line here.
const BENCHES: &[Bench] = &[
    algorithms::BENCH, // cargo xtask bench algorithms
    dlx::BENCH,        // cargo xtask bench dlx
    rsg::BENCH,        // cargo xtask bench rsg
    scaler::BENCH,     // cargo xtask bench scaler
    tidal::BENCH,      // cargo xtask bench tidal
    webhook::BENCH,    // cargo xtask bench webhook
];

/// What a benchmark gets: extra arguments and helpers for binaries and the cluster.
#[allow(dead_code, reason = "used by the benchmarks as they arrive")]
pub struct Ctx {
    /// Arguments after the benchmark's name (benchmark-specific knobs).
    pub args: Vec<String>,
}

#[allow(dead_code, reason = "used by the benchmarks as they arrive")]
impl Ctx {
    /// Builds `packages` with `--release` and returns the release directory holding their binaries.
    pub fn release_binaries(&self, packages: &[&str]) -> Result<PathBuf> {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(root())
            .args(["build", "--release", "--quiet"]);
        for p in packages {
            cmd.args(["-p", p]);
        }
        util::run(&mut cmd)?;
        Ok(util::target_dir().join("release"))
    }

    /// Brings the local cluster up if needed and returns its environment (`KUBECONFIG`, `PDO_*`).
    pub fn cluster_env(&self) -> Result<Vec<(&'static str, String)>> {
        let c = Cluster::new();
        if !c.healthy() {
            c.up()?;
        }
        c.env_vars()
    }
}

/// Runs benchmark `name` (or lists them when `name` is `list`) and writes its JSON result.
pub fn run(name: &str, args: Vec<String>) -> Result<()> {
    if name == "list" {
        for b in BENCHES {
            println!("{:<12} {}", b.name, b.about);
        }
        return Ok(());
    }
    let Some(bench) = BENCHES.iter().find(|b| b.name == name) else {
        let names: Vec<_> = BENCHES.iter().map(|b| b.name).collect();
        bail!(
            "unknown benchmark {name:?}: choose one of {names:?} (`cargo xtask bench list` describes them)"
        );
    };
    let result = (bench.run)(&Ctx { args }).with_context(|| format!("benchmark {name} failed"))?;
    let dir = root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&result)? + "\n";
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    println!("{text}wrote {}", path.display());
    Ok(())
}
