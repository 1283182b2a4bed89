//! The admin HTTP server: `/healthz` (the process answers), `/readyz` (the component can do its job)
//! and `/metrics` (OpenMetrics text from one prometheus-client registry).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Args;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Admin server flags shared by every binary.
#[derive(Args, Clone, Debug)]
pub struct AdminArgs {
    /// Address of the admin server (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
}

/// A readiness flag the component sets once it can serve; `/readyz` reports it.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the component ready or not ready.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    /// Whether the component is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    ready: Readiness,
}

/// A running admin server.
pub struct AdminServer {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// The server task; it ends when the shutdown token is cancelled.
    pub task: JoinHandle<()>,
}

impl AdminServer {
    /// Binds `addr` and serves until `shutdown` is cancelled.
    pub async fn spawn(
        addr: SocketAddr,
        registry: Registry,
        ready: Readiness,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        Self::spawn_with(addr, registry, ready, shutdown, Router::new()).await
    }

    /// Like [`spawn`](Self::spawn), with the component's own routes merged in (e.g. a discovery endpoint).
    pub async fn spawn_with(
        addr: SocketAddr,
        registry: Registry,
        ready: Readiness,
        shutdown: CancellationToken,
        extra: Router,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("binding the admin server to {addr} (--admin-addr): {e}")
        })?;
        let local_addr = listener.local_addr()?;
        let app = router(AdminState {
            registry: Arc::new(registry),
            ready,
        })
        .merge(extra);
        let task = tokio::spawn(async move {
            let serve =
                axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "admin server failed");
            }
        });
        tracing::info!(%local_addr, "admin server listening");
        Ok(Self { local_addr, task })
    }
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[tokio::test]
    async fn probes_and_metrics_answer_and_stop_on_shutdown() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        registry.register("probe_test", "a test counter", c.clone());
        c.inc();
        let ready = Readiness::default();
        let token = CancellationToken::new();
        let srv = AdminServer::spawn(
            "127.0.0.1:0".parse().unwrap(),
            registry,
            ready.clone(),
            token.clone(),
        )
        .await
        .unwrap();
        let base = format!("http://{}", srv.local_addr);
        let get = |p: &str| reqwest::get(format!("{base}{p}"));
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/readyz").await.unwrap().status(), 503);
        ready.set(true);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);
        let m = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(m.contains("probe_test_total 1"), "{m}");
        token.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), srv.task)
            .await
            .unwrap()
            .unwrap();
    }
}
