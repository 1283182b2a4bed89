//! Crash safety: the controller is killed (SIGKILL) in the middle of a scale-up and of a scale-down and
//! restarted; it converges to exactly the desired groups, with no duplicate, orphaned or half-labelled
//! object.

use std::time::Duration;

use super::{BASES, Rig, controller_with, rsg};

/// Every `pd-*` Deployment and Service in the namespace is a labelled clone, and the clones are exactly
/// groups `1..groups` of both bases (and of the prefill Service).
async fn assert_exact(rig: &Rig, groups: u32) {
    let mut want_d: Vec<String> = Vec::new();
    let mut want_s: Vec<String> = Vec::new();
    for g in 1..groups {
        want_d.push(format!("pd-prefill-{g}"));
        want_d.push(format!("pd-decode-{g}"));
        want_s.push(format!("prefill-svc-pd-{g}"));
    }
    let names: Vec<&str> = want_d.iter().map(String::as_str).collect();
    rig.wait_clones("deployments", "g", &names).await;
    let names: Vec<&str> = want_s.iter().map(String::as_str).collect();
    rig.wait_clones("services", "g", &names).await;
    for kind in ["deployments", "services"] {
        let all = rig
            .kubectl(&["get", kind, "-o", "jsonpath={.items[*].metadata.name}"])
            .await;
        let labelled = rig.clones(kind, "g").await;
        for n in all
            .split_whitespace()
            .filter(|n| n.starts_with("pd-") || n.contains("-pd-"))
        {
            assert!(
                labelled.contains_key(n),
                "{kind} {n} exists without the group labels"
            );
        }
    }
    for g in 1..groups {
        let d = rig
            .deployments()
            .get(&format!("pd-prefill-{g}"))
            .await
            .unwrap();
        let tl = d.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            tl["rsg.io/group-id"],
            g.to_string(),
            "pod template of group {g} labelled"
        );
    }
}

#[tokio::test]
async fn rsg_converges_after_crashes_mid_scale_up_and_scale_down() {
    // One group at a time, so the kills land in the middle of the work.
    let slow = [("RSG_CONCURRENCY", "1")];
    let mut rig = Rig::new("rsg-crash").await;
    rig.apply(BASES).await;
    rig.apply(&rsg(&rig.ns.name, 1)).await;
    rig.wait_ready("g", 1).await;

    rig.kubectl(&["scale", "rsg", "g", "--replicas=12"]).await;
    for delay in [150, 250, 400] {
        rig.ctrl.crash();
        rig.ctrl = controller_with(&rig.env, &rig.ns.name, &rig.env.prometheus_url, &slow);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    rig.wait_ready("g", 12).await;
    assert_exact(&rig, 12).await;

    rig.kubectl(&["scale", "rsg", "g", "--replicas=3"]).await;
    for delay in [100, 200] {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        rig.ctrl.crash();
        rig.ctrl = controller_with(&rig.env, &rig.ns.name, &rig.env.prometheus_url, &slow);
    }
    rig.wait_ready("g", 3).await;
    assert_exact(&rig, 3).await;
}
