//! Exponential backoff: the delay before the n-th retry of an API write, and before the n-th restart of a
//! crashed fake server (1 s, 2 s, 4 s, ... capped at 30 s, like the kubelet's CrashLoopBackOff but shorter).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A doubling delay with a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Upper bound of every delay.
    pub max: Duration,
}

/// Process restarts: 1 s, 2 s, 4 s, ... 30 s.
pub const RESTART: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(30),
};

/// Transient API errors: 250 ms, 500 ms, ... 30 s.
pub const API: Backoff = Backoff {
    base: Duration::from_millis(250),
    max: Duration::from_secs(30),
};

/// A process that ran at least this long before it exited restarts with the shortest delay again.
pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);

impl Backoff {
    /// Delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// The delay before restarting a process that ran for `ran_for`, given how many restarts in a row came
/// before (`step`); returns the delay and the next step. A long healthy run resets the backoff.
pub fn restart_delay(step: u32, ran_for: Duration) -> (Duration, u32) {
    let step = if ran_for >= RESTART_RESET_AFTER {
        0
    } else {
        step
    };
    (RESTART.delay(step), step.saturating_add(1))
}

/// A retry schedule for one kind of write: when it is due and how often it has failed in a row.
#[derive(Clone, Debug, Default)]
pub struct RetryTimer {
    failures: u32,
    due: Option<Instant>,
}

impl RetryTimer {
    /// Records a failure at `now`; the next try is due after the backoff delay.
    pub fn failed(&mut self, backoff: Backoff, now: Instant) -> Duration {
        let d = backoff.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.due = Some(now + d);
        d
    }
    /// Records a success: the next try may happen at once.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.due = None;
    }
    /// Whether a try is allowed at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.due.is_none_or(|d| now >= d)
    }
    /// When the next try is due, if a failure deferred it.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }
}

/// Runs `op` until it succeeds, sleeping with [`API`] backoff between failures. Returns `None` if `shutdown`
/// is cancelled first. Use it for writes nothing else waits on (node registration); per-pod writes use a
/// [`RetryTimer`] so the pod's task keeps reacting to events meanwhile.
pub async fn retry_until<T, E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut op: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        let res = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = op() => r,
        };
        match res {
            Ok(v) => return Some(v),
            Err(e) => {
                let d = API.delay(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e, retry_in = ?d, "{what} failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(d) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_up_to_thirty_seconds() {
        let secs: Vec<u64> = (0..8).map(|n| RESTART.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(RESTART.delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn api_delays_start_small() {
        assert_eq!(API.delay(0), Duration::from_millis(250));
        assert_eq!(API.delay(2), Duration::from_secs(1));
        assert_eq!(API.delay(40), Duration::from_secs(30));
    }

    #[test]
    fn long_runs_reset_the_restart_backoff() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(restart_delay(0, s(1)), (s(1), 1));
        assert_eq!(restart_delay(1, s(1)), (s(2), 2));
        assert_eq!(restart_delay(4, s(59)), (s(16), 5));
        assert_eq!(restart_delay(7, s(0)), (s(30), 8));
        assert_eq!(restart_delay(7, s(60)), (s(1), 1));
        assert_eq!(restart_delay(u32::MAX, s(0)), (s(30), u32::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_timer_defers_and_resets() {
        let mut t = RetryTimer::default();
        let now = Instant::now();
        assert!(t.is_due(now));
        assert_eq!(t.failed(API, now), Duration::from_millis(250));
        assert!(!t.is_due(now));
        assert_eq!(t.failed(API, now), Duration::from_millis(500));
        assert!(t.is_due(now + Duration::from_millis(500)));
        t.succeeded();
        assert!(t.is_due(now) && t.due().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_until_retries_then_succeeds_or_stops() {
        let token = CancellationToken::new();
        let mut calls = 0;
        let v = retry_until("op", &token, || {
            calls += 1;
            let ok = calls >= 3;
            async move {
                if ok {
                    Ok::<_, String>(7)
                } else {
                    Err("boom".to_owned())
                }
            }
        })
        .await;
        assert_eq!((v, calls), (Some(7), 3));
        token.cancel();
        let v = retry_until("op", &token, || async { Err::<(), _>("never") }).await;
        assert_eq!(v, None);
    }
}
