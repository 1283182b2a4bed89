//! The simulated serving cluster: replicas with a cold start, one FIFO queue, and slots.
//!
//! Time advances from event to event (arrivals, completions, replicas becoming ready) up to the next
//! decision, so queueing is exact rather than rounded to a tick:
//!
//! - a new replica is *starting* for `cold_start_seconds`, then *ready*; both cost replica-seconds;
//! - requests wait in one FIFO queue (the router's) and start on the ready replica with the most free
//!   slots as soon as one is free; a request holds its slot for `ttft + output_tokens / tokens_per_second`,
//!   and its time to first token is its queue wait plus `ttft`;
//! - a scale-down removes starting replicas first (newest first), then the ready replicas with the fewest
//!   running requests; a removed replica takes no new request, finishes the ones it runs (draining), and
//!   costs replica-seconds until it is empty — as a pod does in its termination grace period.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use crate::serving::ServingModel;
use crate::trace::Request;

/// A time that orders totally (simulation times are finite).
#[derive(Clone, Copy, Debug, PartialEq)]
struct At(f64);

impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for At {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Clone, Debug)]
struct Replica {
    ready_at: f64,
    running: u32,
    removed: bool,
}

/// What one replica shows its scraper.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodView {
    /// Requests running on it.
    pub running: u32,
    /// Its share of the queue (the queue is spread evenly over ready replicas).
    pub waiting: u32,
}

/// The cluster at one instant, as the metric sources see it.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Ready replicas, in a stable order.
    pub pods: Vec<PodView>,
    /// Replicas starting (requested, not ready).
    pub starting: u32,
    /// Requests in the queue (also those held while no replica is ready).
    pub queued: u32,
    /// Slots per replica.
    pub slots: u32,
}

/// Request and cost accounting.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Integral of replicas (starting, ready and draining) over time.
    pub replica_seconds: f64,
    /// Time to first token of every request that started, in start order.
    pub ttft: Vec<f64>,
    /// Requests whose time to first token was above the SLO (including any never started).
    pub over_slo: u64,
    /// Most replicas (starting + ready) at once.
    pub max_replicas: i32,
}

/// The simulated cluster.
pub struct Cluster {
    model: ServingModel,
    slo: f64,
    now: f64,
    replicas: Vec<Replica>,
    /// Indices of replicas that are not gone (starting, ready or draining).
    live: Vec<usize>,
    queue: VecDeque<(f64, f64)>,
    completions: BinaryHeap<Reverse<(At, usize)>>,
    tally: Tally,
}

impl Cluster {
    /// A cluster at time 0 with `ready` replicas already serving; `slo` is the TTFT objective in seconds.
    pub fn new(model: ServingModel, slo: f64, ready: i32) -> Cluster {
        let mut c = Cluster {
            model,
            slo,
            now: 0.0,
            replicas: Vec::new(),
            live: Vec::new(),
            queue: VecDeque::new(),
            completions: BinaryHeap::new(),
            tally: Tally::default(),
        };
        for _ in 0..ready.max(0) {
            c.add(0.0);
        }
        c.tally.max_replicas = ready.max(0);
        c
    }

    fn add(&mut self, ready_at: f64) {
        self.live.push(self.replicas.len());
        self.replicas.push(Replica {
            ready_at,
            running: 0,
            removed: false,
        });
    }

    /// Now, in seconds.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Replicas requested (starting + ready), i.e. the target's `spec.replicas`.
    pub fn current(&self) -> i32 {
        self.live
            .iter()
            .filter(|&&i| !self.replicas[i].removed)
            .count() as i32
    }

    /// Ready replicas.
    pub fn ready(&self) -> i32 {
        self.live.iter().filter(|&&i| self.is_ready(i)).count() as i32
    }

    fn is_ready(&self, i: usize) -> bool {
        let r = &self.replicas[i];
        !r.removed && r.ready_at <= self.now
    }

    /// Requests running anywhere (including on draining replicas).
    pub fn running(&self) -> u32 {
        self.live.iter().map(|&i| self.replicas[i].running).sum()
    }

    /// Requests queued.
    pub fn queued(&self) -> u32 {
        self.queue.len() as u32
    }

    /// Whether nothing is queued or running.
    pub fn idle(&self) -> bool {
        self.queue.is_empty() && self.completions.is_empty()
    }

    /// The accounting so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Ends the run: requests still queued count as over the SLO.
    pub fn finish(mut self) -> Tally {
        self.tally.over_slo += self.queue.len() as u64;
        self.tally
    }

    /// What the scrapers see now.
    pub fn view(&self) -> View {
        let ready: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&i| self.is_ready(i))
            .collect();
        let q = self.queue.len();
        let n = ready.len().max(1);
        let pods = ready
            .iter()
            .enumerate()
            .map(|(k, &i)| PodView {
                running: self.replicas[i].running,
                waiting: (q / n + usize::from(k < q % n)) as u32,
            })
            .collect();
        View {
            pods,
            starting: (self.current() - ready.len() as i32).max(0) as u32,
            queued: q as u32,
            slots: self.model.slots,
        }
    }

    /// Sets the requested replicas at the current time: new ones start cold, removed ones drain.
    pub fn scale_to(&mut self, desired: i32) {
        let desired = desired.max(0);
        let current = self.current();
        if desired > current {
            for _ in current..desired {
                self.add(self.now + self.model.cold_start_seconds);
            }
        } else if desired < current {
            // Starting replicas go first (newest first), then ready ones with the fewest running.
            let mut order: Vec<usize> = self
                .live
                .iter()
                .copied()
                .filter(|&i| !self.replicas[i].removed)
                .collect();
            order.sort_by_key(|&i| {
                let r = &self.replicas[i];
                (self.is_ready(i), r.running, Reverse(i))
            });
            for &i in order.iter().take((current - desired) as usize) {
                self.replicas[i].removed = true;
            }
            self.live.retain(|&i| {
                let r = &self.replicas[i];
                !(r.removed && r.running == 0)
            });
        }
        self.tally.max_replicas = self.tally.max_replicas.max(desired);
    }

    fn advance_clock(&mut self, to: f64) {
        if to > self.now {
            self.tally.replica_seconds += self.live.len() as f64 * (to - self.now);
            self.now = to;
        }
    }

    /// Runs every event up to and including `until`, taking arrivals from `requests[*next..]`.
    pub fn run_until(&mut self, until: f64, requests: &[Request], next: &mut usize) {
        loop {
            let arrival = requests.get(*next).map_or(f64::INFINITY, |r| r.at);
            let done = self
                .completions
                .peek()
                .map_or(f64::INFINITY, |Reverse((t, _))| t.0);
            let ready = self
                .live
                .iter()
                .map(|&i| &self.replicas[i])
                .filter(|r| !r.removed && r.ready_at > self.now)
                .map(|r| r.ready_at)
                .fold(f64::INFINITY, f64::min);
            let t = arrival.min(done).min(ready);
            if t > until {
                break;
            }
            self.advance_clock(t);
            if done <= t {
                let Some(Reverse((_, i))) = self.completions.pop() else {
                    break;
                };
                self.replicas[i].running -= 1;
                if self.replicas[i].removed && self.replicas[i].running == 0 {
                    self.live.retain(|&j| j != i);
                }
            } else if arrival <= t {
                let r = &requests[*next];
                *next += 1;
                self.queue.push_back((r.at, self.model.service_seconds(r)));
            }
            // A replica that became ready needs nothing but the dispatch below.
            self.dispatch();
        }
        self.advance_clock(until);
    }

    /// Starts queued requests on free slots, least-loaded ready replica first.
    fn dispatch(&mut self) {
        while let Some(&(arrived, service)) = self.queue.front() {
            let slots = self.model.slots;
            let Some(i) = self
                .live
                .iter()
                .copied()
                .filter(|&i| self.is_ready(i) && self.replicas[i].running < slots)
                .min_by_key(|&i| (self.replicas[i].running, i))
            else {
                return;
            };
            self.queue.pop_front();
            self.replicas[i].running += 1;
            let ttft = self.now - arrived + self.model.ttft_seconds;
            if ttft > self.slo {
                self.tally.over_slo += 1;
            }
            self.tally.ttft.push(ttft);
            self.completions.push(Reverse((At(self.now + service), i)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(slots: u32, cold: f64) -> ServingModel {
        ServingModel {
            slots,
            tokens_per_second: 10.0,
            ttft_seconds: 0.5,
            cold_start_seconds: cold,
        }
    }

    /// A request at `at` holding its slot 0.5 + out/10 seconds.
    fn req(at: f64, out: u32) -> Request {
        Request {
            at,
            prompt_tokens: 1,
            output_tokens: out,
        }
    }

    #[test]
    fn requests_queue_fifo_for_a_free_slot() {
        // One replica with one slot; three requests of 2 s service (0.5 + 15/10) arrive at once.
        let mut c = Cluster::new(model(1, 60.0), 1.0, 1);
        let reqs = [req(0.0, 15), req(0.0, 15), req(0.0, 15)];
        let mut next = 0;
        c.run_until(0.0, &reqs, &mut next);
        assert_eq!((c.running(), c.queued()), (1, 2));
        assert_eq!(
            c.view().pods,
            vec![PodView {
                running: 1,
                waiting: 2
            }]
        );
        c.run_until(10.0, &reqs, &mut next);
        let t = c.finish();
        assert_eq!(
            t.ttft,
            vec![0.5, 2.5, 4.5],
            "wait 0, 2, 4 s plus the 0.5 s ttft"
        );
        assert_eq!(t.over_slo, 2);
        assert_eq!(t.replica_seconds, 10.0);
    }

    #[test]
    fn a_new_replica_serves_only_after_its_cold_start() {
        let mut c = Cluster::new(model(1, 30.0), 100.0, 0);
        let reqs = [req(0.0, 5), req(1.0, 5)];
        let mut next = 0;
        c.scale_to(1);
        c.run_until(29.0, &reqs, &mut next);
        assert_eq!((c.current(), c.ready(), c.queued()), (1, 0, 2));
        assert_eq!(c.view().starting, 1);
        assert!(c.view().pods.is_empty());
        c.run_until(100.0, &reqs, &mut next);
        let t = c.finish();
        // Ready at 30: the first waits 30 s, runs 1 s; the second starts at 31 after waiting 30 s.
        assert_eq!(t.ttft, vec![30.5, 30.5]);
        assert_eq!(t.replica_seconds, 100.0, "a starting replica costs too");
    }

    #[test]
    fn dispatch_prefers_the_least_loaded_replica_and_spreads_the_queue() {
        let mut c = Cluster::new(model(2, 0.0), 10.0, 2);
        let reqs: Vec<Request> = (0..7).map(|_| req(0.0, 100)).collect();
        let mut next = 0;
        c.run_until(0.0, &reqs, &mut next);
        let v = c.view();
        assert_eq!(v.pods.iter().map(|p| p.running).collect::<Vec<_>>(), [2, 2]);
        assert_eq!(v.pods.iter().map(|p| p.waiting).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(v.queued, 3);
    }

    #[test]
    fn scale_down_removes_starting_then_idle_replicas_and_drains() {
        let mut c = Cluster::new(model(1, 50.0), 10.0, 2);
        let reqs = [req(0.0, 95)]; // 10 s of service
        let mut next = 0;
        c.run_until(0.0, &reqs, &mut next);
        c.scale_to(3);
        assert_eq!((c.current(), c.ready()), (3, 2));
        c.scale_to(1);
        // The starting one and the idle ready one went; the busy one stays.
        assert_eq!((c.current(), c.ready(), c.running()), (1, 1, 1));
        c.scale_to(0);
        assert_eq!((c.current(), c.ready(), c.running()), (0, 0, 1), "draining");
        c.run_until(20.0, &reqs, &mut next);
        let t = c.finish();
        assert_eq!(
            t.replica_seconds, 10.0,
            "only the draining replica, until its request ends"
        );
        assert_eq!(t.max_replicas, 3);
    }
}
