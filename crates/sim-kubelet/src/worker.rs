//! One task per pod: takes the pod from scheduled to Running (or Succeeded) and back to gone.
//!
//! The task owns everything local to its pod (IP, process, probe state, last status written) and loops:
//!
//! 1. **reconcile** — if the pod has a `deletionTimestamp`, stop the process (SIGTERM, SIGKILL after
//!    min(grace, 10 s)), remove and release the IP, then delete the pod with grace 0 and a UID precondition.
//!    Otherwise, per the [`Plan`]: allocate and add the IP, for a mapped program write its ServiceAccount
//!    kubeconfig, start (or, after its backoff, restart) the process, and patch `pods/status` if the status built by [`pod_status`] differs from the last one written;
//! 2. **wait** for the next thing to happen: a new version of the pod from the watch, the pod gone from the
//!    API, the process exiting, the 500 ms probe tick, a retry or restart falling due, or shutdown.
//!
//! Failed writes and `ip` commands are retried with backoff from a timer, so the task keeps reacting to
//! events meanwhile. On shutdown the process is stopped and nothing in the API or the namespace is touched.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Context;
use crate::backoff::{API, RetryTimer, restart_delay};
use crate::node::FIELD_MANAGER;
use crate::podspec::{
    Plan, grace_period, plan, pod_key, reported_pod_ip, reported_restart_count, reported_start_time,
};
use crate::probe::{self, ProbeTracker};
use crate::process::{FakeProcess, exit_code, launch, log_path};
use crate::status::{Exit, FakeObserved, FakeState, Observed, Phase, pod_status, status_patch};

/// How long a child gets between SIGTERM and SIGKILL when sim-kubelet itself shuts down.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the supervisor tells a pod's task.
#[derive(Clone, Debug)]
pub enum PodUpdate {
    /// The latest version of the pod.
    Present(Arc<Pod>),
    /// The pod no longer exists in the API.
    Gone,
}

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Active,
    /// Local cleanup done; the API delete is pending.
    Deleting,
    /// Deleted in the API; waiting for the watch to confirm.
    Deleted,
}

/// Crash/restart bookkeeping of the fake server.
#[derive(Debug, Default)]
struct Restarts {
    count: i32,
    step: u32,
    restart_at: Option<Instant>,
    last_exit: Option<Exit>,
}

/// The task of one pod.
pub struct PodWorker {
    ctx: Arc<Context>,
    uid: String,
    key: String,
    pod: Arc<Pod>,
    rx: watch::Receiver<PodUpdate>,
    plan: Plan,
    stage: Stage,
    /// The allocated IP and whether it is present in the namespace.
    ip: Option<(Ipv4Addr, bool)>,
    net_retry: RetryTimer,
    proc: Option<FakeProcess>,
    restarts: Restarts,
    probe: ProbeTracker,
    start_time: Timestamp,
    finished: Option<Timestamp>,
    ready: Option<(bool, Timestamp)>,
    written: Option<PodStatus>,
    status_retry: RetryTimer,
    delete_retry: RetryTimer,
    /// A program's API access: the kubeconfig written for it.
    kubeconfig: Option<std::path::PathBuf>,
    creds_retry: RetryTimer,
    counted_running: bool,
}

impl PodWorker {
    /// A task for `pod`, receiving later versions through `rx`.
    pub fn new(ctx: Arc<Context>, pod: Arc<Pod>, rx: watch::Receiver<PodUpdate>) -> Self {
        let plan = plan(&pod, &ctx.images);
        let restarts = match &plan {
            Plan::Run(Some(f)) => Restarts {
                count: reported_restart_count(&pod, &f.container),
                ..Default::default()
            },
            _ => Restarts::default(),
        };
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            key: pod_key(&pod),
            start_time: reported_start_time(&pod).unwrap_or_else(Timestamp::now),
            ctx,
            pod,
            rx,
            plan,
            stage: Stage::Active,
            ip: None,
            net_retry: RetryTimer::default(),
            proc: None,
            restarts,
            probe: ProbeTracker::default(),
            finished: None,
            ready: None,
            written: None,
            status_retry: RetryTimer::default(),
            delete_retry: RetryTimer::default(),
            kubeconfig: None,
            creds_retry: RetryTimer::default(),
            counted_running: false,
        }
    }

    /// Runs until the pod is gone from the API or sim-kubelet shuts down.
    pub async fn run(mut self) {
        tracing::debug!(pod = %self.key, uid = %self.uid, plan = ?self.plan, "tracking pod");
        self.ctx.metrics.pods.inc();
        let mut probe_tick = tokio::time::interval(probe::PERIOD);
        probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.ctx.shutdown.clone();
        loop {
            self.reconcile().await;
            let wake = self.next_wakeup();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.stop_process(SHUTDOWN_GRACE).await;
                    break;
                }
                changed = self.rx.changed() => {
                    let update = match changed {
                        Ok(()) => self.rx.borrow_and_update().clone(),
                        // The supervisor went away without saying the pod is gone: treat it as shutdown.
                        Err(_) => {
                            self.stop_process(SHUTDOWN_GRACE).await;
                            break;
                        }
                    };
                    match update {
                        PodUpdate::Present(p) => self.pod = p,
                        PodUpdate::Gone => {
                            self.on_gone().await;
                            break;
                        }
                    }
                }
                status = wait_for(&mut self.proc) => self.on_exit(status),
                _ = probe_tick.tick(), if self.proc.is_some() => self.probe_once().await,
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            }
        }
        self.set_running_metric(false);
        self.ctx.metrics.pods.dec();
    }

    async fn reconcile(&mut self) {
        if self.stage == Stage::Active && self.pod.metadata.deletion_timestamp.is_some() {
            self.begin_delete().await;
        }
        match self.stage {
            Stage::Active => match self.plan.clone() {
                Plan::Leave => {}
                Plan::Complete => {
                    self.finished.get_or_insert_with(Timestamp::now);
                    self.sync_status().await;
                }
                Plan::Run(fake) => {
                    if self.ensure_ip().await {
                        if let Some(spec) = fake
                            && (spec.program.is_none() || self.ensure_credentials().await)
                        {
                            self.ensure_process();
                        }
                        self.sync_status().await;
                    }
                }
            },
            Stage::Deleting => self.try_delete().await,
            Stage::Deleted => {}
        }
    }

    /// Allocates the pod's IP (keeping `status.podIP` when possible) and adds it in the namespace.
    /// Returns whether the IP is in place.
    async fn ensure_ip(&mut self) -> bool {
        if let Some((_, true)) = self.ip {
            return true;
        }
        if !self.net_retry.is_due(Instant::now()) {
            return false;
        }
        let ip = match self.ip {
            Some((ip, _)) => ip,
            None => {
                let reported = reported_pod_ip(&self.pod);
                match self
                    .ctx
                    .ipam
                    .lock()
                    .expect("ipam lock")
                    .allocate(&self.uid, reported)
                {
                    Ok(ip) => {
                        if reported.is_some_and(|r| r != ip) {
                            tracing::warn!(pod = %self.key, ?reported, %ip, "could not keep the reported pod IP");
                        }
                        ip
                    }
                    Err(e) => {
                        let d = self.net_retry.failed(API, Instant::now());
                        tracing::error!(pod = %self.key, error = %e, retry_in = ?d, "no pod IP");
                        return false;
                    }
                }
            }
        };
        self.ip = Some((ip, false));
        match self.ctx.net.add(ip).await {
            Ok(()) => {
                self.ip = Some((ip, true));
                self.net_retry.succeeded();
                true
            }
            Err(e) => {
                let d = self.net_retry.failed(API, Instant::now());
                tracing::warn!(pod = %self.key, %ip, error = %e, retry_in = ?d, "adding the pod IP failed");
                false
            }
        }
    }

    /// The pod's directory (logs, credentials).
    fn pod_dir(&self) -> std::path::PathBuf {
        let md = &self.pod.metadata;
        log_path(
            &self.ctx.log_dir,
            md.namespace.as_deref().unwrap_or_default(),
            md.name.as_deref().unwrap_or_default(),
            &self.uid,
            "x",
        )
        .parent()
        .map(ToOwned::to_owned)
        .unwrap_or_default()
    }

    /// For a program: a token of the pod's ServiceAccount and a kubeconfig, written once per pod.
    /// Returns whether they are in place (or not needed: no API access configured).
    async fn ensure_credentials(&mut self) -> bool {
        let Some(access) = self.ctx.api_access.as_ref() else {
            return true;
        };
        if self.kubeconfig.is_some() {
            return true;
        }
        if !self.creds_retry.is_due(Instant::now()) {
            return false;
        }
        let dir = self.pod_dir().join("serviceaccount");
        match crate::credentials::pod_kubeconfig(&self.ctx.client, access, &self.pod, &dir).await {
            Ok(path) => {
                tracing::debug!(pod = %self.key, kubeconfig = %path.display(), "ServiceAccount credentials written");
                self.creds_retry.succeeded();
                self.kubeconfig = Some(path);
                true
            }
            Err(e) => {
                let d = self.creds_retry.failed(API, Instant::now());
                tracing::warn!(pod = %self.key, error = format!("{e:#}"), retry_in = ?d, "no ServiceAccount credentials for the pod's program");
                false
            }
        }
    }

    /// What a program gets besides its container's env: where the API server is.
    fn api_env(&self) -> Vec<(String, String)> {
        let (Some(path), Some(access)) = (&self.kubeconfig, &self.ctx.api_access) else {
            return Vec::new();
        };
        let mut env = vec![("KUBECONFIG".to_owned(), path.display().to_string())];
        if let Some((host, port)) = access
            .server
            .strip_prefix("https://")
            .and_then(|a| a.rsplit_once(':'))
        {
            env.push(("KUBERNETES_SERVICE_HOST".to_owned(), host.to_owned()));
            env.push(("KUBERNETES_SERVICE_PORT".to_owned(), port.to_owned()));
        }
        env
    }

    /// Starts the process if it is not running and no restart delay is pending.
    fn ensure_process(&mut self) {
        let (Plan::Run(Some(spec)), Some((ip, true))) = (&self.plan, self.ip) else {
            return;
        };
        if self.proc.is_some() || self.restarts.restart_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let restarting = self.restarts.restart_at.take().is_some();
        let md = &self.pod.metadata;
        let log = log_path(
            &self.ctx.log_dir,
            md.namespace.as_deref().unwrap_or_default(),
            md.name.as_deref().unwrap_or_default(),
            &self.uid,
            &spec.container,
        );
        let what = launch(spec, &self.ctx.fake_bin, ip, &self.uid, self.api_env());
        match FakeProcess::spawn(&self.ctx.net, &what, &log) {
            Ok(p) => {
                tracing::info!(pod = %self.key, %ip, bin = %what.bin.display(), log = %log.display(), restarting, "started the pod's process");
                if restarting {
                    self.restarts.count = self.restarts.count.saturating_add(1);
                    self.ctx.metrics.process_restarts.inc();
                }
                self.ctx.metrics.fake_processes.inc();
                self.proc = Some(p);
            }
            Err(e) => {
                tracing::warn!(pod = %self.key, error = %e, bin = %what.bin.display(), "starting the pod's process failed");
                let now = Timestamp::now();
                self.record_exit(
                    Exit {
                        code: 127,
                        started: now,
                        finished: now,
                    },
                    Duration::ZERO,
                );
            }
        }
    }

    fn on_exit(&mut self, status: std::io::Result<std::process::ExitStatus>) {
        let Some(p) = self.proc.take() else { return };
        self.ctx.metrics.fake_processes.dec();
        let code = status.map(exit_code).unwrap_or(-1);
        tracing::warn!(pod = %self.key, code, "fake server exited");
        self.record_exit(
            Exit {
                code,
                started: p.started,
                finished: Timestamp::now(),
            },
            p.started_at.elapsed(),
        );
    }

    fn record_exit(&mut self, exit: Exit, ran_for: Duration) {
        let (delay, step) = restart_delay(self.restarts.step, ran_for);
        self.restarts.step = step;
        self.restarts.restart_at = Some(Instant::now() + delay);
        self.restarts.last_exit = Some(exit);
        self.probe.reset();
        tracing::info!(pod = %self.key, restart_in = ?delay, "fake server will be restarted");
    }

    async fn probe_once(&mut self) {
        let (Plan::Run(Some(spec)), Some((ip, _))) = (&self.plan, self.ip) else {
            return;
        };
        let ok = probe::probe(&self.ctx.http, ip, spec.probe_port, &spec.probe_path).await;
        if self.probe.observe(ok) {
            tracing::info!(pod = %self.key, ready = self.probe.ready(), "readiness changed");
        }
    }

    /// What the status is built from, or `None` while there is nothing to report yet.
    fn observed(&mut self) -> Option<Observed> {
        let ip = self.ip.filter(|(_, added)| *added).map(|(ip, _)| ip);
        let (phase, fake, ready) = match &self.plan {
            Plan::Leave => return None,
            Plan::Complete => (
                Phase::Succeeded {
                    finished: self.finished?,
                },
                None,
                false,
            ),
            Plan::Run(None) => (Phase::Running, None, true),
            Plan::Run(Some(spec)) => {
                let state = match (&self.proc, self.restarts.last_exit) {
                    (Some(p), _) => FakeState::Running {
                        since: p.started,
                        ready: self.probe.ready(),
                    },
                    (None, Some(last)) => FakeState::BackOff { last },
                    (None, None) => return None,
                };
                let ready = matches!(state, FakeState::Running { ready: true, .. });
                let f = FakeObserved {
                    container: spec.container.clone(),
                    restart_count: self.restarts.count,
                    state,
                    last_exit: self.restarts.last_exit,
                };
                (Phase::Running, Some(f), ready)
            }
        };
        if phase == Phase::Running {
            ip?;
        }
        let ready_since = match self.ready {
            Some((r, since)) if r == ready => since,
            _ => {
                let since = if self.ready.is_none() {
                    self.reported_ready_since(ready)
                } else {
                    None
                };
                let since = since.unwrap_or_else(Timestamp::now);
                self.ready = Some((ready, since));
                since
            }
        };
        Some(Observed {
            phase,
            pod_ip: ip,
            start_time: self.start_time,
            ready_since,
            fake,
        })
    }

    /// After a restart of sim-kubelet: the pod's Ready transition time, if its status already says `ready`.
    fn reported_ready_since(&self, ready: bool) -> Option<Timestamp> {
        let want = if ready { "True" } else { "False" };
        let c = self
            .pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == want)
            .then(|| c.last_transition_time.as_ref().map(|t| t.0))
            .flatten()
    }

    /// Patches `pods/status` when the desired status differs from the last one written.
    async fn sync_status(&mut self) {
        if !self.status_retry.is_due(Instant::now()) {
            return;
        }
        let Some(obs) = self.observed() else { return };
        let desired = pod_status(&self.pod, &obs);
        if self.written.as_ref() == Some(&desired) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = self.pod.metadata.name.as_deref().unwrap_or_default();
        let body = status_patch(&self.uid, &desired);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        match pods.patch_status(name, &pp, &Patch::Strategic(body)).await {
            Ok(_) => {
                tracing::debug!(pod = %self.key, phase = ?desired.phase, "status written");
                self.set_running_metric(desired.phase.as_deref() == Some("Running"));
                self.status_retry.succeeded();
                self.written = Some(desired);
            }
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {
                tracing::debug!(pod = %self.key, reason = %s.message, "pod gone or replaced; status not written");
                self.written = Some(desired);
            }
            Err(e) => {
                let d = self.status_retry.failed(API, Instant::now());
                tracing::warn!(pod = %self.key, error = %e, retry_in = ?d, "writing the pod status failed");
            }
        }
    }

    /// Local part of a deletion: stop the process, drop the IP.
    async fn begin_delete(&mut self) {
        tracing::info!(pod = %self.key, "pod is being deleted");
        self.stop_process(grace_period(&self.pod)).await;
        self.release_ip().await;
        self.forget_credentials().await;
        self.set_running_metric(false);
        self.stage = Stage::Deleting;
    }

    async fn try_delete(&mut self) {
        if !self.delete_retry.is_due(Instant::now()) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods
            .delete(self.pod.metadata.name.as_deref().unwrap_or_default(), &dp)
            .await
        {
            Ok(_) => self.stage = Stage::Deleted,
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {
                self.stage = Stage::Deleted
            }
            Err(e) => {
                let d = self.delete_retry.failed(API, Instant::now());
                tracing::warn!(pod = %self.key, error = %e, retry_in = ?d, "deleting the pod failed");
            }
        }
    }

    /// The pod vanished from the API (possibly without a `deletionTimestamp` we saw): clean up locally.
    async fn on_gone(&mut self) {
        tracing::info!(pod = %self.key, "pod gone");
        self.stop_process(grace_period(&self.pod)).await;
        self.release_ip().await;
        self.forget_credentials().await;
    }

    /// Removes the token written for the pod's program (it is bound to the pod, so it is dead anyway).
    async fn forget_credentials(&mut self) {
        if self.kubeconfig.take().is_some() {
            let _ = tokio::fs::remove_dir_all(self.pod_dir().join("serviceaccount")).await;
        }
    }

    async fn stop_process(&mut self, grace: Duration) {
        if let Some(p) = self.proc.take() {
            self.ctx.metrics.fake_processes.dec();
            let status = p.stop(grace).await;
            tracing::info!(pod = %self.key, code = ?status.map(exit_code), "fake server stopped");
        }
        self.restarts.restart_at = None;
        self.probe.reset();
    }

    /// Removes the address from the namespace, then frees it (in that order, so it cannot be handed to a new
    /// pod while still present). Also frees an address reserved for the pod when the allocator was rebuilt.
    async fn release_ip(&mut self) {
        let reserved = self.ctx.ipam.lock().expect("ipam lock").get(&self.uid);
        if let Some(ip) = self.ip.map(|(ip, _)| ip).or(reserved)
            && let Err(e) = self.ctx.net.remove(ip).await
        {
            tracing::warn!(pod = %self.key, %ip, error = %e, "removing the pod IP failed");
        }
        self.ctx.ipam.lock().expect("ipam lock").release(&self.uid);
        self.ip = None;
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let timers = match self.stage {
            Stage::Active => [
                self.net_retry.due(),
                self.status_retry.due(),
                self.restarts.restart_at,
                self.creds_retry.due(),
            ],
            Stage::Deleting => [self.delete_retry.due(), None, None, None],
            Stage::Deleted => [None, None, None, None],
        };
        timers.into_iter().flatten().min()
    }

    fn set_running_metric(&mut self, running: bool) {
        if running != self.counted_running {
            if running {
                self.ctx.metrics.pods_running.inc();
            } else {
                self.ctx.metrics.pods_running.dec();
            }
            self.counted_running = running;
        }
    }
}

/// Waits for the process to exit; never resolves without one.
async fn wait_for(proc: &mut Option<FakeProcess>) -> std::io::Result<std::process::ExitStatus> {
    match proc {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}
