//! Process plumbing shared by every pd-orchestrator binary.
//!
//! A binary's `main` is meant to be short:
//!
//! 1. parse its clap `Args`, which `#[command(flatten)]` the [`LogArgs`] and [`AdminArgs`] groups here;
//! 2. [`init_tracing`] with the [`LogArgs`];
//! 3. build a [`Registry`](prometheus_client::registry::Registry) and its own metrics;
//! 4. [`shutdown_token`] for SIGTERM/SIGINT, and [`AdminServer::spawn`] for `/healthz`, `/readyz`, `/metrics`;
//! 5. run its work until the token is cancelled, then return.
//!
//! Readiness is a shared flag ([`Readiness`]) that the component flips when it can do its job (CRDs found,
//! cache synced, certificate loaded); liveness is the admin server answering at all.

mod admin;
pub mod controller;
pub mod events;
pub mod leader;
mod logging;
mod shutdown;
pub mod testing;

pub use admin::{AdminArgs, AdminServer, Readiness};
pub use logging::{LogArgs, LogFormat, init_tracing};
pub use shutdown::shutdown_token;

/// The flags of a component that so far only serves its admin endpoints.
#[derive(clap::Parser, Debug)]
pub struct SkeletonArgs {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    admin: AdminArgs,
}

/// `main` of a component that so far only serves its admin endpoints: flags (with env fallbacks), logs,
/// `/healthz`, `/readyz` (ready at once), `/metrics` with a `<component>_build_info` gauge, and a clean exit
/// on SIGTERM. The component issues replace this with their controllers; it keeps the binaries deployable
/// and their charts testable meanwhile.
pub async fn run_skeleton(component: &'static str, about: &'static str) -> anyhow::Result<()> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = SkeletonArgs::command()
        .name(component)
        .about(about)
        .get_matches();
    let args = SkeletonArgs::from_arg_matches(&matches)?;
    init_tracing(&args.log)?;
    let mut registry =
        prometheus_client::registry::Registry::with_prefix(component.replace('-', "_"));
    controller::register_build_info(&mut registry);
    let shutdown = shutdown_token()?;
    let ready = Readiness::default();
    let server = AdminServer::spawn(
        args.admin.admin_addr,
        registry,
        ready.clone(),
        shutdown.clone(),
    )
    .await?;
    ready.set(true);
    tracing::info!(component, version = env!("CARGO_PKG_VERSION"), "started");
    shutdown.cancelled().await;
    server.task.await?;
    tracing::info!(component, "stopped");
    Ok(())
}
