//! ResourceScalingGroup controller, end to end: the real `rsg-controller` binary runs as a local process
//! against the local cluster, scoped to the test's namespace (`WATCH_NAMESPACE`), and every behaviour of
//! seed 002 is checked on real objects.

mod crash;
mod group_replication;
mod inplace;
mod lws_rbg;
mod rbac;
mod scale_down;

use std::collections::BTreeMap;
use std::time::Duration;

use api_types::ResourceScalingGroup;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use test_kit::{Env, Process, TestNamespace, wait_until};

/// A test's namespace and its controller.
pub struct Rig {
    pub env: Env,
    pub ns: TestNamespace,
    pub ctrl: Process,
}

/// Starts `rsg-controller` watching `ns` only, without leader election, resyncing every 30 s.
pub fn controller(env: &Env, ns: &str, prometheus_url: &str) -> Process {
    controller_with(env, ns, prometheus_url, &[])
}

/// [`controller`] with extra environment variables.
pub fn controller_with(
    env: &Env,
    ns: &str,
    prometheus_url: &str,
    extra: &[(&str, &str)],
) -> Process {
    let kubeconfig = env
        .kubectl
        .kubeconfig()
        .to_str()
        .expect("utf-8 path")
        .to_string();
    let mut envs = vec![
        ("WATCH_NAMESPACE", ns),
        ("LEADER_ELECT", "false"),
        ("ADMIN_ADDR", "127.0.0.1:0"),
        ("RSG_PROMETHEUS_URL", prometheus_url),
        ("RSG_RESYNC_SECONDS", "30"),
        ("RSG_RETRY_SECONDS", "2"),
        ("RUST_LOG", "info,rsg_controller=debug"),
        ("KUBECONFIG", kubeconfig.as_str()),
    ];
    envs.extend_from_slice(extra);
    Process::spawn("rsg-controller", &[], &envs)
}

impl Rig {
    pub async fn new(test: &str) -> Rig {
        let env = Env::get().await;
        let ns = env.namespace(test).await;
        let ctrl = controller(&env, &ns.name, &env.prometheus_url);
        Rig { env, ns, ctrl }
    }

    pub async fn apply(&self, yaml: &str) {
        self.env
            .kubectl
            .run(&["apply", "-n", &self.ns.name, "-f", "-"], Some(yaml))
            .await
            .ok();
    }

    pub async fn kubectl(&self, args: &[&str]) -> String {
        let mut a = args.to_vec();
        a.extend(["-n", &self.ns.name]);
        self.env.kubectl.run(&a, None).await.ok()
    }

    pub fn rsgs(&self) -> Api<ResourceScalingGroup> {
        Api::namespaced(self.env.client.clone(), &self.ns.name)
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.env.client.clone(), &self.ns.name)
    }

    /// Waits for RSG `name` to be Ready=True with `current` groups and `observedGeneration` caught up.
    pub async fn wait_ready(&self, name: &str, current: i32) -> ResourceScalingGroup {
        let api = self.rsgs();
        let what = format!("RSG {name} Ready with currentReplicas {current}");
        wait_until(&what, Duration::from_secs(60), || async {
            let r = api.get(name).await?;
            let s = r.status.clone().unwrap_or_default();
            let ready = s
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Reconciled");
            let ok = ready
                && s.current_replicas == Some(current)
                && s.observed_generation == r.metadata.generation;
            Ok::<_, kube::Error>(ok.then_some(r))
        })
        .await
    }

    /// Waits until the Ready condition has `reason` and a message containing `needle`.
    pub async fn wait_condition(&self, name: &str, reason: &str, needle: &str) -> String {
        let api = self.rsgs();
        let what = format!("RSG {name} Ready condition reason {reason} mentioning {needle:?}");
        wait_until(&what, Duration::from_secs(60), || async {
            let r = api.get(name).await?;
            let msg = r
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .find(|c| c.type_ == "Ready" && c.reason == reason && c.message.contains(needle))
                .map(|c| c.message.clone());
            Ok::<_, kube::Error>(msg)
        })
        .await
    }

    /// Names of this RSG's clone objects of `kind` (`deployments`, `services`, ...) by group id.
    pub async fn clones(&self, plural_kind: &str, rsg: &str) -> BTreeMap<String, String> {
        let out = self
            .kubectl(&[
                "get",
                plural_kind,
                "-l",
                &format!("rsg.io/name={rsg},rsg.io/group-id!=0"),
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.rsg\\.io/group-id}{\"\\n\"}{end}",
            ])
            .await;
        out.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(n, g)| (n.to_string(), g.to_string()))
            .collect()
    }

    /// Waits until this RSG's clones of `plural_kind` are exactly `names`.
    pub async fn wait_clones(&self, plural_kind: &str, rsg: &str, names: &[&str]) {
        let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        want.sort();
        let what = format!("{plural_kind} clones of {rsg} to be exactly {want:?}");
        wait_until(&what, Duration::from_secs(60), || async {
            let have: Vec<String> = self.clones(plural_kind, rsg).await.into_keys().collect();
            Ok::<_, String>((have == want).then_some(()))
        })
        .await
    }

    pub async fn replicas(&self, deployment: &str) -> Option<i32> {
        self.deployments()
            .get(deployment)
            .await
            .ok()?
            .spec?
            .replicas
    }

    /// Objects of a dynamic kind in the test namespace.
    pub async fn list_dyn(
        &self,
        ar: &kube::api::ApiResource,
        selector: &str,
    ) -> Vec<DynamicObject> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.env.client.clone(), &self.ns.name, ar);
        api.list(&ListParams::default().labels(selector))
            .await
            .expect("list")
            .items
    }
}

/// Two Deployments `prefill` (2 replicas) and `decode` (1), a Service selecting prefill pods and one
/// selecting nothing of theirs.
pub const BASES: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: prefill, labels: {app: prefill}}
spec:
  replicas: 2
  selector: {matchLabels: {app: prefill}}
  template:
    metadata: {labels: {app: prefill, tier: llm}}
    spec: {containers: [{name: c, image: registry.local/prefill:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: decode, labels: {app: decode}}
spec:
  replicas: 1
  selector: {matchLabels: {app: decode}}
  template:
    metadata: {labels: {app: decode, tier: llm}}
    spec: {containers: [{name: c, image: registry.local/decode:1}]}
---
apiVersion: v1
kind: Service
metadata: {name: prefill-svc}
spec:
  selector: {app: prefill}
  ports: [{name: http, port: 80, targetPort: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: other-svc}
spec:
  selector: {app: something-else}
  ports: [{name: http, port: 80}]
"#;

/// RSG `g` (groupName `pd`) over [`BASES`] in namespace `base_ns`, `replicas` groups.
pub fn rsg(base_ns: &str, replicas: i32) -> String {
    format!(
        r#"
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: g}}
spec:
  targetResources:
  - {{name: prefill, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: prefill, namespace: {base_ns}}}}}
  - {{name: decode, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: decode, namespace: {base_ns}}}}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{groupName: pd, replicas: {replicas}}}
"#
    )
}

#[tokio::test]
async fn rsg_controller_serves_probes_elects_a_leader_and_stops_on_sigterm() {
    let env = Env::get().await;
    let ns = env.namespace("rsg-lifecycle").await;
    let bin = test_kit::bin_path("rsg-controller");
    let kubeconfig = env.kubectl.kubeconfig().to_str().unwrap().to_string();
    let ns_name = ns.name.clone();
    tokio::task::spawn_blocking(move || {
        pdo_runtime::testing::assert_serves_and_stops_with(
            bin.to_str().unwrap(),
            "rsg_controller",
            &[
                ("KUBECONFIG", &kubeconfig),
                ("WATCH_NAMESPACE", &ns_name),
                ("POD_NAMESPACE", &ns_name),
                ("LEADER_ELECT", "true"),
            ],
        )
    })
    .await
    .unwrap();
    // It held the Lease in its namespace while it ran.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), &ns.name);
    assert!(
        leases.get_opt("rsg-controller").await.unwrap().is_some(),
        "the controller's Lease exists"
    );
}
