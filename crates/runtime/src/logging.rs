//! Tracing setup: text for humans, JSON for log pipelines, filter from `--log-filter` / `RUST_LOG`.

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Output format of the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags shared by every binary.
#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax, e.g. `info,kube=warn`.
    #[arg(
        long,
        env = "RUST_LOG",
        default_value = "info,kube=warn,tower=warn,hyper=warn"
    )]
    pub log_filter: String,
}

/// Installs the global tracing subscriber. Fails on an invalid filter instead of silently using a default.
pub fn init_tracing(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log_filter).map_err(|e| {
        anyhow::anyhow!(
            "--log-filter/RUST_LOG {:?} is not a valid filter: {e}",
            args.log_filter
        )
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Text => {
            // Colour only on a terminal: log files and collectors get plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry
                .with(fmt::layer().with_target(true).with_ansi(ansi))
                .try_init()?
        }
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init()?,
    }
    Ok(())
}
