//! The webhook's metrics: request latency by kind and operation, decisions by kind, operation and reason,
//! and the serving certificate's expiry and reloads. Registered under the `admission_webhook_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request: the kind's resource and `validate` or `mutate`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `elasticscalers`, `resourcescalinggroups`, `tidals`.
    pub kind: &'static str,
    /// `validate` or `mutate`.
    pub operation: &'static str,
}

/// Labels of a decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// As in [`OpLabels`].
    pub kind: &'static str,
    /// As in [`OpLabels`].
    pub operation: &'static str,
    /// `allowed`, `patched`, `invalid`, `undecodable`, `conflict`, `forbidden`, `error`, `bad_request`,
    /// `timeout`.
    pub reason: &'static str,
}

/// Handles to every metric (cheap to clone).
#[derive(Clone)]
pub struct Metrics {
    /// Time from receiving a review to its answer.
    pub duration: Family<OpLabels, Histogram>,
    /// Answers by reason.
    pub decisions: Family<DecisionLabels, Counter>,
    /// `notAfter` of the serving certificate in use, as a Unix timestamp.
    pub cert_expiry: Gauge,
    /// Serving certificates installed (start-up, rotation, file reload).
    pub cert_reloads: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them (and `build_info`) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
            }),
            decisions: Family::default(),
            cert_expiry: Gauge::default(),
            cert_reloads: Counter::default(),
        };
        let info: Gauge = Gauge::default();
        info.set(1);
        registry.register("build_info", "Always 1; the process is up", info);
        registry.register(
            "request_duration_seconds",
            "Time to answer an AdmissionReview, by kind and operation",
            m.duration.clone(),
        );
        registry.register(
            "decisions",
            "AdmissionReview answers by kind, operation and reason",
            m.decisions.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate in use",
            m.cert_expiry.clone(),
        );
        registry.register(
            "certificate_reloads",
            "Serving certificates installed (start-up, rotation, file reload)",
            m.cert_reloads.clone(),
        );
        m
    }
}
