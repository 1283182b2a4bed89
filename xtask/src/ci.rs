//! `cargo xtask ci`: what CI checks, in order, stopping at the first failure. The cluster is torn down at
//! the end whether the e2e tests passed or not.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use crate::util::{self, root, tools};

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(root()).args(args);
    c
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("\n==> {name}");
    let start = Instant::now();
    let r = f().with_context(|| format!("CI step `{name}` failed"));
    println!(
        "<== {name}: {} in {:.1}s",
        if r.is_ok() { "ok" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    r
}

pub fn run() -> Result<()> {
    let start = Instant::now();
    step("cargo fmt --check", || {
        util::run(&mut cargo(&["fmt", "--all", "--check"]))
    })?;
    step("cargo clippy", || {
        util::run(&mut cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("crds --check", || crate::crds::run(true))?;
    step("helm lint", || {
        let helm = tools()?.bin("helm")?;
        util::run(Command::new(helm).current_dir(root()).args([
            "lint",
            "--strict",
            "--with-subcharts",
            "charts/pd-orchestrator",
        ]))
    })?;
    step("unit tests", || {
        util::run(&mut cargo(&["test", "--workspace", "--exclude", "e2e"]))
    })?;
    let c = Cluster::new();
    let e2e = step("cluster up", || c.up()).and_then(|()| step("e2e", || crate::e2e::run(&[])));
    let down = step("cluster down", || c.down());
    e2e?;
    down?;
    println!("\nci passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}
