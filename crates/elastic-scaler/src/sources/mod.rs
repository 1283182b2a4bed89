//! Metric sources: every `metrics[]` entry of an ElasticScaler becomes one [`Observation`] per period.
//!
//! | type | reads | reading |
//! | --- | --- | --- |
//! | `Pods` (extension) | `/metrics` of every ready pod, in parallel under one deadline | per pod |
//! | `Prometheus` (extension) | an instant PromQL query | total |
//! | `Resource` | `metrics.k8s.io` pod usage (Utilization: ÷ the pods' requests) | per pod |
//! | `Custom` | `custom.metrics.k8s.io` pods metric of the target's pods | per pod |
//! | `External` | `external.metrics.k8s.io` | total |
//! | `ExternalServer` | HTTP GET of a server (JSON number, `{"value": n}` or Prometheus text) | total |
//!
//! A source never turns a failure into a number: an unready pod or a failed scrape is excluded and
//! counted, a failed query is [`Reading::Missing`] with the reason, and the engine withholds
//! scale-down on it.

pub mod metrics_api;
pub mod pods;
pub mod prometheus;
pub mod quantity;
pub mod server;
pub mod text;

use std::time::Duration;

use api_types::elastic_scaler::{MetricSourceType, MetricSpec, MetricTarget};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::plugin::{Observation, Reading, Target};

/// Shared clients and settings of the sources.
#[derive(Clone)]
pub struct Sources {
    /// Kubernetes API (pods, metrics APIs).
    pub client: kube::Client,
    /// HTTP (pods, Prometheus, external servers).
    pub http: reqwest::Client,
    /// Default Prometheus base URL.
    pub prometheus_url: Option<String>,
    /// The deadline of one metric read (all pod scrapes together, one query).
    pub timeout: Duration,
}

/// The target's pods, split by readiness.
#[derive(Clone, Debug, Default)]
pub struct TargetPods {
    /// Ready pods with an IP.
    pub ready: Vec<Pod>,
    /// Pods that exist but are not ready (or have no IP yet).
    pub unready: usize,
    /// The label selector they were listed with (the target's), as text.
    pub selector: String,
}

/// Whether `pod` is Running, Ready, not terminating, and has an IP.
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.pod_ip.is_some()
                && s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

impl Sources {
    /// The pods selected by `selector` in `namespace` (from the API server's watch cache).
    pub async fn pods(&self, namespace: &str, selector: &str) -> Result<TargetPods, kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&ListParams::default().labels(selector).match_any())
            .await?;
        let (ready, unready): (Vec<Pod>, Vec<Pod>) = list.items.into_iter().partition(is_ready);
        Ok(TargetPods {
            ready,
            unready: unready.len(),
            selector: selector.to_owned(),
        })
    }

    /// Reads one metric. `pods` is `None` when the target's pods could not be listed. The second
    /// value explains pods excluded from a per-pod reading.
    pub async fn read(
        &self,
        namespace: &str,
        spec: &MetricSpec,
        pods: Option<&TargetPods>,
    ) -> (Observation, Option<String>) {
        let (name, target) = describe(spec);
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                let o = Observation {
                    name,
                    target: Target::Value(0.0),
                    reading: Reading::Missing(e),
                };
                return (o, None);
            }
        };
        let need_pods = || pods.ok_or_else(|| "the target's pods could not be listed".to_string());
        let mut detail = None;
        let reading = match spec.type_ {
            MetricSourceType::Pods => match (need_pods(), &spec.pods) {
                (Ok(p), Some(s)) => {
                    let (r, d) = pods::scrape(self, p, s).await;
                    detail = d;
                    r
                }
                (Err(e), _) => Reading::Missing(e),
                (_, None) => Reading::Missing("pods block missing".into()),
            },
            MetricSourceType::Prometheus => match &spec.prometheus {
                Some(s) => prometheus::read(self, namespace, s, pods).await,
                None => Reading::Missing("prometheus block missing".into()),
            },
            MetricSourceType::Resource => match (need_pods(), &spec.resource) {
                (Ok(p), Some(s)) => metrics_api::resource(self, namespace, p, s).await,
                (Err(e), _) => Reading::Missing(e),
                (_, None) => Reading::Missing("resource block missing".into()),
            },
            MetricSourceType::Custom => match (need_pods(), &spec.custom) {
                (Ok(p), Some(s)) => metrics_api::custom(self, namespace, p, s).await,
                (Err(e), _) => Reading::Missing(e),
                (_, None) => Reading::Missing("custom block missing".into()),
            },
            MetricSourceType::External => match &spec.external {
                Some(s) => metrics_api::external(self, namespace, s).await,
                None => Reading::Missing("external block missing".into()),
            },
            MetricSourceType::ExternalServer => match &spec.external_server {
                Some(s) => server::read(self, s).await,
                None => Reading::Missing("externalServer block missing".into()),
            },
        };
        let o = Observation {
            name,
            target,
            reading,
        };
        (o, detail)
    }
}

fn metric_target(t: &MetricTarget) -> Result<Target, String> {
    let q = |v: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>, field: &str| {
        let raw = v
            .map(|q| q.0.as_str())
            .ok_or(format!("target.{field} is not set"))?;
        quantity::parse(raw).ok_or(format!("target.{field} {raw:?} is not a quantity"))
    };
    match t.type_.as_str() {
        "Value" => q(t.value.as_ref(), "value").map(Target::Value),
        "AverageValue" => q(t.average_value.as_ref(), "averageValue").map(Target::AverageValue),
        "Utilization" => t
            .average_utilization
            .map(|u| Target::Utilization(u as f64))
            .ok_or_else(|| "target.averageUtilization is not set".to_string()),
        other => Err(format!(
            "target.type {other} is not Value, AverageValue or Utilization"
        )),
    }
}

/// The status name (`<type>/<name>`) and target of a metric.
pub fn describe(spec: &MetricSpec) -> (String, Result<Target, String>) {
    let missing = || Err("the block for this type is not set".to_string());
    let (name, target) = match spec.type_ {
        MetricSourceType::Pods => match &spec.pods {
            Some(s) => (s.metrics_name.clone(), metric_target(&s.target)),
            None => (String::new(), missing()),
        },
        MetricSourceType::Prometheus => match &spec.prometheus {
            Some(s) => (
                s.metrics_name
                    .clone()
                    .or_else(|| s.query.clone())
                    .unwrap_or_default(),
                metric_target(&s.target),
            ),
            None => (String::new(), missing()),
        },
        MetricSourceType::Resource => match &spec.resource {
            Some(s) => (s.metrics_name.clone(), metric_target(&s.target)),
            None => (String::new(), missing()),
        },
        MetricSourceType::Custom | MetricSourceType::External => {
            let block = if spec.type_ == MetricSourceType::Custom {
                &spec.custom
            } else {
                &spec.external
            };
            match block {
                Some(s) => (
                    s.metrics_name.clone().unwrap_or_default(),
                    metric_target(&s.target),
                ),
                None => (String::new(), missing()),
            }
        }
        MetricSourceType::ExternalServer => match &spec.external_server {
            Some(s) => (
                s.metrics_name.clone(),
                quantity::parse(&s.target.0)
                    .map(Target::AverageValue)
                    .ok_or_else(|| format!("target {:?} is not a quantity", s.target.0)),
            ),
            None => (String::new(), missing()),
        },
    };
    (format!("{:?}/{name}", spec.type_), target)
}
