//! The Kubernetes metrics APIs, through the API server's aggregation layer:
//! `metrics.k8s.io` (Resource: pod cpu/memory usage), `custom.metrics.k8s.io` (Custom: a pods metric of
//! the target's pods) and `external.metrics.k8s.io` (External: a metric not tied to an object).
//! Per-pod readings keep only the target's ready pods; a ready pod without a value counts as missing.

use std::collections::{BTreeMap, BTreeSet};

use api_types::elastic_scaler::{NamedMetricSource, ResourceMetricSource};
use k8s_openapi::api::core::v1::Pod;
use kube::core::Selector;
use serde_json::Value;

use super::{Sources, TargetPods, quantity};
use crate::algorithms::hpa::PodMetrics;
use crate::plugin::Reading;

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GETs `path` under the read deadline. Without it an adapter answering 503 stalled the whole decision
/// (and shutdown) for minutes: kube's client retries 429/503/504 up to 15 times with a doubling backoff.
async fn get(sources: &Sources, path: String) -> Result<Value, String> {
    let req = http::Request::get(&path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(sources.timeout, sources.client.request::<Value>(req)).await {
        Ok(r) => r.map_err(|e| format!("GET {path}: {e}")),
        Err(_) => Err(format!(
            "GET {path}: no answer within {:?} (the API server's 429, 503 and 504 answers are retried until then)",
            sources.timeout
        )),
    }
}

/// `?<param>=<selector>`, or nothing without a selector. The spec's selector narrows the metric's series:
/// external.metrics.k8s.io takes it as `labelSelector`; custom.metrics.k8s.io as `metricLabelSelector`,
/// its `labelSelector` selecting the described objects (pods) instead, as the HPA's client sends them.
/// `param=<the metric's selector>`, or nothing without one.
fn selector_param(s: &NamedMetricSource, param: &str) -> Result<Option<String>, String> {
    match &s.selector {
        None => Ok(None),
        Some(ls) => {
            let sel = Selector::try_from(ls.clone()).map_err(|e| format!("selector: {e}"))?;
            Ok(Some(format!("{param}={}", encode(&sel.to_string()))))
        }
    }
}

/// `?a&b` of the present parameters, or nothing.
fn query(params: impl IntoIterator<Item = Option<String>>) -> String {
    let present: Vec<String> = params.into_iter().flatten().collect();
    if present.is_empty() {
        String::new()
    } else {
        format!("?{}", present.join("&"))
    }
}

/// `labelSelector=<the target's pod selector>`: the adapter answers for the target's pods only.
fn pods_param(pods: &TargetPods) -> Option<String> {
    (!pods.selector.is_empty()).then(|| format!("labelSelector={}", encode(&pods.selector)))
}

fn custom_path(
    namespace: &str,
    pods: &TargetPods,
    s: &NamedMetricSource,
) -> Result<String, String> {
    let name = s.metrics_name.as_deref().unwrap_or_default();
    let q = query([pods_param(pods), selector_param(s, "metricLabelSelector")?]);
    Ok(format!(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/*/{}{q}",
        encode(name)
    ))
}

fn external_path(namespace: &str, s: &NamedMetricSource) -> Result<String, String> {
    let name = s.metrics_name.as_deref().unwrap_or_default();
    let q = query([selector_param(s, "labelSelector")?]);
    Ok(format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{}{q}",
        encode(name)
    ))
}

fn ready_names(pods: &TargetPods) -> BTreeSet<String> {
    pods.ready
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

fn per_pod(pods: &TargetPods, values: BTreeMap<String, f64>) -> Reading {
    let names = ready_names(pods);
    let ready: Vec<f64> = names
        .iter()
        .filter_map(|n| values.get(n).copied())
        .collect();
    if ready.is_empty() {
        return Reading::Missing(format!(
            "no value for any of the {} ready pods ({} not ready)",
            names.len(),
            pods.unready
        ));
    }
    Reading::PerPod(PodMetrics {
        missing: names.len() - ready.len(),
        ready,
        unready: pods.unready,
    })
}

fn requests(pod: &Pod, resource: &str) -> Option<f64> {
    let spec = pod.spec.as_ref()?;
    let mut total = 0.0;
    for c in &spec.containers {
        total += quantity::parse(&c.resources.as_ref()?.requests.as_ref()?.get(resource)?.0)?;
    }
    (total > 0.0).then_some(total)
}

/// `metrics.k8s.io`: per-pod usage, or its percentage of the pods' requests for Utilization.
pub async fn resource(
    sources: &Sources,
    namespace: &str,
    pods: &TargetPods,
    s: &ResourceMetricSource,
) -> Reading {
    let path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods{}",
        query([pods_param(pods)])
    );
    let list = match get(sources, path).await {
        Ok(v) => v,
        Err(e) => return Reading::Missing(format!("{e} (is metrics-server installed?)")),
    };
    let utilization = s.target.type_ == "Utilization";
    let by_name: BTreeMap<&str, &Pod> = pods
        .ready
        .iter()
        .filter_map(|p| Some((p.metadata.name.as_deref()?, p)))
        .collect();
    let mut values = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let Some(name) = item["metadata"]["name"].as_str() else {
            continue;
        };
        let Some(pod) = by_name.get(name) else {
            continue;
        };
        let usage: Option<f64> = item["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                c["usage"][&s.metrics_name]
                    .as_str()
                    .and_then(quantity::parse)
            })
            .sum();
        let Some(usage) = usage else { continue };
        let v = if utilization {
            match requests(pod, &s.metrics_name) {
                Some(r) => usage / r * 100.0,
                None => {
                    return Reading::Missing(format!(
                        "pod {name} has no {} request on every container: Utilization needs requests (or use AverageValue)",
                        s.metrics_name
                    ));
                }
            }
        } else {
            usage
        };
        values.insert(name.to_string(), v);
    }
    per_pod(pods, values)
}

/// `custom.metrics.k8s.io`: the metric of each of the target's pods.
pub async fn custom(
    sources: &Sources,
    namespace: &str,
    pods: &TargetPods,
    s: &NamedMetricSource,
) -> Reading {
    let path = match custom_path(namespace, pods, s) {
        Ok(p) => p,
        Err(e) => return Reading::Missing(e),
    };
    if pods.ready.is_empty() {
        return Reading::Missing(format!("no ready pod ({} not ready)", pods.unready));
    }
    let list = match get(sources, path).await {
        Ok(v) => v,
        Err(e) => return Reading::Missing(format!("{e} (is a custom metrics adapter installed?)")),
    };
    let mut values = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let (Some(pod), Some(v)) = (
            item["describedObject"]["name"].as_str(),
            item["value"].as_str().and_then(quantity::parse),
        ) else {
            continue;
        };
        values.insert(pod.to_string(), v);
    }
    per_pod(pods, values)
}

/// `external.metrics.k8s.io`: the sum of the metric's series.
pub async fn external(sources: &Sources, namespace: &str, s: &NamedMetricSource) -> Reading {
    let name = s.metrics_name.as_deref().unwrap_or_default();
    let path = match external_path(namespace, s) {
        Ok(p) => p,
        Err(e) => return Reading::Missing(e),
    };
    let list = match get(sources, path).await {
        Ok(v) => v,
        Err(e) => {
            return Reading::Missing(format!("{e} (is an external metrics adapter installed?)"));
        }
    };
    let values: Vec<f64> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["value"].as_str().and_then(quantity::parse))
        .collect();
    if values.is_empty() {
        return Reading::Missing(format!("external metric {name} has no series"));
    }
    Reading::Total(values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_pod_keeps_ready_pods_and_counts_the_rest() {
        let pod = |n: &str| Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(n.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let pods = TargetPods {
            ready: vec![pod("a"), pod("b"), pod("c")],
            unready: 1,
            ..TargetPods::default()
        };
        let values: BTreeMap<String, f64> = [
            ("a".to_string(), 2.0),
            ("b".to_string(), 4.0),
            ("zombie".to_string(), 100.0),
        ]
        .into();
        assert_eq!(
            per_pod(&pods, values),
            Reading::PerPod(PodMetrics {
                ready: vec![2.0, 4.0],
                missing: 1,
                unready: 1
            })
        );
        assert!(matches!(
            per_pod(&pods, BTreeMap::new()),
            Reading::Missing(_)
        ));
        assert_eq!(encode("a=b,c in (d)"), "a%3Db%2Cc%20in%20%28d%29");
    }

    #[test]
    fn the_selector_narrows_the_series_in_each_api() {
        let s: NamedMetricSource = serde_json::from_value(serde_json::json!({
            "metricsName": "requests_per_second",
            "selector": {"matchLabels": {"model": "llama"}},
            "target": {"type": "AverageValue", "averageValue": "10"},
        }))
        .unwrap();
        // custom.metrics.k8s.io: labelSelector selects the target's pods; the series are narrowed by
        // metricLabelSelector.
        let pods = TargetPods {
            selector: "app=llm".into(),
            ..TargetPods::default()
        };
        assert_eq!(
            custom_path("ns", &pods, &s).unwrap(),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/*/requests_per_second?labelSelector=app%3Dllm&metricLabelSelector=model%3Dllama"
        );
        assert_eq!(
            external_path("ns", &s).unwrap(),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/requests_per_second?labelSelector=model%3Dllama"
        );
        let bare = NamedMetricSource {
            selector: None,
            ..s
        };
        assert!(
            !custom_path("ns", &TargetPods::default(), &bare)
                .unwrap()
                .contains('?')
        );
        assert_eq!(
            custom_path("ns", &pods, &bare).unwrap(),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/*/requests_per_second?labelSelector=app%3Dllm"
        );
    }

    #[tokio::test]
    async fn a_read_gives_up_at_the_deadline() {
        // An API server (or adapter) that never answers, as one retried for minutes looks to the reader.
        let service = tower::service_fn(|_req: http::Request<kube::client::Body>| async {
            std::future::pending::<Result<http::Response<kube::client::Body>, std::io::Error>>()
                .await
        });
        let sources = Sources {
            client: kube::Client::new(service, "default"),
            http: reqwest::Client::new(),
            prometheus_url: None,
            timeout: std::time::Duration::from_millis(50),
        };
        let s: NamedMetricSource = serde_json::from_value(serde_json::json!({
            "metricsName": "queue", "target": {"type": "Value", "value": "1"},
        }))
        .unwrap();
        let started = std::time::Instant::now();
        let Reading::Missing(why) = external(&sources, "ns", &s).await else {
            panic!("a read without an answer must be missing");
        };
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(why.contains("no answer within 50ms"), "{why}");
    }
}
