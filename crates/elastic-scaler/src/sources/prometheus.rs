//! PromQL against Prometheus's HTTP API (`/api/v1/query`).
//!
//! From `metricsName`, the query is built and scoped to the target's ready pods (`namespace` and
//! `pod=~"<ready pods>"` matchers, plus `labels`): Gauge `sum(<m>{...})`, Counter
//! `sum(rate(<m>{...}[<window>]))`, Histogram `histogram_quantile(<q>, sum by (le)
//! (rate(<m>_bucket{...}[<window>])))`. A `query` is sent as written and must return one number.

use std::collections::BTreeMap;

use api_types::elastic_scaler::{PromMetricType, PrometheusMetricSource};
use serde::Deserialize;

use super::{Sources, TargetPods};
use crate::plugin::Reading;

/// Escapes a label value for a PromQL string literal.
fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Escapes regex metacharacters of a pod name (names are DNS labels, but be exact).
fn regex_escape(v: &str) -> String {
    v.chars()
        .flat_map(|c| {
            if ".+*?()|[]{}^$\\".contains(c) {
                vec!['\\', '\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The query for a `metricsName` source over `pods` (ready pod names) in `namespace`.
pub fn build_query(namespace: &str, pods: &[String], s: &PrometheusMetricSource) -> String {
    let mut matchers: BTreeMap<String, String> = BTreeMap::new();
    matchers.insert("namespace".into(), format!("={}", quote(namespace)));
    let alternatives: Vec<String> = pods.iter().map(|p| regex_escape(p)).collect();
    matchers.insert("pod".into(), format!("=~\"{}\"", alternatives.join("|")));
    for (k, v) in s.labels.iter().flatten() {
        matchers.insert(k.clone(), format!("={}", quote(v)));
    }
    let sel = matchers
        .iter()
        .map(|(k, v)| format!("{k}{v}"))
        .collect::<Vec<_>>()
        .join(",");
    let name = s.metrics_name.as_deref().unwrap_or_default();
    let window = s.window.as_deref().unwrap_or("1m");
    match s.metric_type.unwrap_or_default() {
        PromMetricType::Gauge => format!("sum({name}{{{sel}}})"),
        PromMetricType::Counter => format!("sum(rate({name}{{{sel}}}[{window}]))"),
        PromMetricType::Histogram => format!(
            "histogram_quantile({}, sum by (le) (rate({name}_bucket{{{sel}}}[{window}])))",
            s.quantile.as_deref().unwrap_or("0.95")
        ),
    }
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// The one number in a query answer.
fn one_value(body: &str) -> Result<f64, String> {
    let r: Response =
        serde_json::from_str(body).map_err(|e| format!("answer is not Prometheus JSON: {e}"))?;
    if r.status != "success" {
        return Err(format!("query failed: {}", r.error.unwrap_or(r.status)));
    }
    let data = r.data.ok_or("answer has no data")?;
    let raw = match data.result_type.as_str() {
        "scalar" => data.result.get(1).cloned(),
        "vector" => {
            let series = data.result.as_array().cloned().unwrap_or_default();
            match series.len() {
                0 => {
                    return Err(
                        "the query returned no series (no data yet, or no pod matched)".into(),
                    );
                }
                1 => series[0].get("value").and_then(|v| v.get(1)).cloned(),
                n => {
                    return Err(format!(
                        "the query returned {n} series: aggregate it to one number, e.g. sum(...)"
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "the query returned a {other}: it must return one number"
            ));
        }
    };
    let v: f64 = raw
        .as_ref()
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .ok_or("the answer's value is not a number")?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!(
            "the query returned {v} (e.g. a quantile over no requests)"
        ))
    }
}

/// Runs the source's query.
pub async fn read(
    sources: &Sources,
    namespace: &str,
    s: &PrometheusMetricSource,
    pods: Option<&TargetPods>,
) -> Reading {
    let Some(base) = s
        .server_address
        .as_deref()
        .or(sources.prometheus_url.as_deref())
    else {
        return Reading::Missing(
            "no Prometheus URL: set prometheus.serverAddress or the elastic-scaler's --prometheus-url (ES_PROMETHEUS_URL)".into(),
        );
    };
    let query = match (s.query.as_deref().filter(|q| !q.trim().is_empty()), pods) {
        (Some(q), _) => q.to_string(),
        (None, Some(p)) if !p.ready.is_empty() => {
            let names: Vec<String> = p
                .ready
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            build_query(namespace, &names, s)
        }
        (None, Some(_)) => return Reading::Missing("no ready pod to scope the query to".into()),
        (None, None) => return Reading::Missing("the target's pods could not be listed".into()),
    };
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let answer = async {
        let resp = sources
            .http
            .get(&url)
            .query(&[("query", &query)])
            .timeout(sources.timeout)
            .send()
            .await
            .map_err(|e| format!("Prometheus {url}: {e}"))?;
        let body = resp
            .text()
            .await
            .map_err(|e| format!("Prometheus {url}: {e}"))?;
        one_value(&body).map_err(|e| format!("{e} (query: {query})"))
    };
    match answer.await {
        Ok(v) => Reading::Total(v),
        Err(e) => Reading::Missing(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::elastic_scaler::MetricTarget;

    fn source(t: PromMetricType) -> PrometheusMetricSource {
        PrometheusMetricSource {
            query: None,
            metrics_name: Some("vllm:num_requests_waiting".into()),
            metric_type: Some(t),
            window: Some("2m".into()),
            quantile: None,
            labels: Some([("model_name".to_string(), "m".to_string())].into()),
            server_address: None,
            target: MetricTarget {
                type_: "AverageValue".into(),
                value: None,
                average_value: None,
                average_utilization: None,
            },
        }
    }

    #[test]
    fn queries_are_scoped_to_the_ready_pods() {
        let pods = ["llm-a".to_string(), "llm-b".to_string()];
        assert_eq!(
            build_query("ns", &pods, &source(PromMetricType::Gauge)),
            r#"sum(vllm:num_requests_waiting{model_name="m",namespace="ns",pod=~"llm-a|llm-b"})"#
        );
        assert_eq!(
            build_query("ns", &pods[..1], &source(PromMetricType::Counter)),
            r#"sum(rate(vllm:num_requests_waiting{model_name="m",namespace="ns",pod=~"llm-a"}[2m]))"#
        );
        assert!(
            build_query("ns", &pods, &source(PromMetricType::Histogram)).starts_with(
                "histogram_quantile(0.95, sum by (le) (rate(vllm:num_requests_waiting_bucket{"
            )
        );
    }

    #[test]
    fn answers() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"4.5"]}]}}"#;
        assert_eq!(one_value(vector), Ok(4.5));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert_eq!(one_value(scalar), Ok(2.0));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(one_value(empty).unwrap_err().contains("no series"));
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(one_value(two).unwrap_err().contains("2 series"));
        let nan =
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"NaN"]}]}}"#;
        assert!(one_value(nan).is_err());
        let bad = r#"{"status":"error","error":"parse error"}"#;
        assert!(one_value(bad).unwrap_err().contains("parse error"));
    }
}
