//! `cargo xtask e2e`: runs `crates/e2e` against the local cluster, bringing it up first if needed.
//!
//! The tests get the cluster through the environment: `KUBECONFIG`, `PDO_PROMETHEUS_URL`, and the paths of
//! `kubectl` and `helm` (`PDO_KUBECTL`, `PDO_HELM`), and the freshly built workspace binaries (`PDO_BIN_DIR`),
//! so they never guess where anything is.

use std::process::Command;

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use crate::util::{root, run as run_cmd};

pub fn run(args: &[String]) -> Result<()> {
    let c = Cluster::new();
    if !c.healthy() {
        c.up()?;
    }
    // The tests run the component binaries as local processes (test_kit::Process), from PDO_BIN_DIR.
    run_cmd(Command::new(env!("CARGO")).current_dir(root()).args([
        "build",
        "--quiet",
        "--workspace",
        "--bins",
    ]))
    .context("building the workspace binaries for e2e")?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.env("PDO_BIN_DIR", crate::util::target_dir().join("debug"));
    cmd.current_dir(root())
        .args(["test", "-p", "e2e", "--"])
        .args(args);
    cmd.envs(c.env_vars()?);
    run_cmd(&mut cmd)
        .context("e2e tests failed (cluster logs: `ls ~/.cache/pd-orchestrator/cluster/logs`)")
}
