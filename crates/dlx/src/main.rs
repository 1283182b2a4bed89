//! `dlx`: the scale-to-zero proxy. Flags (each with an env fallback), logs, then [`dlx::run`].

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = dlx::Args::parse();
    pdo_runtime::init_tracing(&args.log)?;
    dlx::run(args).await
}
