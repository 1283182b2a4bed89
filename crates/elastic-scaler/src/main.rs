//! The ElasticScaler controller: metric sources, scaling algorithms, resource handlers.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "elastic-scaler",
    version,
    about = "The ElasticScaler controller: metric sources, scaling algorithms, resource handlers."
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
    pdo_runtime::run_admin_only("elastic-scaler", &args.log, &args.admin).await
}
