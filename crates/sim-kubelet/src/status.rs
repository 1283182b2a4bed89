//! Pod status construction: a pure function from the pod and what sim-kubelet observed (IP, process state,
//! readiness, restart count, timestamps) to the `PodStatus` it reports.
//!
//! Every timestamp comes from the caller, never from the clock, so the same observation always yields the
//! same status; the pod's task compares it with the last status it wrote and patches only on a change.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::podspec::reported_restart_count;

/// The node's (and so every pod's) host IP.
pub const HOST_IP: &str = "127.0.0.1";

/// Phase reported for a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Containers are (simulated as) running.
    Running,
    /// A Job's pod that finished with exit code 0 at the given time.
    Succeeded {
        /// When the containers finished.
        finished: Timestamp,
    },
}

/// An exit of the fake server process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (128 + signal number for a signal).
    pub code: i32,
    /// When the process started.
    pub started: Timestamp,
    /// When it exited.
    pub finished: Timestamp,
}

/// State of the container that runs the fake server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeState {
    /// Running since `since`; `ready` is the readiness probe's verdict.
    Running {
        /// When the current process started.
        since: Timestamp,
        /// Whether the readiness probe passes.
        ready: bool,
    },
    /// The process exited and waits for its restart.
    BackOff {
        /// The exit that caused the wait.
        last: Exit,
    },
}

/// The fake server container as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeObserved {
    /// Container name.
    pub container: String,
    /// How often the process was restarted.
    pub restart_count: i32,
    /// Current state.
    pub state: FakeState,
    /// The previous exit, shown as `lastState` while running again.
    pub last_exit: Option<Exit>,
}

/// Everything the status depends on besides the pod itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Phase to report.
    pub phase: Phase,
    /// The pod's IP, if it has one.
    pub pod_ip: Option<Ipv4Addr>,
    /// When sim-kubelet first took the pod on (`status.startTime`).
    pub start_time: Timestamp,
    /// When the pod's readiness last changed (the Ready/ContainersReady transition time).
    pub ready_since: Timestamp,
    /// The fake server container, for pods that run one.
    pub fake: Option<FakeObserved>,
}

/// Builds the status to report for `pod`.
pub fn pod_status(pod: &Pod, obs: &Observed) -> PodStatus {
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let start = Time(obs.start_time);

    let container_statuses: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let mut cs = ContainerStatus {
                name: c.name.clone(),
                image_id: image_id(&image),
                image,
                container_id: Some(format!("sim://{uid}/{}", c.name)),
                restart_count: reported_restart_count(pod, &c.name),
                ..Default::default()
            };
            match (
                obs.phase,
                obs.fake.as_ref().filter(|f| f.container == c.name),
            ) {
                (Phase::Succeeded { finished }, _) => {
                    cs.started = Some(false);
                    cs.state = Some(terminated(&Exit {
                        code: 0,
                        started: obs.start_time,
                        finished,
                    }));
                }
                (Phase::Running, Some(f)) => fill_fake(&mut cs, f),
                (Phase::Running, None) => {
                    cs.ready = true;
                    cs.started = Some(true);
                    cs.state = Some(running(obs.start_time));
                }
            }
            cs
        })
        .collect();

    let init_container_statuses: Vec<ContainerStatus> = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            ContainerStatus {
                name: c.name.clone(),
                image_id: image_id(&image),
                image,
                container_id: Some(format!("sim://{uid}/{}", c.name)),
                ready: true,
                started: Some(false),
                state: Some(terminated(&Exit {
                    code: 0,
                    started: obs.start_time,
                    finished: obs.start_time,
                })),
                ..Default::default()
            }
        })
        .collect();

    let running = obs.phase == Phase::Running;
    let containers_ready = running && container_statuses.iter().all(|c| c.ready);
    let gates_ready = readiness_gates_pass(pod);
    let completed = (!running).then_some("PodCompleted");
    let conditions = vec![
        condition("PodReadyToStartContainers", running, &start, None),
        condition("Initialized", true, &start, None),
        condition(
            "ContainersReady",
            containers_ready,
            &Time(obs.ready_since),
            completed,
        ),
        condition(
            "Ready",
            containers_ready && gates_ready,
            &Time(obs.ready_since),
            completed.or((!gates_ready).then_some("ReadinessGatesNotReady")),
        ),
        condition("PodScheduled", true, &start, None),
    ];

    let ip = obs.pod_ip.map(|i| i.to_string());
    PodStatus {
        phase: Some(if running { "Running" } else { "Succeeded" }.to_owned()),
        host_ip: Some(HOST_IP.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: HOST_IP.to_owned(),
        }]),
        pod_ips: ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip: ip,
        start_time: Some(start),
        conditions: Some(conditions),
        container_statuses: Some(container_statuses),
        init_container_statuses: (!init_container_statuses.is_empty())
            .then_some(init_container_statuses),
        ..Default::default()
    }
}

/// The strategic merge patch body for `pods/status`.
///
/// Strategic merge is what the kubelet uses: `conditions` merge by type, so conditions other writers own
/// (readiness gates, DisruptionTarget) survive. Within a condition, fields merge too, so a `reason` left over
/// from an earlier False would stick to a new True; absent `reason`/`message` are therefore sent as `null`.
/// `metadata.uid` makes the write fail (409) if the name now belongs to a different pod.
pub fn status_patch(uid: &str, status: &PodStatus) -> serde_json::Value {
    let mut status = serde_json::to_value(status).unwrap_or_default();
    if let Some(conds) = status.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds.iter_mut().filter_map(|c| c.as_object_mut()) {
            for field in ["reason", "message"] {
                c.entry(field).or_insert(serde_json::Value::Null);
            }
        }
    }
    serde_json::json!({ "metadata": { "uid": uid }, "status": status })
}

fn fill_fake(cs: &mut ContainerStatus, f: &FakeObserved) {
    cs.restart_count = cs.restart_count.max(f.restart_count);
    cs.last_state = f.last_exit.as_ref().map(terminated);
    match f.state {
        FakeState::Running { since, ready } => {
            cs.ready = ready;
            cs.started = Some(true);
            cs.state = Some(running(since));
        }
        FakeState::BackOff { last } => {
            cs.started = Some(false);
            cs.last_state = Some(terminated(&last));
            cs.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".to_owned()),
                    message: Some(format!(
                        "fake server exited with code {}; restarting",
                        last.code
                    )),
                }),
                ..Default::default()
            });
        }
    }
}

/// Whether every readiness gate's condition is already True in the pod's status (others set those).
fn readiness_gates_pass(pod: &Pod) -> bool {
    let conds = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .all(|g| {
            conds
                .iter()
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
}

fn condition(type_: &str, ok: bool, since: &Time, reason: Option<&str>) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        last_transition_time: Some(since.clone()),
        reason: if ok {
            None
        } else {
            Some(reason.unwrap_or("ContainersNotReady").to_owned())
        },
        ..Default::default()
    }
}

fn running(since: Timestamp) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(since)),
        }),
        ..Default::default()
    }
}

fn terminated(e: &Exit) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: e.code,
            reason: Some(if e.code == 0 { "Completed" } else { "Error" }.to_owned()),
            started_at: Some(Time(e.started)),
            finished_at: Some(Time(e.finished)),
            container_id: None,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A plausible, stable image ID: the repository (tag removed) `@sha256:` a digest derived from the name.
/// An image already pinned by digest is returned unchanged.
pub fn image_id(image: &str) -> String {
    if image.contains("@sha256:") {
        return image.to_owned();
    }
    let repo = match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    };
    // Four FNV-1a passes with different seeds make 64 hex digits; not cryptographic, only stable.
    let digest: String = (0u64..4)
        .map(|seed| {
            let h = image.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            format!("{h:016x}")
        })
        .collect();
    format!("{repo}@sha256:{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podspec::tests::{fake_pod, pod};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn obs(fake: Option<FakeObserved>) -> Observed {
        Observed {
            phase: Phase::Running,
            pod_ip: Some("10.244.1.7".parse().unwrap()),
            start_time: ts("2026-01-01T00:00:00Z"),
            ready_since: ts("2026-01-01T00:00:05Z"),
            fake,
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    fn fake(state: FakeState) -> FakeObserved {
        FakeObserved {
            container: "engine".into(),
            restart_count: 2,
            state,
            last_exit: None,
        }
    }

    #[test]
    fn plain_pod_is_running_and_ready_at_once() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u-9"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}],
                     "initContainers": [{"name": "init", "image": "busybox"}]}
        }));
        let s = pod_status(&p, &obs(None));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.7"));
        assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.244.1.7");
        assert_eq!(s.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.host_ips.as_ref().unwrap()[0].ip, "127.0.0.1");
        assert_eq!(s.start_time, Some(Time(ts("2026-01-01T00:00:00Z"))));
        for t in [
            "PodScheduled",
            "Initialized",
            "PodReadyToStartContainers",
            "ContainersReady",
            "Ready",
        ] {
            assert_eq!(cond(&s, t).status, "True", "{t}");
        }
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(c.ready);
        assert_eq!(c.started, Some(true));
        assert_eq!(c.container_id.as_deref(), Some("sim://u-9/c"));
        assert_eq!(c.image, "nginx:1.27");
        assert!(
            c.image_id.starts_with("nginx@sha256:")
                && c.image_id.len() == "nginx@sha256:".len() + 64
        );
        assert!(c.state.as_ref().unwrap().running.is_some());
        let i = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            i.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            0
        );
    }

    #[test]
    fn fake_pod_follows_the_probe() {
        let p = fake_pod();
        let since = ts("2026-01-01T00:00:01Z");
        let s = pod_status(
            &p,
            &obs(Some(fake(FakeState::Running {
                since,
                ready: false,
            }))),
        );
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "ContainersReady").status, "False");
        assert_eq!(
            cond(&s, "Ready").last_transition_time,
            Some(Time(ts("2026-01-01T00:00:05Z")))
        );
        let cs = s.container_statuses.as_ref().unwrap();
        assert!(cs[0].ready, "the sidecar is ready at once");
        assert!(!cs[1].ready);
        assert_eq!(cs[1].restart_count, 2);
        assert_eq!(
            cs[1]
                .state
                .as_ref()
                .unwrap()
                .running
                .as_ref()
                .unwrap()
                .started_at,
            Some(Time(since))
        );

        let s = pod_status(
            &p,
            &obs(Some(fake(FakeState::Running { since, ready: true }))),
        );
        assert_eq!(cond(&s, "Ready").status, "True");
        assert!(
            s.container_statuses
                .as_ref()
                .unwrap()
                .iter()
                .all(|c| c.ready)
        );
    }

    #[test]
    fn crashed_fake_server_waits_in_backoff() {
        let last = Exit {
            code: 137,
            started: ts("2026-01-01T00:00:01Z"),
            finished: ts("2026-01-01T00:01:00Z"),
        };
        let s = pod_status(&fake_pod(), &obs(Some(fake(FakeState::BackOff { last }))));
        assert_eq!(cond(&s, "Ready").status, "False");
        let c = &s.container_statuses.as_ref().unwrap()[1];
        assert_eq!(c.started, Some(false));
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let t = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("Error")));
    }

    #[test]
    fn job_pod_succeeds() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"containers": [{"name": "hook", "image": "alpine"}]}}),
        );
        let finished = ts("2026-01-01T00:00:02Z");
        let o = Observed {
            phase: Phase::Succeeded { finished },
            pod_ip: None,
            ..obs(None)
        };
        let s = pod_status(&p, &o);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(s.pod_ip, None);
        assert_eq!(s.pod_ips, None);
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        let t = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(
            (t.exit_code, t.reason.as_deref(), t.finished_at),
            (0, Some("Completed"), Some(Time(finished)))
        );
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        let mut p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "readinessGates": [{"conditionType": "example.com/lb"}]}
        }));
        let s = pod_status(&p, &obs(None));
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        assert_eq!(cond(&s, "Ready").status, "False");
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "example.com/lb".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(cond(&pod_status(&p, &obs(None)), "Ready").status, "True");
    }

    #[test]
    fn same_observation_same_status() {
        let o = obs(Some(fake(FakeState::Running {
            since: ts("2026-01-01T00:00:01Z"),
            ready: true,
        })));
        assert_eq!(pod_status(&fake_pod(), &o), pod_status(&fake_pod(), &o));
    }

    #[test]
    fn patch_clears_stale_condition_reasons() {
        let s = pod_status(&fake_pod(), &obs(None));
        let v = status_patch("u-1", &s);
        assert_eq!(v["metadata"]["uid"], "u-1");
        let conds = v["status"]["conditions"].as_array().unwrap();
        assert!(
            conds
                .iter()
                .all(|c| c["reason"].is_null() && c.get("reason").is_some())
        );
        assert!(conds.iter().all(|c| c.get("message").is_some()));
        assert_eq!(v["status"]["podIP"], "10.244.1.7");
    }

    #[test]
    fn image_ids() {
        assert!(
            image_id("registry.local:5000/fake-inference:1.0")
                .starts_with("registry.local:5000/fake-inference@sha256:")
        );
        assert!(
            image_id("registry.local:5000/fake-inference")
                .starts_with("registry.local:5000/fake-inference@sha256:")
        );
        assert_eq!(image_id("a@sha256:00"), "a@sha256:00");
        assert_eq!(image_id("x:1"), image_id("x:1"));
        assert_ne!(image_id("x:1"), image_id("x:2"));
    }
}
