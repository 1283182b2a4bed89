//! `tidal-scheduler`: the Tidal controller binary. Flags (each with an env fallback), logs, the admin
//! server, leader election, then [`tidal_scheduler::controller::run`] until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::runtime::events::{Recorder, Reporter};
use pdo_runtime::controller::{Controller, STOP_GRACE, bounded_after_cancel, start_controller};
use pdo_runtime::events::EventQueue;
use pdo_runtime::leader::{LeaderArgs, run_leader_elected};
use pdo_runtime::{AdminArgs, LogArgs, init_tracing};
use tidal_scheduler::controller::{Config, Ctx, check_crd, run};
use tidal_scheduler::metrics::Metrics;
use tidal_scheduler::target::Scaler;

const COMPONENT: &str = "tidal-scheduler";

/// The Tidal controller: sets a target's replicas at times given by cron rules, through its scale
/// subresource or through a linked ElasticScaler.
#[derive(Parser, Debug)]
#[command(name = COMPONENT, version, about)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    leader: LeaderArgs,
    /// Watch only this namespace's Tidals; default: all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Let spec.targetRef.namespace differ from the Tidal's own namespace. Off by default: whoever may
    /// create a Tidal in one namespace could otherwise scale workloads in any other.
    #[arg(long, env = "TIDAL_ALLOW_CROSS_NAMESPACE_TARGETS", default_value_t = false, action = clap::ArgAction::Set)]
    allow_cross_namespace_targets: bool,
    /// Seconds before a failed scale write is retried (sooner if the next rule fires first).
    #[arg(long, env = "TIDAL_RETRY_SECONDS", default_value_t = 5)]
    retry_seconds: u64,
    /// Tidals reconciled at once (many Tidals often fire at the same second, e.g. 09:00).
    #[arg(long, env = "TIDAL_CONCURRENCY", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Seconds between two checks of the wall clock against the monotonic clock; a step is caught
    /// within this time and every Tidal is re-planned. Firings themselves are timed exactly.
    #[arg(long, env = "TIDAL_CLOCK_CHECK_SECONDS", default_value_t = 1.0)]
    clock_check_seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(&args.log)?;
    anyhow::ensure!(
        args.clock_check_seconds >= 0.1,
        "--clock-check-seconds / TIDAL_CLOCK_CHECK_SECONDS must be at least 0.1"
    );
    let (process, metrics) =
        start_controller(COMPONENT, &args.admin, &args.leader, Metrics::register).await?;
    let client = process.client.clone();
    check_crd(&client).await?;
    let reporter = Reporter {
        controller: COMPONENT.into(),
        instance: Some(process.identity.clone()),
    };
    let ctx = Arc::new(Ctx {
        events: EventQueue::start(
            Recorder::new(client.clone(), reporter),
            10_000,
            process.shutdown.clone(),
        ),
        scaler: Scaler::new(client.clone()),
        client,
        metrics: metrics.clone(),
        config: Config {
            allow_cross_namespace: args.allow_cross_namespace_targets,
            retry: Duration::from_secs(args.retry_seconds.max(1)),
            concurrency: args.concurrency,
            namespace: args.watch_namespace.clone(),
        },
    });
    tracing::info!(version = env!("CARGO_PKG_VERSION"), namespace = ?args.watch_namespace, "started");
    let period = Duration::from_secs_f64(args.clock_check_seconds);
    let Controller {
        election,
        shutdown,
        server,
        ..
    } = process;
    let result = run_leader_elected(election, shutdown.clone(), |token| async move {
        let jumps = tidal_scheduler::clock::jumps(
            period,
            Duration::from_millis(500),
            token.clone(),
            move |d| {
                metrics.clock_jumps.inc();
                tracing::warn!(
                    drift_ms = d.as_millis() as u64,
                    "wall clock stepped; re-planning every Tidal"
                );
            },
        );
        bounded_after_cancel(&token, STOP_GRACE, run(ctx, token.clone(), jumps)).await
    })
    .await;
    shutdown.cancel();
    server.task.await?;
    tracing::info!("stopped");
    Ok(result?)
}
