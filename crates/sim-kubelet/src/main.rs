//! The sim-kubelet binary: parse flags, run the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sim_kubelet::run(sim_kubelet::Args::parse()).await
}
