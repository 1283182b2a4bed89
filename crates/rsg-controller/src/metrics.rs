//! The controller's Prometheus metrics (prefix `rsg_controller_`).
//!
//! `api_writes_total{verb,kind}` counts every write the controller sends to the API server; the RSG
//! benchmark compares it with the minimum a change needs, and an idle cluster must keep it flat.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric the controller exports.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles by result (`ok`, `blocked`, `error`).
    pub reconciles: Family<Labels, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_seconds: Histogram,
    /// API writes by verb (`create`, `patch`, `delete`) and kind.
    pub api_writes: Family<Labels, Counter>,
    /// Scale-down decisions by path (`Prometheus`, `Annotation`, `MaxGroupId`).
    pub scale_down_decisions: Family<Labels, Counter>,
    /// Groups created and removed (`op`).
    pub groups: Family<Labels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            reconciles: Family::default(),
            reconcile_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            api_writes: Family::default(),
            scale_down_decisions: Family::default(),
            groups: Family::default(),
        };
        registry.register("reconciles", "Reconciles by result", m.reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "api_writes",
            "Writes sent to the API server by verb and kind",
            m.api_writes.clone(),
        );
        registry.register(
            "scale_down_decisions",
            "GroupReplication scale-down victim choices by the path that decided",
            m.scale_down_decisions.clone(),
        );
        registry.register("groups", "Groups created or removed", m.groups.clone());
        m
    }

    /// Counts one write.
    pub fn write(&self, verb: &'static str, kind: &str) {
        self.api_writes
            .get_or_create(&vec![
                ("verb", verb.to_string()),
                ("kind", kind.to_string()),
            ])
            .inc();
    }
}
