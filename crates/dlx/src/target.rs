//! One target's queue and its pods: holding, pacing and the wake-up state (no IO).
//!
//! A request for a target either gets a [`Permit`] at once — a ready pod has a free place (fewer than
//! `pod_concurrency` requests of this DLX in flight) and nobody is queued before it — or waits in the
//! target's FIFO as a [`Waiter`]. Places are given out by [`Target::dispatch`] whenever one frees up:
//! a permit is dropped (its response finished), a pod becomes ready, or a pod passes its probe. So a
//! fresh pod gets at most `pod_concurrency` requests at once, never the whole queue.
//!
//! Counting is exact at every instant: a waiter that is dropped (its client went away, it timed out)
//! leaves the queue and the per-target and global held counts in its `Drop`, before anything else
//! can be admitted, so the caps always count live requests only.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A target: a Service handed to the DLX, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service)
    }
}

/// A pod's ports by name (the workload Service's port names, as its EndpointSlices list them).
pub type Ports = Arc<Vec<(String, u16)>>;

/// Caps shared by every target of the process.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests of this DLX in flight to one pod at once; 0 is no limit.
    pub pod_concurrency: usize,
    /// Requests held for one target at once.
    pub max_held_per_target: usize,
    /// Requests held for all targets together.
    pub max_held: usize,
    /// How long a wake-up counts as under way; after it, the next request asks again.
    pub wake_timeout: Duration,
}

/// The process-wide held count, shared by every target.
#[derive(Debug)]
pub struct Global {
    limits: Limits,
    held: AtomicUsize,
}

impl Global {
    /// A fresh count under `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            held: AtomicUsize::new(0),
        })
    }

    /// The caps.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Requests held across all targets right now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    fn try_reserve(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h < self.limits.max_held).then_some(h + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The metric handles a target updates (already labelled with its namespace and name).
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Requests held now.
    pub held: Gauge,
    /// Requests in flight to pods now.
    pub inflight: Gauge,
    /// Seconds from a wake-up request to the first ready pod.
    pub wake_seconds: Option<Histogram>,
    /// Answers by status code.
    pub outcomes: crate::metrics::Outcomes,
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The target's queue holds `max_held_per_target` requests.
    Target(usize),
    /// The process holds `max_held` requests.
    Global(usize),
}

/// The answer to [`Target::admit`].
#[derive(Debug)]
pub enum Admission {
    /// A pod has a place now.
    Go(Permit),
    /// Wait in the queue; `wake` says this request is the one that must ask for a wake-up.
    Wait {
        /// The queue place.
        waiter: Waiter,
        /// Ask the ElasticScaler to wake the workload (no pod is ready and no wake-up is under way).
        wake: bool,
    },
    /// A cap is reached.
    Full(Full),
}

/// Why a wait ended without a place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed; `pods` ready pods existed then (0: the workload never came up).
    Timeout {
        /// Ready pods of the target at the deadline.
        pods: usize,
    },
    /// The target was closed (the process drains, or the Service is no longer handed over).
    Closed(String),
}

#[derive(Debug)]
struct Backend {
    ip: IpAddr,
    ports: Ports,
    inflight: usize,
    /// False while the optional HTTP probe has not passed.
    verified: bool,
    /// A connection to it failed: not chosen before this instant.
    avoid_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    backends: Vec<Backend>,
    queue: BTreeMap<u64, oneshot::Sender<Permit>>,
    next_id: u64,
    /// Round-robin start among equally loaded pods.
    rr: usize,
    /// When this process asked for the current wake-up.
    wake_since: Option<Instant>,
    closed: Option<String>,
}

/// One target's pods and queue.
#[derive(Debug)]
pub struct Target {
    /// Which Service.
    pub key: Key,
    global: Arc<Global>,
    gauges: Gauges,
    state: Mutex<State>,
}

impl Target {
    /// A target with no pods and an empty queue.
    pub fn new(key: Key, global: Arc<Global>, gauges: Gauges) -> Arc<Self> {
        Arc::new(Self {
            key,
            global,
            gauges,
            state: Mutex::default(),
        })
    }

    /// Counts an answer of a pod with status `code` (`dlx_requests`).
    pub fn answered(&self, code: u16) {
        self.gauges.outcomes.inc(code);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (every update is one statement).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn limits(&self) -> &Limits {
        &self.global.limits
    }

    /// Admits a request at `now`: a place, a queue place, or a cap.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Admission {
        let mut s = self.lock();
        s.closed = None;
        if s.queue.is_empty()
            && let Some(i) = s.pick(self.limits().pod_concurrency, now)
        {
            return Admission::Go(self.grant(&mut s, i, None));
        }
        if s.queue.len() >= self.limits().max_held_per_target {
            return Admission::Full(Full::Target(self.limits().max_held_per_target));
        }
        if !self.global.try_reserve() {
            return Admission::Full(Full::Global(self.limits().max_held));
        }
        let id = s.next_id;
        s.next_id += 1;
        let (tx, rx) = oneshot::channel();
        s.queue.insert(id, tx);
        self.gauges.held.set(s.queue.len() as i64);
        let expired = s
            .wake_since
            .is_none_or(|t| now.saturating_duration_since(t) >= self.limits().wake_timeout);
        let wake = s.backends.is_empty() && expired;
        if wake {
            s.wake_since = Some(now);
        }
        Admission::Wait {
            waiter: Waiter {
                target: self.clone(),
                id,
                rx,
            },
            wake,
        }
    }

    /// Whether [`try_admit`](Self::try_admit) would find a place now.
    pub fn has_room(&self, now: Instant) -> bool {
        let s = self.lock();
        let cap = self.limits().pod_concurrency;
        s.queue.is_empty() && s.backends.iter().any(|b| b.usable(cap, now))
    }

    /// A place at a pod if one is free now and nothing is queued; never queues (the HTTP/1.1 fast
    /// path's admission: a request that would wait goes the way that can hold it).
    pub fn try_admit(self: &Arc<Self>, now: Instant) -> Option<Permit> {
        let mut s = self.lock();
        if !s.queue.is_empty() {
            return None;
        }
        let i = s.pick(self.limits().pod_concurrency, now)?;
        Some(self.grant(&mut s, i, None))
    }

    /// Replaces the target's pods with `endpoints` (ready addresses of the workload Service); with
    /// `probing`, new pods are used only after [`verified`](Self::verified). Returns the new pods to probe.
    pub fn set_endpoints(
        self: &Arc<Self>,
        endpoints: Vec<(IpAddr, Ports)>,
        probing: bool,
    ) -> Vec<IpAddr> {
        let now = Instant::now();
        let mut s = self.lock();
        let mut old: Vec<Backend> = std::mem::take(&mut s.backends);
        let mut new_pods = Vec::new();
        for (ip, ports) in endpoints {
            match old.iter().position(|b| b.ip == ip) {
                Some(i) => {
                    let mut b = old.swap_remove(i);
                    b.ports = ports;
                    s.backends.push(b);
                }
                None => {
                    if probing {
                        new_pods.push(ip);
                    }
                    s.backends.push(Backend {
                        ip,
                        ports,
                        inflight: 0,
                        verified: !probing,
                        avoid_until: None,
                    });
                }
            }
        }
        self.after_change(&mut s, now);
        new_pods
    }

    /// The probe of pod `ip` passed: it may get requests.
    pub fn verified(self: &Arc<Self>, ip: IpAddr) {
        let now = Instant::now();
        let mut s = self.lock();
        if let Some(b) = s.backends.iter_mut().find(|b| b.ip == ip) {
            b.verified = true;
        }
        self.after_change(&mut s, now);
    }

    /// Whether `ip` is still one of the target's pods (a probe stops when it is not).
    pub fn has_pod(&self, ip: IpAddr) -> bool {
        self.lock().backends.iter().any(|b| b.ip == ip)
    }

    /// Port `name` of pod `ip` (the only port when there is one), while it is one of the target's pods.
    pub fn pod_port(&self, ip: IpAddr, name: &str) -> Option<u16> {
        let s = self.lock();
        let b = s.backends.iter().find(|b| b.ip == ip)?;
        port_named(&b.ports, name)
    }

    /// A connection to `ip` failed: choose other pods for `for_how_long`.
    pub fn avoid(&self, ip: IpAddr, for_how_long: Duration) {
        let mut s = self.lock();
        if let Some(b) = s.backends.iter_mut().find(|b| b.ip == ip) {
            b.avoid_until = Some(Instant::now() + for_how_long);
        }
    }

    /// Pods listed ready now (verified or not).
    pub fn pods(&self) -> usize {
        self.lock().backends.len()
    }

    /// Ready (and verified) pods now.
    pub fn ready_pods(&self) -> usize {
        self.lock().backends.iter().filter(|b| b.verified).count()
    }

    /// Requests held now.
    pub fn held(&self) -> usize {
        self.lock().queue.len()
    }

    /// Ends every wait with [`WaitError::Closed`] carrying `reason`.
    pub fn close(&self, reason: &str) {
        let mut s = self.lock();
        s.closed = Some(reason.to_string());
        let n = s.queue.len();
        s.queue.clear();
        for _ in 0..n {
            self.global.release();
        }
        self.gauges.held.set(0);
    }

    /// When the current wake-up was asked for by this process, if one is under way.
    pub fn wake_since(&self) -> Option<Instant> {
        self.lock().wake_since
    }

    fn after_change(self: &Arc<Self>, s: &mut State, now: Instant) {
        if s.backends.iter().any(|b| b.verified)
            && let Some(since) = s.wake_since.take()
            && let Some(h) = &self.gauges.wake_seconds
        {
            h.observe(now.saturating_duration_since(since).as_secs_f64());
        }
        self.dispatch(s, Some(now));
    }

    /// Gives free places to the queue in FIFO order; `event` is the instant of the change that freed
    /// them when it was a pod becoming usable (carried by the permits, for the release-delay metric).
    fn dispatch(self: &Arc<Self>, s: &mut State, event: Option<Instant>) {
        let now = Instant::now();
        while !s.queue.is_empty() {
            let Some(i) = s.pick(self.limits().pod_concurrency, now) else {
                break;
            };
            let Some((_, tx)) = s.queue.pop_first() else {
                break;
            };
            self.global.release();
            let permit = self.grant(s, i, event);
            if let Err(mut permit) = tx.send(permit) {
                // The waiter went away between leaving the queue and now: undo without re-locking.
                permit.armed = false;
                s.backends[i].inflight -= 1;
                self.gauges.inflight.dec();
            }
        }
        self.gauges.held.set(s.queue.len() as i64);
    }

    fn grant(self: &Arc<Self>, s: &mut State, i: usize, event: Option<Instant>) -> Permit {
        let b = &mut s.backends[i];
        b.inflight += 1;
        self.gauges.inflight.inc();
        Permit {
            target: self.clone(),
            ip: b.ip,
            ports: b.ports.clone(),
            released_by: event,
            armed: true,
        }
    }

    fn release(self: &Arc<Self>, ip: IpAddr) {
        let mut s = self.lock();
        if let Some(b) = s.backends.iter_mut().find(|b| b.ip == ip) {
            b.inflight = b.inflight.saturating_sub(1);
        }
        self.gauges.inflight.dec();
        self.dispatch(&mut s, None);
    }

    fn cancel(&self, id: u64) {
        let mut s = self.lock();
        if s.queue.remove(&id).is_some() {
            self.global.release();
            self.gauges.held.set(s.queue.len() as i64);
        }
    }
}

impl Backend {
    /// Verified, under the per-pod limit `cap` (0: none), and not avoided at `now`.
    fn usable(&self, cap: usize, now: Instant) -> bool {
        self.verified
            && (cap == 0 || self.inflight < cap)
            && self.avoid_until.is_none_or(|t| t <= now)
    }
}

impl State {
    /// The least loaded usable pod with a free place (round robin among equals).
    fn pick(&mut self, cap: usize, now: Instant) -> Option<usize> {
        let n = self.backends.len();
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (self.rr + k) % n;
            let b = &self.backends[i];
            if b.usable(cap, now) && best.is_none_or(|j| b.inflight < self.backends[j].inflight) {
                best = Some(i);
            }
        }
        if let Some(i) = best {
            self.rr = (i + 1) % n;
        }
        best
    }
}

fn port_named(ports: &Ports, name: &str) -> Option<u16> {
    ports
        .iter()
        .find(|(n, _)| n == name)
        .or_else(|| (ports.len() == 1).then(|| &ports[0]))
        .map(|(_, p)| *p)
}

/// A place at a pod: dropping it frees the place and lets the next held request go.
#[derive(Debug)]
pub struct Permit {
    target: Arc<Target>,
    /// The pod.
    pub ip: IpAddr,
    /// Its ports by name.
    pub ports: Ports,
    /// For a held request released by a pod becoming usable: the instant of that change.
    pub released_by: Option<Instant>,
    armed: bool,
}

impl Permit {
    /// The target it belongs to.
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// The pod's port named `name` (the Service port's name; `""` for an unnamed port).
    pub fn port(&self, name: &str) -> Option<u16> {
        port_named(&self.ports, name)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.target.release(self.ip);
        }
    }
}

/// A queue place. Dropping it before it is granted leaves the queue at once.
#[derive(Debug)]
pub struct Waiter {
    target: Arc<Target>,
    id: u64,
    rx: oneshot::Receiver<Permit>,
}

impl Waiter {
    /// Waits for a place until `deadline`.
    pub async fn wait(mut self, deadline: Instant) -> Result<Permit, WaitError> {
        match tokio::time::timeout_at(deadline, &mut self.rx).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => {
                let reason = self.target.lock().closed.clone();
                Err(WaitError::Closed(
                    reason.unwrap_or_else(|| "the target was closed".into()),
                ))
            }
            Err(_) => {
                let pods = self.target.ready_pods();
                Err(WaitError::Timeout { pods })
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.target.cancel(self.id);
        // A permit granted just before the drop is released when `rx` drops, after the lock is gone.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pod_concurrency: usize, per_target: usize, global: usize) -> Limits {
        Limits {
            pod_concurrency,
            max_held_per_target: per_target,
            max_held: global,
            wake_timeout: Duration::from_secs(60),
        }
    }

    fn target(name: &str, global: &Arc<Global>) -> Arc<Target> {
        let key = Key {
            namespace: "ns".into(),
            service: name.into(),
        };
        Target::new(key, global.clone(), Gauges::default())
    }

    fn pod(last: u8) -> (IpAddr, Ports) {
        let ip = IpAddr::from([10, 244, 1, last]);
        (ip, Arc::new(vec![("http".to_string(), 8000)]))
    }

    fn go(a: Admission) -> Permit {
        match a {
            Admission::Go(p) => p,
            other => panic!("expected a place, got {other:?}"),
        }
    }

    fn wait(a: Admission) -> (Waiter, bool) {
        match a {
            Admission::Wait { waiter, wake } => (waiter, wake),
            other => panic!("expected to wait, got {other:?}"),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn cold_target_wakes_once_and_releases_paced_to_the_pod_concurrency() {
        let global = Global::new(limits(2, 100, 100));
        let t = target("llm", &global);
        let mut waiters = Vec::new();
        for i in 0..5 {
            let (w, wake) = wait(t.admit(Instant::now()));
            assert_eq!(
                wake,
                i == 0,
                "only the first held request asks for a wake-up"
            );
            waiters.push(tokio::spawn(w.wait(far())));
        }
        assert_eq!((t.held(), global.held()), (5, 5));
        t.set_endpoints(vec![pod(1)], false);
        tokio::task::yield_now().await;
        // Two places on the fresh pod: the first two in line go, three stay held.
        assert_eq!(t.held(), 3);
        let first = waiters.remove(0).await.unwrap().unwrap();
        let second = waiters.remove(0).await.unwrap().unwrap();
        assert!(first.released_by.is_some() && second.released_by.is_some());
        assert_eq!(first.port("http"), Some(8000));
        for w in &waiters {
            assert!(!w.is_finished());
        }
        drop(first);
        let third = waiters.remove(0).await.unwrap().unwrap();
        assert_eq!(third.released_by, None, "freed by a finished request");
        assert_eq!((t.held(), global.held()), (2, 2));
        drop((second, third));
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        assert_eq!(global.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_warm_target_admits_at_once_and_queues_behind_busy_pods_without_waking() {
        let global = Global::new(limits(1, 10, 10));
        let t = target("llm", &global);
        t.set_endpoints(vec![pod(1), pod(2)], false);
        let a = go(t.admit(Instant::now()));
        let b = go(t.admit(Instant::now()));
        assert_ne!(a.ip, b.ip, "the least loaded pod is chosen");
        let (w, wake) = wait(t.admit(Instant::now()));
        assert!(!wake, "pods are ready, only busy");
        let w = tokio::spawn(w.wait(far()));
        drop(b);
        let c = w.await.unwrap().unwrap();
        assert_eq!(c.ip, IpAddr::from([10, 244, 1, 2]));
    }

    #[tokio::test(start_paused = true)]
    async fn try_admit_never_queues_and_never_jumps_the_queue() {
        let global = Global::new(limits(1, 10, 10));
        let t = target("llm", &global);
        assert!(t.try_admit(Instant::now()).is_none(), "no pod: no place");
        assert!(!t.has_room(Instant::now()));
        assert_eq!(
            (t.held(), t.wake_since()),
            (0, None),
            "nothing queued or woken"
        );
        t.set_endpoints(vec![pod(1)], false);
        assert!(t.has_room(Instant::now()));
        let a = t.try_admit(Instant::now()).expect("a free place");
        assert!(
            t.try_admit(Instant::now()).is_none(),
            "the pod is at its limit"
        );
        assert!(!t.has_room(Instant::now()));
        let (w, _) = wait(t.admit(Instant::now()));
        let w = tokio::spawn(w.wait(far()));
        drop(a);
        // The freed place went to the held request, not to a later try.
        let held = w.await.unwrap().unwrap();
        assert!(t.try_admit(Instant::now()).is_none());
        drop(held);
        assert!(t.try_admit(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn caps_per_target_and_global() {
        let global = Global::new(limits(1, 2, 3));
        let (a, b) = (target("a", &global), target("b", &global));
        let _a1 = wait(a.admit(Instant::now()));
        let _a2 = wait(a.admit(Instant::now()));
        assert!(matches!(
            a.admit(Instant::now()),
            Admission::Full(Full::Target(2))
        ));
        let _b1 = wait(b.admit(Instant::now()));
        assert!(matches!(
            b.admit(Instant::now()),
            Admission::Full(Full::Global(3))
        ));
        assert_eq!(global.held(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_goes_away_frees_its_place_at_once() {
        let global = Global::new(limits(1, 2, 10));
        let t = target("llm", &global);
        let (w1, _) = wait(t.admit(Instant::now()));
        let (w2, _) = wait(t.admit(Instant::now()));
        let pending = tokio::spawn(w2.wait(far()));
        tokio::task::yield_now().await;
        pending.abort();
        let _ = pending.await;
        assert_eq!((t.held(), global.held()), (1, 1));
        let (_w3, _) = wait(t.admit(Instant::now()));
        drop(w1);
        assert_eq!((t.held(), global.held()), (1, 1));
        // The freed places were not handed to anyone: a pod's first request goes to the live waiter.
        t.set_endpoints(vec![pod(1)], false);
        assert_eq!(t.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_is_asked_again_after_the_wake_timeout() {
        let global = Global::new(limits(1, 10, 10));
        let t = target("llm", &global);
        let (w, wake) = wait(t.admit(Instant::now()));
        assert!(wake);
        let err = w.wait(Instant::now() + Duration::from_secs(60)).await;
        assert_eq!(err.unwrap_err(), WaitError::Timeout { pods: 0 });
        assert!(
            t.wake_since().is_some(),
            "a timed-out wait does not end the wake-up"
        );
        let (_w, wake) = wait(t.admit(Instant::now()));
        assert!(wake, "60 s later the wake-up is not cached: ask again");
        let (_w, wake) = wait(t.admit(Instant::now()));
        assert!(!wake);
    }

    #[tokio::test(start_paused = true)]
    async fn probed_pods_wait_for_their_probe_and_failed_pods_are_avoided() {
        let global = Global::new(limits(0, 10, 10));
        let t = target("llm", &global);
        let to_probe = t.set_endpoints(vec![pod(1)], true);
        assert_eq!(to_probe, vec![pod(1).0]);
        let (w, wake) = wait(t.admit(Instant::now()));
        assert!(!wake, "a pod is ready, its probe is pending");
        let w = tokio::spawn(w.wait(far()));
        tokio::task::yield_now().await;
        assert!(!w.is_finished());
        t.verified(pod(1).0);
        let p = w.await.unwrap().unwrap();
        assert_eq!(p.ip, pod(1).0);
        assert!(
            t.set_endpoints(vec![pod(1)], true).is_empty(),
            "already verified"
        );
        drop(p);
        t.set_endpoints(vec![pod(1), pod(2)], false);
        t.avoid(pod(1).0, Duration::from_secs(2));
        for _ in 0..3 {
            assert_eq!(go(t.admit(Instant::now())).ip, pod(2).0);
        }
        tokio::time::advance(Duration::from_secs(3)).await;
        let ips: Vec<_> = (0..2).map(|_| go(t.admit(Instant::now())).ip).collect();
        assert!(ips.contains(&pod(1).0), "{ips:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn closing_ends_every_wait_with_the_reason() {
        let global = Global::new(limits(1, 10, 10));
        let t = target("llm", &global);
        let (w, _) = wait(t.admit(Instant::now()));
        let w = tokio::spawn(w.wait(far()));
        tokio::task::yield_now().await;
        t.close("shutting down");
        assert_eq!(
            w.await.unwrap().unwrap_err(),
            WaitError::Closed("shutting down".into())
        );
        assert_eq!(global.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_that_leaves_keeps_no_places_and_wake_latency_is_observed() {
        let global = Global::new(limits(1, 10, 10));
        let h = Histogram::new([1.0, 10.0]);
        let gauges = Gauges {
            wake_seconds: Some(h.clone()),
            ..Gauges::default()
        };
        let key = Key {
            namespace: "ns".into(),
            service: "llm".into(),
        };
        let t = Target::new(key, global, gauges.clone());
        let (w, _) = wait(t.admit(Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        t.set_endpoints(vec![pod(1)], false);
        let p = w.wait(far()).await.unwrap();
        assert_eq!(gauges.inflight.get(), 1);
        t.set_endpoints(vec![pod(2)], false);
        drop(p);
        assert_eq!(gauges.inflight.get(), 0);
        let mut text = String::new();
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("wake", "", h);
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(text.contains("wake_sum 5.0"), "{text}");
    }
}
