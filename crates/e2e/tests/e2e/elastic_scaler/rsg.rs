//! An ElasticScaler drives a ResourceScalingGroup end to end: its decision goes through the RSG's
//! `/scale` (groups), the real rsg-controller creates the clone groups, and the scaler reads the groups
//! back from the RSG's status.

use std::sync::atomic::Ordering;
use std::time::Duration;

use api_types::ResourceScalingGroup;
use kube::Api;
use test_kit::wait_until;

use super::Rig;
use super::spec::stub;

#[tokio::test]
async fn an_elastic_scaler_scales_a_resource_scaling_group_by_groups() {
    let rig = Rig::new("es-rsg").await;
    let _rsg_controller = crate::rsg::controller(&rig.env, &rig.ns.name, &rig.env.prometheus_url);
    let stub = stub().await;
    stub.replicas.store(3, Ordering::Relaxed);
    rig.apply(crate::rsg::BASES).await;
    rig.apply(&crate::rsg::rsg(&rig.ns.name, 1)).await;
    let rsgs: Api<ResourceScalingGroup> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    let groups = |want: i32| {
        let rsgs = rsgs.clone();
        async move {
            wait_until(
                &format!("RSG g at {want} groups"),
                Duration::from_secs(60),
                || async {
                    let r = rsgs.get("g").await?;
                    let spec = r
                        .spec
                        .scaling_strategy
                        .group_config
                        .as_ref()
                        .map(|g| g.replicas);
                    let current = r.status.and_then(|s| s.current_replicas);
                    Ok::<_, kube::Error>(
                        (spec == Some(want) && current == Some(want)).then_some(()),
                    )
                },
            )
            .await
        }
    };
    groups(1).await;
    rig.apply(&format!(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {{name: pd}}
spec:
  targetRef: {{apiVersion: autoscaling.openfuyao.com/v1alpha1, kind: ResourceScalingGroup, name: g}}
  minReplicas: 1
  maxReplicas: 4
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: external
      algorithmConfig: {{url: "http://{addr}/decide"}}
      metrics:
      - {{type: ExternalServer, externalServer: {{endpoint: "{addr}/metric", protocol: http, metricsName: queue, target: "10"}}}}
"#,
        addr = stub.addr
    ))
    .await;
    groups(3).await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    for name in ["pd-prefill-1", "pd-prefill-2", "pd-decode-1", "pd-decode-2"] {
        assert!(
            deployments.get_opt(name).await.unwrap().is_some(),
            "clone {name} exists"
        );
    }
    wait_until(
        "the scaler to see 3 groups",
        Duration::from_secs(30),
        || async {
            let es = rig.scalers().get("pd").await?;
            Ok::<_, kube::Error>(
                (es.status.and_then(|s| s.current_replicas) == Some(3)).then_some(()),
            )
        },
    )
    .await;
    // Down again: the RSG removes groups (highest id first without Prometheus data).
    stub.replicas.store(1, Ordering::Relaxed);
    groups(1).await;
}
