//! The `elastic-scaler` binary as a library function, so a plugin crate builds its own binary with extra
//! algorithms and resource handlers: `elastic_scaler::app::main_with(|plugins| { ... })`.
//!
//! Flags (each with an env fallback) → logs → admin server and leader election → the built-in
//! registries, then the caller's registrations (a duplicate name is an error that stops start-up with
//! a message) → the controller until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::runtime::events::{Recorder, Reporter};
use pdo_runtime::controller::{Controller, STOP_GRACE, bounded_after_cancel, start_controller};
use pdo_runtime::events::EventQueue;
use pdo_runtime::leader::{LeaderArgs, run_leader_elected};
use pdo_runtime::{AdminArgs, LogArgs, init_tracing};

use crate::controller::{Config, Ctx, check_crd, run};
use crate::handlers::{Handlers, apps::Caches};
use crate::metrics::Metrics;
use crate::plugin::SharedFactory;
use crate::registry::{Registry, RegistryError, algorithm_key};
use crate::sources::Sources;

const COMPONENT: &str = "elastic-scaler";

/// The ElasticScaler controller: scales targets from metrics (HPA, KPA, APA or plugin algorithms) or
/// from a linked Tidal's desired count.
#[derive(Parser, Debug)]
#[command(name = COMPONENT, version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    leader: LeaderArgs,
    /// Watch only this namespace's ElasticScalers (and Deployments/StatefulSets); default: all.
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Prometheus base URL for Prometheus metrics without their own serverAddress.
    #[arg(long, env = "ES_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Seconds between two decisions of one scaler.
    #[arg(long, env = "ES_SYNC_PERIOD_SECONDS", default_value_t = 15.0)]
    sync_period_seconds: f64,
    /// Seconds before a failed read or write is retried (capped by the period).
    #[arg(long, env = "ES_RETRY_SECONDS", default_value_t = 5.0)]
    retry_seconds: f64,
    /// Deadline of one metric read (every pod scrape of it together, one query, one HTTP call).
    #[arg(long, env = "ES_METRIC_TIMEOUT_SECONDS", default_value_t = 3.0)]
    metric_timeout_seconds: f64,
    /// Scalers reconciled at once.
    #[arg(long, env = "ES_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Let spec.targetRef.namespace differ from the ElasticScaler's namespace. Off by default: whoever
    /// may create an ElasticScaler in one namespace could otherwise scale workloads in another.
    #[arg(long, env = "ES_ALLOW_CROSS_NAMESPACE_TARGETS", default_value_t = false, action = clap::ArgAction::Set)]
    allow_cross_namespace_targets: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Replay a request trace or metric samples through an ElasticScaler's policy, without a cluster
    /// (docs/simulator.md).
    Simulate(crate::simulate::SimulateArgs),
}

/// What a plugin crate may register before the controller starts (or before `simulate` runs: then
/// `client` answers every request with an error, since the simulator has no cluster).
pub struct Plugins {
    /// Scaling algorithms by lower-case name (hpa, kpa, apa, external are built in).
    pub algorithms: Registry<SharedFactory>,
    /// Resource handlers by group and kind.
    pub handlers: Handlers,
    /// The API client, for handlers that need one.
    pub client: kube::Client,
}

impl Plugins {
    /// The built-in algorithms, no handler but the generic one, and an API client without a cluster: what
    /// `simulate` gives a plugin crate's registration, so its algorithms can be simulated too.
    pub fn offline() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().build()?;
        let client = offline_client();
        Ok(Plugins {
            algorithms: crate::builtin::algorithms(http)?,
            handlers: Handlers::generic_only(client.clone()),
            client,
        })
    }

    /// Registers an algorithm under `name` (case-insensitive).
    pub fn algorithm(&mut self, name: &str, factory: SharedFactory) -> Result<(), RegistryError> {
        self.algorithms.insert(algorithm_key(Some(name)), factory)
    }

    /// Registers a resource handler for `apiVersion`/`kind`.
    pub fn handler(
        &mut self,
        api_version: &str,
        kind: &str,
        handler: crate::plugin::SharedHandler,
    ) -> Result<(), RegistryError> {
        self.handlers.register(api_version, kind, handler)
    }
}

/// An API client for `simulate`: every request fails at once, saying there is no cluster.
fn offline_client() -> kube::Client {
    let service = tower::service_fn(|_req: http::Request<kube::client::Body>| async {
        Err::<http::Response<http_body_util::Full<bytes::Bytes>>, _>(std::io::Error::other(
            "elastic-scaler simulate runs without a cluster",
        ))
    });
    kube::Client::new(service, "default")
}

fn seconds(flag: &str, v: f64, min: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        v.is_finite() && v >= min,
        "--{flag} must be at least {min} seconds (got {v})"
    );
    Ok(Duration::from_secs_f64(v))
}

/// Runs the binary with the built-in plugins plus whatever `register` adds.
pub async fn main_with(
    register: impl FnOnce(&mut Plugins) -> Result<(), RegistryError>,
) -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Simulate(sim)) = args.command {
        // The plugin crate's registration runs here too, so its algorithms can be simulated.
        let mut plugins = Plugins::offline()?;
        register(&mut plugins).map_err(|e| anyhow::anyhow!("registering plugins: {e}"))?;
        return crate::simulate::run_with(sim, &plugins.algorithms).await;
    }
    init_tracing(&args.log)?;
    let period = seconds("sync-period-seconds", args.sync_period_seconds, 1.0)?;
    let retry = seconds("retry-seconds", args.retry_seconds, 0.1)?;
    let timeout = seconds("metric-timeout-seconds", args.metric_timeout_seconds, 0.1)?;
    let (process, metrics) =
        start_controller(COMPONENT, &args.admin, &args.leader, Metrics::register).await?;
    let client = process.client.clone();
    check_crd(&client).await?;
    // Metric reads (target pods, the metrics APIs) without kube's retry of 429/503/504: a read that fails
    // fails within its deadline with the server's own message, and the period holds (missing data never
    // scales down); the next period reads again.
    let sources_client = {
        let mut cfg = kube::Config::infer()
            .await
            .map_err(|e| anyhow::anyhow!("Kubernetes client configuration: {e}"))?;
        cfg.default_retry = false;
        kube::Client::try_from(cfg)?
    };
    let http = reqwest::Client::builder()
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()?;
    let caches = Caches::start(
        client.clone(),
        args.watch_namespace.as_deref(),
        process.shutdown.clone(),
    );
    let mut plugins = Plugins {
        algorithms: crate::builtin::algorithms(http.clone())?,
        handlers: Handlers::builtin(client.clone(), &caches)?,
        client: client.clone(),
    };
    register(&mut plugins).map_err(|e| anyhow::anyhow!("registering plugins: {e}"))?;
    tracing::info!(algorithms = ?plugins.algorithms.keys(), handlers = ?plugins.handlers.keys(), "plugins registered");
    let reporter = Reporter {
        controller: COMPONENT.into(),
        instance: Some(process.identity.clone()),
    };
    let ctx = Arc::new(Ctx::new(
        client.clone(),
        Sources {
            client: sources_client,
            http,
            prometheus_url: args.prometheus_url.clone(),
            timeout,
        },
        plugins.handlers,
        plugins.algorithms,
        caches.tidals.clone(),
        EventQueue::start(
            Recorder::new(client, reporter),
            10_000,
            process.shutdown.clone(),
        ),
        metrics,
        Config {
            period,
            retry,
            concurrency: args.concurrency,
            namespace: args.watch_namespace.clone(),
            allow_cross_namespace: args.allow_cross_namespace_targets,
        },
    ));
    tracing::info!(version = env!("CARGO_PKG_VERSION"), namespace = ?args.watch_namespace, period_seconds = period.as_secs_f64(), "started");
    let Controller {
        election,
        shutdown,
        server,
        ..
    } = process;
    let result = run_leader_elected(election, shutdown.clone(), |token| async move {
        tokio::select! {
            _ = caches.ready() => {}
            _ = token.cancelled() => return Ok(()),
        }
        bounded_after_cancel(&token, STOP_GRACE, run(ctx, token.clone())).await
    })
    .await;
    shutdown.cancel();
    server.task.await?;
    tracing::info!("stopped");
    Ok(result?)
}
