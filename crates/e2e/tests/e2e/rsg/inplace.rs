//! InplaceScaling (seed 002's example): scheduler 3, worker ×2, sidecar ×1 → 3 / 6 / 3; when something
//! else scales the leader, the followers follow within one reconcile and the leader is not reverted.

use std::time::Duration;

use test_kit::wait_until;

use super::Rig;

fn deployment(name: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: registry.local/{name}:1}}]}}
---"#
    )
}

/// Seed 002's InplaceScaling example as the user would apply it (examples/seeds keeps it, corrected only
/// where a real cluster rejects it).
fn seed_rsg() -> String {
    std::fs::read_to_string(test_kit::repo_root().join("examples/seeds/002-inplace-scaling.yaml"))
        .expect("examples/seeds/002-inplace-scaling.yaml")
}

async fn wait_replicas(rig: &Rig, want: [(&str, i32); 3]) {
    let what = format!("replicas {want:?}");
    wait_until(&what, Duration::from_secs(30), || async {
        for (d, n) in want {
            if rig.replicas(d).await != Some(n) {
                return Ok::<_, String>(None);
            }
        }
        Ok(Some(()))
    })
    .await;
}

#[tokio::test]
async fn rsg_inplace_scaling_followers_follow_the_leader() {
    let rig = Rig::new("rsg-inplace").await;
    let all = ["scheduler", "worker", "sidecar"]
        .map(deployment)
        .join("\n");
    rig.apply(&all).await;
    rig.apply(&seed_rsg()).await;
    wait_replicas(&rig, [("scheduler", 3), ("worker", 6), ("sidecar", 3)]).await;
    let r = rig.wait_ready("leader-follower-rsg", 3).await;
    assert_eq!(r.status.unwrap().last_desired_replicas, Some(3));

    // Something else (kubectl, an HPA) scales the leader: followers follow, the leader stays where it was put.
    rig.kubectl(&["scale", "deploy", "scheduler", "--replicas=5"])
        .await;
    wait_replicas(&rig, [("scheduler", 5), ("worker", 10), ("sidecar", 5)]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.replicas("scheduler").await,
        Some(5),
        "the leader is not reverted to leader.replicas"
    );

    // Editing leader.replicas forces the leader once.
    rig.kubectl(&[
        "patch", "rsg", "leader-follower-rsg", "--type=json",
        "-p", r#"[{"op":"replace","path":"/spec/scalingStrategy/leaderFollowerConfig/leader/replicas","value":2}]"#,
    ])
    .await;
    wait_replicas(&rig, [("scheduler", 2), ("worker", 4), ("sidecar", 2)]).await;
}
