//! The RSG scale subresource maps to `.spec.scalingStrategy.groupConfig.replicas`, for `kubectl scale` and
//! for any client of `/scale` (a native HPA, our ElasticScaler).

use api_types::ResourceScalingGroup;
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::Api;
use kube::api::{Patch, PatchParams};
use test_kit::Env;

const RSG: &str = r#"
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: pd}
spec:
  targetResources:
  - {name: prefill, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: prefill}}
  - {name: decode, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}}
  scalingStrategy: {type: GroupReplication, groupConfig: {groupName: pd, replicas: 1}}
"#;

#[tokio::test]
async fn kubectl_scale_sets_group_replicas() {
    let env = Env::get().await;
    let ns = env.namespace("scale").await;
    env.kubectl
        .run(&["apply", "-n", &ns.name, "-f", "-"], Some(RSG))
        .await
        .ok();
    env.kubectl
        .run(
            &["scale", "rsg", "pd", "-n", &ns.name, "--replicas=3"],
            None,
        )
        .await
        .ok();
    let api: Api<ResourceScalingGroup> = Api::namespaced(env.client.clone(), &ns.name);
    let rsg = api.get("pd").await.unwrap();
    assert_eq!(rsg.spec.scaling_strategy.group_config.unwrap().replicas, 3);

    // The same through the API's /scale, as an autoscaler would do it.
    let scale: Scale = api.get_scale("pd").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    let patch = serde_json::json!({"spec": {"replicas": 0}});
    api.patch_scale("pd", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let rsg = api.get("pd").await.unwrap();
    assert_eq!(rsg.spec.scaling_strategy.group_config.unwrap().replicas, 0);
}

#[tokio::test]
async fn scale_below_zero_is_rejected() {
    let env = Env::get().await;
    let ns = env.namespace("scale-negative").await;
    env.kubectl
        .run(&["apply", "-n", &ns.name, "-f", "-"], Some(RSG))
        .await
        .ok();
    let api: Api<ResourceScalingGroup> = Api::namespaced(env.client.clone(), &ns.name);
    let patch = serde_json::json!({"spec": {"replicas": -1}});
    let err = api
        .patch_scale("pd", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("replicas"), "{err}");
    let rsg = api.get("pd").await.unwrap();
    assert_eq!(
        rsg.spec.scaling_strategy.group_config.unwrap().replicas,
        1,
        "a rejected scale must change nothing"
    );
}
