//! Plugins are really called: the example binary (`examples/elastic-scaler-plugin`) registers the `step`
//! algorithm and a Widget handler; a scaler naming `step` on a Widget is decided by the plugin and the
//! Widget is resized through the handler. The stock binary reports the same name as unknown.

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use test_kit::wait_until;

use super::{Rig, controller};

const SCALER: &str = r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: widgets}
spec:
  targetRef: {apiVersion: demo.pd-orchestrator.io/v1, kind: Widget, name: w}
  minReplicas: 1
  maxReplicas: 8
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: Step
      algorithmConfig: {step: "2"}
      metrics:
      - {type: Prometheus, prometheus: {query: "vector(5)", target: {type: AverageValue, averageValue: "1"}}}
"#;

#[tokio::test]
async fn a_plugin_algorithm_and_resource_handler_are_invoked() {
    let mut rig = Rig::with_binary("es-plugins", "elastic-scaler-example").await;
    let crd = std::fs::read_to_string(
        test_kit::repo_root().join("examples/elastic-scaler-plugin/deploy/widget-crd.yaml"),
    )
    .unwrap();
    rig.env
        .kubectl
        .run(&["apply", "--server-side", "-f", "-"], Some(&crd))
        .await
        .ok();
    rig.env
        .kubectl
        .wait_crd_established("widgets.demo.pd-orchestrator.io")
        .await;
    rig.apply("apiVersion: demo.pd-orchestrator.io/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n").await;
    rig.apply(SCALER).await;

    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "demo.pd-orchestrator.io",
        "v1",
        "Widget",
    ));
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(rig.env.client.clone(), &rig.ns.name, &ar);
    wait_until(
        "Widget w resized to 6 by the step plugin",
        Duration::from_secs(30),
        || async {
            let w = widgets.get("w").await?;
            Ok::<_, kube::Error>((w.data["spec"]["size"] == 6).then_some(()))
        },
    )
    .await;
    let msg = rig
        .wait_condition("widgets", "ScalingCalculated", "True", "step:")
        .await;
    assert!(msg.contains("in steps of 2 → 6"), "{msg}");
    assert!(
        rig.ctrl.logs().contains("\"step\""),
        "the registered algorithms are logged"
    );

    // The stock elastic-scaler does not know `step`: it says so instead of silently doing nothing.
    rig.ctrl.stop();
    rig.ctrl = controller(&rig.env, "elastic-scaler", &rig.ns.name, &[]);
    let msg = rig
        .wait_condition(
            "widgets",
            "Validated",
            "False",
            "unknown scaling algorithm \"step\"",
        )
        .await;
    assert!(msg.contains("registered are"), "{msg}");
}
