//! What the simulator prints: one [`DecisionLine`] per decision, then `{"summary": Summary}`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Decision, Hold};
use crate::plugin::{Observation, Reading};

/// One decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionLine {
    /// Seconds (from the first request in trace mode; the sample's `t` in samples mode).
    pub t: f64,
    /// The target's replicas before the decision.
    pub current: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Replicas decided.
    pub desired: i32,
    /// What the algorithm recommended before the guards and behavior (`null` if it failed).
    pub recommended: Option<i32>,
    /// The reason, with the guards that held the recommendation (as status shows it).
    pub reason: String,
    /// The guards that changed the recommendation, in order.
    pub held: Vec<&'static str>,
    /// The algorithm's panic mode (KPA).
    pub panicking: bool,
    /// Each metric's value as status shows it: the total, or the per-pod average; `null` if missing.
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Trace mode: requests queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<u32>,
    /// Trace mode: requests running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<u32>,
}

fn hold_name(h: &Hold) -> &'static str {
    match h {
        Hold::MissingMetrics(_) => "MissingMetrics",
        Hold::AlgorithmFailed => "AlgorithmFailed",
        Hold::PendingReplicas => "PendingReplicas",
        Hold::Behavior => "Behavior",
        Hold::Bounds => "Bounds",
    }
}

/// The value status would show for `o`.
pub fn shown_value(o: &Observation) -> Option<f64> {
    match &o.reading {
        Reading::PerPod(p) if p.ready.is_empty() => None,
        Reading::PerPod(p) => Some(p.ready.iter().sum::<f64>() / p.ready.len() as f64),
        Reading::Total(v) => Some(*v),
        Reading::Missing(_) => None,
    }
}

impl DecisionLine {
    /// The line for decision `d` at `t` on `metrics`.
    pub fn new(
        t: f64,
        current: i32,
        ready: i32,
        metrics: &[Observation],
        d: &Decision,
    ) -> DecisionLine {
        DecisionLine {
            t,
            current,
            ready,
            desired: d.desired,
            recommended: d.recommended,
            reason: d.explain(),
            held: d.held.iter().map(hold_name).collect(),
            panicking: d.panicking,
            metrics: metrics
                .iter()
                .map(|o| (o.name.clone(), shown_value(o)))
                .collect(),
            queued: None,
            running: None,
        }
    }
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `trace`, `samples` or `oracle`.
    pub mode: &'static str,
    /// The algorithm's registry name (`oracle` for the oracle).
    pub algorithm: String,
    /// Decisions made.
    pub decisions: u64,
    /// Simulated seconds, first decision to last.
    pub seconds: f64,
    /// Replica-seconds: trace mode, every replica from its start (cold start included) until it is gone;
    /// samples mode, each decided count held until the next sample.
    pub replica_seconds: f64,
    /// Decisions that changed the replica count.
    pub scale_events: u64,
    /// Of those, increases.
    pub scale_ups: u64,
    /// Of those, decreases.
    pub scale_downs: u64,
    /// Most replicas at once (decided).
    pub max_replicas: i32,
    /// Trace mode: requests in the trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Trace mode: requests whose time to first token exceeded the SLO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_over_slo: Option<u64>,
    /// Trace mode: the share of requests within the SLO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<f64>,
    /// Trace mode: median time to first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p50_seconds: Option<f64>,
    /// Trace mode: 99th percentile time to first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p99_seconds: Option<f64>,
    /// Trace mode: the oracle's replica-seconds (perfect foresight, same cold start and period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle_replica_seconds: Option<f64>,
    /// Trace mode: replica-seconds ÷ the oracle's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_seconds_vs_oracle: Option<f64>,
    /// Samples mode: replica-seconds of the recorded `current` counts, to compare with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_replica_seconds: Option<f64>,
}

impl Summary {
    /// Counts one decision from `current` to `desired`.
    pub fn count(&mut self, current: i32, desired: i32) {
        self.decisions += 1;
        self.max_replicas = self.max_replicas.max(desired).max(current);
        if desired > current {
            self.scale_events += 1;
            self.scale_ups += 1;
        } else if desired < current {
            self.scale_events += 1;
            self.scale_downs += 1;
        }
    }
}

/// The `q` quantile (nearest rank) of `values`, sorted in place.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50.0));
        assert_eq!(quantile(&mut v, 0.99), Some(99.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
