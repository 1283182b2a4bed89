//! The scale-to-zero proxy that holds requests while a workload is at zero.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pdo_runtime::run_skeleton(
        "dlx",
        "The scale-to-zero proxy that holds requests while a workload is at zero.",
    )
    .await
}
