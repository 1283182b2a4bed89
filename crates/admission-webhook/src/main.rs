//! The HTTPS admission server (validating + mutating) for the pd-orchestrator CRDs.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "admission-webhook",
    version,
    about = "The HTTPS admission server (validating + mutating) for the pd-orchestrator CRDs."
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
    pdo_runtime::run_admin_only("admission-webhook", &args.log, &args.admin).await
}
