//! ExternalServer: an HTTP GET of `<protocol>://<endpoint>` (a full URL in `endpoint` wins) with
//! `metric=<metricsName>` and, if set, `query=<query>` as URL parameters. The answer may be a JSON number,
//! a JSON object `{"value": <number>}`, or the Prometheus text format (the samples of `metricsName`
//! summed). The value is the target's total; `target` is the value per replica.

use std::collections::BTreeMap;

use api_types::elastic_scaler::{ExternalServerMetricSource, Protocol};

use super::{Sources, text};
use crate::plugin::Reading;

/// The URL of the server.
pub fn url(s: &ExternalServerMetricSource) -> String {
    let e = s.endpoint.trim();
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else {
        let scheme = match s.protocol {
            Protocol::Http => "http",
            Protocol::Https => "https",
        };
        format!("{scheme}://{e}")
    }
}

/// Parses an answer.
pub fn parse(body: &str, metric: &str) -> Result<f64, String> {
    let v = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Number(n)) => n.as_f64(),
        Ok(serde_json::Value::Object(o)) => o.get("value").and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        }),
        Ok(_) => None,
        Err(_) => text::sum_metric(body, metric, &BTreeMap::new())?,
    };
    v.filter(|v| v.is_finite()).ok_or_else(|| {
        format!(
            "the answer has no value for {metric}: answer a number, {{\"value\": <number>}}, or Prometheus text with {metric}"
        )
    })
}

/// Reads the server.
pub async fn read(sources: &Sources, s: &ExternalServerMetricSource) -> Reading {
    let url = url(s);
    let mut params = vec![("metric", s.metrics_name.as_str())];
    if let Some(q) = s.query.as_deref().filter(|q| !q.is_empty()) {
        params.push(("query", q));
    }
    let answer = async {
        let resp = sources
            .http
            .get(&url)
            .query(&params)
            .timeout(sources.timeout)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("{url}: {e}"))?;
        let body = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        parse(&body, &s.metrics_name).map_err(|e| format!("{url}: {e}"))
    };
    match answer.await {
        Ok(v) => Reading::Total(v),
        Err(e) => Reading::Missing(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_formats() {
        assert_eq!(parse("4", "q"), Ok(4.0));
        assert_eq!(parse(r#"{"value": 2.5}"#, "q"), Ok(2.5));
        assert_eq!(parse(r#"{"value": "3"}"#, "q"), Ok(3.0));
        assert_eq!(parse("q{a=\"1\"} 2\nq{a=\"2\"} 3\n", "q"), Ok(5.0));
        assert!(
            parse(r#"{"val": 1}"#, "q")
                .unwrap_err()
                .contains("no value for q")
        );
    }

    #[test]
    fn endpoint_scheme() {
        let mut s: ExternalServerMetricSource = serde_json::from_value(serde_json::json!(
            {"endpoint": "stub:8080/m", "metricsName": "q", "target": "5"}
        ))
        .unwrap();
        assert_eq!(url(&s), "https://stub:8080/m");
        s.protocol = Protocol::Http;
        assert_eq!(url(&s), "http://stub:8080/m");
        s.endpoint = "https://x/y".into();
        assert_eq!(url(&s), "https://x/y");
    }
}
