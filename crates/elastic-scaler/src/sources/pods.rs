//! Pod scraping: `/metrics` of every ready pod, all at once, under one deadline. A pod that fails or
//! misses the deadline is excluded and counted as missing; it is never read as 0 (AIBrix does, and
//! scales down on it).

use std::collections::BTreeMap;

use api_types::elastic_scaler::PodsMetricSource;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;

use super::{Sources, TargetPods, text};
use crate::algorithms::hpa::PodMetrics;
use crate::plugin::Reading;

/// The annotation naming the port Prometheus scrapes.
const PROMETHEUS_PORT: &str = "prometheus.io/port";
/// The port used when neither the spec nor the pod names one.
pub const DEFAULT_PORT: i32 = 8000;

fn url(pod: &Pod, s: &PodsMetricSource) -> Option<String> {
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    let port = s
        .port
        .or_else(|| {
            pod.metadata
                .annotations
                .as_ref()?
                .get(PROMETHEUS_PORT)?
                .parse()
                .ok()
        })
        .unwrap_or(DEFAULT_PORT);
    let path = s.path.as_deref().unwrap_or("/metrics");
    Some(if ip.contains(':') {
        format!("http://[{ip}]:{port}{path}")
    } else {
        format!("http://{ip}:{port}{path}")
    })
}

async fn scrape_one(
    sources: &Sources,
    pod: &Pod,
    s: &PodsMetricSource,
    labels: &BTreeMap<String, String>,
) -> Result<f64, String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let url = url(pod, s).ok_or_else(|| format!("pod {name} has no IP"))?;
    let resp = sources
        .http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("pod {name}: {e}"))?;
    let body = resp.text().await.map_err(|e| format!("pod {name}: {e}"))?;
    text::sum_metric(&body, &s.metrics_name, labels)
        .map_err(|e| format!("pod {name}: {e}"))?
        .ok_or_else(|| format!("pod {name} does not export {}", s.metrics_name))
}

/// Scrapes every ready pod; returns the per-pod reading (failures counted as missing) and the first
/// failure, if any.
pub async fn scrape(
    sources: &Sources,
    pods: &TargetPods,
    s: &PodsMetricSource,
) -> (Reading, Option<String>) {
    let labels = s.labels.clone().unwrap_or_default();
    let all = join_all(
        pods.ready
            .iter()
            .map(|p| tokio::time::timeout(sources.timeout, scrape_one(sources, p, s, &labels))),
    )
    .await;
    let mut m = PodMetrics {
        ready: Vec::new(),
        missing: 0,
        unready: pods.unready,
    };
    let mut first_error = None;
    for r in all {
        match r {
            Ok(Ok(v)) => m.ready.push(v),
            Ok(Err(e)) => {
                m.missing += 1;
                first_error.get_or_insert(e);
            }
            Err(_) => {
                m.missing += 1;
                first_error.get_or_insert(format!(
                    "a scrape missed the {:?} deadline",
                    sources.timeout
                ));
            }
        }
    }
    if m.ready.is_empty() {
        let why = match (first_error, pods.ready.len()) {
            (_, 0) => format!("no ready pod to scrape ({} not ready)", pods.unready),
            (Some(e), n) => format!("all {n} ready pods failed, e.g. {e}"),
            (None, _) => "no value".into(),
        };
        return (Reading::Missing(why), None);
    }
    let detail = first_error.map(|e| {
        format!(
            "{} of {} ready pods excluded: {e}",
            m.missing,
            pods.ready.len()
        )
    });
    (Reading::PerPod(m), detail)
}
