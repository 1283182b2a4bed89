//! The controller's metrics (prefix `tidal_scheduler_`), served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of [`Metrics::firings`]: how the rule acted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    /// `scale` (target's /scale written) or `elasticscaler` (status.desiredReplicas published).
    pub path: &'static str,
}

/// Counters and histograms of the controller.
#[derive(Clone)]
pub struct Metrics {
    /// Rules applied, by path.
    pub firings: Family<PathLabel, Counter>,
    /// Seconds from a rule's firing time to its replicas being written, for firings applied within a
    /// minute of their time (the scheduling lag).
    pub fire_lag: Histogram,
    /// Firings applied more than a minute late: catch-up after a restart, an outage or a new Tidal.
    pub catch_ups: Counter,
    /// Failed scale writes (retried).
    pub scale_errors: Counter,
    /// Failed reconciles (status writes; retried).
    pub reconcile_errors: Counter,
    /// Wall-clock steps detected (every Tidal is re-planned).
    pub clock_jumps: Counter,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            firings: Family::default(),
            fire_lag: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            catch_ups: Counter::default(),
            scale_errors: Counter::default(),
            reconcile_errors: Counter::default(),
            clock_jumps: Counter::default(),
        };
        registry.register("firings", "Rules applied, by path", m.firings.clone());
        registry.register(
            "fire_lag_seconds",
            "Seconds from a rule's firing time to its replicas being written (firings within a minute)",
            m.fire_lag.clone(),
        );
        registry.register(
            "catch_ups",
            "Firings applied more than a minute late (restart, outage, new Tidal)",
            m.catch_ups.clone(),
        );
        registry.register(
            "scale_errors",
            "Failed scale writes",
            m.scale_errors.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "clock_jumps",
            "Wall-clock steps detected",
            m.clock_jumps.clone(),
        );
        m
    }

    /// Records an applied firing `lag` seconds after its time.
    pub fn record_firing(&self, path: &'static str, lag: f64) {
        self.firings.get_or_create(&PathLabel { path }).inc();
        if lag <= 60.0 {
            self.fire_lag.observe(lag);
        } else {
            self.catch_ups.inc();
        }
    }
}
