//! The process of one pod's container: the fake inference server or a mapped program ([`Launch`]).
//!
//! It runs as `ip netns exec <netns> <bin> <args>` — for the fake server `--listen <podIP>:<port> --group-id
//! <id>`, for a program the container's `args` — with the container's env (see
//! [`crate::podspec::resolve_env`]) added to sim-kubelet's own environment. `ip netns exec` execs the program in place,
//! so the child's PID is the server's and signals reach it directly. Its stdout and stderr go, appended, to
//! one file per pod and container: `<log-dir>/<namespace>_<pod>_<uid>/<container>.log` (the layout of the
//! kubelet's `/var/log/pods`), with a marker line before each start. Stopping sends SIGTERM and kills
//! after a grace period.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::credentials::POD_UID_ENV;
use crate::netns::PodNetwork;
use crate::podspec::{FakeSpec, expand, resolve_env};

/// What to execute for a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The binary.
    pub bin: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Added to sim-kubelet's environment, later entries winning.
    pub env: Vec<(String, String)>,
}

/// The command for `spec` on `ip`: `fake_bin` with [`fake_args`], or the mapped program with the container's
/// args expanded. `extra` (the pod's API access) comes first, so the container's own env overrides it; the
/// pod's UID comes last, as the mark of a process sim-kubelet started.
pub fn launch(
    spec: &FakeSpec,
    fake_bin: &Path,
    ip: Ipv4Addr,
    uid: &str,
    extra: Vec<(String, String)>,
) -> Launch {
    let own = resolve_env(&spec.env, ip);
    let (bin, args) = match &spec.program {
        None => (fake_bin.to_owned(), fake_args(spec, ip)),
        Some(bin) => (
            bin.clone(),
            spec.args.iter().map(|a| expand(a, &own)).collect(),
        ),
    };
    let mut env = extra;
    env.extend(own);
    env.push((POD_UID_ENV.to_owned(), uid.to_owned()));
    Launch { bin, args, env }
}

/// A running fake server.
#[derive(Debug)]
pub struct FakeProcess {
    child: Child,
    /// Wall-clock start, for the container status.
    pub started: Timestamp,
    /// Monotonic start, for the restart backoff.
    pub started_at: Instant,
}

/// Arguments of the fake server.
pub fn fake_args(spec: &FakeSpec, ip: Ipv4Addr) -> Vec<String> {
    vec![
        "--listen".into(),
        format!("{ip}:{}", spec.port),
        "--group-id".into(),
        spec.group_id.clone(),
    ]
}

/// The log file of a pod's container.
pub fn log_path(log_dir: &Path, namespace: &str, pod: &str, uid: &str, container: &str) -> PathBuf {
    log_dir
        .join(format!("{namespace}_{pod}_{uid}"))
        .join(format!("{container}.log"))
}

/// The exit code as the kubelet reports it: the code, or 128 + the signal number.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

impl FakeProcess {
    /// Starts `what` inside the namespace, logging to `log`.
    pub fn spawn(net: &PodNetwork, what: &Launch, log: &Path) -> std::io::Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let started = Timestamp::now();
        writeln!(
            out,
            "--- sim-kubelet: starting {} {} at {started} ---",
            what.bin.display(),
            what.args.join(" ")
        )?;
        let err = out.try_clone()?;
        let child = Command::new("ip")
            .args(net.exec_argv(&what.bin, &what.args))
            .envs(what.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // A safety net only: every path that drops a process stops it first.
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self {
            child,
            started,
            started_at: Instant::now(),
        })
    }

    /// Waits for the process to exit (cancel-safe).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends SIGTERM, waits up to `grace`, then kills. Returns the exit status if one was collected.
    pub async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // ESRCH means it already exited; wait() below collects it.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            if let Ok(Ok(status)) = tokio::time::timeout(grace, self.child.wait()).await {
                return Some(status);
            }
        }
        let _ = self.child.start_kill();
        self.child.wait().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_paths() {
        let mut spec = FakeSpec {
            container: "engine".into(),
            program: None,
            args: vec!["--ignored".into()],
            port: 9000,
            probe_port: 9000,
            group_id: "g1".into(),
            probe_path: "/health".into(),
            env: vec![crate::podspec::EnvSpec {
                name: "ADDR".into(),
                source: crate::podspec::EnvSource::PodIp,
            }],
        };
        let ip = "10.244.1.2".parse().unwrap();
        assert_eq!(
            fake_args(&spec, ip),
            ["--listen", "10.244.1.2:9000", "--group-id", "g1"]
        );
        let extra = vec![
            ("KUBECONFIG".into(), "/k".into()),
            ("ADDR".into(), "x".into()),
        ];
        let l = launch(&spec, Path::new("/bin/fake"), ip, "u-1", extra.clone());
        assert_eq!(l.bin, PathBuf::from("/bin/fake"));
        assert_eq!(l.args, fake_args(&spec, ip));
        assert_eq!(
            l.env,
            [
                ("KUBECONFIG".into(), "/k".into()),
                ("ADDR".into(), "x".into()),
                ("ADDR".into(), "10.244.1.2".into()),
                (POD_UID_ENV.into(), "u-1".into())
            ]
        );
        spec.program = Some("/bin/dlx".into());
        spec.args = vec!["--listen=$(ADDR):80".into()];
        let l = launch(&spec, Path::new("/bin/fake"), ip, "u-1", extra);
        assert_eq!(l.bin, PathBuf::from("/bin/dlx"));
        assert_eq!(l.args, ["--listen=10.244.1.2:80"]);
        assert_eq!(
            log_path(Path::new("/l"), "ns", "p", "u", "engine"),
            PathBuf::from("/l/ns_p_u/engine.log")
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }

    #[tokio::test]
    async fn stop_terminates_then_kills() {
        // A plain child (no netns) exercises the SIGTERM path; `sh` ignoring TERM exercises the kill path.
        let child = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let p = FakeProcess {
            child,
            started: Timestamp::now(),
            started_at: Instant::now(),
        };
        let st = p.stop(Duration::from_secs(5)).await.unwrap();
        assert_eq!(exit_code(st), 143);

        let child = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.1; done"])
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let p = FakeProcess {
            child,
            started: Timestamp::now(),
            started_at: Instant::now(),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = std::time::Instant::now();
        let st = p.stop(Duration::from_millis(300)).await.unwrap();
        assert_eq!(exit_code(st), 137);
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
