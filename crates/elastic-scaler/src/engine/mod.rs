//! The decision pipeline of one ElasticScaler, shared by the controller and the simulator:
//!
//! 1. the algorithm recommends (an error holds the current count);
//! 2. **missing data withholds scale-down**: if any metric is missing, the recommendation is not below
//!    the current count;
//! 3. the **pending-replica guard** keeps a scale-up from cascading while the last one's pods load;
//! 4. `behavior`: stabilization (scale-down takes the max over its window, scale-up the min), rate
//!    policies, then `[minReplicas, maxReplicas]`.
//!
//! The [`Decider`] keeps the algorithm instance and the stabilization history; [`Decider::records`] are
//! the change points of the recommendations, which status stores and [`Decider::new`] reads back, so the
//! stabilization window survives a restart.

pub mod behavior;

use crate::algorithms::behavior::{self as stab, Behavior, History, Recommendation, ScaleEvent};
use crate::algorithms::pending;
use crate::plugin::{
    AlgorithmConfig, AlgorithmFactory, ConfigError, Context, Reading, Restore, ScalingAlgorithm,
};

/// What guard changed the algorithm's recommendation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// A metric was missing; scale-down withheld.
    MissingMetrics(Vec<String>),
    /// The algorithm failed; replicas held.
    AlgorithmFailed,
    /// Replicas of the last scale-up are still loading.
    PendingReplicas,
    /// The stabilization window or a rate policy.
    Behavior,
    /// minReplicas / maxReplicas.
    Bounds,
}

/// One period's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Replicas to set.
    pub desired: i32,
    /// What the algorithm recommended, if it could.
    pub recommended: Option<i32>,
    /// The algorithm's reason, or its error.
    pub reason: String,
    /// The algorithm's error, if it failed.
    pub error: Option<String>,
    /// Guards that changed the recommendation, in order.
    pub held: Vec<Hold>,
    /// The algorithm is panicking (KPA).
    pub panicking: bool,
}

impl Decision {
    /// The reason with the guards, for status and Events.
    pub fn explain(&self) -> String {
        let mut s = self.reason.clone();
        for h in &self.held {
            s.push_str("; ");
            s.push_str(&match h {
                Hold::MissingMetrics(m) => {
                    format!("scale-down withheld: no value for {}", m.join(", "))
                }
                Hold::AlgorithmFailed => "replicas held".into(),
                Hold::PendingReplicas => {
                    "scale-up limited: replicas of the last scale-up are not ready yet".into()
                }
                Hold::Behavior => "held by the stabilization window or a rate policy".into(),
                Hold::Bounds => "bounded by minReplicas/maxReplicas".into(),
            });
        }
        s
    }
}

/// A recommendation change point (Unix seconds, replicas), as status stores it.
pub type Record = (i64, i32);

/// The per-scaler decision state.
pub struct Decider {
    algorithm: Box<dyn ScalingAlgorithm>,
    behavior: Behavior,
    history: History,
    records: Vec<Record>,
}

impl Decider {
    /// A decider with a new algorithm instance; `records` and `scales` (time, from, to) come from status.
    pub fn new(
        factory: &dyn AlgorithmFactory,
        config: &AlgorithmConfig,
        behavior: Behavior,
        restore: &Restore,
        records: &[Record],
        scales: &[(f64, i32, i32)],
    ) -> Result<Decider, ConfigError> {
        let algorithm = factory.create(config, restore)?;
        let mut history = History::default();
        for (i, (at, replicas)) in records.iter().enumerate() {
            let until = records
                .get(i + 1)
                .map_or(restore.now, |(t, _)| *t as f64 - 0.001);
            for t in [*at as f64, until] {
                history.recommendations.push(Recommendation {
                    at: t,
                    replicas: *replicas,
                });
            }
        }
        history.events = scales
            .iter()
            .map(|(at, from, to)| ScaleEvent {
                at: *at,
                delta: to - from,
            })
            .collect();
        Ok(Decider {
            algorithm,
            behavior,
            history,
            records: records.to_vec(),
        })
    }

    /// Decides this period.
    pub async fn decide(&mut self, ctx: &Context<'_>) -> Decision {
        let mut held = Vec::new();
        let (mut raw, reason, error, panicking, needed) = match self.algorithm.recommend(ctx).await
        {
            Ok(r) => (r.replicas, r.reason, None, r.panicking, r.needed),
            Err(e) => {
                held.push(Hold::AlgorithmFailed);
                let msg = e.to_string();
                (ctx.current, msg.clone(), Some(msg), false, None)
            }
        };
        let recommended = error.is_none().then_some(raw);
        let missing: Vec<String> = ctx
            .metrics
            .iter()
            .filter(|m| match &m.reading {
                Reading::Missing(_) => true,
                Reading::PerPod(p) => p.ready.is_empty() || p.missing > 0,
                Reading::Total(_) => false,
            })
            .map(|m| m.name.clone())
            .collect();
        if !missing.is_empty() && raw < ctx.current {
            raw = ctx.current;
            held.push(Hold::MissingMetrics(missing));
        }
        if let Some(needed) = needed {
            let guarded = pending::guard(raw, ctx.current, ctx.ready, needed);
            if guarded != raw {
                raw = guarded;
                held.push(Hold::PendingReplicas);
            }
        }
        let desired = if error.is_some() {
            ctx.current.clamp(ctx.min, ctx.max.max(ctx.min))
        } else {
            self.note(ctx.now, raw);
            let stabilized = stab::apply(
                ctx.current,
                raw,
                (i32::MIN, i32::MAX),
                ctx.now,
                &self.behavior,
                &mut self.history,
            );
            if stabilized != raw {
                held.push(Hold::Behavior);
            }
            stabilized.clamp(ctx.min, ctx.max.max(ctx.min))
        };
        if held.last() != Some(&Hold::AlgorithmFailed)
            && desired != raw
            && !held.contains(&Hold::Behavior)
        {
            held.push(Hold::Bounds);
        }
        if desired != ctx.current {
            self.history.events.push(ScaleEvent {
                at: ctx.now,
                delta: desired - ctx.current,
            });
        }
        Decision {
            desired,
            recommended,
            reason,
            error,
            held,
            panicking,
        }
    }

    fn note(&mut self, now: f64, replicas: i32) {
        if self.records.last().map(|r| r.1) != Some(replicas) {
            self.records.push((now.floor() as i64, replicas));
        }
        let window = self
            .behavior
            .scale_up
            .stabilization_window_seconds
            .max(self.behavior.scale_down.stabilization_window_seconds) as f64;
        // Keep the newest record, and every one whose value may still be inside a window.
        while self.records.len() > 1 && (self.records[1].0 as f64) < now - window {
            self.records.remove(0);
        }
    }

    /// The recommendation change points to store in status.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::hpa::PodMetrics;
    use crate::builtin::hpa::HpaFactory;
    use crate::plugin::{Observation, Target};

    fn ctx<'a>(now: f64, current: i32, metrics: &'a [Observation]) -> Context<'a> {
        Context {
            namespace: "ns",
            name: "s",
            now,
            current,
            ready: current,
            min: 1,
            max: 10,
            metrics,
        }
    }

    fn pods(values: &[f64], missing: usize) -> Observation {
        Observation {
            name: "Pods/q".into(),
            target: Target::AverageValue(10.0),
            reading: Reading::PerPod(PodMetrics {
                ready: values.to_vec(),
                missing,
                unready: 0,
            }),
        }
    }

    fn hpa(records: &[Record], now: f64) -> Decider {
        let restore = Restore {
            resumed: !records.is_empty(),
            now,
            ..Restore::default()
        };
        Decider::new(
            &HpaFactory,
            &Default::default(),
            Behavior::default(),
            &restore,
            records,
            &[],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_failing_pod_never_causes_a_scale_down() {
        let mut d = hpa(&[], 0.0);
        let m = [pods(&[1.0, 1.0], 2)];
        let out = d.decide(&ctx(0.0, 4, &m)).await;
        assert_eq!(out.desired, 4);
        let m = [Observation {
            reading: Reading::Missing("prometheus down".into()),
            ..pods(&[], 0)
        }];
        let out = d.decide(&ctx(400.0, 4, &m)).await;
        assert_eq!(out.desired, 4, "{out:?}");
        assert!(out.error.is_some());
    }

    #[tokio::test]
    async fn stabilization_survives_a_restart_through_the_records() {
        let mut d = hpa(&[], 0.0);
        assert_eq!(
            d.decide(&ctx(0.0, 8, &[pods(&[10.0; 8], 0)])).await.desired,
            8
        );
        let low = [pods(&[1.0; 8], 0)];
        assert_eq!(
            d.decide(&ctx(100.0, 8, &low)).await.desired,
            8,
            "inside the 300 s window"
        );
        assert_eq!(d.decide(&ctx(150.0, 8, &low)).await.desired, 8);
        let records = d.records().to_vec();
        assert_eq!(records, vec![(0, 8), (100, 1)], "only change points");
        // Restart at 200: 8 was recommended from 0 to 100, so the window holds it until 400.
        let mut d = hpa(&records, 200.0);
        assert_eq!(d.decide(&ctx(250.0, 8, &low)).await.desired, 8);
        assert_eq!(
            d.decide(&ctx(401.0, 8, &low)).await.desired,
            1,
            "the window has passed"
        );
    }

    #[tokio::test]
    async fn pending_replicas_stop_a_cascade() {
        let mut d = hpa(&[], 0.0);
        let c = Context {
            ready: 2,
            ..ctx(0.0, 4, &[])
        };
        let m = [pods(&[40.0, 40.0], 0)];
        let out = d.decide(&Context { metrics: &m, ..c }).await;
        assert_eq!(
            out.desired, 8,
            "80 in total at 10 per pod: 8, the load needs 8"
        );
        let m = [pods(&[20.0, 20.0], 0)];
        let out = d.decide(&Context { metrics: &m, ..c }).await;
        assert_eq!(
            out.desired, 4,
            "HPA alone would go to 4 × 2 = 8 from the ready pods' ratio; the load needs 4: {out:?}"
        );
    }
}
