//! `cargo xtask e2e`: runs `crates/e2e` against the local cluster, bringing it up first if needed.
//!
//! The tests get the cluster through the environment: `KUBECONFIG`, `PDO_PROMETHEUS_URL`, and the paths of
//! `kubectl` and `helm` (`PDO_KUBECTL`, `PDO_HELM`), so they never guess where anything is.

use std::process::Command;

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use crate::util::{root, run as run_cmd};

pub fn run(args: &[String]) -> Result<()> {
    let c = Cluster::new();
    if !c.healthy() {
        c.up()?;
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["test", "-p", "e2e", "--"])
        .args(args);
    cmd.envs(c.env_vars()?);
    run_cmd(&mut cmd)
        .context("e2e tests failed (cluster logs: `ls ~/.cache/pd-orchestrator/cluster/logs`)")
}
