//! The HTTPS admission server (validating + mutating) for the pd-orchestrator CRDs.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pdo_runtime::run_skeleton(
        "admission-webhook",
        "The HTTPS admission server (validating + mutating) for the pd-orchestrator CRDs.",
    )
    .await
}
