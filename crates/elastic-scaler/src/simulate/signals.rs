//! The metrics the simulated pods export, in vLLM's names, and how a manifest's metrics read them.
//!
//! | name | per pod |
//! | --- | --- |
//! | `vllm:num_requests_running` | requests holding a slot |
//! | `vllm:num_requests_waiting` | the pod's share of the queue (spread evenly over ready pods) |
//! | `vllm:gpu_cache_usage_perc` | running ÷ slots, from 0 to 1 (KV-cache use grows with running sequences) |
//! | `cpu` (Resource) | running ÷ slots cores of a 1-core request; Utilization in percent of it |
//!
//! Per-pod sources (`Pods`, `Resource`, `Custom`) read one value per ready pod, starting pods count as
//! unready. Whole-target sources (`Prometheus`, `External`, `ExternalServer`) read the sum over ready pods;
//! `vllm:num_requests_waiting` then includes requests held while no pod is ready (the router's queue), so
//! a scaler at zero sees its demand. A Prometheus `query` may be a sum of these names
//! (`sum(vllm:num_requests_running + vllm:num_requests_waiting)`, label matchers ignored); anything else,
//! and any other name, is an error that lists what is known.

use super::SimError;
use super::cluster::{PodView, View};
use super::manifest::MetricSlot;
use crate::algorithms::hpa::PodMetrics;
use crate::plugin::{Observation, Reading, Target};

/// One exported signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `vllm:num_requests_running`.
    Running,
    /// `vllm:num_requests_waiting`.
    Waiting,
    /// `vllm:gpu_cache_usage_perc`.
    CacheUsage,
    /// `cpu`.
    Cpu,
}

/// The names the simulated pods export to `/metrics` (Pods, Prometheus, Custom, External,
/// ExternalServer sources).
pub const KNOWN: [(&str, Signal); 3] = [
    ("vllm:num_requests_running", Signal::Running),
    ("vllm:num_requests_waiting", Signal::Waiting),
    ("vllm:gpu_cache_usage_perc", Signal::CacheUsage),
];

/// The resource metrics of the simulated pods (Resource sources).
pub const RESOURCES: [(&str, Signal); 1] = [("cpu", Signal::Cpu)];

/// A manifest metric bound to the signals it sums.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    /// The manifest's metric.
    pub slot: MetricSlot,
    /// The signals summed.
    pub terms: Vec<Signal>,
}

fn names(known: &[(&str, Signal)]) -> String {
    known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// `inner` of `sum(inner)` when the parenthesis opened by `sum(` closes at the end.
fn strip_sum(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("sum")?.trim_start().strip_prefix('(')?;
    let mut depth = 1;
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return (i == inner.len() - 1).then(|| inner[..i].trim());
        }
    }
    None
}

/// The names a Prometheus query sums: `a`, `sum(a)`, `a + b`, `sum(a{x="y"}) + sum(b)`.
fn query_terms(query: &str) -> Option<Vec<&str>> {
    let mut q = query.trim();
    while let Some(inner) = strip_sum(q) {
        q = inner;
    }
    q.split('+')
        .map(|term| {
            let mut t = term.trim();
            while let Some(inner) = strip_sum(t) {
                t = inner;
            }
            let t = match t.find('{') {
                Some(i) if t.ends_with('}') => &t[..i],
                _ => t,
            };
            (!t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .then_some(t)
        })
        .collect()
}

/// Binds every metric of a scaler to the simulated signals.
pub fn bind(metrics: &[MetricSlot]) -> Result<Vec<Bound>, SimError> {
    metrics
        .iter()
        .map(|slot| {
            let known: &[(&str, Signal)] = if slot.field.contains(".resource.") {
                &RESOURCES
            } else {
                &KNOWN
            };
            let wanted = if slot.field.ends_with(".query") {
                query_terms(&slot.source).ok_or_else(|| SimError::Metric {
                    field: slot.field.clone(),
                    message: format!(
                        "{:?} is not a query the simulator evaluates: write a sum of metric names, e.g. sum(vllm:num_requests_running + vllm:num_requests_waiting), or use metricsName (known: {})",
                        slot.source,
                        names(known)
                    ),
                })?
            } else {
                vec![slot.source.as_str()]
            };
            let terms = wanted
                .iter()
                .map(|w| {
                    known
                        .iter()
                        .find(|(n, _)| n == w)
                        .map(|(_, s)| *s)
                        .ok_or_else(|| SimError::UnknownMetric {
                            field: slot.field.clone(),
                            name: w.to_string(),
                            known: names(known),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Bound {
                slot: slot.clone(),
                terms,
            })
        })
        .collect()
}

fn value(signal: Signal, pod: &PodView, slots: u32, target: Target) -> f64 {
    let busy = pod.running as f64 / slots.max(1) as f64;
    match signal {
        Signal::Running => pod.running as f64,
        Signal::Waiting => pod.waiting as f64,
        Signal::CacheUsage => busy,
        Signal::Cpu if matches!(target, Target::Utilization(_)) => 100.0 * busy,
        Signal::Cpu => busy,
    }
}

/// What each bound metric reads from `view`.
pub fn observe(bound: &[Bound], view: &View) -> Vec<Observation> {
    bound
        .iter()
        .map(|b| {
            let per_pod = |p: &PodView| {
                b.terms
                    .iter()
                    .map(|s| value(*s, p, view.slots, b.slot.target))
                    .sum::<f64>()
            };
            let reading = if b.slot.per_pod {
                Reading::PerPod(PodMetrics {
                    ready: view.pods.iter().map(per_pod).collect(),
                    missing: 0,
                    unready: view.starting as usize,
                })
            } else {
                let mut total: f64 = view.pods.iter().map(per_pod).sum();
                if b.terms.contains(&Signal::Waiting) {
                    // The whole queue, also what waits while no pod is ready.
                    let spread: u32 = view.pods.iter().map(|p| p.waiting).sum();
                    total += (view.queued - spread) as f64;
                }
                Reading::Total(total)
            };
            Observation {
                name: b.slot.name.clone(),
                target: b.slot.target,
                reading,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(field: &str, source: &str, per_pod: bool) -> MetricSlot {
        MetricSlot {
            name: format!("X/{source}"),
            field: field.into(),
            source: source.into(),
            per_pod,
            target: Target::AverageValue(4.0),
        }
    }

    fn view() -> View {
        View {
            pods: vec![
                PodView {
                    running: 4,
                    waiting: 2,
                },
                PodView {
                    running: 2,
                    waiting: 1,
                },
            ],
            starting: 1,
            queued: 3,
            slots: 4,
        }
    }

    #[test]
    fn per_pod_and_whole_target_readings() {
        let b = bind(&[
            slot("m[0].pods.metricsName", "vllm:num_requests_waiting", true),
            slot(
                "m[1].prometheus.metricsName",
                "vllm:gpu_cache_usage_perc",
                false,
            ),
            slot(
                "m[2].prometheus.query",
                "sum(vllm:num_requests_running{namespace=\"a\"} + vllm:num_requests_waiting)",
                false,
            ),
        ])
        .unwrap();
        let o = observe(&b, &view());
        assert_eq!(
            o[0].reading,
            Reading::PerPod(PodMetrics {
                ready: vec![2.0, 1.0],
                missing: 0,
                unready: 1
            })
        );
        assert_eq!(o[1].reading, Reading::Total(1.5));
        assert_eq!(o[2].reading, Reading::Total(9.0));
    }

    #[test]
    fn queries_that_sum_known_names() {
        assert_eq!(
            query_terms("sum(a) + sum ( b{x=\"y\"} )"),
            Some(vec!["a", "b"])
        );
        assert_eq!(query_terms("sum(sum(a + b))"), Some(vec!["a", "b"]));
        assert_eq!(query_terms("a"), Some(vec!["a"]));
        assert_eq!(query_terms("sum(a) / sum(b)"), None);
        assert_eq!(query_terms("sum(rate(a[1m]))"), None);
        assert_eq!(query_terms("max(a)"), None);
    }

    #[test]
    fn the_queue_counts_in_totals_while_no_pod_is_ready() {
        let b = bind(&[slot(
            "m.external.metricsName",
            "vllm:num_requests_waiting",
            false,
        )])
        .unwrap();
        let v = View {
            pods: vec![],
            starting: 1,
            queued: 5,
            slots: 4,
        };
        assert_eq!(observe(&b, &v)[0].reading, Reading::Total(5.0));
    }

    #[test]
    fn unknown_names_and_queries_are_errors_listing_the_known_ones() {
        let e = bind(&[slot(
            "m[0].pods.metricsName",
            "vllm:num_requests_queued",
            true,
        )])
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("m[0].pods.metricsName: "), "{e}");
        assert!(e.contains("\"vllm:num_requests_queued\""), "{e}");
        assert!(e.contains("vllm:num_requests_waiting"), "{e}");
        let e = bind(&[slot("m[0].prometheus.query", "rate(x[1m])", false)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sum of metric names"), "{e}");
        let e = bind(&[slot("m[0].resource.metricsName", "memory", true)])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("known are cpu"), "{e}");
    }
}
