//! The plugin interfaces (seed 000, done right): [`ScalingAlgorithm`] decides a replica count from the
//! metrics of one period, [`ResourceHandler`] reads and writes a kind's replicas.
//!
//! An algorithm is registered as an [`AlgorithmFactory`] under a case-insensitive name; the controller
//! creates one [`ScalingAlgorithm`] per ElasticScaler from its `algorithmConfig` (a bad key is reported
//! in `Validated=False`, nothing panics) and calls it every period. The instance keeps its own state
//! (windows, panic mode); [`Restore`] hands it what status recorded, so a restart resumes conservatively.
//!
//! Both traits return boxed futures (`Box::pin(async move { ... })`), so plugins may await I/O (the
//! `external` algorithm POSTs to a URL) and can be stored as trait objects in the registries.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::algorithms::hpa::PodMetrics;

/// `algorithmConfig`: string keys and values.
pub type AlgorithmConfig = BTreeMap<String, String>;

/// A metric's target, in the metric's own unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// The whole value should be this.
    Value(f64),
    /// The value per replica (per pod for per-pod sources) should be this.
    AverageValue(f64),
    /// Per-pod percentage of requests (Resource metrics).
    Utilization(f64),
}

impl Target {
    /// `type=value`, as shown in status.
    pub fn describe(&self) -> String {
        match self {
            Target::Value(v) => format!("Value={v}"),
            Target::AverageValue(v) => format!("AverageValue={v}"),
            Target::Utilization(v) => format!("Utilization={v}%"),
        }
    }
}

/// What one metric read this period.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// One value per ready pod (Pods, Resource); pods without a value are counted, never read as 0.
    PerPod(PodMetrics),
    /// One value for the whole target (Prometheus, External, Custom, ExternalServer).
    Total(f64),
    /// No value this period, and why. Scale-down is withheld; a scale-up may still come from others.
    Missing(String),
}

/// One metric as observed this period.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `<type>/<name>`, e.g. `Pods/vllm:num_requests_waiting`.
    pub name: String,
    /// The target.
    pub target: Target,
    /// The reading.
    pub reading: Reading,
}

impl Observation {
    /// The load in replicas: how many replicas would run this metric exactly at its target, or `None`
    /// when the reading is missing. Per-pod values are summed over the pods that reported (totals, not a
    /// per-pod mean); a `Value` target scales the ready count by value ÷ target.
    pub fn demand(&self, ready: i32) -> Option<f64> {
        let total = match &self.reading {
            Reading::PerPod(p) if p.ready.is_empty() => return None,
            Reading::PerPod(p) => p.ready.iter().sum::<f64>(),
            Reading::Total(v) => *v,
            Reading::Missing(_) => return None,
        };
        let per_pod_value = match &self.reading {
            Reading::PerPod(p) => total / p.ready.len() as f64,
            _ => total,
        };
        match self.target {
            Target::AverageValue(t) | Target::Utilization(t) if t > 0.0 => Some(total / t),
            Target::Value(t) if t > 0.0 => Some(ready.max(1) as f64 * per_pod_value / t),
            _ => None,
        }
    }
}

/// What an algorithm sees each period.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The ElasticScaler's namespace.
    pub namespace: &'a str,
    /// The ElasticScaler's name.
    pub name: &'a str,
    /// Now, in Unix seconds.
    pub now: f64,
    /// The target's replicas (spec).
    pub current: i32,
    /// Its ready replicas.
    pub ready: i32,
    /// `spec.minReplicas`.
    pub min: i32,
    /// `spec.maxReplicas`.
    pub max: i32,
    /// This period's metrics.
    pub metrics: &'a [Observation],
}

/// An algorithm's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// Replicas wanted, before min/max, stabilization and the guards.
    pub replicas: i32,
    /// Why, for status and Events.
    pub reason: String,
    /// Replicas the load needs in total, if the algorithm knows; enables the pending-replica guard.
    pub needed: Option<i32>,
    /// Whether the algorithm is in a panic mode (recorded in status for restarts).
    pub panicking: bool,
}

/// An algorithm could not decide; the scaler holds its replicas and reports this message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct AlgorithmError(pub String);

/// A bad `algorithmConfig`: the key and what to write instead.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("algorithmConfig.{key}: {message}")]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// What is wrong and the fix.
    pub message: String,
}

/// What status recorded, for an algorithm created after a restart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restore {
    /// True when the controller restarted with this scaler already running (status exists).
    pub resumed: bool,
    /// The KPA was panicking when status was last written.
    pub panicking: bool,
    /// The target's replicas now.
    pub current: i32,
    /// Now, in Unix seconds.
    pub now: f64,
}

/// One scaling algorithm instance, owned by one ElasticScaler.
pub trait ScalingAlgorithm: Send {
    /// Decides from this period's metrics.
    fn recommend<'a>(
        &'a mut self,
        ctx: &'a Context<'a>,
    ) -> BoxFuture<'a, Result<Recommendation, AlgorithmError>>;
}

/// Makes algorithm instances from `algorithmConfig`.
pub trait AlgorithmFactory: Send + Sync {
    /// A new instance; unknown keys and bad values are errors naming the key.
    fn create(
        &self,
        config: &AlgorithmConfig,
        restore: &Restore,
    ) -> Result<Box<dyn ScalingAlgorithm>, ConfigError>;

    /// The keys this algorithm reads, with their defaults, for errors and documentation.
    fn keys(&self) -> &'static [(&'static str, &'static str)];
}

/// A target's replicas as a handler sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// Desired replicas (`spec.replicas` or the scale subresource).
    pub replicas: i32,
    /// Ready replicas, in the same unit.
    pub ready: i32,
    /// Label selector of the target's pods (`status.selector` of `/scale`), if known.
    pub selector: Option<String>,
}

/// The object an ElasticScaler scales.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetRef {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Why a handler failed; each maps to a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(TargetRef),
    /// The kind cannot be scaled (not served, no `/scale`, no `spec.replicas`).
    #[error("{0}")]
    NotScalable(String),
    /// Any other failure (API error, forbidden, conflict).
    #[error("{0}")]
    Failed(String),
}

/// Reads and writes one kind's replicas.
pub trait ResourceHandler: Send + Sync {
    /// The target's replicas, ready replicas and pod selector.
    fn get<'a>(&'a self, target: &'a TargetRef) -> BoxFuture<'a, Result<Scale, HandlerError>>;
    /// Sets the target's replicas.
    fn set_replicas<'a>(
        &'a self,
        target: &'a TargetRef,
        replicas: i32,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// A shared handler.
pub type SharedHandler = Arc<dyn ResourceHandler>;
/// A shared algorithm factory.
pub type SharedFactory = Arc<dyn AlgorithmFactory>;

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(reading: Reading, target: Target) -> Observation {
        Observation {
            name: "m".into(),
            target,
            reading,
        }
    }

    #[test]
    fn demand_is_a_total_in_replicas() {
        let pods = PodMetrics {
            ready: vec![6.0, 4.0],
            missing: 1,
            unready: 0,
        };
        assert_eq!(
            obs(Reading::PerPod(pods.clone()), Target::AverageValue(2.0)).demand(3),
            Some(5.0),
            "10 waiting in total at 2 per pod is 5 replicas; the pod that failed adds nothing"
        );
        assert_eq!(
            obs(Reading::PerPod(pods), Target::Value(5.0)).demand(2),
            Some(2.0),
            "per-pod mean 5 on target 5 with 2 ready"
        );
        assert_eq!(
            obs(Reading::Total(30.0), Target::AverageValue(10.0)).demand(1),
            Some(3.0)
        );
        assert_eq!(
            obs(Reading::Total(30.0), Target::Value(10.0)).demand(2),
            Some(6.0)
        );
        assert_eq!(
            obs(Reading::Missing("down".into()), Target::Value(1.0)).demand(2),
            None
        );
    }
}
