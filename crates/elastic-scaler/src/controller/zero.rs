//! Scale to zero, the decisions: from what the cluster shows (is the Service handed to the DLX, the target's
//! replicas, the EndpointSlices, a wake request, this period's metrics) to the one next step. Every step
//! is idempotent and the phase is derived from the cluster each time, not remembered, so a crash of the
//! elastic-scaler or the DLX at any point resumes where the cluster is:
//!
//! ```text
//! Active ──idle for idleSeconds──► ScalingToZero: hand the Service to the DLX → wait until its
//!   ▲                              EndpointSlices list only DLX pods → scale to 0 ──► AtZero
//!   │                                                                                  │ wake request
//!   └── Service EndpointSlices list workload pods ◄── restore selector ◄── ready ◄── Waking: scale up
//! ```
//!
//! Activity is any metric value above 0; idleness needs every metric present and 0 (missing data is never
//! idle). At zero, missing metrics are expected (no pods) and only a wake request or a positive value wakes.

use crate::plugin::{Observation, Reading};
use api_types::elastic_scaler::ZeroPhase;

/// What one period observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The Service carries the original-selector annotation (it selects the DLX, or is being handed over).
    pub handed: bool,
    /// The target's replicas.
    pub replicas: i32,
    /// Ready endpoints of the workload Service (the workload's own pods).
    pub workload_ready: usize,
    /// The Service's EndpointSlices list at least one ready DLX endpoint and nothing else.
    pub service_on_dlx: bool,
    /// The Service's EndpointSlices list at least one ready workload pod.
    pub service_on_workload: bool,
    /// A DLX asked to wake the target (annotation on the ElasticScaler).
    pub wake_requested: bool,
    /// Some metric read above 0 this period.
    pub activity: bool,
    /// Every metric read, and all were 0.
    pub all_zero: bool,
    /// Since when all metrics read 0 (Unix seconds), before this period.
    pub idle_since: Option<f64>,
    /// Now (Unix seconds).
    pub now: f64,
    /// `idleSeconds`.
    pub idle_seconds: f64,
    /// `wakeReplicas`.
    pub wake_replicas: i32,
}

/// The one thing to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Active: the metrics decide (never below 1: only the hand-over may reach 0).
    Serve,
    /// Point the Service at the DLX (keeping its selector in an annotation).
    HandOver,
    /// Wait until the Service's EndpointSlices list only DLX endpoints.
    WaitForDlx,
    /// Scale the target to 0.
    ScaleToZero,
    /// At zero: nothing to do.
    Hold,
    /// Scale the target up to this many replicas.
    WakeUp(i32),
    /// Wait for a ready workload pod.
    WaitForReady,
    /// Restore the Service's selector.
    Restore,
    /// Wait until the Service's EndpointSlices list the workload's pods; then clear the wake request.
    WaitForRestore,
    /// The Service serves the workload again: clear the wake request.
    ClearWake,
}

/// Activity and idleness of this period's readings.
pub fn activity(metrics: &[Observation]) -> (bool, bool) {
    let mut any_positive = false;
    let mut all_zero = !metrics.is_empty();
    for m in metrics {
        match &m.reading {
            Reading::Total(v) => {
                any_positive |= *v > 0.0;
                all_zero &= *v == 0.0;
            }
            Reading::PerPod(p) => {
                any_positive |= p.ready.iter().any(|v| *v > 0.0);
                all_zero &= p.missing == 0 && p.ready.iter().all(|v| *v == 0.0);
            }
            Reading::Missing(_) => all_zero = false,
        }
    }
    (any_positive, all_zero)
}

/// The idle-since time after this period: kept while all zero, started now, or cleared.
pub fn next_idle_since(o: &Observed) -> Option<f64> {
    if o.all_zero {
        Some(o.idle_since.unwrap_or(o.now))
    } else {
        None
    }
}

/// The phase and the next step.
pub fn decide(o: &Observed) -> (ZeroPhase, Step) {
    let wake = o.wake_requested || o.activity;
    let idle_enough =
        o.all_zero && next_idle_since(o).is_some_and(|since| o.now - since >= o.idle_seconds);
    if !o.handed {
        return if o.replicas == 0 && !wake {
            // At zero with the Service on the workload (scaled down by hand, or a crash): hold requests now.
            (ZeroPhase::ScalingToZero, Step::HandOver)
        } else if o.replicas == 0 {
            (ZeroPhase::Waking, Step::WakeUp(o.wake_replicas))
        } else if o.wake_requested && !o.service_on_workload {
            (ZeroPhase::Waking, Step::WaitForRestore)
        } else if o.wake_requested {
            (ZeroPhase::Active, Step::ClearWake)
        } else if idle_enough {
            (ZeroPhase::ScalingToZero, Step::HandOver)
        } else {
            (ZeroPhase::Active, Step::Serve)
        };
    }
    match (o.replicas, wake) {
        (0, false) => (ZeroPhase::AtZero, Step::Hold),
        (0, true) => (ZeroPhase::Waking, Step::WakeUp(o.wake_replicas)),
        (_, true) if o.workload_ready > 0 => (ZeroPhase::Waking, Step::Restore),
        (r, true) if r < o.wake_replicas => (ZeroPhase::Waking, Step::WakeUp(o.wake_replicas)),
        (_, true) => (ZeroPhase::Waking, Step::WaitForReady),
        (_, false) if o.service_on_dlx => (ZeroPhase::ScalingToZero, Step::ScaleToZero),
        (_, false) => (ZeroPhase::ScalingToZero, Step::WaitForDlx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::hpa::PodMetrics;
    use crate::plugin::Target;

    fn base() -> Observed {
        Observed {
            replicas: 1,
            workload_ready: 1,
            service_on_workload: true,
            all_zero: true,
            now: 1000.0,
            idle_seconds: 300.0,
            wake_replicas: 1,
            ..Observed::default()
        }
    }

    #[test]
    fn idle_for_the_window_hands_over_then_scales_to_zero_only_when_verified() {
        let o = Observed {
            idle_since: Some(800.0),
            ..base()
        };
        assert_eq!(
            decide(&o),
            (ZeroPhase::Active, Step::Serve),
            "idle 200 s of 300"
        );
        let o = Observed {
            idle_since: Some(700.0),
            ..base()
        };
        assert_eq!(decide(&o), (ZeroPhase::ScalingToZero, Step::HandOver));
        let handed = Observed {
            handed: true,
            idle_since: Some(700.0),
            ..base()
        };
        assert_eq!(
            decide(&handed),
            (ZeroPhase::ScalingToZero, Step::WaitForDlx)
        );
        let verified = Observed {
            service_on_dlx: true,
            ..handed.clone()
        };
        assert_eq!(
            decide(&verified),
            (ZeroPhase::ScalingToZero, Step::ScaleToZero)
        );
        let at_zero = Observed {
            replicas: 0,
            workload_ready: 0,
            ..verified
        };
        assert_eq!(decide(&at_zero), (ZeroPhase::AtZero, Step::Hold));
    }

    #[test]
    fn a_wake_request_scales_up_waits_restores_and_clears() {
        let at_zero = Observed {
            handed: true,
            replicas: 0,
            workload_ready: 0,
            service_on_dlx: true,
            all_zero: false,
            wake_requested: true,
            wake_replicas: 2,
            ..base()
        };
        assert_eq!(decide(&at_zero), (ZeroPhase::Waking, Step::WakeUp(2)));
        let loading = Observed {
            replicas: 2,
            ..at_zero.clone()
        };
        assert_eq!(decide(&loading), (ZeroPhase::Waking, Step::WaitForReady));
        let ready = Observed {
            workload_ready: 1,
            ..loading
        };
        assert_eq!(decide(&ready), (ZeroPhase::Waking, Step::Restore));
        let restored = Observed {
            handed: false,
            service_on_workload: false,
            ..ready.clone()
        };
        assert_eq!(decide(&restored), (ZeroPhase::Waking, Step::WaitForRestore));
        let serving = Observed {
            service_on_workload: true,
            ..restored
        };
        assert_eq!(decide(&serving), (ZeroPhase::Active, Step::ClearWake));
    }

    #[test]
    fn activity_during_the_hand_over_reverts_it() {
        let o = Observed {
            handed: true,
            activity: true,
            all_zero: false,
            ..base()
        };
        assert_eq!(
            decide(&o),
            (ZeroPhase::Waking, Step::Restore),
            "pods still there: hand the Service back"
        );
    }

    #[test]
    fn a_target_at_zero_without_the_hand_over_is_handed_over_at_once() {
        let o = Observed {
            replicas: 0,
            workload_ready: 0,
            all_zero: false,
            ..base()
        };
        assert_eq!(decide(&o), (ZeroPhase::ScalingToZero, Step::HandOver));
    }

    #[test]
    fn missing_data_is_never_idle_and_only_positive_values_are_activity() {
        let obs = |reading| Observation {
            name: "m".into(),
            target: Target::AverageValue(1.0),
            reading,
        };
        assert_eq!(activity(&[obs(Reading::Total(0.0))]), (false, true));
        assert_eq!(
            activity(&[obs(Reading::Total(0.0)), obs(Reading::Missing("x".into()))]),
            (false, false)
        );
        assert_eq!(
            activity(&[obs(Reading::Missing("x".into()))]),
            (false, false)
        );
        let pods = PodMetrics {
            ready: vec![0.0, 2.0],
            missing: 0,
            unready: 0,
        };
        assert_eq!(activity(&[obs(Reading::PerPod(pods))]), (true, false));
        let failed = PodMetrics {
            ready: vec![0.0],
            missing: 1,
            unready: 0,
        };
        assert_eq!(activity(&[obs(Reading::PerPod(failed))]), (false, false));
        let o = Observed {
            all_zero: false,
            idle_since: Some(1.0),
            ..base()
        };
        assert_eq!(next_idle_since(&o), None);
        let o = Observed {
            idle_since: None,
            ..base()
        };
        assert_eq!(next_idle_since(&o), Some(1000.0));
    }
}
