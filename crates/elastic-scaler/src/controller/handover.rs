//! Scale to zero, the Kubernetes side: the workload Service, handing the Service to the DLX and back,
//! reading EndpointSlices, clearing the wake request. Each call is idempotent; [`super::zero`] decides
//! which to make.

use std::collections::{BTreeMap, BTreeSet};

use api_types::ElasticScaler;
use api_types::elastic_scaler::ScaleToZero;
use api_types::keys::{annotations, labels};
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PostParams};
use kube::{Resource, ResourceExt};

use super::MANAGER;
use crate::handlers::merge_params;

/// The label EndpointSlices carry with their Service's name.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The workload Service's name for `service`.
pub fn workload_name(service: &str) -> String {
    let suffix = "-workload";
    let keep = 63 - suffix.len();
    format!(
        "{}{suffix}",
        &service[..service.len().min(keep)].trim_end_matches('-')
    )
}

/// The Service as the hand-over sees it.
#[derive(Clone, Debug, Default)]
pub struct ServiceView {
    /// The selector the workload's pods match (the annotation's while handed over, else the current one).
    pub original: BTreeMap<String, String>,
    /// Handed to the DLX (the original-selector annotation is present).
    pub handed: bool,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// Its resourceVersion, for conditional patches.
    pub resource_version: Option<String>,
}

/// Reads the Service; `Err` says what is wrong in words for status.
pub async fn read_service(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<ServiceView, String> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Service {ns}/{name}: {e}"))?
        .ok_or_else(|| format!("Service {ns}/{name} (spec.scaleToZero.service) not found"))?;
    let spec = svc.spec.clone().unwrap_or_default();
    let ann = svc.annotations();
    let (original, handed) = match ann.get(annotations::ORIGINAL_SELECTOR) {
        Some(json) => (
            serde_json::from_str(json).map_err(|e| {
                format!(
                    "Service {ns}/{name}: annotation {} is not a JSON label map: {e}",
                    annotations::ORIGINAL_SELECTOR
                )
            })?,
            true,
        ),
        None => (spec.selector.clone().unwrap_or_default(), false),
    };
    if original.is_empty() {
        return Err(format!(
            "Service {ns}/{name} has no selector: scale to zero switches a Service's selector, so it needs one"
        ));
    }
    Ok(ServiceView {
        original,
        handed,
        ports: spec.ports.unwrap_or_default(),
        resource_version: svc.metadata.resource_version,
    })
}

/// Creates or updates the headless workload Service (ports and the original selector), owned by `es`.
pub async fn ensure_workload_service(
    client: &kube::Client,
    es: &ElasticScaler,
    service: &str,
    view: &ServiceView,
) -> Result<(), String> {
    let ns = es.namespace().unwrap_or_default();
    let name = workload_name(service);
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let want = Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(
                [
                    (labels::SHADOW_OF.to_string(), service.to_string()),
                    (
                        labels::MANAGED_BY.to_string(),
                        labels::MANAGED_BY_VALUE.to_string(),
                    ),
                ]
                .into(),
            ),
            owner_references: es.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(view.original.clone()),
            ports: Some(
                view.ports
                    .iter()
                    .map(|p| ServicePort {
                        node_port: None,
                        ..p.clone()
                    })
                    .collect(),
            ),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    match api
        .get_opt(&name)
        .await
        .map_err(|e| format!("reading Service {ns}/{name}: {e}"))?
    {
        None => api
            .create(
                &PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
                &want,
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("creating the workload Service {ns}/{name}: {e}")),
        Some(have) if have.labels().get(labels::SHADOW_OF).map(String::as_str) != Some(service) => {
            Err(format!(
                "Service {ns}/{name} exists and is not the workload Service of {service}: rename it or the scaled Service"
            ))
        }
        Some(have) => {
            let spec = have.spec.unwrap_or_default();
            if spec.selector.as_ref() == Some(&view.original)
                && spec.ports.as_ref().map(Vec::len) == Some(view.ports.len())
            {
                return Ok(());
            }
            let patch = serde_json::json!({"spec": {"selector": view.original, "ports": want.spec.as_ref().and_then(|s| s.ports.clone())}});
            api.patch(&name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| format!("updating the workload Service {ns}/{name}: {e}"))
        }
    }
}

fn selector_patch(
    from: &BTreeMap<String, String>,
    to: &BTreeMap<String, String>,
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for k in from.keys().filter(|k| !to.contains_key(*k)) {
        m.insert(k.clone(), serde_json::Value::Null);
    }
    for (k, v) in to {
        m.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    serde_json::Value::Object(m)
}

/// Points the Service at the DLX pods, keeping its selector in an annotation (conditional on the version
/// read, so a concurrent edit is not overwritten).
pub async fn hand_over(
    client: &kube::Client,
    es: &ElasticScaler,
    z: &ScaleToZero,
    view: &ServiceView,
) -> Result<(), String> {
    let ns = es.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let original = serde_json::to_string(&view.original).unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": view.resource_version,
            "annotations": {
                annotations::ORIGINAL_SELECTOR: original,
                annotations::SCALER: es.name_any(),
                annotations::WORKLOAD_SERVICE: workload_name(&z.service),
            }
        },
        "spec": {"selector": selector_patch(&view.original, &z.dlx_labels())}
    });
    api.patch(&z.service, &merge_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("handing Service {ns}/{} to the DLX: {e}", z.service))
}

/// Gives the Service its original selector back and drops the annotation.
pub async fn restore(
    client: &kube::Client,
    ns: &str,
    z: &ScaleToZero,
    view: &ServiceView,
) -> Result<(), String> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": view.resource_version,
            "annotations": {annotations::ORIGINAL_SELECTOR: null}
        },
        "spec": {"selector": selector_patch(&z.dlx_labels(), &view.original)}
    });
    api.patch(&z.service, &merge_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("restoring Service {ns}/{}: {e}", z.service))
}

/// The ready endpoints of Service `service`, as the pod names they point at (`None` for an endpoint
/// without a pod reference).
pub async fn ready_endpoints(
    client: &kube::Client,
    ns: &str,
    service: &str,
) -> Result<Vec<Option<String>>, String> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("{SERVICE_NAME}={service}")))
        .await
        .map_err(|e| format!("listing EndpointSlices of {ns}/{service}: {e}"))?;
    Ok(list
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .map(|e| e.target_ref.as_ref().and_then(|r| r.name.clone()))
        .collect())
}

/// The names of the pods matching `selector` in `ns`.
pub async fn pod_names(
    client: &kube::Client,
    ns: &str,
    selector: &BTreeMap<String, String>,
) -> Result<BTreeSet<String>, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let sel = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let list = api
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(|e| format!("listing pods {sel} in {ns}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect())
}

/// Removes the wake request from the ElasticScaler.
pub async fn clear_wake(client: &kube::Client, es: &ElasticScaler) -> Result<(), String> {
    let ns = es.namespace().unwrap_or_default();
    let api: Api<ElasticScaler> = Api::namespaced(client.clone(), &ns);
    let patch =
        serde_json::json!({"metadata": {"annotations": {annotations::WAKE_REQUESTED: null}}});
    api.patch(&es.name_any(), &merge_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "clearing {} on ElasticScaler {ns}/{}: {e}",
                annotations::WAKE_REQUESTED,
                es.name_any()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_patches_null_what_goes_away() {
        let from: BTreeMap<String, String> = [
            ("app".to_string(), "llm".to_string()),
            ("tier".to_string(), "x".to_string()),
        ]
        .into();
        let to: BTreeMap<String, String> =
            [("app.kubernetes.io/name".to_string(), "dlx".to_string())].into();
        assert_eq!(
            selector_patch(&from, &to),
            serde_json::json!({"app": null, "tier": null, "app.kubernetes.io/name": "dlx"})
        );
        assert_eq!(workload_name("llm"), "llm-workload");
        assert_eq!(workload_name(&"a".repeat(63)).len(), 63);
    }
}
