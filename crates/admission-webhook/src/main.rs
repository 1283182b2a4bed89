//! The HTTPS admission server (validating + mutating) for the pd-orchestrator CRDs. See the crate docs
//! (`lib.rs`) for the flow and `--help` for the flags.

use std::sync::Arc;
use std::time::Duration;

use admission_webhook::args::{Args, TlsMode};
use admission_webhook::checks::{Caches, Sar};
use admission_webhook::metrics::Metrics;
use admission_webhook::server::{self, App};
use admission_webhook::tls::{self, CertStore, SelfManaged};
use anyhow::Context;
use clap::Parser;
use pdo_runtime::{AdminServer, Readiness, init_tracing, shutdown_token};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(&args.log)?;
    let mut registry = prometheus_client::registry::Registry::with_prefix("admission_webhook");
    let metrics = Metrics::register(&mut registry);
    let shutdown = shutdown_token()?;
    let ready = Readiness::default();
    let admin = AdminServer::spawn(
        args.admin.admin_addr,
        registry,
        ready.clone(),
        shutdown.clone(),
    )
    .await?;

    let needs_client =
        args.cluster_checks || args.rbac_check || args.tls_mode == TlsMode::SelfManaged;
    let client = if needs_client {
        Some(kube::Client::try_default().await.context(
            "building a Kubernetes client (in-cluster or KUBECONFIG); --cluster-checks, --rbac-check and --tls-mode self-managed need one",
        )?)
    } else {
        None
    };
    let caches = match (&client, args.cluster_checks) {
        (Some(c), true) => Some(Caches::start(c, &shutdown)),
        _ => None,
    };
    let sar = match (&client, args.rbac_check) {
        (Some(c), true) => Some(Sar::new(c.clone(), args.sar_cache_ttl)),
        _ => None,
    };

    let certs = Arc::new(CertStore::new());
    match (args.tls_mode, &client) {
        (TlsMode::Files, _) => {
            tokio::spawn(tls::watch_files(
                certs.clone(),
                args.tls_cert_file.clone(),
                args.tls_key_file.clone(),
                args.tls_reload_interval,
                metrics.clone(),
                shutdown.clone(),
            ));
        }
        (TlsMode::SelfManaged, Some(c)) => {
            let sm = SelfManaged {
                namespace: args.namespace.clone(),
                secret: args.tls_secret.clone(),
                sans: args.sans(),
                validity: args.cert_validity,
                ca_validity: args.ca_validity,
                renew_before: args.cert_renew_before,
                interval: args.cert_check_interval,
                propagation_delay: args.ca_propagation_delay,
                validating: Some(args.validating_webhook_configuration.clone())
                    .filter(|s| !s.is_empty()),
                mutating: Some(args.mutating_webhook_configuration.clone())
                    .filter(|s| !s.is_empty()),
            };
            tokio::spawn(sm.run(c.clone(), certs.clone(), metrics.clone(), shutdown.clone()));
        }
        (TlsMode::SelfManaged, None) => unreachable!("self-managed mode always builds a client"),
    }

    // Ready once the caches have synced and while a valid certificate is served.
    {
        let (certs, caches, ready, shutdown) = (
            certs.clone(),
            caches.clone(),
            ready.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Some(c) = &caches {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = c.wait_ready() => tracing::info!("watch caches synced"),
                }
            }
            loop {
                ready.set(certs.valid_now());
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
    }

    let app = Arc::new(App {
        caches,
        sar,
        allow_multiple_scalers: args.allow_multiple_scalers,
        metrics,
        timeout: args.request_timeout,
    });
    let listener = tokio::net::TcpListener::bind(args.webhook_addr)
        .await
        .with_context(|| {
            format!(
                "binding the webhook server to {} (--webhook-addr)",
                args.webhook_addr
            )
        })?;
    tracing::info!(addr = %listener.local_addr()?, mode = ?args.tls_mode, "admission server listening");
    server::serve_tls(
        listener,
        tls::server_config(certs)?,
        server::router(app, args.max_body_bytes),
        shutdown.clone(),
    )
    .await;
    ready.set(false);
    admin.task.await?;
    tracing::info!("stopped");
    Ok(())
}
