//! LeaderWorkerSet and RoleBasedGroup targets.
//!
//! CRDs: LeaderWorkerSet's published CRD YAML from its Go module (`sigs.k8s.io/lws@v0.9.0`,
//! `config/crd/bases/`), fetched through the Go module proxy; RoleBasedGroup's module is not on the proxy
//! here, so a minimal CRD written for this test (group `workloads.x-k8s.io`, v1alpha2, schema preserved
//! unknown fields) stands in. No LWS or RBG controller runs: the RSG controller must act on the objects
//! alone, and it must never write the RBG.

use std::process::Command;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, ResourceExt};
use test_kit::{Env, wait_until};

use super::{Rig, controller};

const LWS_MODULE: &str = "sigs.k8s.io/lws@v0.9.0";

const RBG_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rolebasedgroups.workloads.x-k8s.io}
spec:
  group: workloads.x-k8s.io
  names: {kind: RoleBasedGroup, plural: rolebasedgroups, singular: rolebasedgroup, shortNames: [rbg], listKind: RoleBasedGroupList}
  scope: Namespaced
  versions:
  - name: v1alpha2
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

fn lws_crd_path() -> String {
    let out = Command::new("go")
        .args(["mod", "download", "-json", LWS_MODULE])
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("running `go mod download` (Go is needed to fetch the LeaderWorkerSet CRD)");
    assert!(
        out.status.success(),
        "go mod download {LWS_MODULE}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("go mod download -json output");
    format!(
        "{}/config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml",
        v["Dir"].as_str().unwrap()
    )
}

async fn install_crds(env: &Env) {
    let path = lws_crd_path();
    env.kubectl
        .run(
            &["apply", "--server-side", "--force-conflicts", "-f", &path],
            None,
        )
        .await
        .ok();
    env.kubectl
        .run(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(RBG_CRD),
        )
        .await
        .ok();
    for crd in [
        "leaderworkersets.leaderworkerset.x-k8s.io",
        "rolebasedgroups.workloads.x-k8s.io",
    ] {
        env.kubectl.wait_crd_established(crd).await;
    }
}

const OBJECTS: &str = r#"
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: m}
spec:
  replicas: 2
  leaderWorkerTemplate:
    size: 2
    workerTemplate:
      metadata: {labels: {app: m}}
      spec: {containers: [{name: c, image: registry.local/m:1}]}
---
apiVersion: v1
kind: Service
metadata: {name: m-svc}
spec:
  selector: {leaderworkerset.sigs.k8s.io/name: m}
  ports: [{port: 80}]
---
apiVersion: workloads.x-k8s.io/v1alpha2
kind: RoleBasedGroup
metadata: {name: llm}
spec:
  roles:
  - {name: prefill, replicas: 1, standalonePattern: {template: {spec: {containers: [{name: c, image: registry.local/p:1}]}}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: llm-prefill}
spec:
  replicas: 1
  selector: {matchLabels: {app: llm-prefill}}
  template:
    metadata: {labels: {app: llm-prefill}}
    spec: {containers: [{name: c, image: registry.local/p:1}]}
---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: g}
spec:
  targetResources:
  - {name: decode, resourceRef: {apiVersion: leaderworkerset.x-k8s.io/v1, kind: LeaderWorkerSet, name: m}}
  - name: prefill
    resourceRef:
      apiVersion: workloads.x-k8s.io/v1alpha2
      kind: RoleBasedGroup
      name: llm
      subresource: {type: RoleBasedGroup, roleName: prefill}
  scalingStrategy: {type: GroupReplication, groupConfig: {groupName: pd, replicas: 2}}
"#;

#[tokio::test]
async fn rsg_clones_leaderworkersets_and_rolebasedgroup_role_workloads() {
    let env = Env::get().await;
    install_crds(&env).await;
    let mut rig = Rig::new("rsg-lws").await;
    // Restart the controller now that the LeaderWorkerSet API exists, so it watches it too.
    rig.ctrl.stop();
    rig.ctrl = controller(&rig.env, &rig.ns.name, &rig.env.prometheus_url);
    rig.apply(OBJECTS).await;
    let rbg_ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "workloads.x-k8s.io",
        "v1alpha2",
        "RoleBasedGroup",
    ));
    let rbgs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &rig.ns.name, &rbg_ar);
    let rbg_version = rbgs.get("llm").await.unwrap().resource_version();

    rig.wait_ready("g", 2).await;
    let lws_ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "leaderworkerset.x-k8s.io",
        "v1",
        "LeaderWorkerSet",
    ));
    let clones = rig.list_dyn(&lws_ar, "rsg.io/group-id=1").await;
    assert_eq!(
        clones.iter().map(|o| o.name_any()).collect::<Vec<_>>(),
        vec!["pd-m-1"]
    );
    let lwt = &clones[0].data["spec"]["leaderWorkerTemplate"];
    assert!(
        lwt.get("leaderTemplate").is_none(),
        "no leaderTemplate is created in the clone: {lwt}"
    );
    assert_eq!(
        lwt["workerTemplate"]["metadata"]["labels"]["rsg.io/group-id"],
        "1"
    );
    assert_eq!(lwt["size"], 2);
    let base = rig.list_dyn(&lws_ar, "rsg.io/group-id=0").await;
    assert_eq!(base.len(), 1);
    assert!(
        base[0].data["spec"]["leaderWorkerTemplate"]
            .get("leaderTemplate")
            .is_none(),
        "nor in the base"
    );

    // The Service selecting the LWS by name is cloned with the clone's name and the group.
    let sel = rig
        .kubectl(&[
            "get",
            "svc",
            "m-svc-pd-1",
            "-o",
            "jsonpath={.spec.selector}",
        ])
        .await;
    let sel: serde_json::Value = serde_json::from_str(&sel).unwrap();
    assert_eq!(sel["leaderworkerset.sigs.k8s.io/name"], "pd-m-1");
    assert_eq!(sel["rsg.io/group-id"], "1");

    // The RBG role's workload (StatefulSet llm-prefill) is cloned; the RBG itself is never written.
    let sts = rig
        .kubectl(&[
            "get",
            "statefulset",
            "pd-llm-prefill-1",
            "-o",
            "jsonpath={.spec.selector.matchLabels}",
        ])
        .await;
    assert!(sts.contains("\"rsg.io/group-id\":\"1\""), "{sts}");
    wait_until("a resync to pass", Duration::from_secs(3), || async {
        Ok::<_, String>(Some(()))
    })
    .await;
    assert_eq!(
        rbgs.get("llm").await.unwrap().resource_version(),
        rbg_version,
        "the RBG was written"
    );
}
