//! KPA: Knative's autoscaler (`pkg/autoscaler/scaling/autoscaler.go`) on **totals** across ready pods.
//!
//! The inputs are the stable-window and panic-window averages of the *total* load (e.g. in-flight requests
//! summed over pods), so the desired count is `ceil(total / target-per-pod)` — not a per-pod mean divided
//! by a per-pod target, which ignores how many pods there are (the AIBrix fault).
//!
//! - Both desired counts are bounded by the rates: up to `ceil(maxScaleUpRate × ready)`, down to
//!   `floor(ready / maxScaleDownRate)`.
//! - Panic starts when the panic-window desired count / ready ≥ the threshold (2.0), is extended while the
//!   condition holds, and ends only after a full stable window without it. While panicking the count never
//!   goes down (it is the max seen during the panic).
//! - A positive count is at least `activationScale`; a fall to 0 waits for the scale-to-zero grace period
//!   since the last non-zero wish.
//!
//! [`KpaState`] is plain data; [`KpaState::restored`] starts in panic at the current scale, so a restart in
//! the middle of a burst does not scale down.

use serde::{Deserialize, Serialize};

/// KPA parameters (`algorithmConfig` keys in parentheses).
#[derive(Clone, Debug, PartialEq)]
pub struct KpaConfig {
    /// Target load per pod (the metric's target).
    pub target: f64,
    /// Panic threshold as desired/ready (`panicThreshold`, 2.0).
    pub panic_threshold: f64,
    /// Stable window in seconds (`stableWindow`, 60); the panic window is 10 % of it.
    pub stable_window_seconds: f64,
    /// Max scale-up rate (`maxScaleUpRate`, 1000).
    pub max_scale_up_rate: f64,
    /// Max scale-down rate (`maxScaleDownRate`, 2).
    pub max_scale_down_rate: f64,
    /// Minimum non-zero count (`activationScale`, 1).
    pub activation_scale: i32,
    /// Seconds of wanting 0 before scaling to 0 (`scaleToZeroGracePeriod`, 30).
    pub scale_to_zero_grace_seconds: f64,
}

impl KpaConfig {
    /// Knative's defaults for `target`.
    pub fn with_target(target: f64) -> KpaConfig {
        KpaConfig {
            target,
            panic_threshold: 2.0,
            stable_window_seconds: 60.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            activation_scale: 1,
            scale_to_zero_grace_seconds: 30.0,
        }
    }
}

/// What the KPA remembers between decisions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KpaState {
    /// When panic last started or was extended; `None` when not panicking.
    pub panic_since: Option<f64>,
    /// The highest count wanted during this panic.
    pub max_panic_pods: i32,
    /// When a non-zero count was last wanted.
    pub last_nonzero: Option<f64>,
}

impl KpaState {
    /// The state after a controller restart: in panic at the current scale, so nothing scales down until a
    /// full stable window of data says so.
    pub fn restored(now: f64, current: i32) -> KpaState {
        KpaState {
            panic_since: Some(now),
            max_panic_pods: current,
            last_nonzero: Some(now),
        }
    }
}

/// One KPA decision.
#[derive(Clone, Debug, PartialEq)]
pub struct KpaDecision {
    /// Desired replicas (before min/max).
    pub desired: i32,
    /// Whether the KPA is in panic mode.
    pub panicking: bool,
}

/// Decides from the stable- and panic-window average totals with `ready` pods.
pub fn decide(
    cfg: &KpaConfig,
    state: &mut KpaState,
    now: f64,
    ready: i32,
    stable_total: f64,
    panic_total: f64,
) -> KpaDecision {
    if cfg.target <= 0.0 {
        return KpaDecision {
            desired: ready,
            panicking: state.panic_since.is_some(),
        };
    }
    let ready_f = ready.max(1) as f64;
    let max_up = (cfg.max_scale_up_rate * ready_f).ceil();
    let max_down = if ready == 0 {
        0.0
    } else {
        (ready_f / cfg.max_scale_down_rate).floor()
    };
    let bound = |x: f64| x.max(max_down).min(max_up);
    let dspc = bound((stable_total / cfg.target).ceil());
    let dppc = bound((panic_total / cfg.target).ceil());
    let over = dppc / ready_f >= cfg.panic_threshold;
    match state.panic_since {
        _ if over => state.panic_since = Some(now),
        Some(since) if now > since + cfg.stable_window_seconds => {
            state.panic_since = None;
            state.max_panic_pods = 0;
        }
        _ => {}
    }
    let mut desired = dspc as i32;
    if state.panic_since.is_some() {
        state.max_panic_pods = state.max_panic_pods.max(dppc as i32).max(dspc as i32);
        desired = state.max_panic_pods;
    }
    if desired > 0 {
        desired = desired.max(cfg.activation_scale);
        state.last_nonzero = Some(now);
    } else if ready > 0
        && state
            .last_nonzero
            .is_some_and(|t| now - t < cfg.scale_to_zero_grace_seconds)
    {
        // Wanting 0, but not for the whole grace period yet: keep the activation scale.
        desired = cfg.activation_scale.max(1);
    }
    KpaDecision {
        desired,
        panicking: state.panic_since.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> KpaConfig {
        KpaConfig::with_target(10.0)
    }

    #[test]
    fn totals_not_per_pod_means() {
        // 4 pods, 32 requests in flight in total, target 10 per pod → 4 (AIBrix's mean/target would say 1).
        let mut s = KpaState::default();
        assert_eq!(decide(&cfg(), &mut s, 0.0, 4, 32.0, 32.0).desired, 4);
        // 60 in total → 6.
        assert_eq!(decide(&cfg(), &mut s, 1.0, 4, 60.0, 60.0).desired, 6);
    }

    #[test]
    fn panic_entry_hold_and_exit() {
        let c = cfg();
        let mut s = KpaState::default();
        // Steady: 2 pods, 20 total.
        let d = decide(&c, &mut s, 0.0, 2, 20.0, 20.0);
        assert_eq!((d.desired, d.panicking), (2, false));
        // Burst in the panic window: 50 → dppc 5, 5/2 ≥ 2 → panic, desired 5 though the stable window says 3.
        let d = decide(&c, &mut s, 10.0, 2, 25.0, 50.0);
        assert_eq!((d.desired, d.panicking), (5, true));
        // Load falls: still panicking within the stable window, never below the panic max.
        let d = decide(&c, &mut s, 40.0, 5, 10.0, 10.0);
        assert_eq!((d.desired, d.panicking), (5, true));
        // A full stable window (60 s) after the last over-threshold tick: panic ends, stable count rules.
        let d = decide(&c, &mut s, 71.0, 5, 10.0, 10.0);
        assert_eq!(
            (d.desired, d.panicking),
            (2, false),
            "stable says 1; the down rate bounds the drop at floor(5/2) = 2"
        );
    }

    #[test]
    fn panic_is_extended_while_the_condition_holds() {
        let c = cfg();
        let mut s = KpaState::default();
        decide(&c, &mut s, 0.0, 1, 30.0, 30.0); // 3/1 ≥ 2 → panic
        decide(&c, &mut s, 50.0, 3, 80.0, 80.0); // 8/3 ≥ 2 → extended to 50
        let d = decide(&c, &mut s, 100.0, 8, 5.0, 5.0); // 50 s after the extension: still panicking
        assert!(d.panicking);
        assert_eq!(d.desired, 8);
    }

    #[test]
    fn rates_bound_the_change() {
        let mut c = cfg();
        c.max_scale_up_rate = 2.0;
        let mut s = KpaState::default();
        // 1 ready pod, load for 10 → at most ceil(2 × 1) = 2 (and panic, since 2/1 ≥ 2).
        assert_eq!(decide(&c, &mut s, 0.0, 1, 100.0, 100.0).desired, 2);
        let mut s = KpaState::default();
        // 10 ready pods, no load → at most down to floor(10 / 2) = 5.
        assert_eq!(decide(&c, &mut s, 0.0, 10, 0.0, 0.0).desired, 5);
    }

    #[test]
    fn scale_to_zero_waits_for_the_grace_period_and_activation_scale_applies() {
        let mut c = cfg();
        c.activation_scale = 2;
        let mut s = KpaState::default();
        assert_eq!(
            decide(&c, &mut s, 0.0, 1, 5.0, 5.0).desired,
            2,
            "activation scale lifts 1 to 2"
        );
        assert_eq!(
            decide(&c, &mut s, 10.0, 1, 0.0, 0.0).desired,
            2,
            "wanting 0 for 10 s < 30 s grace"
        );
        assert_eq!(
            decide(&c, &mut s, 31.0, 1, 0.0, 0.0).desired,
            0,
            "grace over"
        );
        // From zero, load brings it back.
        assert_eq!(decide(&c, &mut s, 40.0, 0, 5.0, 5.0).desired, 2);
    }

    #[test]
    fn restart_starts_in_panic_at_the_current_scale() {
        let c = cfg();
        let mut s = KpaState::restored(100.0, 6);
        // Right after the restart the windows are nearly empty (low totals): no scale-down.
        let d = decide(&c, &mut s, 101.0, 6, 5.0, 5.0);
        assert_eq!((d.desired, d.panicking), (6, true));
        // After a full stable window with the data, the stable count rules.
        let d = decide(&c, &mut s, 161.0, 6, 20.0, 20.0);
        assert_eq!((d.desired, d.panicking), (3, false));
    }
}
