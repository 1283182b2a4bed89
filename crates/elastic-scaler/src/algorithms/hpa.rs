//! The Kubernetes HPA replica calculation (`pkg/controller/podautoscaler/replica_calculator.go`).
//!
//! For a per-pod metric the usage ratio is the mean over ready pods divided by the target. Within the
//! tolerance (default 0.1) nothing changes. Pods without a metric and unready pods are not read as 0
//! blindly: when the ratio says "scale down", a pod without a metric counts as exactly at target (so it
//! cannot cause a scale-down); when it says "scale up", missing and unready pods count as 0 (so they
//! cannot inflate it). If that rebalancing flips the direction or lands within tolerance, the replicas
//! stay.

/// The tolerance of the upstream HPA.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// One per-pod metric as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodMetrics {
    /// Values of ready pods that reported.
    pub ready: Vec<f64>,
    /// Ready pods whose metric could not be read (failing `/metrics`, no series).
    pub missing: usize,
    /// Pods not ready yet (starting, failing probes).
    pub unready: usize,
}

fn within(ratio: f64, tolerance: f64) -> bool {
    (1.0 - ratio).abs() <= tolerance
}

fn ceil_i32(x: f64) -> i32 {
    x.ceil().clamp(0.0, i32::MAX as f64) as i32
}

/// Desired replicas for a per-pod metric with per-pod `target` (AverageValue, or Utilization with values
/// in percent). `None` when no ready pod reported: nothing to decide on.
pub fn replicas_for_pod_metric(
    current: i32,
    pods: &PodMetrics,
    target: f64,
    tolerance: f64,
) -> Option<i32> {
    if pods.ready.is_empty() || target <= 0.0 {
        return None;
    }
    let n = pods.ready.len() as f64;
    let sum: f64 = pods.ready.iter().sum();
    let ratio = sum / (n * target);
    let scale_up_with_unready = pods.unready > 0 && ratio > 1.0;
    if !scale_up_with_unready && pods.missing == 0 {
        if within(ratio, tolerance) {
            return Some(current);
        }
        return Some(ceil_i32(ratio * n));
    }
    // Rebalance: missing pods at target when scaling down, at 0 when scaling up; unready at 0 on scale-up.
    let mut total = sum;
    let mut count = n;
    if pods.missing > 0 {
        if ratio < 1.0 {
            total += pods.missing as f64 * target;
        }
        count += pods.missing as f64;
    }
    if scale_up_with_unready {
        count += pods.unready as f64;
    }
    let new_ratio = total / (count * target);
    if within(new_ratio, tolerance)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Some(current);
    }
    let desired = ceil_i32(new_ratio * count);
    if (new_ratio < 1.0 && desired > current) || (new_ratio > 1.0 && desired < current) {
        return Some(current);
    }
    Some(desired)
}

/// Desired replicas for a metric that is one value for the whole target (Object/External, target type
/// Value): `ceil(ready × value / target)`, unchanged within tolerance.
pub fn replicas_for_value(
    current: i32,
    ready: i32,
    value: f64,
    target: f64,
    tolerance: f64,
) -> Option<i32> {
    if target <= 0.0 {
        return None;
    }
    let ratio = value / target;
    if within(ratio, tolerance) {
        return Some(current);
    }
    Some(ceil_i32(ratio * ready.max(0) as f64))
}

/// Desired replicas for a whole-target metric with an AverageValue target: `ceil(value / target)`,
/// unchanged when `value / (target × current)` is within tolerance.
pub fn replicas_for_average_value(
    current: i32,
    value: f64,
    target: f64,
    tolerance: f64,
) -> Option<i32> {
    if target <= 0.0 {
        return None;
    }
    if current > 0 && within(value / (target * current as f64), tolerance) {
        return Some(current);
    }
    Some(ceil_i32(value / target))
}

/// The HPA's combination of metrics: the largest recommendation (any metric wanting more wins); metrics
/// that could not be computed are skipped, and if none could, there is no recommendation.
pub fn combine(recommendations: &[Option<i32>]) -> Option<i32> {
    recommendations.iter().flatten().copied().max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(ready: &[f64], missing: usize, unready: usize) -> PodMetrics {
        PodMetrics {
            ready: ready.to_vec(),
            missing,
            unready,
        }
    }

    #[test]
    fn plain_ratio_and_tolerance() {
        // 3 pods at 100 with target 50: ratio 2 → 6.
        assert_eq!(
            replicas_for_pod_metric(3, &pods(&[100.0, 100.0, 100.0], 0, 0), 50.0, 0.1),
            Some(6)
        );
        // Ratio 1.05 is within tolerance.
        assert_eq!(
            replicas_for_pod_metric(3, &pods(&[52.5, 52.5, 52.5], 0, 0), 50.0, 0.1),
            Some(3)
        );
        // Ratio 0.5 → ceil(1.5) = 2.
        assert_eq!(
            replicas_for_pod_metric(3, &pods(&[25.0, 25.0, 25.0], 0, 0), 50.0, 0.1),
            Some(2)
        );
    }

    #[test]
    fn a_pod_without_metrics_never_causes_a_scale_down() {
        // Two pods report low usage, one failing pod reports nothing. Reading it as 0 (the AIBrix fault)
        // would give ceil(20/150 × 3) = 1; here it counts as at target: ceil((10+10+50)/150 × 3) = 2.
        let d = replicas_for_pod_metric(3, &pods(&[10.0, 10.0], 1, 0), 50.0, 0.1).unwrap();
        assert_eq!(d, 2);
        // With usage near target, the missing pod at target keeps it within tolerance: no scale-down.
        assert_eq!(
            replicas_for_pod_metric(3, &pods(&[46.0, 46.0], 1, 0), 50.0, 0.1),
            Some(3)
        );
    }

    #[test]
    fn unready_pods_do_not_inflate_a_scale_up() {
        // Two ready pods at 100 (target 50), two starting: they count as 0 → ratio (200)/(4×50) = 1 → stay.
        assert_eq!(
            replicas_for_pod_metric(4, &pods(&[100.0, 100.0], 0, 2), 50.0, 0.1),
            Some(4)
        );
        // Without the unready pods it would be 4 as well from 2 ready pods; with a higher load it grows.
        assert_eq!(
            replicas_for_pod_metric(4, &pods(&[200.0, 200.0], 0, 2), 50.0, 0.1),
            Some(8)
        );
    }

    #[test]
    fn rebalancing_that_flips_direction_keeps_replicas() {
        // Ratio > 1 from one ready pod, but with 3 unready pods at 0 the ratio drops below 1: stay.
        assert_eq!(
            replicas_for_pod_metric(4, &pods(&[60.0], 0, 3), 50.0, 0.1),
            Some(4)
        );
    }

    #[test]
    fn no_ready_metric_no_decision() {
        assert_eq!(
            replicas_for_pod_metric(3, &pods(&[], 3, 0), 50.0, 0.1),
            None
        );
    }

    #[test]
    fn whole_target_metrics() {
        assert_eq!(replicas_for_value(2, 2, 300.0, 100.0, 0.1), Some(6));
        assert_eq!(replicas_for_value(2, 2, 105.0, 100.0, 0.1), Some(2));
        assert_eq!(replicas_for_average_value(2, 450.0, 100.0, 0.1), Some(5));
        assert_eq!(replicas_for_average_value(4, 410.0, 100.0, 0.1), Some(4));
    }

    #[test]
    fn max_over_metrics() {
        assert_eq!(combine(&[Some(3), None, Some(7)]), Some(7));
        assert_eq!(combine(&[None, None]), None);
    }
}
