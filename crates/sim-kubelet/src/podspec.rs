//! Reading a Pod: what to run for it ([`plan`]), which container runs a program and how to start it
//! ([`FakeSpec`]: the fake inference server, or a project binary mapped from its image by [`Images`]), its
//! environment as the kubelet builds it ([`EnvSpec`], [`resolve_env`]), and what an earlier sim-kubelet
//! already reported (IP, start time, restart count). Everything here is pure.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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

/// Which images run which program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Images {
    /// A container whose image contains this substring runs the fake inference server.
    pub fake_match: String,
    /// `(image substring, binary)`: a container whose image contains the substring runs the binary with the
    /// container's `args`, in the pod's network, with the pod's ServiceAccount credentials. Checked in order,
    /// after the fake server.
    pub programs: Vec<(String, PathBuf)>,
}

impl Images {
    /// Only the fake inference server, for images containing `fake_match`.
    pub fn fake(fake_match: &str) -> Self {
        Self {
            fake_match: fake_match.to_owned(),
            programs: Vec::new(),
        }
    }
}

/// Where an environment variable's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvSource {
    /// A literal `value` (may reference earlier variables as `$(NAME)`).
    Value(String),
    /// `fieldRef: status.podIP` (or `status.podIPs`): known only once the IP is allocated.
    PodIp,
}

/// One `env` entry of the container, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvSpec {
    /// Variable name.
    pub name: String,
    /// Its value.
    pub source: EnvSource,
}

/// How to run the program of one container: the fake inference server or a mapped binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeSpec {
    /// Name of the container the program stands in for.
    pub container: String,
    /// `None`: the fake inference server; `Some(bin)`: this binary, run with the container's `args`.
    pub program: Option<PathBuf>,
    /// The container's `args` (a program's command line; `$(NAME)` is expanded at start).
    pub args: Vec<String>,
    /// Port the fake server listens on: the container's first `containerPort`, else [`DEFAULT_PORT`].
    pub port: u16,
    /// Port probed for readiness: the readiness probe's `httpGet.port` (number or port name), else `port`.
    pub probe_port: u16,
    /// The pod's group id (label [`GROUP_ID_LABEL`], else `"0"`).
    pub group_id: String,
    /// Path probed for readiness.
    pub probe_path: String,
    /// The container's `env`: literal values and the downward-API fields sim-kubelet knows (the pod's name,
    /// namespace, UID, node, ServiceAccount and IP); entries from Secrets, ConfigMaps or resources are skipped.
    pub env: Vec<EnvSpec>,
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

/// Decides what to do for `pod`, given which images run which program.
pub fn plan(pod: &Pod, images: &Images) -> Plan {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Plan::Leave;
    }
    match fake_spec(pod, images) {
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

/// The program an image runs: `Some(None)` for the fake server, `Some(Some(bin))` for a mapped binary.
fn program_of(image: &str, images: &Images) -> Option<Option<PathBuf>> {
    if !images.fake_match.is_empty() && image.contains(images.fake_match.as_str()) {
        return Some(None);
    }
    images
        .programs
        .iter()
        .find(|(m, _)| !m.is_empty() && image.contains(m.as_str()))
        .map(|(_, bin)| Some(bin.clone()))
}

/// The first container whose image runs a program, as a [`FakeSpec`].
pub fn fake_spec(pod: &Pod, images: &Images) -> Option<FakeSpec> {
    let spec = pod.spec.as_ref()?;
    let (c, program) = spec.containers.iter().find_map(|c| {
        let image = c.image.as_deref()?;
        program_of(image, images).map(|p| (c, p))
    })?;
    let group_id = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(GROUP_ID_LABEL))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "0".to_owned());
    let port = container_port(c);
    Some(FakeSpec {
        container: c.name.clone(),
        program,
        args: c.args.clone().unwrap_or_default(),
        port,
        probe_port: probe_port(c).unwrap_or(port),
        group_id,
        probe_path: probe_path(c),
        env: env_specs(pod, c),
    })
}

/// The readiness probe's `httpGet.port`: a number, or the name of one of the container's ports.
pub fn probe_port(c: &Container) -> Option<u16> {
    let port = c.readiness_probe.as_ref()?.http_get.as_ref()?.port.clone();
    match port {
        IntOrString::Int(n) => u16::try_from(n).ok().filter(|&p| p != 0),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
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

/// The value of a downward-API `fieldRef` sim-kubelet can give (the pod IP comes later).
fn field_value(pod: &Pod, path: &str) -> Option<EnvSource> {
    let md = &pod.metadata;
    let spec = pod.spec.as_ref();
    let v = match path {
        "status.podIP" | "status.podIPs" => return Some(EnvSource::PodIp),
        "metadata.name" => md.name.clone(),
        "metadata.namespace" => md.namespace.clone(),
        "metadata.uid" => md.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => Some(service_account(pod)),
        "status.hostIP" | "status.hostIPs" => Some("127.0.0.1".to_owned()),
        _ => None,
    };
    Some(EnvSource::Value(v.unwrap_or_default()))
}

fn env_spec(pod: &Pod, e: &EnvVar) -> Option<EnvSpec> {
    let source = match &e.value_from {
        None => EnvSource::Value(e.value.clone().unwrap_or_default()),
        Some(from) => field_value(pod, &from.field_ref.as_ref()?.field_path)?,
    };
    Some(EnvSpec {
        name: e.name.clone(),
        source,
    })
}

/// The container's `env` entries sim-kubelet can give: literal values (an absent value counts as empty) and
/// the downward-API fields of [`EnvSpec`]; entries from Secrets, ConfigMaps or resources are skipped.
pub fn env_specs(pod: &Pod, c: &Container) -> Vec<EnvSpec> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| env_spec(pod, e))
        .collect()
}

/// Expands `$(NAME)` references to variables defined in `vars`, as the kubelet does: `$$` is a literal `$`,
/// an unknown or unterminated reference stays as written.
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[i..i + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment at start, in order: each value with the pod IP filled in and `$(NAME)`
/// expanded against the variables before it.
pub fn resolve_env(env: &[EnvSpec], ip: Ipv4Addr) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::with_capacity(env.len());
    for e in env {
        let value = match &e.source {
            EnvSource::Value(v) => expand(v, &vars),
            EnvSource::PodIp => ip.to_string(),
        };
        vars.push((e.name.clone(), value));
    }
    vars
}

/// The pod's ServiceAccount (`default` when unset).
pub fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
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

    fn lit(name: &str, v: &str) -> EnvSpec {
        EnvSpec {
            name: name.into(),
            source: EnvSource::Value(v.into()),
        }
    }

    #[test]
    fn selects_the_matching_container() {
        let f = fake_spec(&fake_pod(), &Images::fake("fake-inference")).unwrap();
        assert_eq!(
            f,
            FakeSpec {
                container: "engine".into(),
                program: None,
                args: vec![],
                port: 9000,
                probe_port: 9000,
                group_id: "g7".into(),
                probe_path: "/ready".into(),
                env: vec![lit("FAKE_COLD_START_MS", "1500"), lit("EMPTY", "")],
            }
        );
        assert_eq!(fake_spec(&fake_pod(), &Images::fake("vllm")), None);
        assert_eq!(fake_spec(&fake_pod(), &Images::fake("")), None);
    }

    #[test]
    fn maps_images_to_programs_with_args_env_and_probe_port() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "dlx-1", "namespace": "ns", "uid": "u-9"},
            "spec": {"nodeName": "n0", "serviceAccountName": "dlx", "containers": [
                {"name": "dlx", "image": "pd-orchestrator/dlx:dev", "args": ["--x=$(POD_NAME)"],
                 "ports": [{"name": "admin", "containerPort": 9090}, {"name": "proxy", "containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}},
                 "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "PROXY_ADDR", "value": "$(POD_IP):8080,$(POD_IP):8000"},
                    {"name": "LITERAL", "value": "$$(POD_IP) $(UNKNOWN) $(LIMIT) $(NS"}
                 ]}
            ]}
        }));
        let images = Images {
            fake_match: "fake-inference".into(),
            programs: vec![("pd-orchestrator/dlx:dev".into(), "/bin/dlx".into())],
        };
        let f = fake_spec(&p, &images).unwrap();
        assert_eq!(f.program, Some(PathBuf::from("/bin/dlx")));
        assert_eq!(f.args, ["--x=$(POD_NAME)"]);
        assert_eq!((f.port, f.probe_port), (9090, 9090));
        assert_eq!(f.probe_path, "/readyz");
        let env = resolve_env(&f.env, "10.244.1.7".parse().unwrap());
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("POD_IP"), Some("10.244.1.7"));
        assert_eq!(get("POD_NAME"), Some("dlx-1"));
        assert_eq!(get("NS"), Some("ns"));
        assert_eq!(get("SA"), Some("dlx"));
        assert_eq!(get("NODE"), Some("n0"));
        assert_eq!(get("LIMIT"), None, "resource fields are not given");
        assert_eq!(get("PROXY_ADDR"), Some("10.244.1.7:8080,10.244.1.7:8000"));
        assert_eq!(get("LITERAL"), Some("$(POD_IP) $(UNKNOWN) $(LIMIT) $(NS"));
        assert_eq!(expand("--x=$(POD_NAME)", &env), "--x=dlx-1");
        // Another image of the same repository is not mapped; the fake server wins over a program.
        let other = Images {
            programs: vec![("pd-orchestrator/dlx:sim".into(), "/bin/dlx".into())],
            ..images.clone()
        };
        assert_eq!(fake_spec(&p, &other), None);
        assert_eq!(service_account(&fake_pod()), "default");
    }

    #[test]
    fn probe_ports() {
        let c = |probe: serde_json::Value| -> Container {
            serde_json::from_value(serde_json::json!({
                "name": "c", "ports": [{"name": "http", "containerPort": 8000}],
                "readinessProbe": {"httpGet": {"path": "/", "port": probe}}
            }))
            .unwrap()
        };
        assert_eq!(probe_port(&c(serde_json::json!(9000))), Some(9000));
        assert_eq!(probe_port(&c(serde_json::json!("http"))), Some(8000));
        assert_eq!(probe_port(&c(serde_json::json!("nope"))), None);
        assert_eq!(probe_port(&c(serde_json::json!(0))), None);
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
        assert_eq!(
            plan(&job("alpine", None), &Images::fake("fake-inference")),
            Plan::Complete
        );
        assert!(is_job_pod(&job("alpine", None)));
        assert!(matches!(
            plan(
                &job("fake-inference", None),
                &Images::fake("fake-inference")
            ),
            Plan::Run(Some(_))
        ));
        assert_eq!(
            plan(
                &job("alpine", Some("Succeeded")),
                &Images::fake("fake-inference")
            ),
            Plan::Leave
        );
        assert_eq!(
            plan(
                &job("alpine", Some("Failed")),
                &Images::fake("fake-inference")
            ),
            Plan::Leave
        );
        let plain = pod(
            serde_json::json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(
            plan(&plain, &Images::fake("fake-inference")),
            Plan::Run(None)
        );
        assert!(!is_job_pod(&plain));
        assert!(
            matches!(plan(&fake_pod(), &Images::fake("fake-inference")), Plan::Run(Some(f)) if f.container == "engine")
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
