//! Leader election on a `coordination.k8s.io/v1` Lease, shared by every controller binary.
//!
//! A controller runs its work only while it holds the Lease; extra replicas are hot standbys. The flow of
//! [`run_leader_elected`]:
//!
//! 1. **Disabled** (`--leader-elect=false`): mark [`Readiness`], run the work with a child of the shutdown
//!    token, return its result. For local runs and single-replica tests.
//! 2. **Standby**: build the lease manager (creating the Lease if it is missing), then mark [`Readiness`]:
//!    a standby can reach the API and the Lease, which is what "ready" means for it. (Marking only the
//!    leader ready would stall every rolling update: the new Pod never becomes ready while the old one holds
//!    the Lease.) Wait until the Lease is acquired, or return `Ok(())` on shutdown.
//! 3. **Leading**: run the work with a child [`CancellationToken`] while the lease manager renews the Lease
//!    in the background of the same task. The `<prefix>_leader` gauge is 1.
//!    - **Leadership lost** (another holder took the Lease, or renewals kept failing for longer than the
//!      renew grace, so the Lease may already have expired): cancel the work, wait for it to return, and
//!      return [`LeaderError::Lost`]. The binary exits non-zero and Kubernetes restarts it as a standby,
//!      like controller-runtime: no state of the old term can leak into a new one.
//!    - **Shutdown** (SIGTERM): the work's token is a child of the shutdown token, so it is cancelled
//!      with it; wait for the work, then release the Lease so a standby takes over at once instead of
//!      after the Lease expires, and return the work's result.
//!    - **The work returns on its own**: release the Lease and return its result.
//!
//! The Kubernetes side is [`kube_lease_manager`] (server-side apply with conflict detection on the
//! Lease). It needs `get`, `create` and `patch` on `leases` in the Lease's namespace. The state machine
//! above is written against the small [`Elector`] trait, so it is unit-tested without a cluster.
//!
//! ```no_run
//! # async fn example(client: kube::Client, args: pdo_runtime::leader::LeaderArgs) -> anyhow::Result<()> {
//! use pdo_runtime::{Readiness, shutdown_token, leader::{run_leader_elected, Election}};
//! let mut registry = prometheus_client::registry::Registry::with_prefix("rsg_controller");
//! let election = Election::new(client, &args, "rsg-controller", Readiness::default(), &mut registry)?;
//! run_leader_elected(election, shutdown_token()?, |token| async move {
//!     token.cancelled().await; // the controller, stopping when `token` is cancelled
//!     Ok(())
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use clap::{ArgAction, Args};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Readiness;

/// Leader-election flags, meant to be `#[command(flatten)]`ed into a controller's `Args`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct LeaderArgs {
    /// Elect a leader through a Lease, so only one replica acts; `false` runs the work at once.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease; default: the component's name.
    #[arg(long, env = "LEASE_NAME")]
    pub lease_name: Option<String>,
    /// Namespace of the Lease; default: the Pod's namespace (`POD_NAMESPACE`), else the kubeconfig's
    /// default namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease stays valid after its last renewal; a standby takes over at most this long after
    /// the leader dies without releasing it.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// The leader renews this many seconds before the Lease expires; also how long renewals may keep
    /// failing before the leader gives up (the Lease may have expired by then).
    #[arg(long, env = "LEASE_RENEW_GRACE_SECONDS", default_value_t = 5)]
    pub lease_renew_grace_seconds: u64,
    /// Holder identity, unique per replica; default: the Pod's name (`POD_NAME`), else `<hostname>-<pid>`.
    #[arg(long, env = "POD_NAME")]
    pub leader_identity: Option<String>,
}

impl Default for LeaderArgs {
    fn default() -> Self {
        Self {
            leader_elect: true,
            lease_name: None,
            lease_namespace: None,
            lease_duration_seconds: 15,
            lease_renew_grace_seconds: 5,
            leader_identity: None,
        }
    }
}

impl LeaderArgs {
    /// Checks the timing flags: a grace of at least 1 s and shorter than the duration.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.lease_renew_grace_seconds == 0
            || self.lease_renew_grace_seconds >= self.lease_duration_seconds
        {
            return Err(LeaderError::Config(format!(
                "--lease-renew-grace-seconds ({}) must be at least 1 and less than --lease-duration-seconds ({})",
                self.lease_renew_grace_seconds, self.lease_duration_seconds
            )));
        }
        Ok(())
    }

    /// The Lease name: `--lease-name`, else `component`.
    pub fn lease_name_or(&self, component: &str) -> String {
        non_empty(self.lease_name.as_deref())
            .unwrap_or(component)
            .to_string()
    }

    /// The holder identity: `--leader-identity`/`POD_NAME`, else `<hostname>-<pid>` (the pid keeps two
    /// local processes on one host apart).
    pub fn identity(&self) -> String {
        identity_from(
            self.leader_identity.as_deref(),
            hostname().as_deref(),
            std::process::id(),
        )
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn identity_from(explicit: Option<&str>, hostname: Option<&str>, pid: u32) -> String {
    if let Some(id) = non_empty(explicit) {
        return id.to_string();
    }
    format!("{}-{pid}", non_empty(hostname).unwrap_or("unknown-host"))
}

fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
}

/// Why leader election stopped the process.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Invalid flags.
    #[error("leader election: {0}")]
    Config(String),
    /// The Lease could not be set up (API unreachable, no RBAC for `leases`, ...).
    #[error("leader election: setting up Lease {lease}: {source}")]
    Setup {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The cause.
        #[source]
        source: LeaseManagerError,
    },
    /// Leadership was lost while the work ran; the work was cancelled. Exit and restart as a standby.
    #[error("leader election: lost the Lease: {0}")]
    Lost(String),
    /// The work itself failed.
    #[error(transparent)]
    Work(#[from] anyhow::Error),
}

/// The Lease operations the state machine needs; [`LeaseManager`] in production, a fake in tests.
pub trait Elector: Send + Sync {
    /// Waits until the lock state changes (tries to acquire a free Lease, renews a held one) and returns
    /// whether this replica now holds it.
    fn changed(&self) -> impl Future<Output = Result<bool, LeaseManagerError>> + Send;
    /// Releases the Lease if held.
    fn release(&self) -> impl Future<Output = Result<(), LeaseManagerError>> + Send;
}

impl Elector for LeaseManager {
    fn changed(&self) -> impl Future<Output = Result<bool, LeaseManagerError>> + Send {
        LeaseManager::changed(self)
    }
    fn release(&self) -> impl Future<Output = Result<(), LeaseManagerError>> + Send {
        LeaseManager::release(self)
    }
}

/// Everything [`run_leader_elected`] needs, built from the flags.
pub struct Election {
    client: kube::Client,
    args: LeaderArgs,
    lease_name: String,
    namespace: String,
    identity: String,
    ready: Readiness,
    is_leader: Gauge,
}

impl Election {
    /// Validates the flags, resolves the Lease name, namespace and identity, and registers the
    /// `leader` gauge (1 while this replica leads) in `registry`.
    pub fn new(
        client: kube::Client,
        args: &LeaderArgs,
        component: &str,
        ready: Readiness,
        registry: &mut Registry,
    ) -> Result<Self, LeaderError> {
        args.validate()?;
        let namespace = non_empty(args.lease_namespace.as_deref())
            .unwrap_or(client.default_namespace())
            .to_string();
        let is_leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader-election Lease",
            is_leader.clone(),
        );
        Ok(Self {
            client,
            lease_name: args.lease_name_or(component),
            namespace,
            identity: args.identity(),
            args: args.clone(),
            ready,
            is_leader,
        })
    }
}

/// Runs `work` only while this replica holds the Lease; see the [module docs](self) for the flow.
///
/// `work` gets a token that is cancelled on shutdown and on lost leadership, and must return soon after.
pub async fn run_leader_elected<W, Fut>(
    election: Election,
    shutdown: CancellationToken,
    work: W,
) -> Result<(), LeaderError>
where
    W: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if !election.args.leader_elect {
        tracing::info!("leader election disabled (--leader-elect=false); running at once");
        election.ready.set(true);
        election.is_leader.set(1);
        let res = work(shutdown.child_token()).await;
        election.is_leader.set(0);
        return res.map_err(LeaderError::Work);
    }
    let lease = format!("{}/{}", election.namespace, election.lease_name);
    let manager = LeaseManagerBuilder::new(election.client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.args.lease_duration_seconds)
        .with_grace(election.args.lease_renew_grace_seconds)
        .build()
        .await
        .map_err(|source| LeaderError::Setup {
            lease: lease.clone(),
            source,
        })?;
    tracing::info!(%lease, identity = %election.identity, "waiting for the leader-election Lease");
    run_with(
        &manager,
        Duration::from_secs(election.args.lease_renew_grace_seconds),
        &election.ready,
        &election.is_leader,
        shutdown,
        work,
    )
    .await
}

/// How long shutdown waits for the Lease to be released before leaving it to expire.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// The state machine of [`run_leader_elected`] over any [`Elector`]. `renew_deadline`: how long renewals
/// may fail in a row before leadership counts as lost.
pub async fn run_with<E, W, Fut>(
    elector: &E,
    renew_deadline: Duration,
    ready: &Readiness,
    is_leader: &Gauge,
    shutdown: CancellationToken,
    work: W,
) -> Result<(), LeaderError>
where
    E: Elector,
    W: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    ready.set(true);
    // Standby: wait for the Lease or for shutdown.
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            changed = elector.changed() => match changed {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: acquiring the Lease failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
        }
    }
    tracing::info!("acquired the leader-election Lease; starting work");
    is_leader.set(1);
    let token = shutdown.child_token();
    let work = work(token.clone());
    tokio::pin!(work);
    // The renewal loop is dropped before the Lease is released: an in-flight `changed()` may hold the
    // manager's state, and `release()` would wait for it.
    let outcome = {
        let lost = keep_leading(elector, renew_deadline);
        tokio::pin!(lost);
        tokio::select! {
            res = &mut work => Ok(res),
            // Biased towards nothing: a shutdown cancels `token` (a child), so the work returns next.
            reason = &mut lost => Err(reason),
        }
    };
    let res = match outcome {
        Ok(res) => res,
        Err(reason) => {
            is_leader.set(0);
            tracing::error!(%reason, "lost leadership; stopping work");
            token.cancel();
            let _ = work.await;
            return Err(LeaderError::Lost(reason));
        }
    };
    is_leader.set(0);
    match tokio::time::timeout(RELEASE_TIMEOUT, elector.release()).await {
        Ok(Ok(())) => tracing::info!("released the leader-election Lease"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "releasing the leader-election Lease failed; it expires on its own")
        }
        Err(_) => tracing::warn!(
            "releasing the leader-election Lease took longer than {RELEASE_TIMEOUT:?}; it expires on its own"
        ),
    }
    res.map_err(LeaderError::Work)
}

/// Renews the Lease until leadership is lost and returns why: another holder, or renewals failing for
/// longer than `renew_deadline` (measured on the monotonic clock).
async fn keep_leading<E: Elector>(elector: &E, renew_deadline: Duration) -> String {
    let mut failing_since: Option<Instant> = None;
    loop {
        match elector.changed().await {
            Ok(true) => failing_since = None,
            Ok(false) => return "another replica holds the Lease".into(),
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= renew_deadline {
                    return format!("renewing failed for {renew_deadline:?}: {e}");
                }
                tracing::warn!(error = %e, "renewing the leader-election Lease failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        leader: LeaderArgs,
    }

    #[test]
    fn flags_parse_and_validate() {
        let cli = Cli::try_parse_from([
            "x",
            "--leader-elect=false",
            "--lease-name=l",
            "--lease-namespace=ns",
            "--lease-duration-seconds=20",
            "--leader-identity=pod-0",
        ])
        .unwrap();
        assert!(!cli.leader.leader_elect);
        assert_eq!(cli.leader.lease_name_or("c"), "l");
        assert_eq!(cli.leader.identity(), "pod-0");
        assert!(cli.leader.validate().is_ok());
        let bad = LeaderArgs {
            lease_duration_seconds: 5,
            ..LeaderArgs::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("less than --lease-duration-seconds")
        );
        assert_eq!(
            LeaderArgs::default().lease_name_or("tidal-scheduler"),
            "tidal-scheduler"
        );
    }

    #[test]
    fn identity_falls_back_to_host_and_pid() {
        assert_eq!(identity_from(Some("p"), Some("h"), 7), "p");
        assert_eq!(identity_from(Some(" "), Some("h"), 7), "h-7");
        assert_eq!(identity_from(None, None, 7), "unknown-host-7");
    }

    /// Answers `changed()` from a script; when the script is exhausted, blocks forever (steady state).
    struct Fake {
        script: Mutex<Vec<Result<bool, ()>>>,
        released: AtomicUsize,
    }

    impl Fake {
        fn new(mut script: Vec<Result<bool, ()>>) -> Self {
            script.reverse();
            Self {
                script: Mutex::new(script),
                released: AtomicUsize::new(0),
            }
        }
    }

    impl Elector for Fake {
        async fn changed(&self) -> Result<bool, LeaseManagerError> {
            let next = self.script.lock().unwrap().pop();
            match next {
                Some(Ok(b)) => Ok(b),
                Some(Err(())) => Err(LeaseManagerError::InconsistentState("boom".into())),
                None => std::future::pending().await,
            }
        }
        async fn release(&self) -> Result<(), LeaseManagerError> {
            self.released.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn work_runs_once_acquired_and_lease_is_released_on_shutdown() {
        let fake = Fake::new(vec![Ok(false), Err(()), Ok(true)]);
        let ready = Readiness::default();
        let gauge = Gauge::default();
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        let g = gauge.clone();
        let res = run_with(
            &fake,
            Duration::from_secs(5),
            &ready,
            &gauge,
            shutdown,
            |t| async move {
                assert_eq!(g.get(), 1, "leader gauge set while working");
                s.cancel();
                t.cancelled().await;
                Ok(())
            },
        )
        .await;
        assert!(res.is_ok(), "{res:?}");
        assert!(ready.get());
        assert_eq!(gauge.get(), 0);
        assert_eq!(fake.released.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn losing_the_lease_cancels_work_and_errors() {
        let fake = Fake::new(vec![Ok(true), Ok(false)]);
        let cancelled = std::sync::Arc::new(AtomicUsize::new(0));
        let c = cancelled.clone();
        let res = run_with(
            &fake,
            Duration::from_secs(5),
            &Readiness::default(),
            &Gauge::default(),
            CancellationToken::new(),
            |t| async move {
                t.cancelled().await;
                c.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .await;
        assert!(matches!(res, Err(LeaderError::Lost(_))), "{res:?}");
        assert_eq!(
            cancelled.load(Ordering::SeqCst),
            1,
            "work saw its token cancelled"
        );
        assert_eq!(fake.released.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn renew_errors_past_the_deadline_lose_leadership_but_short_ones_do_not() {
        // Two failures then success: within a 5 s deadline (500 ms apart), leadership is kept.
        let fake = Fake::new(vec![Ok(true), Err(()), Err(()), Ok(true)]);
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        let res = run_with(
            &fake,
            Duration::from_secs(5),
            &Readiness::default(),
            &Gauge::default(),
            shutdown,
            |t| async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                s.cancel();
                t.cancelled().await;
                Ok(())
            },
        )
        .await;
        assert!(res.is_ok(), "{res:?}");
        // Failures for longer than the deadline: lost.
        let fake = Fake::new(
            std::iter::once(Ok(true))
                .chain(std::iter::repeat_n(Err(()), 20))
                .collect(),
        );
        let res = run_with(
            &fake,
            Duration::from_secs(2),
            &Readiness::default(),
            &Gauge::default(),
            CancellationToken::new(),
            |t| async move {
                t.cancelled().await;
                Ok(())
            },
        )
        .await;
        assert!(
            matches!(&res, Err(LeaderError::Lost(m)) if m.contains("renewing failed")),
            "{res:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_while_standby_returns_without_running_work() {
        let fake = Fake::new(vec![]);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let res = run_with(
            &fake,
            Duration::from_secs(5),
            &Readiness::default(),
            &Gauge::default(),
            shutdown,
            |_| async { panic!("work must not run") },
        )
        .await;
        assert!(res.is_ok());
        assert_eq!(fake.released.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn work_error_releases_and_propagates() {
        let fake = Fake::new(vec![Ok(true)]);
        let res = run_with(
            &fake,
            Duration::from_secs(5),
            &Readiness::default(),
            &Gauge::default(),
            CancellationToken::new(),
            |_| async { Err(anyhow::anyhow!("controller failed")) },
        )
        .await;
        assert!(matches!(&res, Err(LeaderError::Work(e)) if e.to_string() == "controller failed"));
        assert_eq!(fake.released.load(Ordering::SeqCst), 1);
    }
}
