//! `rsg-controller`: the ResourceScalingGroup controller binary. Flags (each with an env fallback), logs,
//! the admin server, leader election, then [`rsg_controller::controller::run`] until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::runtime::events::{Recorder, Reporter};
use pdo_runtime::controller::{Controller, STOP_GRACE, bounded_after_cancel, start_controller};
use pdo_runtime::leader::{LeaderArgs, run_leader_elected};
use pdo_runtime::{AdminArgs, LogArgs, init_tracing};
use rsg_controller::context::{Config, Ctx};
use rsg_controller::controller::{State, Written, run};
use rsg_controller::metrics::Metrics;
use rsg_controller::prometheus::Prometheus;

const COMPONENT: &str = "rsg-controller";

/// The ResourceScalingGroup controller: GroupReplication and InplaceScaling.
#[derive(Parser, Debug)]
#[command(name = COMPONENT, version, about)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    leader: LeaderArgs,
    /// Prometheus base URL for scale-down ordering by `scaleDown.metric`, e.g. http://prometheus:9090.
    /// Unset: scale-down falls back to annotations, then to the highest group id.
    #[arg(long, env = "RSG_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Timeout of one Prometheus query, in seconds; a slow Prometheus falls back instead of stalling.
    #[arg(long, env = "RSG_PROMETHEUS_TIMEOUT_SECONDS", default_value_t = 5.0)]
    prometheus_timeout_seconds: f64,
    /// Watch only this namespace (RSGs, workloads, Services); default: all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Seconds between reconciles of an RSG when nothing changes.
    #[arg(long, env = "RSG_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// Seconds before a blocked RSG (missing target, name conflict, forbidden) is retried.
    #[arg(long, env = "RSG_RETRY_SECONDS", default_value_t = 15)]
    retry_seconds: u64,
    /// Groups created or removed concurrently within one RSG.
    #[arg(long, env = "RSG_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(&args.log)?;
    let prometheus = match args.prometheus_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "--prometheus-url / RSG_PROMETHEUS_URL {url:?} must start with http:// or https://"
            );
            Some(Prometheus::new(
                url,
                Duration::from_secs_f64(args.prometheus_timeout_seconds),
            )?)
        }
        None => {
            tracing::info!(
                "no RSG_PROMETHEUS_URL: scale-down uses annotations, then the highest group id"
            );
            None
        }
    };
    let (process, metrics) =
        start_controller(COMPONENT, &args.admin, &args.leader, Metrics::register).await?;
    let client = process.client.clone();
    let reporter = Reporter {
        controller: COMPONENT.into(),
        instance: Some(process.identity.clone()),
    };
    let state = Arc::new(State {
        ctx: Ctx {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            prometheus,
            metrics,
            config: Config {
                resync: Duration::from_secs(args.resync_seconds.max(1)),
                retry: Duration::from_secs(args.retry_seconds.max(1)),
                concurrency: usize::from(args.concurrency),
            },
        },
        written: Written::default(),
    });
    tracing::info!(version = env!("CARGO_PKG_VERSION"), namespace = ?args.watch_namespace, "started");
    let ns = args.watch_namespace.clone();
    let Controller {
        election,
        shutdown,
        server,
        ..
    } = process;
    let result = run_leader_elected(election, shutdown.clone(), |token| async move {
        bounded_after_cancel(&token, STOP_GRACE, async {
            run(state, ns, token.clone()).await;
            Ok(())
        })
        .await
    })
    .await;
    shutdown.cancel();
    server.task.await?;
    tracing::info!("stopped");
    Ok(result?)
}
