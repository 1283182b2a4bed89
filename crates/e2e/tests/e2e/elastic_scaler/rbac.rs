//! Least privilege, proven: the chart's ServiceAccount, ClusterRole and leader-election Role are
//! installed, and the real elastic-scaler runs impersonating that ServiceAccount, with leader election,
//! through a decision that lists and scrapes pods, writes status and Events, watches Tidals and scales a
//! Deployment through `/scale`. A missing rule shows up as `forbidden` in its log. The metrics APIs' rules
//! are proven in `metrics_api.rs`, which runs the same way.

use std::time::Duration;

use test_kit::repo_root;

use super::{Rig, controller, inference};

/// Installs the chart's ServiceAccount, ClusterRole and leader-election Role in the rig's namespace and
/// restarts its controller impersonating that ServiceAccount, with leader election. Returns the guard that
/// deletes the cluster-scoped part, and the ServiceAccount's user name.
pub async fn run_as_chart_service_account(rig: &mut Rig) -> (test_kit::ClusterRbacGuard, String) {
    let release = format!("rbac-{}", &rig.ns.name[rig.ns.name.len() - 6..]);
    let out = std::process::Command::new(&rig.env.helm)
        .args(["template", &release, "--namespace", &rig.ns.name])
        .arg(repo_root().join("charts/pd-orchestrator"))
        .args(["--show-only", "charts/elastic-scaler/templates/rbac.yaml"])
        .args([
            "--show-only",
            "charts/elastic-scaler/templates/serviceaccount.yaml",
        ])
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cleanup = test_kit::ClusterRbacGuard {
        kubectl: rig.env.kubectl.clone(),
        name: format!("{release}-elastic-scaler"),
    };
    rig.env
        .kubectl
        .run(
            &["apply", "-n", &rig.ns.name, "-f", "-"],
            Some(&String::from_utf8_lossy(&out.stdout)),
        )
        .await
        .ok();
    let sa = format!(
        "system:serviceaccount:{}:{release}-elastic-scaler",
        rig.ns.name
    );
    let groups = format!(
        "system:serviceaccounts,system:serviceaccounts:{},system:authenticated",
        rig.ns.name
    );
    rig.ctrl.stop();
    rig.ctrl = controller(
        &rig.env,
        "elastic-scaler",
        &rig.ns.name,
        &[
            ("KUBE_RS_DEBUG_IMPERSONATE_USER", &sa),
            ("KUBE_RS_DEBUG_IMPERSONATE_GROUP", &groups),
            ("LEADER_ELECT", "true"),
            ("POD_NAMESPACE", &rig.ns.name),
        ],
    );
    (cleanup, sa)
}

#[tokio::test]
async fn elastic_scaler_works_with_exactly_the_chart_rbac() {
    let mut rig = Rig::new("es-rbac").await;
    let _cleanup = run_as_chart_service_account(&mut rig).await;
    rig.apply(&inference("llm", 1)).await;
    rig.apply(
        r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: llm}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 2
  maxReplicas: 3
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: HPA
      metrics:
      - {type: Pods, pods: {metricsName: "vllm:num_requests_running", target: {type: AverageValue, averageValue: "1"}}}
"#,
    )
    .await;
    rig.wait_replicas(
        "llm",
        "raised to minReplicas 2",
        Duration::from_secs(60),
        |r| r == 2,
    )
    .await;
    rig.wait_condition("llm", "MetricsCollected", "True", "")
        .await;
    let logs = rig.ctrl.logs();
    assert!(
        logs.contains("impersonating user"),
        "the controller ran as the chart's ServiceAccount"
    );
    assert!(
        logs.contains("acquired the leader-election Lease"),
        "leader election worked under the Role"
    );
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "no request was forbidden:\n{logs}"
    );
}
