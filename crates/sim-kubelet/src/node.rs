//! The Node: registration and heartbeats.
//!
//! Registration server-side-applies the Node (labels) and then, separately, its `status` subresource
//! (capacity, addresses, nodeInfo, conditions Ready=True and no pressure). Afterwards two heartbeats keep the
//! node lifecycle controller of kube-controller-manager content: the Lease `kube-node-lease/<node>` is renewed
//! every 10 s, and the Ready condition's `lastHeartbeatTime` is refreshed every 40 s. The builders are pure;
//! the IO functions only send what they build.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::status::HOST_IP;

/// Field manager of every server-side apply sim-kubelet makes.
pub const FIELD_MANAGER: &str = "sim-kubelet";
/// kubelet version reported in `nodeInfo`.
pub const KUBELET_VERSION: &str = "v1.36.3-sim";
/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Lease duration; the node lifecycle controller treats a node as lost after it passes without renewal.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// How often the Lease is renewed.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often the Ready condition's heartbeat time is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(40);

/// This machine's architecture in Go's spelling, as Kubernetes labels use it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node object as applied (metadata only; status goes through [`node_status`]).
pub fn node_object(name: &str) -> Node {
    let labels = BTreeMap::from(
        [
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", go_arch()),
            ("node.kubernetes.io/instance-type", "sim"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The Node status: huge capacity, loopback address, Ready since `since`, last heartbeat at `now`.
pub fn node_status(name: &str, since: Timestamp, now: Timestamp) -> Node {
    let resources = BTreeMap::from(
        [
            ("cpu", "1000"),
            ("memory", "4Ti"),
            ("pods", "10000"),
            ("ephemeral-storage", "100Ti"),
        ]
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned()))),
    );
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    let status = NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: HOST_IP.to_owned(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: name.to_owned(),
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: go_arch().to_owned(),
            boot_id: format!("sim-boot-{name}"),
            container_runtime_version: "sim://1.0.0".to_owned(),
            kernel_version: "sim".to_owned(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            machine_id: format!("sim-machine-{name}"),
            operating_system: "linux".to_owned(),
            os_image: "sim-kubelet".to_owned(),
            system_uuid: format!("sim-{name}"),
            swap: None,
        }),
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "sim-kubelet is posting ready status",
            ),
        ]),
        ..Default::default()
    };
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        status: Some(status),
        ..Default::default()
    }
}

/// The node Lease, owned by the Node (so it goes away with it), renewed at `now`.
pub fn lease(name: &str, node_uid: Option<&str>, now: Timestamp) -> Lease {
    let owner = node_uid.map(|uid| {
        vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Node".to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            ..Default::default()
        }]
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: owner,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_owned()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies the Node and its status once; returns the Node's UID.
pub async fn register(
    client: &Client,
    name: &str,
    since: Timestamp,
) -> kube::Result<Option<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes
        .patch(name, &apply(), &Patch::Apply(node_object(name)))
        .await?;
    nodes
        .patch_status(
            name,
            &apply(),
            &Patch::Apply(node_status(name, since, Timestamp::now())),
        )
        .await?;
    Ok(node.uid())
}

async fn renew_lease(client: &Client, name: &str, node_uid: Option<&str>) -> kube::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    leases
        .patch(
            name,
            &apply(),
            &Patch::Apply(lease(name, node_uid, Timestamp::now())),
        )
        .await
        .map(drop)
}

async fn post_status(client: &Client, name: &str, since: Timestamp) -> kube::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            name,
            &apply(),
            &Patch::Apply(node_status(name, since, Timestamp::now())),
        )
        .await
        .map(drop)
}

/// Renews the Lease every 10 s and posts the status every 40 s until `shutdown`. A failed status post is
/// retried at the next Lease tick; errors are logged, never fatal.
pub async fn heartbeat(
    client: Client,
    name: String,
    node_uid: Option<String>,
    since: Timestamp,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(LEASE_RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_due = tokio::time::Instant::now() + STATUS_EVERY;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = renew_lease(&client, &name, node_uid.as_deref()).await {
            tracing::warn!(node = %name, error = %e, "renewing the node lease failed");
        }
        let now = tokio::time::Instant::now();
        if now >= status_due {
            match post_status(&client, &name, since).await {
                Ok(()) => status_due = now + STATUS_EVERY,
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "posting the node status failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn node_object_has_standard_labels() {
        let n = node_object("pdo-node-0");
        let l = n.metadata.labels.unwrap();
        assert_eq!(l["kubernetes.io/hostname"], "pdo-node-0");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert!(n.status.is_none());
        let v = serde_json::to_value(node_object("x")).unwrap();
        assert_eq!(
            (v["apiVersion"].as_str(), v["kind"].as_str()),
            (Some("v1"), Some("Node"))
        );
    }

    #[test]
    fn status_is_ready_with_capacity() {
        let since = ts("2026-01-01T00:00:00Z");
        let now = ts("2026-01-01T00:05:00Z");
        let s = node_status("n", since, now).status.unwrap();
        let cap = s.capacity.as_ref().unwrap();
        assert_eq!(cap["cpu"].0, "1000");
        assert_eq!(cap["memory"].0, "4Ti");
        assert_eq!(cap["pods"].0, "10000");
        assert_eq!(s.allocatable, s.capacity);
        let addrs = s.addresses.unwrap();
        assert_eq!(
            (addrs[0].type_.as_str(), addrs[0].address.as_str()),
            ("InternalIP", "127.0.0.1")
        );
        assert_eq!(
            (addrs[1].type_.as_str(), addrs[1].address.as_str()),
            ("Hostname", "n")
        );
        assert_eq!(s.node_info.unwrap().kubelet_version, "v1.36.3-sim");
        let conds = s.conditions.unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        assert_eq!(ready.last_heartbeat_time, Some(Time(now)));
        assert_eq!(ready.last_transition_time, Some(Time(since)));
        for p in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(
                conds.iter().find(|c| c.type_ == p).unwrap().status,
                "False",
                "{p}"
            );
        }
    }

    #[test]
    fn lease_is_held_by_the_node() {
        let now = ts("2026-01-01T00:00:10Z");
        let l = lease("n", Some("uid-1"), now);
        assert_eq!(l.metadata.namespace.as_deref(), Some("kube-node-lease"));
        assert_eq!(
            l.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-1"
        );
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert!(lease("n", None, now).metadata.owner_references.is_none());
    }
}
