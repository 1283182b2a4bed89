//! Reading a Pod: what to run for it ([`plan`]), which container is the fake server and how to start it
//! ([`FakeSpec`]), and what an earlier sim-kubelet already reported (IP, start time, restart count).
//! Everything here is pure.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

/// Label carrying a pod's ResourceScalingGroup group id, passed to the fake server as `--group-id`.
// The shared key belongs in `api-types`; it is still a placeholder crate, so it lives here for now.
pub const GROUP_ID_LABEL: &str = api_types::keys::labels::RSG_GROUP_ID;

/// Port of the fake server when its container declares none.
pub const DEFAULT_PORT: u16 = 8000;

/// Readiness path when the container has no HTTP readiness probe.
pub const DEFAULT_PROBE_PATH: &str = "/health";

/// Upper bound on the time a deleted pod's process gets between SIGTERM and SIGKILL.
pub const MAX_GRACE: Duration = Duration::from_secs(10);

/// How to run the fake inference server for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeSpec {
    /// Name of the container the server stands in for.
    pub container: String,
    /// Port to listen on: the container's first `containerPort`, else [`DEFAULT_PORT`].
    pub port: u16,
    /// The pod's group id (label [`GROUP_ID_LABEL`], else `"0"`).
    pub group_id: String,
    /// Path probed for readiness.
    pub probe_path: String,
    /// The container's literal `env` entries (entries with `valueFrom` are skipped).
    pub env: Vec<(String, String)>,
}

/// What sim-kubelet does for a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The pod already finished (phase Succeeded or Failed): only its deletion is handled.
    Leave,
    /// A Job's pod without a fake server: report it Succeeded at once.
    Complete,
    /// Give the pod an IP and report it Running; run the fake server if one container asks for it.
    Run(Option<FakeSpec>),
}

/// Decides what to do for `pod`; `image_match` is the `--fake-image-match` substring.
pub fn plan(pod: &Pod, image_match: &str) -> Plan {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Plan::Leave;
    }
    match fake_spec(pod, image_match) {
        Some(f) => Plan::Run(Some(f)),
        None if is_job_pod(pod) => Plan::Complete,
        None => Plan::Run(None),
    }
}

/// Whether a controller reference of kind `Job` owns the pod.
pub fn is_job_pod(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job" && o.api_version.starts_with("batch/"))
}

/// The first container whose image contains `image_match`, as a [`FakeSpec`].
pub fn fake_spec(pod: &Pod, image_match: &str) -> Option<FakeSpec> {
    if image_match.is_empty() {
        return None;
    }
    let spec = pod.spec.as_ref()?;
    let c = spec
        .containers
        .iter()
        .find(|c| c.image.as_deref().is_some_and(|i| i.contains(image_match)))?;
    let group_id = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(GROUP_ID_LABEL))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "0".to_owned());
    Some(FakeSpec {
        container: c.name.clone(),
        port: container_port(c),
        group_id,
        probe_path: probe_path(c),
        env: literal_env(c),
    })
}

/// The container's first valid `containerPort`, else [`DEFAULT_PORT`].
pub fn container_port(c: &Container) -> u16 {
    c.ports
        .iter()
        .flatten()
        .next()
        .and_then(|p| u16::try_from(p.container_port).ok())
        .filter(|&p| p != 0)
        .unwrap_or(DEFAULT_PORT)
}

/// The readiness probe's HTTP path, else [`DEFAULT_PROBE_PATH`]. A path without a leading `/` gets one.
pub fn probe_path(c: &Container) -> String {
    let path = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.as_deref())
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_PROBE_PATH);
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// The container's `env` entries that have a literal value (an absent value counts as empty).
pub fn literal_env(c: &Container) -> Vec<(String, String)> {
    c.env
        .iter()
        .flatten()
        .filter(|e| e.value_from.is_none())
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

/// The IPv4 `status.podIP` an earlier run reported, if any.
pub fn reported_pod_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// The `status.startTime` an earlier run reported, if any.
pub fn reported_start_time(pod: &Pod) -> Option<Timestamp> {
    pod.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

/// The restart count an earlier run reported for `container` (0 if none), so it never goes backwards.
pub fn reported_restart_count(pod: &Pod, container: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .map_or(0, |c| c.restart_count)
}

/// How long a deleted pod's process gets between SIGTERM and SIGKILL: the deletion grace period (else the
/// spec's `terminationGracePeriodSeconds`, else 30 s), capped at [`MAX_GRACE`].
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(MAX_GRACE)
}

/// `namespace/name` for logs.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a Pod from JSON for tests.
    pub(crate) fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    pub(crate) fn fake_pod() -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"rsg.io/group-id": "g7"}},
            "spec": {"containers": [
                {"name": "sidecar", "image": "busybox"},
                {"name": "engine", "image": "registry.local/fake-inference:1.0",
                 "ports": [{"containerPort": 9000}, {"containerPort": 9001}],
                 "readinessProbe": {"httpGet": {"path": "ready", "port": 9000}},
                 "env": [
                    {"name": "FAKE_COLD_START_MS", "value": "1500"},
                    {"name": "EMPTY"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
                 ]}
            ]}
        }))
    }

    #[test]
    fn selects_the_matching_container() {
        let f = fake_spec(&fake_pod(), "fake-inference").unwrap();
        assert_eq!(
            f,
            FakeSpec {
                container: "engine".into(),
                port: 9000,
                group_id: "g7".into(),
                probe_path: "/ready".into(),
                env: vec![
                    ("FAKE_COLD_START_MS".into(), "1500".into()),
                    ("EMPTY".into(), String::new())
                ],
            }
        );
        assert_eq!(fake_spec(&fake_pod(), "vllm"), None);
        assert_eq!(fake_spec(&fake_pod(), ""), None);
    }

    #[test]
    fn defaults_for_port_probe_and_group() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "fake-inference"}]}
        }));
        let f = fake_spec(&p, "fake-inference").unwrap();
        assert_eq!(
            (f.port, f.probe_path.as_str(), f.group_id.as_str()),
            (8000, "/health", "0")
        );
        assert!(f.env.is_empty());
    }

    #[test]
    fn plans() {
        let job = |image: &str, phase: Option<&str>| {
            pod(serde_json::json!({
                "metadata": {"name": "j", "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "Job", "name": "hook", "uid": "x", "controller": true}
                ]},
                "spec": {"containers": [{"name": "c", "image": image}]},
                "status": {"phase": phase}
            }))
        };
        assert_eq!(plan(&job("alpine", None), "fake-inference"), Plan::Complete);
        assert!(is_job_pod(&job("alpine", None)));
        assert!(matches!(
            plan(&job("fake-inference", None), "fake-inference"),
            Plan::Run(Some(_))
        ));
        assert_eq!(
            plan(&job("alpine", Some("Succeeded")), "fake-inference"),
            Plan::Leave
        );
        assert_eq!(
            plan(&job("alpine", Some("Failed")), "fake-inference"),
            Plan::Leave
        );
        let plain = pod(
            serde_json::json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(plan(&plain, "fake-inference"), Plan::Run(None));
        assert!(!is_job_pod(&plain));
        assert!(
            matches!(plan(&fake_pod(), "fake-inference"), Plan::Run(Some(f)) if f.container == "engine")
        );
    }

    #[test]
    fn reported_state_and_grace() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "deletionGracePeriodSeconds": 3},
            "spec": {"containers": [{"name": "c"}], "terminationGracePeriodSeconds": 60},
            "status": {"podIP": "10.244.1.4", "startTime": "2026-01-02T03:04:05Z",
                       "containerStatuses": [{"name": "c", "restartCount": 4, "ready": false, "image": "i", "imageID": ""}]}
        }));
        assert_eq!(reported_pod_ip(&p), Some("10.244.1.4".parse().unwrap()));
        assert_eq!(
            reported_start_time(&p).unwrap().to_string(),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(reported_restart_count(&p, "c"), 4);
        assert_eq!(reported_restart_count(&p, "other"), 0);
        assert_eq!(grace_period(&p), Duration::from_secs(3));
        assert_eq!(pod_key(&p), "ns/p");
        let q = pod(
            serde_json::json!({"metadata": {"name": "q"}, "spec": {"containers": [], "terminationGracePeriodSeconds": 60}}),
        );
        assert_eq!(grace_period(&q), MAX_GRACE);
        assert_eq!(reported_pod_ip(&q), None);
        let r =
            pod(serde_json::json!({"metadata": {"name": "r", "deletionGracePeriodSeconds": -1}}));
        assert_eq!(grace_period(&r), Duration::ZERO);
    }
}
