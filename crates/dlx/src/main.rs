//! The scale-to-zero proxy that holds requests while a workload is at zero.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "dlx",
    version,
    about = "The scale-to-zero proxy that holds requests while a workload is at zero."
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
    pdo_runtime::run_admin_only("dlx", &args.log, &args.admin).await
}
