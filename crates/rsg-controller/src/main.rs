//! The ResourceScalingGroup controller: GroupReplication and InplaceScaling.
//!
//! Skeleton: serves `/healthz`, `/readyz`, `/metrics` and exits cleanly on SIGTERM. The component's
//! own issue fills in the rest.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pdo_runtime::run_skeleton(
        "rsg-controller",
        "The ResourceScalingGroup controller: GroupReplication and InplaceScaling.",
    )
    .await
}
