//! `elastic-scaler-example`: the stock elastic-scaler plus the `step` algorithm and the Widget handler.
//! Every flag of `elastic-scaler` applies.

use std::sync::Arc;

use elastic_scaler_plugin_example::{StepFactory, WidgetHandler};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    elastic_scaler::app::main_with(|plugins| {
        plugins.algorithm("step", Arc::new(StepFactory))?;
        let handler = Arc::new(WidgetHandler::new(plugins.client.clone()));
        plugins.handler("demo.pd-orchestrator.io/v1", "Widget", handler)?;
        Ok(())
    })
    .await
}
