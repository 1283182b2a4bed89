//! `elastic-scaler`: the ElasticScaler controller with the built-in algorithms and resource handlers,
//! and `elastic-scaler simulate`, the policy simulator. See [`elastic_scaler::app`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    elastic_scaler::app::main_with(|_| Ok(())).await
}
