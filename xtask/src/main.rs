//! `cargo xtask …`: the project's developer commands.
//!
//! - `crds [--check]`: render the CRDs from `api-types` into `deploy/crds/` and the umbrella chart.
//! - `tools`: build (once) and cache the control-plane binaries (`hack/build-tools.sh`).
//! - `cluster up|down|status|env`: a real local Kubernetes control plane as local processes.
//! - `e2e`: the end-to-end tests against the running cluster.
//! - `demo`: cluster up, CRDs, an RSG and a fake inference Deployment serving; what to try next.
//! - `bench <name>`: a performance benchmark; JSON result in `bench/results/<name>.json`.
//! - `ci`: everything CI checks, in order, with the cluster brought up and torn down.

mod bench;
mod ci;
mod cluster;
mod crds;
mod demo;
mod e2e;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "pd-orchestrator developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Render the CRDs from the Rust types into deploy/crds and charts/pd-orchestrator/crds.
    Crds {
        /// Fail if the committed YAML differs from what the types render, instead of writing.
        #[arg(long)]
        check: bool,
    },
    /// Build and cache the control-plane binaries (kube-apiserver, etcd, helm, ...).
    Tools,
    /// Manage the local cluster.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Run the e2e tests against the local cluster (brings it up if it is down).
    E2e {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        args: Vec<String>,
    },
    /// Bring up the cluster and show the system's main job on it.
    Demo,
    /// Run a benchmark (`list` names them); writes bench/results/<name>.json.
    Bench {
        /// The benchmark, or `list`.
        name: String,
        /// Benchmark-specific arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Everything CI checks: fmt, clippy, crds --check, helm lint, unit tests, cluster up, e2e, cluster down.
    Ci,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Crds { check } => crds::run(check),
        Cmd::Tools => util::tools().map(|t| println!("{}", t.dir.display())),
        Cmd::Cluster { cmd } => cluster::run(cmd),
        Cmd::E2e { args } => e2e::run(&args),
        Cmd::Demo => demo::run(),
        Cmd::Bench { name, args } => bench::run(&name, args),
        Cmd::Ci => ci::run(),
    }
}
