//! Our CRDs are installed, Established, explained by `kubectl explain`, and printed with useful columns.

use std::time::Duration;

use test_kit::{Env, wait_until};

#[tokio::test]
async fn crds_are_established_and_explained() {
    let env = Env::get().await;
    for crd in [
        "elasticscalers.elasticscaler.io",
        "resourcescalinggroups.autoscaling.openfuyao.com",
        "tidals.tidal.io",
    ] {
        let out = env
            .kubectl
            .run(
                &[
                    "get",
                    "crd",
                    crd,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                ],
                None,
            )
            .await
            .ok();
        assert_eq!(out, "True", "{crd} is not Established");
    }
    // The CRD's OpenAPI is published a moment after it is Established.
    for (path, fields) in [
        (
            "rsg.spec.scalingStrategy.groupConfig",
            &["groupName", "replicas", "scaleDown"][..],
        ),
        (
            "elasticscaler.spec.trigger.metricsTrigger",
            &["scalingAlgorithm", "metrics"][..],
        ),
        ("tidal.spec.triggers.times.rules", &["cron", "replicas"][..]),
    ] {
        let explain = wait_until(
            &format!("kubectl explain {path}"),
            Duration::from_secs(30),
            || async {
                let out = env.kubectl.run(&["explain", path], None).await;
                Ok::<_, String>(out.success.then_some(out.stdout))
            },
        )
        .await;
        for field in fields {
            assert!(
                explain.contains(field),
                "kubectl explain {path} lacks {field}:\n{explain}"
            );
        }
    }
}

#[tokio::test]
async fn printer_columns_show_strategy_and_replicas() {
    let env = Env::get().await;
    let ns = env.namespace("printer-columns").await;
    let rsg = r#"
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: cols}
spec:
  targetResources:
  - {name: a, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: a}}
  - {name: b, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: b}}
  scalingStrategy: {type: GroupReplication, groupConfig: {replicas: 2}}
"#;
    env.kubectl
        .run(&["apply", "-n", &ns.name, "-f", "-"], Some(rsg))
        .await
        .ok();
    let table = env
        .kubectl
        .run(&["get", "rsg", "-n", &ns.name], None)
        .await
        .ok();
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    for col in [
        "NAME", "STRATEGY", "TARGETS", "DESIRED", "CURRENT", "READY", "AGE",
    ] {
        assert!(header.contains(col), "missing column {col}: {table}");
    }
    let row = lines.next().unwrap_or_default();
    // TARGETS and CURRENT come from status, which the RSG controller writes; the spec columns show now.
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells.get(..3),
        Some(&["cols", "GroupReplication", "2"][..]),
        "{table}"
    );
}
