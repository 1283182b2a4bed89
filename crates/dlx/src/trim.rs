//! Hands the memory of a drained burst back to the kernel at once.
//!
//! jemalloc returns freed pages to the kernel gradually (its dirty-page decay, about 10 s), so a
//! burst of held requests leaves the process's RSS high for a while after it drained, and a second
//! burst right behind it starts from there (docs/dlx.md, Measured). A shorter decay for everything
//! costs throughput under steady load (pages handed back and faulted in again). Instead, every
//! 100 ms [`Burst`] watches the load — client connections plus held requests — and when a burst of at
//! least [`BURST`] has fallen to a quarter of its peak, [`purge`] has every arena return its unused
//! dirty pages now. Steady load, however high, never purges.

use std::sync::Arc;
use std::time::Duration;

use tikv_jemalloc_ctl::{Access, AsName as _};
use tokio_util::sync::CancellationToken;

use crate::proxy::Proxy;

/// The smallest peak load (connections plus held requests) whose drain is worth a purge.
pub const BURST: usize = 1024;

/// How often the load is sampled: often enough to purge in the gap between two bursts.
pub const EVERY: Duration = Duration::from_millis(100);

/// Tracks the peak load since the last purge.
#[derive(Debug, Default)]
pub struct Burst {
    peak: usize,
}

impl Burst {
    /// Takes a sample of the load; `true` when a burst of at least [`BURST`] has drained to a quarter
    /// of its peak (then the peak starts over from `load`).
    pub fn observe(&mut self, load: usize) -> bool {
        self.peak = self.peak.max(load);
        if self.peak >= BURST && load <= self.peak / 4 {
            self.peak = load;
            return true;
        }
        false
    }
}

/// Asks every jemalloc arena to return its unused dirty pages now; the number of arenas purged.
///
/// An arena whose `dirty_decay_ms` is set to 0 purges all its unused dirty pages at once
/// (jemalloc(3), `arena.<i>.dirty_decay_ms`); the arena's own decay time is put back right after.
/// (`arena.<i>.purge` says the same, but takes no value, which the safe mallctl API cannot express.)
pub fn purge() -> Result<u32, tikv_jemalloc_ctl::Error> {
    let arenas = tikv_jemalloc_ctl::arenas::narenas::read()?;
    let mut purged = 0;
    for i in 0..arenas {
        let key = format!("arena.{i}.dirty_decay_ms\0");
        let name = key.as_bytes().name();
        // An arena no thread has used yet does not exist: nothing to purge there.
        let Ok(ms) = Access::<isize>::read(name) else {
            continue;
        };
        name.write(0isize)?;
        name.write(ms)?;
        purged += 1;
    }
    Ok(purged)
}

/// Samples the proxy's load every [`EVERY`] until `stop`, purging after each drained burst.
pub async fn run(proxy: Arc<Proxy>, stop: CancellationToken) {
    let mut burst = Burst::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let load = proxy.connections() + proxy.held();
        if burst.observe(load) {
            let started = std::time::Instant::now();
            match tokio::task::spawn_blocking(purge).await {
                Ok(Ok(arenas)) => {
                    tracing::debug!(load, arenas, took = ?started.elapsed(), "burst drained: freed memory returned")
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "returning freed memory to the kernel failed")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "returning freed memory to the kernel panicked")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_once_a_large_burst_drains_to_a_quarter() {
        let mut b = Burst::default();
        assert!(!b.observe(600));
        assert!(!b.observe(10_000));
        assert!(!b.observe(5_000), "half of the peak is not drained yet");
        assert!(b.observe(2_500), "a quarter of the peak");
        // The peak started over at 2,500: the same level again is no new drain, its own drain is.
        assert!(!b.observe(2_500));
        assert!(!b.observe(1_000));
        assert!(b.observe(600));
        assert!(!b.observe(0), "a peak of 600 is below BURST");
    }

    #[test]
    fn steady_or_small_load_never_purges() {
        let mut b = Burst::default();
        for load in [64, 0, 1_000, 0, 900, 3] {
            assert!(!b.observe(load), "{load}");
        }
        let mut steady = Burst::default();
        for _ in 0..100 {
            assert!(!steady.observe(20_000));
        }
        assert!(!steady.observe(15_000));
    }

    #[test]
    fn purge_reaches_the_arenas() {
        // This test binary's allocator is the system one, but jemalloc is linked and its arena 0
        // exists once anything calls into it.
        let _ = tikv_jemalloc_ctl::epoch::advance();
        assert!(purge().is_ok());
    }
}
