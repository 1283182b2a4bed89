//! The start-up every controller binary shares, in one call: the TLS crypto provider, a Kubernetes client,
//! the metrics registry (the component's own metrics plus `<prefix>_build_info`), readiness, the leader
//! election, the SIGTERM token and the admin server. A controller's `main` parses its flags, calls
//! [`start_controller`], builds its context and runs its work under
//! [`run_leader_elected`](crate::leader::run_leader_elected).

use anyhow::Context as _;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::leader::{Election, LeaderArgs};
use crate::{AdminArgs, AdminServer, Readiness, shutdown_token};

/// A started controller process, ready for its work.
pub struct Controller {
    /// The API client (in-cluster config or `KUBECONFIG`).
    pub client: kube::Client,
    /// The leader election to run the work under.
    pub election: Election,
    /// Cancelled on SIGTERM or SIGINT.
    pub shutdown: CancellationToken,
    /// The admin server (`/healthz`, `/readyz`, `/metrics`); await its task at the end.
    pub server: AdminServer,
    /// This replica's identity: the Lease holder, and the instance in Events it reports.
    pub identity: String,
}

/// Registers `<prefix>_build_info`, always 1: the process is up.
pub fn register_build_info(registry: &mut Registry) {
    let info: Gauge = Gauge::default();
    info.set(1);
    registry.register("build_info", "Always 1; the process is up", info);
}

/// Starts the shared parts of `component`; `register` adds the component's own metrics to the registry
/// (prefix: the component's name with `_` for `-`) and returns them.
pub async fn start_controller<M>(
    component: &'static str,
    admin: &AdminArgs,
    leader: &LeaderArgs,
    register: impl FnOnce(&mut Registry) -> M,
) -> anyhow::Result<(Controller, M)> {
    // One process-wide crypto provider for kube's and reqwest's rustls, whatever features other crates
    // enable (with two providers compiled in, rustls would refuse to pick one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let mut registry = Registry::with_prefix(component.replace('-', "_"));
    let metrics = register(&mut registry);
    register_build_info(&mut registry);
    let ready = Readiness::default();
    let election = Election::new(
        client.clone(),
        leader,
        component,
        ready.clone(),
        &mut registry,
    )?;
    let shutdown = shutdown_token()?;
    let server = AdminServer::spawn(admin.admin_addr, registry, ready, shutdown.clone()).await?;
    let controller = Controller {
        client,
        election,
        shutdown,
        server,
        identity: leader.identity(),
    };
    Ok((controller, metrics))
}

/// How long a controller's work gets after shutdown starts before the process exits anyway.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `work` until it ends, or until `grace` after `token` is cancelled, whichever comes first.
///
/// Reconciles in flight get a bounded time to finish; a stuck one — or a kube-runtime `Controller` whose
/// graceful shutdown does not complete, seen when SIGTERM arrives while its watches are still starting —
/// must not keep the process from exiting (the Lease is released by the caller afterwards either way).
pub async fn bounded_after_cancel<F>(
    token: &CancellationToken,
    grace: std::time::Duration,
    work: F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    tokio::select! {
        r = work => r,
        _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "the controller did not stop within the grace period of shutdown; exiting anyway");
            Ok(())
        }
    }
}

#[cfg(test)]
mod bounded_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stuck_work_ends_grace_after_cancel_and_finished_work_returns_its_result() {
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            t.cancel();
        });
        let start = tokio::time::Instant::now();
        let r = bounded_after_cancel(
            &token,
            std::time::Duration::from_secs(5),
            std::future::pending(),
        )
        .await;
        assert!(r.is_ok());
        assert_eq!(start.elapsed().as_secs(), 8);

        let token = CancellationToken::new();
        let r = bounded_after_cancel(&token, STOP_GRACE, async { anyhow::bail!("failed") }).await;
        assert_eq!(r.unwrap_err().to_string(), "failed");
    }
}
