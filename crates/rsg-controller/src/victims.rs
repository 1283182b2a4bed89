//! Which groups a scale-down removes (seed 002): by `scaleDown.metric` through Prometheus; if Prometheus
//! fails or any candidate lacks a value, by the `autoscaling.rsg.metric.values` annotation on each group's
//! copy of `targetResources[0]`; if any of those is missing, highest group id first. The path that decided
//! is returned, logged, recorded in status and an Event (the FAQ tells users to look for it).

use std::collections::HashMap;

use api_types::rsg::{Aggregator, MetricType, Order, ScaleDown, ScaleDownMetric};

/// The path that chose the victims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Prometheus returned a value for every candidate group.
    Prometheus,
    /// The annotation values on each group's first target.
    Annotation,
    /// Highest group id first.
    MaxGroupId,
}

impl Path {
    /// As recorded in status and Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Prometheus => "Prometheus",
            Path::Annotation => "Annotation",
            Path::MaxGroupId => "MaxGroupId",
        }
    }
}

/// The victims and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Groups to remove, in removal order.
    pub victims: Vec<u32>,
    /// What decided.
    pub path: Path,
    /// One line: the values used or why a fallback was taken.
    pub reason: String,
}

/// The PromQL for a scale-down metric: Gauge `<agg> by (group_id) (<expr>)` (default avg),
/// Counter/Histogram `<agg> by (group_id) (rate(<expr>[<window>]))` (default sum). `None` without an
/// expression, or for Counter/Histogram without a window (validation reports that).
pub fn promql(m: &ScaleDownMetric) -> Option<String> {
    let expr = m.expr.as_deref().filter(|e| !e.trim().is_empty())?;
    let ty = m.type_.unwrap_or(MetricType::Gauge);
    Some(match ty {
        MetricType::Gauge => {
            let agg = m.aggregator.unwrap_or(Aggregator::Avg).as_str();
            format!("{agg} by (group_id) ({expr})")
        }
        MetricType::Counter | MetricType::Histogram => {
            let agg = m.aggregator.unwrap_or(Aggregator::Sum).as_str();
            let window = m.window.as_deref()?;
            format!("{agg} by (group_id) (rate({expr}[{window}]))")
        }
    })
}

/// What Prometheus gave for the candidates.
#[derive(Clone, Debug)]
pub enum MetricValues {
    /// `scaleDown.metric` is not configured.
    NotConfigured,
    /// The query failed (unreachable, error, no URL).
    Failed(String),
    /// Values by group id.
    Values(HashMap<u32, f64>),
}

fn fmt_values(ids: &[u32], values: &HashMap<u32, f64>) -> String {
    ids.iter()
        .map(|id| format!("{id}={}", values[id]))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ordered(candidates: &[u32], values: &HashMap<u32, f64>, order: Order, count: usize) -> Vec<u32> {
    let mut ids = candidates.to_vec();
    // Ties: the higher group id goes first, as in the last fallback.
    ids.sort_by(|a, b| {
        let (va, vb) = (values[a], values[b]);
        let by_value = match order {
            Order::Ascending => va.total_cmp(&vb),
            Order::Descending => vb.total_cmp(&va),
        };
        by_value.then(b.cmp(a))
    });
    ids.truncate(count);
    ids
}

/// Chooses `count` victims among `candidates`. `annotations` holds each candidate's annotation value
/// (`None` when absent or not a number).
pub fn choose(
    candidates: &[u32],
    count: usize,
    scale_down: Option<&ScaleDown>,
    prometheus: MetricValues,
    annotations: &HashMap<u32, Option<f64>>,
) -> Decision {
    let order = scale_down.and_then(|s| s.order).unwrap_or(Order::Ascending);
    let mut why = match prometheus {
        MetricValues::Values(values) => {
            let missing: Vec<u32> = candidates
                .iter()
                .copied()
                .filter(|id| !values.get(id).is_some_and(|v| v.is_finite()))
                .collect();
            if missing.is_empty() {
                return Decision {
                    victims: ordered(candidates, &values, order, count),
                    path: Path::Prometheus,
                    reason: format!(
                        "prometheus values by group_id: {}",
                        fmt_values(candidates, &values)
                    ),
                };
            }
            format!("prometheus returned no group_id value for groups {missing:?}")
        }
        MetricValues::Failed(e) => format!("prometheus query failed: {e}"),
        MetricValues::NotConfigured => "scaleDown.metric is not configured".to_string(),
    };
    let values: HashMap<u32, f64> = candidates
        .iter()
        .filter_map(|id| Some((*id, annotations.get(id).copied().flatten()?)))
        .collect();
    if values.len() == candidates.len() {
        return Decision {
            victims: ordered(candidates, &values, order, count),
            path: Path::Annotation,
            reason: format!(
                "fallback to annotation ({why}); values: {}",
                fmt_values(candidates, &values)
            ),
        };
    }
    let missing: Vec<u32> = candidates
        .iter()
        .copied()
        .filter(|id| !values.contains_key(id))
        .collect();
    why.push_str(&format!(
        "; annotation {} missing on groups {missing:?}",
        api_types::keys::annotations::RSG_METRIC_VALUES
    ));
    let mut ids = candidates.to_vec();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.truncate(count);
    Decision {
        victims: ids,
        path: Path::MaxGroupId,
        reason: format!("fallback to max group-id ({why})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(ty: MetricType, agg: Option<Aggregator>, window: Option<&str>) -> ScaleDownMetric {
        ScaleDownMetric {
            aggregator: agg,
            expr: Some("vllm:num_requests_running".into()),
            type_: Some(ty),
            window: window.map(Into::into),
        }
    }

    #[test]
    fn promql_defaults_per_type() {
        assert_eq!(
            promql(&metric(MetricType::Gauge, None, None)).unwrap(),
            "avg by (group_id) (vllm:num_requests_running)"
        );
        assert_eq!(
            promql(&metric(MetricType::Counter, None, Some("2m"))).unwrap(),
            "sum by (group_id) (rate(vllm:num_requests_running[2m]))"
        );
        assert_eq!(
            promql(&metric(
                MetricType::Histogram,
                Some(Aggregator::Max),
                Some("30s")
            ))
            .unwrap(),
            "max by (group_id) (rate(vllm:num_requests_running[30s]))"
        );
        assert_eq!(promql(&metric(MetricType::Counter, None, None)), None);
    }

    fn sd(order: Order) -> ScaleDown {
        ScaleDown {
            metric: Some(metric(MetricType::Gauge, None, None)),
            order: Some(order),
        }
    }

    #[test]
    fn prometheus_orders_ascending_and_descending() {
        let values = HashMap::from([(1, 11.0), (2, 5.0), (3, 7.0)]);
        let asc = choose(
            &[1, 2, 3],
            1,
            Some(&sd(Order::Ascending)),
            MetricValues::Values(values.clone()),
            &HashMap::new(),
        );
        assert_eq!((asc.victims, asc.path), (vec![2], Path::Prometheus));
        let desc = choose(
            &[1, 2, 3],
            2,
            Some(&sd(Order::Descending)),
            MetricValues::Values(values),
            &HashMap::new(),
        );
        assert_eq!(desc.victims, vec![1, 3]);
    }

    #[test]
    fn missing_group_value_falls_back_to_annotations() {
        let values = HashMap::from([(1, 11.0)]);
        let ann = HashMap::from([(1, Some(5.0)), (2, Some(1.0))]);
        let d = choose(
            &[1, 2],
            1,
            Some(&sd(Order::Ascending)),
            MetricValues::Values(values),
            &ann,
        );
        assert_eq!((d.victims, d.path), (vec![2], Path::Annotation));
        assert!(d.reason.contains("fallback to annotation"), "{}", d.reason);
        assert!(d.reason.contains("[2]"), "{}", d.reason);
    }

    #[test]
    fn failed_prometheus_and_missing_annotation_fall_back_to_max_id() {
        let ann = HashMap::from([(1, Some(5.0)), (2, None), (3, Some(1.0))]);
        let d = choose(
            &[1, 2, 3],
            2,
            Some(&sd(Order::Ascending)),
            MetricValues::Failed("connection refused".into()),
            &ann,
        );
        assert_eq!((d.victims, d.path), (vec![3, 2], Path::MaxGroupId));
        assert!(
            d.reason.contains("fallback to max group-id"),
            "{}",
            d.reason
        );
        assert!(d.reason.contains("connection refused"), "{}", d.reason);
    }

    #[test]
    fn seed_annotation_example_order() {
        // Seed 002: values 10 (group 0, never a candidate), 5 (group 1), 1 (group 2), ascending → 2 then 1.
        let ann = HashMap::from([(1, Some(5.0)), (2, Some(1.0))]);
        let d = choose(
            &[1, 2],
            2,
            Some(&sd(Order::Ascending)),
            MetricValues::NotConfigured,
            &ann,
        );
        assert_eq!((d.victims, d.path), (vec![2, 1], Path::Annotation));
    }

    #[test]
    fn ties_remove_higher_id_first() {
        let values = HashMap::from([(1, 0.0), (2, 0.0)]);
        let d = choose(
            &[1, 2],
            1,
            None,
            MetricValues::Values(values),
            &HashMap::new(),
        );
        assert_eq!(d.victims, vec![2]);
    }
}
