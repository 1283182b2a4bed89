//! The serving model of the policy simulator, and the oracle every algorithm is compared with.
//!
//! A replica serves up to `slots` requests at once; a request occupies a slot for
//! `ttft + output_tokens / tokens_per_second`. [`demand`] turns a trace into the in-flight requests per time
//! step if every request were served at once. The [`oracle`] knows that demand in advance and has the same
//! cold start as everyone else: a replica needed at `t` must have been started at `t − cold_start`, and costs
//! from its start. So the oracle runs, at each step, the most replicas needed within the next cold-start
//! interval; its replica-seconds are the floor any real policy is measured against.

use crate::trace::Request;

/// How a replica serves.
#[derive(Clone, Debug, PartialEq)]
pub struct ServingModel {
    /// Concurrent requests per replica.
    pub slots: u32,
    /// Generation speed of one request, tokens per second.
    pub tokens_per_second: f64,
    /// Time to first token, seconds.
    pub ttft_seconds: f64,
    /// From scale-up to ready, seconds.
    pub cold_start_seconds: f64,
}

impl ServingModel {
    /// How long `r` holds a slot.
    pub fn service_seconds(&self, r: &Request) -> f64 {
        self.ttft_seconds + r.output_tokens as f64 / self.tokens_per_second.max(f64::MIN_POSITIVE)
    }
}

/// Average in-flight requests in each `step`-second bucket, if every request were served on arrival.
pub fn demand(requests: &[Request], model: &ServingModel, step: f64) -> Vec<f64> {
    let end = requests
        .iter()
        .map(|r| r.at + model.service_seconds(r))
        .fold(0.0, f64::max);
    let n = (end / step).ceil() as usize;
    let mut busy = vec![0.0; n];
    for r in requests {
        let (start, stop) = (r.at, r.at + model.service_seconds(r));
        let first = (start / step).floor() as usize;
        let last = ((stop / step).ceil() as usize).min(n);
        for (i, b) in busy.iter_mut().enumerate().take(last).skip(first) {
            let lo = (i as f64 * step).max(start);
            let hi = ((i + 1) as f64 * step).min(stop);
            if hi > lo {
                *b += (hi - lo) / step;
            }
        }
    }
    busy
}

/// Replicas needed for `in_flight` requests.
pub fn needed(in_flight: f64, slots: u32) -> i32 {
    (in_flight / slots.max(1) as f64).ceil() as i32
}

/// What the oracle runs and what it costs.
#[derive(Clone, Debug, PartialEq)]
pub struct Oracle {
    /// Replicas running (starting or ready) at each step.
    pub replicas: Vec<i32>,
    /// Their integral, in replica-seconds.
    pub replica_seconds: f64,
}

/// The oracle for `demand` (from [`demand`] with the same `step`), never below `min_replicas`.
pub fn oracle(demand: &[f64], model: &ServingModel, step: f64, min_replicas: i32) -> Oracle {
    let need: Vec<i32> = demand
        .iter()
        .map(|d| needed(*d, model.slots).max(min_replicas))
        .collect();
    let ahead = (model.cold_start_seconds / step).ceil() as usize;
    let replicas: Vec<i32> = (0..need.len())
        .map(|i| {
            need[i..(i + ahead + 1).min(need.len())]
                .iter()
                .copied()
                .max()
                .unwrap_or(0)
        })
        .collect();
    let replica_seconds = replicas.iter().map(|r| *r as f64 * step).sum();
    Oracle {
        replicas,
        replica_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(cold: f64) -> ServingModel {
        ServingModel {
            slots: 2,
            tokens_per_second: 10.0,
            ttft_seconds: 0.0,
            cold_start_seconds: cold,
        }
    }

    fn req(at: f64, out: u32) -> Request {
        Request {
            at,
            prompt_tokens: 1,
            output_tokens: out,
        }
    }

    #[test]
    fn demand_spreads_requests_over_their_service_time() {
        // Two 2-second requests starting at 0 and 1: in flight 1, 2, 1 over three 1-second steps.
        let d = demand(&[req(0.0, 20), req(1.0, 20)], &model(0.0), 1.0);
        assert_eq!(d, vec![1.0, 2.0, 1.0]);
        // Half-step boundaries count fractionally.
        let d = demand(&[req(0.5, 10)], &model(0.0), 1.0);
        assert_eq!(d, vec![0.5, 0.5]);
    }

    #[test]
    fn oracle_starts_replicas_one_cold_start_early() {
        // Need 1, 1, 3 (5 in flight / 2 slots), 1 per step; with a 1-step cold start the 3 must run a step early.
        let demand = vec![1.0, 1.0, 5.0, 1.0];
        let o = oracle(&demand, &model(1.0), 1.0, 0);
        assert_eq!(o.replicas, vec![1, 3, 3, 1]);
        assert_eq!(o.replica_seconds, 8.0);
        // Without cold start it follows the need exactly.
        assert_eq!(
            oracle(&demand, &model(0.0), 1.0, 0).replicas,
            vec![1, 1, 3, 1]
        );
        // A floor of 2 replicas.
        assert_eq!(
            oracle(&[0.0, 0.0], &model(0.0), 1.0, 2).replicas,
            vec![2, 2]
        );
    }
}
