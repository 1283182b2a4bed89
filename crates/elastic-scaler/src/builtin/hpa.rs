//! The `hpa` algorithm: the Kubernetes formula per metric, the largest count over metrics.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `tolerance` | `0.1` | no change while the usage ratio is within 1 ± tolerance |
//!
//! Per-pod readings use the upstream rules for missing and unready pods
//! ([`replicas_for_pod_metric`](crate::algorithms::replicas_for_pod_metric)); whole-target readings
//! use the Object/External formulas. Stabilization and rate policies come after, from `behavior`.

use futures::future::BoxFuture;

use super::config::Keys;
use crate::algorithms::hpa::{
    combine, replicas_for_average_value, replicas_for_pod_metric, replicas_for_value,
};
use crate::plugin::{
    AlgorithmConfig, AlgorithmError, AlgorithmFactory, ConfigError, Context, Reading,
    Recommendation, Restore, ScalingAlgorithm, Target,
};

const KEYS: &[(&str, &str)] = &[("tolerance", "0.1")];

/// Factory of [`Hpa`].
pub struct HpaFactory;

impl AlgorithmFactory for HpaFactory {
    fn create(
        &self,
        config: &AlgorithmConfig,
        _: &Restore,
    ) -> Result<Box<dyn ScalingAlgorithm>, ConfigError> {
        let keys = Keys::new(config, KEYS)?;
        Ok(Box::new(Hpa {
            tolerance: keys.number("tolerance", 0.0)?,
        }))
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        KEYS
    }
}

/// The Kubernetes HPA formula.
pub struct Hpa {
    tolerance: f64,
}

impl Hpa {
    /// The decision, synchronously.
    pub fn decide(&self, ctx: &Context<'_>) -> Result<Recommendation, AlgorithmError> {
        let mut per_metric = Vec::new();
        let mut parts = Vec::new();
        for m in ctx.metrics {
            let r = match (&m.reading, m.target) {
                (Reading::PerPod(pods), Target::AverageValue(t) | Target::Utilization(t)) => {
                    replicas_for_pod_metric(ctx.current, pods, t, self.tolerance)
                }
                (Reading::PerPod(pods), Target::Value(t)) => {
                    let n = pods.ready.len().max(1) as f64;
                    let mean = pods.ready.iter().sum::<f64>() / n;
                    replicas_for_value(ctx.current, ctx.ready, mean, t, self.tolerance)
                }
                (Reading::Total(v), Target::Value(t)) => {
                    replicas_for_value(ctx.current, ctx.ready, *v, t, self.tolerance)
                }
                (Reading::Total(v), Target::AverageValue(t) | Target::Utilization(t)) => {
                    replicas_for_average_value(ctx.current, *v, t, self.tolerance)
                }
                (Reading::Missing(_), _) => None,
            };
            if let Some(n) = r {
                parts.push(format!("{} → {n}", m.name));
            }
            per_metric.push(r);
        }
        let replicas = combine(&per_metric)
            .ok_or_else(|| AlgorithmError("no metric has a value this period".into()))?;
        let needed = ctx
            .metrics
            .iter()
            .filter_map(|m| m.demand(ctx.ready))
            .map(|d| d.ceil() as i32)
            .max();
        Ok(Recommendation {
            replicas,
            reason: format!("HPA: {}", parts.join(", ")),
            needed,
            panicking: false,
        })
    }
}

impl ScalingAlgorithm for Hpa {
    fn recommend<'a>(
        &'a mut self,
        ctx: &'a Context<'a>,
    ) -> BoxFuture<'a, Result<Recommendation, AlgorithmError>> {
        Box::pin(async move { self.decide(ctx) })
    }
}
