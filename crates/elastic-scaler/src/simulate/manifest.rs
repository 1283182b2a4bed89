//! The ElasticScaler manifest the simulator drives: parsed, validated with the webhook's rules, and turned
//! into what [`Decider::new`] needs (algorithm factory, `algorithmConfig`, `behavior` from the annotations,
//! bounds) plus one [`MetricSlot`] per `metrics[]` entry.
//!
//! A file may hold several YAML documents (a Deployment and its scaler, say); the first
//! `kind: ElasticScaler` is used.

use std::collections::BTreeMap;

use api_types::ElasticScaler;
use api_types::elastic_scaler::{MetricSourceType, MetricSpec, TriggerType};
use api_types::validation::{summarize, validate_elastic_scaler};
use serde::Deserialize;

use super::SimError;
use crate::algorithms::behavior::Behavior;
use crate::engine::{Decider, behavior};
use crate::plugin::{AlgorithmConfig, Restore, SharedFactory, Target};
use crate::registry::{Registry, algorithm_key};
use crate::sources;

/// One `metrics[]` entry as the simulator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSlot {
    /// `<type>/<name>` as in status, e.g. `Pods/vllm:num_requests_waiting`.
    pub name: String,
    /// The field holding the metric's name, for errors, e.g. `spec.trigger.metricsTrigger.metrics[0].pods.metricsName`.
    pub field: String,
    /// The metric name or query as written.
    pub source: String,
    /// Whether the source reads every pod (`Pods`, `Resource`, `Custom`) or one value for the target.
    pub per_pod: bool,
    /// The target.
    pub target: Target,
}

/// An ElasticScaler ready to decide.
pub struct Scaler {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// The algorithm's registry key (`hpa`, `kpa`, `apa`, ...).
    pub algorithm: String,
    /// `spec.minReplicas`.
    pub min: i32,
    /// `spec.maxReplicas`.
    pub max: i32,
    /// The metrics, in spec order.
    pub metrics: Vec<MetricSlot>,
    factory: SharedFactory,
    config: AlgorithmConfig,
    behavior: Behavior,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Scaler {
    /// Parses `text` (from `file`, named in errors) with the built-in algorithms.
    pub fn parse(file: &str, text: &str) -> Result<Scaler, SimError> {
        let http = super::http_client().map_err(|message| SimError::Manifest {
            file: file.to_string(),
            message,
        })?;
        let algorithms = crate::builtin::algorithms(http).map_err(|e| SimError::Manifest {
            file: file.to_string(),
            message: format!("algorithm registry: {e}"),
        })?;
        Scaler::parse_with(file, text, &algorithms)
    }

    /// Parses `text` (from `file`, named in errors) and checks it as the webhook and the controller would;
    /// the algorithm comes from `algorithms` (the built-ins and any plugins).
    pub fn parse_with(
        file: &str,
        text: &str,
        algorithms: &Registry<SharedFactory>,
    ) -> Result<Scaler, SimError> {
        let bad = |message: String| SimError::Manifest {
            file: file.to_string(),
            message,
        };
        let mut found = None;
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value =
                serde_json::Value::deserialize(doc).map_err(|e| bad(format!("not YAML: {e}")))?;
            if value.get("kind").and_then(|k| k.as_str()) == Some("ElasticScaler") {
                found = Some(value);
                break;
            }
        }
        let value = found.ok_or_else(|| {
            bad(
                "no document with kind: ElasticScaler (apiVersion: elasticscaler.io/v1alpha1)"
                    .into(),
            )
        })?;
        let es: ElasticScaler = serde_json::from_value(value)
            .map_err(|e| bad(format!("not a valid ElasticScaler: {e}")))?;
        let errs = validate_elastic_scaler(&es.spec);
        if !errs.is_empty() {
            return Err(bad(summarize(&errs)));
        }
        let trigger = &es.spec.trigger;
        let mt = match (trigger.type_, &trigger.metrics_trigger) {
            (TriggerType::MetricsTrigger, Some(mt)) => mt,
            (other, _) => {
                return Err(bad(format!(
                    "spec.trigger.type: {other:?} cannot be simulated: only MetricsTrigger scalers decide from metrics"
                )));
            }
        };
        let algorithm = algorithm_key(mt.scaling_algorithm.as_deref());
        let factory = algorithms
            .get(&algorithm)
            .map_err(|e| bad(format!("spec.trigger.metricsTrigger.scalingAlgorithm: {e}")))?
            .clone();
        let config = mt.algorithm_config.clone().unwrap_or_default();
        // Fail now on a bad algorithmConfig, with its key, rather than at the first decision.
        factory
            .create(&config, &Restore::default())
            .map_err(|e| bad(format!("spec.trigger.metricsTrigger.{e}")))?;
        let annotations: BTreeMap<String, String> =
            es.metadata.annotations.clone().unwrap_or_default();
        let behavior = behavior::from_annotations(&algorithm, &annotations)
            .map_err(|errs| bad(summarize(&errs)))?;
        let metrics = mt
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| slot(i, m).map_err(&bad))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scaler {
            name: es.metadata.name.clone().unwrap_or_default(),
            namespace: es
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            algorithm,
            min: es.spec.min_replicas,
            max: es.spec.max_replicas,
            metrics,
            factory,
            config,
            behavior,
        })
    }

    /// The decision pipeline (the controller's [`Decider`]) taking over at `now` with `current` replicas.
    ///
    /// The scaler is taken to have been running before: it starts the way the controller resumes after a
    /// restart, with `current` recommended until now (so the stabilization windows hold it) and the KPA in
    /// panic at `current` until a full stable window of data. Without that, the first decision — on a
    /// moment's metrics and empty windows — would drop a scaler that is sized for the load.
    pub fn decider(&self, now: f64, current: i32) -> Result<Decider, SimError> {
        let restore = Restore {
            resumed: true,
            panicking: false,
            current,
            now,
        };
        Decider::new(
            self.factory.as_ref(),
            &self.config,
            self.behavior.clone(),
            &restore,
            &[(now.floor() as i64, current)],
            &[],
        )
        .map_err(|e| SimError::Manifest {
            file: self.name.clone(),
            message: format!("spec.trigger.metricsTrigger.{e}"),
        })
    }

    /// The `behavior` in effect (per-algorithm defaults overridden by annotations).
    pub fn behavior(&self) -> &Behavior {
        &self.behavior
    }
}

fn slot(i: usize, m: &MetricSpec) -> Result<MetricSlot, String> {
    let base = format!("spec.trigger.metricsTrigger.metrics[{i}]");
    // The controller's own naming and target parsing, so status names and sample keys agree.
    let (name, target) = sources::describe(m);
    let target = target.map_err(|e| format!("{base}: {e}"))?;
    let (field, source, per_pod) = match m.type_ {
        MetricSourceType::Pods => {
            let s = m.pods.as_ref().map(|s| s.metrics_name.clone());
            ("pods.metricsName", s, true)
        }
        MetricSourceType::Resource => {
            let s = m.resource.as_ref().map(|s| s.metrics_name.clone());
            ("resource.metricsName", s, true)
        }
        // custom.metrics.k8s.io is read per pod of the target, external.metrics.k8s.io as one value.
        MetricSourceType::Custom => {
            let s = m
                .custom
                .as_ref()
                .map(|s| s.metrics_name.clone().unwrap_or_default());
            ("custom.metricsName", s, true)
        }
        MetricSourceType::External => {
            let s = m
                .external
                .as_ref()
                .map(|s| s.metrics_name.clone().unwrap_or_default());
            ("external.metricsName", s, false)
        }
        MetricSourceType::Prometheus => match &m.prometheus {
            Some(p) if p.metrics_name.is_some() => {
                ("prometheus.metricsName", p.metrics_name.clone(), false)
            }
            Some(p) => ("prometheus.query", p.query.clone(), false),
            None => ("prometheus", None, false),
        },
        MetricSourceType::ExternalServer => {
            let s = m.external_server.as_ref().map(|s| s.metrics_name.clone());
            ("externalServer.metricsName", s, false)
        }
    };
    let source = source.ok_or_else(|| format!("{base}.{field}: not set"))?;
    Ok(MetricSlot {
        name,
        field: format!("{base}.{field}"),
        source,
        per_pod,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const KPA: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm}
---
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata:
  name: llm
  annotations:
    elasticscaler.io/behavior.scaleDown.stabilizationWindowSeconds: "120"
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 1
  maxReplicas: 20
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: KPA
      algorithmConfig: {stableWindow: 90s}
      metrics:
      - type: Pods
        pods: {metricsName: "vllm:num_requests_waiting", target: {type: AverageValue, averageValue: 500m}}
      - type: Prometheus
        prometheus:
          query: sum(vllm:num_requests_running)
          target: {type: Value, value: "6"}
"#;

    #[test]
    fn reads_the_scaler_out_of_a_multi_document_file() {
        let s = Scaler::parse("m.yaml", KPA).unwrap();
        assert_eq!((s.algorithm.as_str(), s.min, s.max), ("kpa", 1, 20));
        assert_eq!(s.behavior().scale_down.stabilization_window_seconds, 120);
        assert_eq!(
            s.metrics[0],
            MetricSlot {
                name: "Pods/vllm:num_requests_waiting".into(),
                field: "spec.trigger.metricsTrigger.metrics[0].pods.metricsName".into(),
                source: "vllm:num_requests_waiting".into(),
                per_pod: true,
                target: Target::AverageValue(0.5),
            }
        );
        assert_eq!(
            s.metrics[1].name,
            "Prometheus/sum(vllm:num_requests_running)"
        );
        assert_eq!(s.metrics[1].target, Target::Value(6.0));
        assert!(!s.metrics[1].per_pod);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = Scaler::parse("m.yaml", &KPA.replace("stableWindow", "stableWindw")).unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("m.yaml: "), "{e}");
        assert!(e.contains("algorithmConfig.stableWindw"), "{e}");
        assert!(e.contains("did you mean stableWindow?"), "{e}");

        let e = Scaler::parse("m.yaml", &KPA.replace("maxReplicas: 20", "maxReplicas: 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.maxReplicas"), "{e}");

        let e = Scaler::parse("m.yaml", &KPA.replace("KPA", "KAP"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("scalingAlgorithm") && e.contains(r#"unknown scaling algorithm "kap""#),
            "{e}"
        );

        let e = Scaler::parse(
            "m.yaml",
            &KPA.replace(
                "stabilizationWindowSeconds: \"120\"",
                "stabilizationWindowSeconds: soon",
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scaleDown.stabilizationWindowSeconds"), "{e}");

        let e = Scaler::parse("m.yaml", "kind: Deployment\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no document with kind: ElasticScaler"), "{e}");
    }
}
