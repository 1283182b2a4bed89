//! The controller's metrics (prefix `elastic_scaler_`), served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of [`Metrics::decisions`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The algorithm's registry name.
    pub algorithm: String,
    /// `up`, `down` or `none`.
    pub direction: &'static str,
}

/// Label of the error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What failed: a metric source type, `algorithm`, `target`, `scale`, `status`, `invalid`.
    pub kind: String,
}

/// Counters, gauges and histograms of the controller.
#[derive(Clone)]
pub struct Metrics {
    /// Decisions, by algorithm and direction.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Failures, by kind.
    pub errors: Family<KindLabel, Counter>,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Seconds per reconcile.
    pub reconcile_seconds: Histogram,
    /// Status writes.
    pub status_writes: Counter,
    /// Scale writes.
    pub scale_writes: Counter,
    /// ElasticScalers with a decision state in memory.
    pub scalers: Gauge,
    /// Unix time of the last completed reconcile (status is not rewritten when nothing changed).
    pub last_sync: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            decisions: Family::default(),
            errors: Family::default(),
            reconciles: Counter::default(),
            reconcile_seconds: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            status_writes: Counter::default(),
            scale_writes: Counter::default(),
            scalers: Gauge::default(),
            last_sync: Gauge::default(),
        };
        registry.register(
            "decisions",
            "Scaling decisions, by algorithm and direction",
            m.decisions.clone(),
        );
        registry.register(
            "errors",
            "Failures by kind (metric source type, algorithm, target, scale, status, invalid)",
            m.errors.clone(),
        );
        registry.register("reconciles", "Reconciles run", m.reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Seconds per reconcile",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes (none when nothing changed)",
            m.status_writes.clone(),
        );
        registry.register(
            "scale_writes",
            "Replica writes to targets",
            m.scale_writes.clone(),
        );
        registry.register(
            "scalers",
            "ElasticScalers with a decision state in memory",
            m.scalers.clone(),
        );
        registry.register(
            "last_sync_timestamp_seconds",
            "Unix time of the last completed reconcile",
            m.last_sync.clone(),
        );
        m
    }

    /// Counts a failure of `kind`.
    pub fn error(&self, kind: impl Into<String>) {
        self.errors
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }
}
