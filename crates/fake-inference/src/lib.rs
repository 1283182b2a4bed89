//! A vLLM-like fake LLM server: the workload of every pd-orchestrator e2e test, benchmark and demo.
//!
//! It speaks enough of vLLM's OpenAI-compatible API for routers and clients (`/v1/completions`,
//! `/v1/chat/completions`, streaming or not, `/v1/models`, `/health`) and exports the vLLM metrics the
//! autoscaler scales on (`/metrics`), while simulating an engine's capacity instead of running a model.
//!
//! The flow of a completion request:
//!
//! 1. [`api`] parses the body into a [`Job`](openai::Job) (400 in OpenAI's error shape if malformed);
//! 2. the [`Engine`] admits it as *waiting* — or answers 503 during the simulated cold start and 429
//!    when running + waiting requests fill `max_concurrency + max_queue`;
//! 3. the request waits FIFO for one of `max_concurrency` slots and becomes *running*;
//! 4. tokens `tok0 tok1 …` come out after the prefill time (`--ttft-ms`) at `--tokens-per-second`, as one
//!    JSON body or as server-sent events flushed one per token;
//! 5. the slot is freed when the request finishes or its client goes away, whichever comes first.
//!
//! [`Metrics`] follows every step and renders the classic Prometheus text format with vLLM's names.
//!
//! For testing proxies in front of it (the DLX), [`protocols`] adds a WebSocket echo (`/ws/echo`) and the
//! gRPC health check over h2c (`/grpc.health.v1.Health/Check`), both following the cold start, and
//! fixed-size bodies (`/bytes/{n}`) for proxy benchmarks.
//!
//! ```no_run
//! # async fn run() -> Result<(), fake_inference::ServeError> {
//! use clap::Parser;
//! let config = fake_inference::Config::parse_from(["fake-inference", "--listen", "127.0.0.1:0"]);
//! let server = fake_inference::FakeServer::bind(&config).await?;
//! println!("serving on {}", server.local_addr());
//! server.run(std::future::pending()).await
//! # }
//! ```

pub mod api;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod openai;
pub mod protocols;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use engine::Engine;
pub use metrics::Metrics;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("binding {addr} (--listen): {source}")]
    Bind {
        /// The address from `--listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet serving, fake inference server. The cold start starts counting at [`bind`](Self::bind).
#[derive(Debug)]
pub struct FakeServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    engine: Engine,
    app: Router,
}

impl FakeServer {
    /// Binds `config.listen` and builds the engine and the API.
    pub async fn bind(config: &Config) -> Result<Self, ServeError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let metrics = Arc::new(Metrics::new(
            &config.model,
            &config.group_id,
            config.max_concurrency,
        ));
        let engine = Engine::new(config, metrics);
        let app = api::router(engine.clone(), &config.model, config.default_max_tokens);
        Ok(Self {
            listener,
            local_addr,
            engine,
            app,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The engine, to read its metrics in-process.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Serve)
    }
}
