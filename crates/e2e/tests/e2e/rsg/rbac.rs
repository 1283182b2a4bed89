//! Least privilege, proven: the chart's own ServiceAccount, ClusterRole and leader-election Role are
//! installed, and the real controller runs impersonating that ServiceAccount through a whole
//! GroupReplication cycle (adoption, clones and Service clones, scale down, finalizer cleanup) with
//! leader election on. A missing rule fails this test with the controller's `Forbidden` condition.

use std::time::Duration;

use kube::api::DeleteParams;
use test_kit::{repo_root, wait_until};

use super::{BASES, Rig, controller_with, rsg};

#[tokio::test]
async fn rsg_controller_works_with_exactly_the_chart_rbac() {
    let mut rig = Rig::new("rsg-rbac").await;
    let release = format!("rbac-{}", &rig.ns.name[rig.ns.name.len() - 6..]);
    let out = std::process::Command::new(&rig.env.helm)
        .args(["template", &release])
        .arg(repo_root().join("charts/pd-orchestrator"))
        .args([
            "--set",
            &format!("resourcescalinggroup.namespace.name={}", rig.ns.name),
        ])
        .args([
            "--show-only",
            "charts/resourcescalinggroup/templates/rbac.yaml",
        ])
        .args([
            "--show-only",
            "charts/resourcescalinggroup/templates/serviceaccount.yaml",
        ])
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _cleanup = test_kit::ClusterRbacGuard {
        kubectl: rig.env.kubectl.clone(),
        name: format!("{release}-resourcescalinggroup"),
    };
    rig.env
        .kubectl
        .run(
            &["apply", "-f", "-"],
            Some(&String::from_utf8_lossy(&out.stdout)),
        )
        .await
        .ok();

    let sa = format!(
        "system:serviceaccount:{}:{release}-resourcescalinggroup",
        rig.ns.name
    );
    let groups = format!(
        "system:serviceaccounts,system:serviceaccounts:{},system:authenticated",
        rig.ns.name
    );
    rig.ctrl.stop();
    rig.ctrl = controller_with(
        &rig.env,
        &rig.ns.name,
        &rig.env.prometheus_url,
        &[
            ("KUBE_RS_DEBUG_IMPERSONATE_USER", &sa),
            ("KUBE_RS_DEBUG_IMPERSONATE_GROUP", &groups),
            ("LEADER_ELECT", "true"),
            ("POD_NAMESPACE", &rig.ns.name),
        ],
    );
    rig.apply(BASES).await;
    rig.apply(&rsg(&rig.ns.name, 3)).await;
    rig.wait_ready("g", 3).await;
    rig.wait_clones("services", "g", &["prefill-svc-pd-1", "prefill-svc-pd-2"])
        .await;
    rig.kubectl(&["scale", "rsg", "g", "--replicas=1"]).await;
    rig.wait_ready("g", 1).await;
    rig.wait_clones("deployments", "g", &[]).await;
    rig.rsgs()
        .delete("g", &DeleteParams::default())
        .await
        .unwrap();
    wait_until(
        "RSG g deleted by its finalizer",
        Duration::from_secs(30),
        || async { Ok::<_, kube::Error>(rig.rsgs().get_opt("g").await?.is_none().then_some(())) },
    )
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
        !logs.contains("forbidden"),
        "no request was forbidden:\n{logs}"
    );
}
