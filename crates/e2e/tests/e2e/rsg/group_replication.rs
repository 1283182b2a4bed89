//! GroupReplication as seed 002 documents it: adoption (snapshots, baseline ConfigMap, group labels),
//! clones and Service clones across namespaces, the ConfigMap baseline, scale down with the last fallback,
//! scale to zero and back, a name collision, the finalizer, an invalid spec, and a native HPA driving the
//! scale subresource.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use test_kit::wait_until;

use super::{BASES, Rig, rsg};

#[tokio::test]
async fn rsg_group_replication_full_cycle() {
    let rig = Rig::new("rsg-gr").await;
    let base_ns = rig.env.namespace("rsg-gr-base").await;
    rig.env
        .kubectl
        .run(&["apply", "-n", &base_ns.name, "-f", "-"], Some(BASES))
        .await
        .ok();
    rig.apply(&rsg(&base_ns.name, 3)).await;

    // Clones of both bases for groups 1 and 2, in the RSG's namespace; the prefill Service cloned per group.
    rig.wait_clones(
        "deployments",
        "g",
        &["pd-prefill-1", "pd-prefill-2", "pd-decode-1", "pd-decode-2"],
    )
    .await;
    rig.wait_clones("services", "g", &["prefill-svc-pd-1", "prefill-svc-pd-2"])
        .await;
    let r = rig.wait_ready("g", 3).await;
    let s = r.status.unwrap();
    assert_eq!(s.last_desired_replicas, Some(3));
    assert_eq!(s.selector.as_deref(), Some("rsg.io/name=g"));
    assert_eq!(s.targets.as_deref(), Some("prefill,decode"));

    let clone = rig.deployments().get("pd-prefill-2").await.unwrap();
    let spec = clone.spec.unwrap();
    assert_eq!(
        spec.replicas,
        Some(2),
        "clone replicas come from the baseline (prefill had 2)"
    );
    let ml = spec.selector.match_labels.unwrap();
    assert_eq!(ml["rsg.io/group-id"], "2");
    assert_eq!(ml["app"], "prefill");
    let tl = spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(
        (tl["rsg.io/name"].as_str(), tl["rsg.io/group-id"].as_str()),
        ("g", "2")
    );

    let svcs: Api<Service> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    let sel = svcs
        .get("prefill-svc-pd-1")
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap();
    assert_eq!(sel["app"], "prefill");
    assert_eq!(
        sel["rsg.io/group-id"], "1",
        "a cloned Service selects only its group"
    );

    // Bases are labelled as group 0 (object and pod template) and kept in their namespace.
    let bases: Api<Deployment> = Api::namespaced(rig.env.client.clone(), &base_ns.name);
    let base = bases.get("prefill").await.unwrap();
    assert_eq!(
        base.metadata.labels.as_ref().unwrap()["rsg.io/group-id"],
        "0"
    );
    assert_eq!(
        base.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .labels
            .unwrap()["rsg.io/name"],
        "g"
    );

    // Snapshots (ControllerRevisions owned by the RSG) and the baseline ConfigMap.
    let crs: Api<ControllerRevision> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    let snaps = crs
        .list(&ListParams::default().labels("rsg.io/name=g"))
        .await
        .unwrap()
        .items;
    assert_eq!(snaps.len(), 2, "one snapshot per target");
    assert!(snaps.iter().all(|c| {
        c.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o[0].kind == "ResourceScalingGroup")
    }));
    assert!(snaps.iter().all(|c| {
        !c.metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("controller.kubernetes.io/hash")
    }));
    let cms: Api<ConfigMap> = Api::namespaced(rig.env.client.clone(), &rig.ns.name);
    let cm = cms.get("g-replica-config").await.unwrap();
    assert_eq!(cm.metadata.labels.as_ref().unwrap()["rsg.io/name"], "g");
    let data = cm.data.unwrap();
    assert_eq!(
        (data["prefill"].as_str(), data["decode"].as_str()),
        ("2", "1")
    );

    // The snapshot is not refreshed when the base changes: a later clone still has the old image.
    rig.env
        .kubectl
        .run(
            &[
                "set",
                "image",
                "deployment/prefill",
                "c=registry.local/prefill:2",
                "-n",
                &base_ns.name,
            ],
            None,
        )
        .await
        .ok();
    // Editing the baseline changes the replicas of new groups.
    rig.kubectl(&[
        "patch",
        "configmap",
        "g-replica-config",
        "--type=merge",
        "-p",
        r#"{"data":{"prefill":"1"}}"#,
    ])
    .await;
    rig.kubectl(&["scale", "rsg", "g", "--replicas=4"]).await;
    rig.wait_ready("g", 4).await;
    let third = rig
        .deployments()
        .get("pd-prefill-3")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        third.replicas,
        Some(1),
        "new groups take the edited baseline"
    );
    assert_eq!(
        third.template.spec.unwrap().containers[0].image.as_deref(),
        Some("registry.local/prefill:1"),
        "clones come from the snapshot, not the changed base"
    );

    // Scale down without a metric or annotations: highest group id first, recorded in status.
    rig.kubectl(&["scale", "rsg", "g", "--replicas=2"]).await;
    rig.wait_clones("deployments", "g", &["pd-prefill-1", "pd-decode-1"])
        .await;
    rig.wait_clones("services", "g", &["prefill-svc-pd-1"])
        .await;
    let r = rig.wait_ready("g", 2).await;
    let sd = r.status.unwrap().last_scale_down.unwrap();
    assert_eq!(sd.path, "MaxGroupId");
    assert_eq!(sd.groups, vec![3, 2]);
    assert!(
        sd.reason.contains("fallback to max group-id"),
        "{}",
        sd.reason
    );
    let logs = rig.ctrl.logs();
    assert!(
        logs.contains("fallback to max group-id"),
        "the controller log says which path decided"
    );

    // Zero: every clone removed, bases kept at 0 replicas.
    rig.kubectl(&["scale", "rsg", "g", "--replicas=0"]).await;
    rig.wait_clones("deployments", "g", &[]).await;
    rig.wait_clones("services", "g", &[]).await;
    rig.wait_ready("g", 0).await;
    for d in ["prefill", "decode"] {
        assert_eq!(
            bases.get(d).await.unwrap().spec.unwrap().replicas,
            Some(0),
            "{d} kept at 0"
        );
    }
    // Back to 2: the bases return to the baseline (prefill now 1, decode 1) and group 1 is cloned again.
    rig.kubectl(&["scale", "rsg", "g", "--replicas=2"]).await;
    rig.wait_ready("g", 2).await;
    assert_eq!(
        bases.get("prefill").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
    assert_eq!(
        bases.get("decode").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
    rig.wait_clones("deployments", "g", &["pd-prefill-1", "pd-decode-1"])
        .await;

    // Deleting the RSG removes snapshots and ConfigMap, keeps every workload and Service.
    rig.rsgs()
        .delete("g", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("RSG g gone", Duration::from_secs(30), || async {
        Ok::<_, kube::Error>(rig.rsgs().get_opt("g").await?.is_none().then_some(()))
    })
    .await;
    assert!(
        crs.list(&ListParams::default().labels("rsg.io/name=g"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(cms.get_opt("g-replica-config").await.unwrap().is_none());
    assert!(
        rig.deployments()
            .get_opt("pd-prefill-1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(svcs.get_opt("prefill-svc-pd-1").await.unwrap().is_some());
    assert!(bases.get_opt("prefill").await.unwrap().is_some());
}

#[tokio::test]
async fn rsg_name_collision_fails_the_group_and_overwrites_nothing() {
    let rig = Rig::new("rsg-conflict").await;
    rig.apply(BASES).await;
    // Someone else's Deployment already has group 1's clone name.
    rig.apply(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: g-prefill-1, labels: {owner: someone-else}}
spec:
  replicas: 1
  selector: {matchLabels: {app: theirs}}
  template:
    metadata: {labels: {app: theirs}}
    spec: {containers: [{name: c, image: registry.local/theirs:1}]}
"#,
    )
    .await;
    // groupName omitted: the prefix is the RSG's name.
    rig.apply(
        r#"
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: g}
spec:
  targetResources:
  - {name: prefill, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: prefill}}
  - {name: decode, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}}
  scalingStrategy: {type: GroupReplication, groupConfig: {replicas: 2}}
"#,
    )
    .await;
    let msg = rig.wait_condition("g", "NameConflict", "g-prefill-1").await;
    assert!(
        msg.contains("already exists")
            && msg.contains(&format!("Deployment {}/g-prefill-1", rig.ns.name)),
        "{msg}"
    );
    let theirs = rig.deployments().get("g-prefill-1").await.unwrap();
    assert_eq!(
        theirs.metadata.labels.unwrap().get("rsg.io/name"),
        None,
        "not adopted or relabelled"
    );
    assert!(
        rig.deployments()
            .get_opt("g-decode-1")
            .await
            .unwrap()
            .is_none(),
        "nothing of the failed group is created"
    );
    let events = rig
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=g",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await;
    assert!(
        events.contains("NameConflict"),
        "a Warning Event names the conflict: {events}"
    );

    // Once the other object is gone, the group is created.
    rig.deployments()
        .delete("g-prefill-1", &DeleteParams::default())
        .await
        .unwrap();
    rig.wait_ready("g", 2).await;
    rig.wait_clones("deployments", "g", &["g-prefill-1", "g-decode-1"])
        .await;
}

#[tokio::test]
async fn rsg_invalid_spec_is_reported_and_not_acted_on() {
    let rig = Rig::new("rsg-invalid").await;
    rig.apply(BASES).await;
    rig.apply(
        r#"
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: bad}
spec:
  targetResources:
  - {name: scheduler, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: prefill}}
  scalingStrategy:
    type: InplaceScaling
    leaderFollowerConfig:
      leader: {resourceName: schedular, replicas: 5}
"#,
    )
    .await;
    let msg = rig.wait_condition("bad", "InvalidSpec", "leader").await;
    assert!(msg.contains("schedular"), "{msg}");
    assert_eq!(
        rig.replicas("prefill").await,
        Some(2),
        "an invalid RSG is never acted on"
    );
    // A missing target says which one.
    rig.apply(&rsg("nowhere-ns", 2).replace("name: g", "name: lost"))
        .await;
    let msg = rig
        .wait_condition("lost", "TargetNotFound", "prefill")
        .await;
    assert!(msg.contains("nowhere-ns/prefill"), "{msg}");
}

#[tokio::test]
async fn rsg_native_hpa_drives_the_scale_subresource() {
    let rig = Rig::new("rsg-hpa").await;
    rig.apply(BASES).await;
    rig.apply(&rsg(&rig.ns.name, 1)).await;
    rig.wait_ready("g", 1).await;
    // The HPA controller (kube-controller-manager) reads /scale and raises the group count to minReplicas.
    rig.apply(
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: g}
spec:
  scaleTargetRef: {apiVersion: autoscaling.openfuyao.com/v1alpha1, kind: ResourceScalingGroup, name: g}
  minReplicas: 3
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#,
    )
    .await;
    rig.wait_ready("g", 3).await;
    rig.wait_clones(
        "deployments",
        "g",
        &["pd-prefill-1", "pd-prefill-2", "pd-decode-1", "pd-decode-2"],
    )
    .await;
    let scale = rig.rsgs().get_scale("g").await.unwrap();
    assert_eq!(scale.status.as_ref().map(|s| s.replicas), Some(3));
    assert_eq!(
        scale.status.and_then(|s| s.selector).as_deref(),
        Some("rsg.io/name=g")
    );
}

/// Seed 002's GroupReplication example (examples/seeds/002-group-replication.yaml) over the demo's fake
/// inference Deployments `llm-prefill` and `llm-decode`: the documented clone and Service names appear.
#[tokio::test]
async fn rsg_seed_group_replication_example() {
    let rig = Rig::new("rsg-seed").await;
    let demo = std::fs::read_to_string(test_kit::repo_root().join("examples/demo/inference.yaml"))
        .unwrap();
    let workloads: Vec<&str> = demo
        .split("\n---")
        .filter(|doc| !doc.contains("kind: ResourceScalingGroup"))
        .collect();
    rig.apply(&workloads.join("\n---")).await;
    let seed = std::fs::read_to_string(
        test_kit::repo_root().join("examples/seeds/002-group-replication.yaml"),
    )
    .unwrap();
    rig.apply(&seed).await;
    rig.wait_ready("llm-prefill-decode-group", 2).await;
    rig.wait_clones(
        "deployments",
        "llm-prefill-decode-group",
        &[
            "prefill-decode-llm-prefill-1",
            "prefill-decode-llm-decode-1",
        ],
    )
    .await;
    rig.wait_clones(
        "services",
        "llm-prefill-decode-group",
        &[
            "llm-prefill-prefill-decode-1",
            "llm-decode-prefill-decode-1",
        ],
    )
    .await;
    let cm = rig
        .kubectl(&[
            "get",
            "configmap",
            "llm-prefill-decode-group-replica-config",
            "-o",
            "jsonpath={.data}",
        ])
        .await;
    assert_eq!(cm, r#"{"decode":"2","prefill":"1"}"#);
    let snaps = rig
        .kubectl(&["get", "controllerrevision", "-o", "name"])
        .await;
    assert_eq!(
        snaps.matches("llm-prefill-decode-group").count(),
        2,
        "{snaps}"
    );
}
