//! The ResourceScalingGroup controller: GroupReplication and InplaceScaling.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rsg-controller",
    version,
    about = "The ResourceScalingGroup controller: GroupReplication and InplaceScaling."
)]
struct Args {
    #[command(flatten)]
    log: pdo_runtime::LogArgs,
    #[command(flatten)]
    admin: pdo_runtime::AdminArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pdo_runtime::run_admin_only("rsg-controller", &args.log, &args.admin).await
}
