//! The scale-to-zero proxy (DLX): holds the requests of a workload that is at zero, asks its
//! ElasticScaler to wake it, and releases the requests to its pods as they become ready.
//!
//! The ElasticScaler owns the hand-over: it points a Service (annotated `elasticscaler.io/scaler` and
//! `elasticscaler.io/workload-service`) at the DLX pods before scaling the workload to zero, and back
//! once the workload serves. The DLX, for each request:
//!
//! 1. finds the target Service from the target header, `Host` or `X-Forwarded-Host` ([`host`],
//!    [`catalog`]); none → 404 saying why;
//! 2. gets a place at a ready pod of the workload ([`target`]): pods come from the EndpointSlices of the
//!    workload Service ([`watch`]), optionally after an HTTP probe ([`probe`]); at most
//!    `--pod-concurrency` requests per pod, the rest held in FIFO order under per-target and global
//!    caps (503 + `Retry-After`), without reading more than a small budget of their bodies ([`body`]);
//! 3. the first held request of a target with no pod asks for a wake-up on the ElasticScaler
//!    ([`wake`]), once across all DLX replicas;
//! 4. sends the request straight to the pod address ([`pool`], [`proxy`]): HTTP/1.1 or h2c as the client
//!    spoke, upgrades (WebSocket) tunnelled, bodies streamed both ways with every chunk flushed, `Host`
//!    and `X-Forwarded-*` preserved ([`headers`]); a wake timeout → 504 naming the target. An
//!    HTTP/1.1 request with a free place at a ready pod goes there as bytes, without hyper ([`fast`],
//!    [`h1`]); everything else, and every request that must be held, goes through hyper.
//!
//! Requests that still reach the DLX after the Service is restored take the same path and find the
//! pods ready. Once a burst of held requests has drained, [`trim`] hands its memory back to the
//! kernel. On SIGTERM the DLX fails `/readyz`, keeps serving for `--shutdown-delay`, stops accepting,
//! releases what it can within `--drain-timeout` and answers the rest 503 + `Retry-After`.

pub mod args;
pub mod body;
pub mod catalog;
pub mod fast;
pub mod h1;
pub mod headers;
pub mod host;
pub mod metrics;
pub mod pool;
pub mod prefixed;
pub mod probe;
pub mod proxy;
pub mod server;
pub mod target;
pub mod trim;
pub mod wake;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::runtime::events::{Recorder, Reporter};
use pdo_runtime::events::EventQueue;
use pdo_runtime::{AdminServer, Readiness, shutdown_token};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use args::Args;

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::proxy::{Config, Proxy, WakeFn};
use crate::target::{Global, Limits};
use crate::wake::Waker;

const COMPONENT: &str = "dlx";

/// Runs the DLX until SIGTERM (or SIGINT), then drains.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let mut registry = Registry::with_prefix(COMPONENT);
    let metrics = Metrics::register(&mut registry);
    pdo_runtime::controller::register_build_info(&mut registry);
    let ready = Readiness::default();
    let shutdown = shutdown_token()?;
    let admin_stop = CancellationToken::new();
    let admin = AdminServer::spawn(
        args.admin.admin_addr,
        registry,
        ready.clone(),
        admin_stop.clone(),
    )
    .await?;

    let work = CancellationToken::new();
    let reporter = Reporter {
        controller: COMPONENT.into(),
        instance: Some(args.pod_name.clone()),
    };
    let events = EventQueue::start(Recorder::new(client.clone(), reporter), 1000, work.clone());
    tokio::spawn(wake::keep_warm(
        client.clone(),
        wake::KEEP_WARM_EVERY,
        work.clone(),
    ));
    let waker = Waker::new(
        client.clone(),
        events,
        args.pod_name.clone(),
        metrics.clone(),
    );
    let wake: WakeFn = Arc::new(move |h, t, at| waker.wake(h, t, at));
    let global = Global::new(Limits {
        pod_concurrency: args.pod_concurrency,
        max_held_per_target: usize::try_from(args.max_held_per_target).unwrap_or(usize::MAX),
        max_held: usize::try_from(args.max_held).unwrap_or(usize::MAX),
        wake_timeout: args.wake_timeout,
    });
    let target_header = match args.target_header.trim() {
        "" => None,
        h => Some(http::HeaderName::try_from(h).with_context(|| {
            format!("--target-header / DLX_TARGET_HEADER {h:?} is not a header name")
        })?),
    };
    let cfg = Config {
        target_header,
        retry_after: args.retry_after,
        hold_body_bytes: args.hold_body_bytes,
        probe_path: Some(args.probe_path.trim().to_string()).filter(|p| !p.is_empty()),
        attempts: args.attempts,
    };
    let pool = Pool::new(args.connect_timeout, args.idle_timeout);
    let proxy = Proxy::new(
        Arc::new(Catalog::default()),
        global,
        pool,
        wake,
        metrics,
        cfg,
    );

    let synced = watch::Synced::new(ready.clone());
    let ns = args.watch_namespace.clone();
    tokio::spawn(watch::services(
        client.clone(),
        ns.clone(),
        proxy.clone(),
        synced.clone(),
        work.clone(),
    ));
    tokio::spawn(watch::endpoint_slices(
        client,
        ns,
        proxy.clone(),
        synced,
        work.clone(),
    ));

    tokio::spawn(trim::run(proxy.clone(), work.clone()));

    let listeners = server::bind(&args.proxy_addr).await?;
    for l in &listeners {
        tracing::info!(local_addr = %l.local_addr()?, "proxy listening");
    }
    let accept = CancellationToken::new();
    let grace = args.drain_timeout + Duration::from_secs(1);
    let serving = server::spawn(listeners, proxy.clone(), accept.clone(), grace);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), namespace = ?args.watch_namespace, "started");

    shutdown.cancelled().await;
    ready.set(false);
    tracing::info!(delay = ?args.shutdown_delay, held = proxy.held(), "shutting down: serving until endpoints stop sending here");
    tokio::time::sleep(args.shutdown_delay).await;
    accept.cancel();
    let deadline = Instant::now() + args.drain_timeout;
    while proxy.held() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = proxy.held();
    if left > 0 {
        tracing::warn!(
            held = left,
            "drain timeout: answering the requests still held with 503"
        );
    }
    proxy.close_all();
    let _ = serving.await;
    work.cancel();
    admin_stop.cancel();
    admin.task.await?;
    tracing::info!("stopped");
    Ok(())
}
