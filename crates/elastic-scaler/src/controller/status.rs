//! The ElasticScaler's status from one reconcile's outcome: a pure function, so "nothing changed" is
//! an equality test and costs no write.
//!
//! Conditions (the reference CRD's types):
//! - `Validated`: the spec, `algorithmConfig` and behavior annotations are valid.
//! - `Available`: the target exists and its handler can read it.
//! - `MetricsCollected`: every metric has a value from every ready pod (else scale-down is withheld).
//! - `ScalingCalculated`: the algorithm (or the linked object) gave a count.
//! - `Progressing`: the target is not yet at the desired count with every replica ready.
//! - `Degraded`: something is failing: the scale write, a metric, the algorithm, the target.
//! - `ReconciliationComplete`: the whole pipeline ran and every write succeeded.

use api_types::ElasticScalerStatus;
use api_types::conditions::{keep_transition_times, make};
use api_types::elastic_scaler::{MetricStatus, RecommendationRecord, ScaleRecord};
use api_types::keys::{conditions as c, reasons as r};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Most scale records kept in status.
pub const HISTORY: usize = 10;

/// A failure with its condition reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Condition reason.
    pub reason: &'static str,
    /// Message naming what failed and the fix.
    pub message: String,
}

impl Failure {
    /// A failure.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// What one reconcile found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The spec's problems (Validated=False), or none.
    pub invalid: Option<Failure>,
    /// Why the target could not be read.
    pub target: Option<Failure>,
    /// Target replicas and ready replicas (after any scale write: replicas is the new count).
    pub replicas: Option<(i32, i32)>,
    /// Metrics seen.
    pub metrics: Vec<MetricStatus>,
    /// A metric problem (MetricsCollected=False).
    pub metrics_problem: Option<Failure>,
    /// How the count was decided, or why it could not be.
    pub calculation: Option<Result<String, Failure>>,
    /// The algorithm's registry name.
    pub algorithm: Option<String>,
    /// The desired count.
    pub desired: Option<i32>,
    /// The scale write failed.
    pub scale_error: Option<Failure>,
    /// The scale change made by this reconcile.
    pub scaled: Option<ScaleRecord>,
    /// Recommendation change points.
    pub records: Option<Vec<RecommendationRecord>>,
    /// The KPA is panicking.
    pub panicking: Option<bool>,
    /// Scale-to-zero state (with `spec.scaleToZero`).
    pub scale_to_zero: Option<api_types::elastic_scaler::ScaleToZeroStatus>,
}

/// The next status: `old` updated by `o`; `lastSyncTime` is `now` only if anything else changed.
pub fn next(
    old: &ElasticScalerStatus,
    o: &Outcome,
    generation: Option<i64>,
    now: &Time,
) -> ElasticScalerStatus {
    let mut s = old.clone();
    let cond =
        |t: &str, ok: bool, reason: &str, msg: String| make(t, ok, reason, msg, generation, now);
    let mut conds: Vec<Condition> = Vec::new();
    if let Some(f) = &o.invalid {
        conds.push(cond(c::VALIDATED, false, f.reason, f.message.clone()));
        conds.push(cond(
            c::RECONCILIATION_COMPLETE,
            false,
            f.reason,
            "fix the spec; nothing is scaled until then".into(),
        ));
        conds.push(cond(c::DEGRADED, true, f.reason, f.message.clone()));
        s.conditions = keep_transition_times(&old.conditions, merge(&old.conditions, conds));
        return stamp(old, s, now);
    }
    conds.push(cond(c::VALIDATED, true, r::VALID, "spec is valid".into()));
    match (&o.target, o.replicas) {
        (Some(f), _) => conds.push(cond(c::AVAILABLE, false, f.reason, f.message.clone())),
        (None, Some((replicas, ready))) => {
            s.current_replicas = Some(replicas);
            conds.push(cond(
                c::AVAILABLE,
                true,
                r::RECONCILED,
                format!("target has {replicas} replicas, {ready} ready"),
            ));
        }
        (None, None) => {}
    }
    if o.target.is_none() {
        match &o.metrics_problem {
            Some(f) => conds.push(cond(
                c::METRICS_COLLECTED,
                false,
                f.reason,
                f.message.clone(),
            )),
            None if !o.metrics.is_empty() => conds.push(cond(
                c::METRICS_COLLECTED,
                true,
                r::METRICS_OK,
                format!("{} metric(s) read", o.metrics.len()),
            )),
            None => {}
        }
        match &o.calculation {
            Some(Ok(reason)) => conds.push(cond(
                c::SCALING_CALCULATED,
                true,
                r::CALCULATED,
                reason.clone(),
            )),
            Some(Err(f)) => conds.push(cond(
                c::SCALING_CALCULATED,
                false,
                f.reason,
                f.message.clone(),
            )),
            None => {}
        }
        s.current_metrics = o.metrics.clone();
    }
    if let Some(d) = o.desired {
        s.desired_replicas = Some(d);
    }
    if o.algorithm.is_some() {
        s.algorithm = o.algorithm.clone();
    }
    if let Some(Ok(reason)) = &o.calculation {
        s.reason = Some(reason.clone());
    }
    if let Some(rec) = &o.records {
        s.recommendations = rec.clone();
    }
    if o.panicking.is_some() {
        s.panicking = o.panicking.filter(|p| *p);
    }
    if o.scale_to_zero.is_some() {
        s.scale_to_zero = o.scale_to_zero.clone();
    }
    if let Some(sc) = &o.scaled {
        s.last_scale_time = Some(sc.time.clone());
        s.history.push(sc.clone());
        let excess = s.history.len().saturating_sub(HISTORY);
        s.history.drain(..excess);
    }
    let progressing = match (o.replicas, o.desired) {
        (Some((replicas, ready)), Some(d)) if replicas != d || ready < replicas => Some(format!(
            "target at {replicas} replicas ({ready} ready), desired {d}"
        )),
        _ => None,
    };
    conds.push(match &progressing {
        Some(m) => cond(c::PROGRESSING, true, r::SCALING, m.clone()),
        None => cond(
            c::PROGRESSING,
            false,
            r::STABLE,
            "target is at the desired count and ready".into(),
        ),
    });
    let failure = o
        .scale_error
        .as_ref()
        .or(o.target.as_ref())
        .or(match &o.calculation {
            Some(Err(f)) => Some(f),
            _ => None,
        })
        .or(o.metrics_problem.as_ref());
    conds.push(match failure {
        Some(f) => cond(c::DEGRADED, true, f.reason, f.message.clone()),
        None => cond(c::DEGRADED, false, r::RECONCILED, "no failures".into()),
    });
    let blocking = o.scale_error.as_ref().or(o.target.as_ref());
    conds.push(match blocking {
        Some(f) => cond(
            c::RECONCILIATION_COMPLETE,
            false,
            f.reason,
            f.message.clone(),
        ),
        None => cond(
            c::RECONCILIATION_COMPLETE,
            true,
            r::RECONCILED,
            "decided and applied".into(),
        ),
    });
    s.conditions = keep_transition_times(&old.conditions, merge(&old.conditions, conds));
    stamp(old, s, now)
}

/// Conditions of types not set this time are kept from `old` (e.g. Available when validation fails).
fn merge(old: &[Condition], new: Vec<Condition>) -> Vec<Condition> {
    let order = [
        c::VALIDATED,
        c::AVAILABLE,
        c::METRICS_COLLECTED,
        c::SCALING_CALCULATED,
        c::PROGRESSING,
        c::DEGRADED,
        c::RECONCILIATION_COMPLETE,
    ];
    order
        .iter()
        .filter_map(|t| {
            new.iter()
                .find(|n| n.type_ == *t)
                .or_else(|| old.iter().find(|o| o.type_ == *t))
                .cloned()
        })
        .collect()
}

fn stamp(old: &ElasticScalerStatus, mut s: ElasticScalerStatus, now: &Time) -> ElasticScalerStatus {
    s.last_sync_time = old.last_sync_time.clone();
    if s != *old {
        s.last_sync_time = Some(now.clone());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    fn ok_outcome() -> Outcome {
        Outcome {
            replicas: Some((3, 3)),
            metrics: vec![MetricStatus {
                name: "Pods/q".into(),
                value: Some("2".into()),
                target: "AverageValue=2".into(),
                ready_pods: Some(3),
                excluded_pods: Some(0),
                error: None,
            }],
            calculation: Some(Ok("APA: load 3 → 3".into())),
            algorithm: Some("apa".into()),
            desired: Some(3),
            ..Outcome::default()
        }
    }

    #[test]
    fn an_unchanged_reconcile_changes_nothing() {
        let s1 = next(
            &ElasticScalerStatus::default(),
            &ok_outcome(),
            Some(1),
            &t(10),
        );
        assert_eq!(s1.last_sync_time, Some(t(10)));
        let s2 = next(&s1, &ok_outcome(), Some(1), &t(25));
        assert_eq!(s1, s2, "no change, no new lastSyncTime, no write");
        let status_of = |s: &ElasticScalerStatus, ty: &str| {
            api_types::conditions::find(&s.conditions, ty)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(status_of(&s1, c::AVAILABLE), "True");
        assert_eq!(status_of(&s1, c::PROGRESSING), "False");
        assert_eq!(status_of(&s1, c::DEGRADED), "False");
        assert_eq!(s1.conditions.len(), 7);
    }

    #[test]
    fn invalid_spec_keeps_the_rest_and_says_why() {
        let s1 = next(
            &ElasticScalerStatus::default(),
            &ok_outcome(),
            Some(1),
            &t(10),
        );
        let bad = Outcome {
            invalid: Some(Failure::new(
                r::INVALID_SPEC,
                "spec.maxReplicas: below minReplicas",
            )),
            ..Outcome::default()
        };
        let s2 = next(&s1, &bad, Some(2), &t(20));
        let v = api_types::conditions::find(&s2.conditions, c::VALIDATED).unwrap();
        assert_eq!(
            (v.status.as_str(), v.reason.as_str()),
            ("False", r::INVALID_SPEC)
        );
        assert!(v.message.contains("spec.maxReplicas"));
        assert_eq!(
            s2.desired_replicas,
            Some(3),
            "the last decision stays visible"
        );
    }

    #[test]
    fn scale_history_is_bounded() {
        let mut s = ElasticScalerStatus::default();
        for i in 0..15 {
            let o = Outcome {
                scaled: Some(ScaleRecord {
                    time: t(i),
                    from: i as i32,
                    to: i as i32 + 1,
                    reason: "x".into(),
                }),
                ..ok_outcome()
            };
            s = next(&s, &o, None, &t(i));
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history.last().unwrap().to, 15);
        assert_eq!(s.last_scale_time, Some(t(14)));
    }
}
