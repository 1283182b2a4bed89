//! A minimal Prometheus instant-query client for scale-down ordering: one GET of `/api/v1/query`, values
//! keyed by the `group_id` label.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// Queries one Prometheus server.
#[derive(Clone, Debug)]
pub struct Prometheus {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: HashMap<String, String>,
    value: (f64, String),
}

impl Prometheus {
    /// A client for `base` (e.g. `http://prometheus:9090`), each query bounded by `timeout`.
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Prometheus> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Prometheus {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// Runs `query` and returns the value per `group_id`. Series without a numeric `group_id` are ignored
    /// (the caller falls back when a group has no value). The error says what failed.
    pub async fn values_by_group(&self, query: &str) -> Result<HashMap<u32, f64>, String> {
        let url = format!("{}/api/v1/query", self.base);
        let resp = self
            .http
            .get(&url)
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let code = resp.status();
        let body: Response = resp
            .json()
            .await
            .map_err(|e| format!("{url} answered {code} with an unreadable body: {e}"))?;
        if body.status != "success" {
            return Err(format!(
                "{url} answered {code}: {}",
                body.error.unwrap_or_else(|| body.status.clone())
            ));
        }
        let data = body
            .data
            .ok_or_else(|| format!("{url}: no data in answer"))?;
        if data.result_type != "vector" {
            return Err(format!(
                "query {query:?} returned a {}, not an instant vector",
                data.result_type
            ));
        }
        Ok(data
            .result
            .into_iter()
            .filter_map(|s| {
                let id = s.metric.get("group_id")?.parse().ok()?;
                Some((id, s.value.1.parse().ok()?))
            })
            .collect())
    }
}
