//! The `external` algorithm: the decision is made by an HTTP service, so a policy can be written in any
//! language without rebuilding the elastic-scaler.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `url` | (required) | where the decision context is POSTed as JSON |
//! | `timeout` | `5s` | the whole request's deadline |
//!
//! Request body: `{"namespace", "name", "now", "current", "ready", "min", "max", "metrics": [{"name",
//! "target": {"type", "value"}, "value", "readyPods", "excludedPods", "error"}]}` (`value` is the total, or
//! null when missing). Answer: `{"replicas": <int>, "reason": "<text>"}`. A timeout, a non-2xx status or
//! a malformed answer holds the replicas and is reported in `ScalingCalculated=False`.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::config::Keys;
use crate::plugin::{
    AlgorithmConfig, AlgorithmError, AlgorithmFactory, ConfigError, Context, Reading,
    Recommendation, Restore, ScalingAlgorithm, Target,
};

const KEYS: &[(&str, &str)] = &[("url", ""), ("timeout", "5s")];

/// Factory of [`External`].
pub struct ExternalFactory {
    http: reqwest::Client,
}

impl ExternalFactory {
    /// A factory sharing one HTTP client.
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

impl AlgorithmFactory for ExternalFactory {
    fn create(
        &self,
        config: &AlgorithmConfig,
        _: &Restore,
    ) -> Result<Box<dyn ScalingAlgorithm>, ConfigError> {
        let keys = Keys::new(config, KEYS)?;
        let url = keys.string("url");
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError {
                key: "url".into(),
                message: format!(
                    "{url:?} is not an http(s) URL: set algorithmConfig.url to the decision service, e.g. http://policy.ns.svc:8080/decide"
                ),
            });
        }
        Ok(Box::new(External {
            http: self.http.clone(),
            url,
            timeout: Duration::from_secs_f64(keys.seconds("timeout", 0.1)?),
        }))
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        KEYS
    }
}

/// Asks an HTTP service.
pub struct External {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

/// The JSON the service receives.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The ElasticScaler's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Unix seconds.
    pub now: f64,
    /// Current replicas.
    pub current: i32,
    /// Ready replicas.
    pub ready: i32,
    /// minReplicas.
    pub min: i32,
    /// maxReplicas.
    pub max: i32,
    /// The metrics.
    pub metrics: Vec<MetricJson>,
}

/// One metric in the request.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricJson {
    /// `<type>/<name>`.
    pub name: String,
    /// The target.
    pub target: TargetJson,
    /// The total (per-pod values summed), or null.
    pub value: Option<f64>,
    /// Pods that reported (per-pod sources).
    pub ready_pods: Option<usize>,
    /// Pods excluded (per-pod sources).
    pub excluded_pods: Option<usize>,
    /// Why the value is missing.
    pub error: Option<String>,
}

/// A target in the request.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct TargetJson {
    /// Value, AverageValue or Utilization.
    #[serde(rename = "type")]
    pub type_: String,
    /// The number.
    pub value: f64,
}

/// The JSON the service answers.
#[derive(Deserialize, Debug)]
struct Answer {
    replicas: i32,
    #[serde(default)]
    reason: Option<String>,
}

/// The request body for `ctx`.
pub fn request(ctx: &Context<'_>) -> Request {
    Request {
        namespace: ctx.namespace.into(),
        name: ctx.name.into(),
        now: ctx.now,
        current: ctx.current,
        ready: ctx.ready,
        min: ctx.min,
        max: ctx.max,
        metrics: ctx
            .metrics
            .iter()
            .map(|m| {
                let (type_, target) = match m.target {
                    Target::Value(v) => ("Value", v),
                    Target::AverageValue(v) => ("AverageValue", v),
                    Target::Utilization(v) => ("Utilization", v),
                };
                let (value, ready_pods, excluded_pods, error) = match &m.reading {
                    Reading::PerPod(p) => (
                        (!p.ready.is_empty()).then(|| p.ready.iter().sum()),
                        Some(p.ready.len()),
                        Some(p.missing + p.unready),
                        None,
                    ),
                    Reading::Total(v) => (Some(*v), None, None, None),
                    Reading::Missing(e) => (None, None, None, Some(e.clone())),
                };
                MetricJson {
                    name: m.name.clone(),
                    target: TargetJson {
                        type_: type_.into(),
                        value: target,
                    },
                    value,
                    ready_pods,
                    excluded_pods,
                    error,
                }
            })
            .collect(),
    }
}

impl ScalingAlgorithm for External {
    fn recommend<'a>(
        &'a mut self,
        ctx: &'a Context<'a>,
    ) -> BoxFuture<'a, Result<Recommendation, AlgorithmError>> {
        Box::pin(async move {
            let fail =
                |what: String| AlgorithmError(format!("external algorithm {}: {what}", self.url));
            let resp = self
                .http
                .post(&self.url)
                .timeout(self.timeout)
                .json(&request(ctx))
                .send()
                .await
                .map_err(|e| fail(format!("request failed: {e}")))?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                return Err(fail(format!(
                    "answered {status}: {}",
                    body.chars().take(200).collect::<String>()
                )));
            }
            let answer: Answer = resp.json().await.map_err(|e| {
                fail(format!(
                    "answer is not {{\"replicas\": <int>, \"reason\": <string>}}: {e}"
                ))
            })?;
            if answer.replicas < 0 {
                return Err(fail(format!("answered {} replicas", answer.replicas)));
            }
            Ok(Recommendation {
                replicas: answer.replicas,
                reason: format!(
                    "external: {}",
                    answer.reason.unwrap_or_else(|| "no reason given".into())
                ),
                needed: None,
                panicking: false,
            })
        })
    }
}
