//! The DLX's metrics (prefix `dlx_`): held requests per target, wake-ups and their latency, request
//! outcomes by status code, and the two delays the cold path is judged by.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::target::{Gauges, Key};

/// A target's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
}

impl From<&Key> for TargetLabels {
    fn from(k: &Key) -> Self {
        Self {
            namespace: k.namespace.clone(),
            service: k.service.clone(),
        }
    }
}

/// A wake-up write's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WakeLabels {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// `requested` (this replica wrote it), `already_requested` (the annotation was there),
    /// `conflict` (another replica wrote it first), `error` (retried).
    pub result: &'static str,
}

/// A finished request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The Service's namespace (empty when the target was not found).
    pub namespace: String,
    /// The Service's name (empty when the target was not found).
    pub service: String,
    /// The status code answered (the pod's, or the DLX's own 404/502/503/504).
    pub code: u16,
}

/// Builds histograms with fixed buckets.
#[derive(Clone)]
pub struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

const WAKE_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
const FAST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0,
];

/// Every metric of the DLX.
#[derive(Clone)]
pub struct Metrics {
    /// `dlx_held_requests{namespace,service}`.
    pub held: Family<TargetLabels, Gauge>,
    /// `dlx_inflight_requests{namespace,service}`.
    pub inflight: Family<TargetLabels, Gauge>,
    /// `dlx_wakeups_total{namespace,service,result}`.
    pub wakeups: Family<WakeLabels, Counter>,
    /// `dlx_wake_duration_seconds{namespace,service}`.
    pub wake_seconds: Family<TargetLabels, Histogram, Buckets>,
    /// `dlx_wake_write_seconds`.
    pub wake_write_seconds: Histogram,
    /// `dlx_release_delay_seconds`.
    pub release_delay_seconds: Histogram,
    /// `dlx_hold_duration_seconds{namespace,service}`.
    pub hold_seconds: Family<TargetLabels, Histogram, Buckets>,
    /// `dlx_requests_total{namespace,service,code}`.
    pub requests: Family<OutcomeLabels, Counter>,
    /// `dlx_backend_errors_total`.
    pub backend_errors: Counter,
    /// `dlx_fast_path_requests_total`.
    pub fast_path: Counter,
}

impl Metrics {
    /// Registers every metric in `registry` (prefixed `dlx_` by the registry).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            held: Family::default(),
            inflight: Family::default(),
            wakeups: Family::default(),
            wake_seconds: Family::new_with_constructor(Buckets(WAKE_BUCKETS)),
            wake_write_seconds: Histogram::new(FAST_BUCKETS.iter().copied()),
            release_delay_seconds: Histogram::new(FAST_BUCKETS.iter().copied()),
            hold_seconds: Family::new_with_constructor(Buckets(WAKE_BUCKETS)),
            requests: Family::default(),
            backend_errors: Counter::default(),
            fast_path: Counter::default(),
        };
        registry.register(
            "held_requests",
            "Requests held now, waiting for a pod of their target",
            m.held.clone(),
        );
        registry.register(
            "inflight_requests",
            "Requests of this DLX in flight to a target's pods now",
            m.inflight.clone(),
        );
        registry.register(
            "wakeups",
            "Wake-up writes on the ElasticScaler, by result",
            m.wakeups.clone(),
        );
        registry.register(
            "wake_duration_seconds",
            "Seconds from this DLX's wake-up request to the first ready pod of the target",
            m.wake_seconds.clone(),
        );
        registry.register(
            "wake_write_seconds",
            "Seconds from the request that found no ready pod to the end of the wake-up write",
            m.wake_write_seconds.clone(),
        );
        registry.register(
            "release_delay_seconds",
            "Seconds from a pod becoming usable (its EndpointSlice event, or its probe) to a held request being sent to it",
            m.release_delay_seconds.clone(),
        );
        registry.register(
            "hold_duration_seconds",
            "Seconds requests were held before a pod took them",
            m.hold_seconds.clone(),
        );
        registry.register(
            "requests",
            "Requests answered, by target and status code",
            m.requests.clone(),
        );
        registry.register(
            "backend_errors",
            "Connections to pods that failed (the request went to another pod or got 502)",
            m.backend_errors.clone(),
        );
        registry.register(
            "fast_path_requests",
            "HTTP/1.1 requests whose response was relayed without hyper, straight from a pod with a free place (a subset of dlx_requests_total)",
            m.fast_path.clone(),
        );
        m
    }

    /// The handles a target updates.
    pub fn gauges(&self, key: &Key) -> Gauges {
        let l = TargetLabels::from(key);
        Gauges {
            held: self.held.get_or_create_owned(&l),
            inflight: self.inflight.get_or_create_owned(&l),
            wake_seconds: Some(self.wake_seconds.get_or_create_owned(&l)),
            outcomes: self.outcomes(key),
        }
    }

    /// Counts a finished request.
    /// `dlx_requests` of the target `key`, for [`Outcomes::inc`].
    pub fn outcomes(&self, key: &Key) -> Outcomes {
        Outcomes {
            family: Some((self.requests.clone(), TargetLabels::from(key))),
            seen: Arc::default(),
        }
    }

    pub fn outcome(&self, key: Option<&Key>, code: u16) {
        let (namespace, service) = key
            .map(|k| (k.namespace.clone(), k.service.clone()))
            .unwrap_or_default();
        self.requests
            .get_or_create(&OutcomeLabels {
                namespace,
                service,
                code,
            })
            .inc();
    }
}

/// `dlx_requests` of one target, each status code's counter looked up once: the relay of every
/// proxied response counts here, and the family's lookup (label strings cloned and hashed) is most
/// of what counting costs.
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    family: Option<(Family<OutcomeLabels, Counter>, TargetLabels)>,
    seen: Arc<Mutex<Vec<(u16, Counter)>>>,
}

impl Outcomes {
    /// Counts one answer with status `code`.
    pub fn inc(&self, code: u16) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = seen.iter().find(|(k, _)| *k == code) {
            c.inc();
            return;
        }
        let Some((family, l)) = &self.family else {
            return;
        };
        let c = family.get_or_create_owned(&OutcomeLabels {
            namespace: l.namespace.clone(),
            service: l.service.clone(),
            code,
        });
        c.inc();
        seen.push((code, c));
    }
}
