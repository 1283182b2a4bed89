//! Wall-clock step detection.
//!
//! Firings are wall-clock times, but timers run on the monotonic clock: a requeue computed as "next firing
//! − now" would fire late (or early) by however much the wall clock is stepped meanwhile (NTP step, VM
//! resume, manual `date -s`). This watchdog samples both clocks every `period` (an O(1) check, no API
//! call) and, when they drift apart by more than `tolerance`, emits `()`: the controller then re-plans
//! every Tidal against the new wall clock (`Controller::reconcile_all_on`). A forward step therefore
//! fires the rules it skipped within `period`; a backward step re-plans the next firings, and the
//! recorded newer firing is kept (see [`crate::plan::decide`]). A suspended VM or process is seen the same
//! way on resume, since the monotonic clock does not advance while suspended.

use std::time::{Duration, Instant, SystemTime};

use futures::Stream;
use tokio_util::sync::CancellationToken;

/// Drift between the wall-clock and the monotonic elapsed time since the last sample.
pub fn drift(wall_elapsed: Result<Duration, Duration>, mono_elapsed: Duration) -> Duration {
    match wall_elapsed {
        Ok(w) => w.abs_diff(mono_elapsed),
        // The wall clock went backwards: the whole interval plus the monotonic elapsed time.
        Err(back) => back + mono_elapsed,
    }
}

/// A stream that yields `()` on each detected wall-clock step; it ends when `token` is cancelled.
pub fn jumps(
    period: Duration,
    tolerance: Duration,
    token: CancellationToken,
    on_jump: impl Fn(Duration) + Send + Sync + 'static,
) -> impl Stream<Item = ()> + Send + Sync {
    futures::stream::unfold(
        (SystemTime::now(), Instant::now(), token, on_jump),
        move |(mut wall, mut mono, token, on_jump)| async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return None,
                    _ = tokio::time::sleep(period) => {}
                }
                let (w, m) = (SystemTime::now(), Instant::now());
                let d = drift(
                    w.duration_since(wall).map_err(|e| e.duration()),
                    m.duration_since(mono),
                );
                (wall, mono) = (w, m);
                if d > tolerance {
                    on_jump(d);
                    return Some(((), (wall, mono, token, on_jump)));
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_measures_steps_both_ways() {
        let s = Duration::from_secs;
        assert_eq!(drift(Ok(s(1)), s(1)), s(0));
        assert_eq!(drift(Ok(s(3601)), s(1)), s(3600)); // stepped forward an hour
        assert_eq!(drift(Err(s(3599)), s(1)), s(3600)); // stepped back an hour
    }
}
