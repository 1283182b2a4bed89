//! `fake-inference`: parse flags, start logging, serve until SIGTERM. See the library for the behaviour.

use clap::Parser;
use fake_inference::{Config, FakeServer};
use pdo_runtime::{LogArgs, init_tracing, shutdown_token};

/// A vLLM-like fake LLM server.
#[derive(Parser, Debug)]
#[command(name = "fake-inference", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    log: LogArgs,
}

// One thread is plenty for a simulated engine, and e2e tests start one process per pod on small machines.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log)?;
    let shutdown = shutdown_token()?;
    let server = FakeServer::bind(&cli.config).await?;
    let c = &cli.config;
    tracing::info!(
        local_addr = %server.local_addr(),
        model = %c.model,
        group_id = %c.group_id,
        max_concurrency = c.max_concurrency,
        tokens_per_second = c.tokens_per_second,
        ttft_ms = c.ttft_ms,
        cold_start_ms = c.cold_start_ms,
        "listening"
    );
    server.run(shutdown.cancelled_owned()).await?;
    tracing::info!("stopped");
    Ok(())
}
