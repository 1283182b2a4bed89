//! The ElasticScaler controller: metric sources, scaling algorithms, resource handlers.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pdo_runtime::run_skeleton(
        "elastic-scaler",
        "The ElasticScaler controller: metric sources, scaling algorithms, resource handlers.",
    )
    .await
}
