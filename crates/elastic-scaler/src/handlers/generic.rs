//! Any kind: discovery, then `/scale` if the kind has it, else `spec.replicas`.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, Patch};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::oneshot::pinned_kind;
use serde_json::Value;

use super::{api_error, merge_params, patch_scale};
use crate::plugin::{HandlerError, ResourceHandler, Scale, TargetRef};

/// Discovery-driven handler with a per-kind cache.
pub struct Generic {
    client: kube::Client,
    kinds: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

impl Generic {
    /// A handler over `client`.
    pub fn new(client: kube::Client) -> Self {
        Generic {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The API of the target's kind and whether it has `/scale`.
    pub async fn api(&self, t: &TargetRef) -> Result<(Api<DynamicObject>, bool), HandlerError> {
        let key = (t.api_version.clone(), t.kind.clone());
        let cached = self.kinds.lock().expect("poisoned").get(&key).cloned();
        let (ar, scalable) = match cached {
            Some(c) => c,
            None => {
                let (group, version) = t
                    .api_version
                    .split_once('/')
                    .unwrap_or(("", &t.api_version));
                let gvk = GroupVersionKind::gvk(group, version, &t.kind);
                let (ar, caps) = pinned_kind(&self.client, &gvk).await.map_err(|e| {
                    HandlerError::NotScalable(format!(
                        "{} in {} is not served by this cluster: {e}",
                        t.kind, t.api_version
                    ))
                })?;
                let scalable = caps
                    .subresources
                    .iter()
                    .any(|(sub, _)| sub.plural == "scale");
                self.kinds
                    .lock()
                    .expect("poisoned")
                    .insert(key, (ar.clone(), scalable));
                (ar, scalable)
            }
        };
        Ok((
            Api::namespaced_with(self.client.clone(), &t.namespace, &ar),
            scalable,
        ))
    }
}

fn int(v: &Value) -> Option<i32> {
    v.as_i64().map(|n| n as i32)
}

/// `spec.selector` as a label selector string (matchLabels only; set-based selectors come from `/scale`).
fn spec_selector(obj: &Value) -> Option<String> {
    let labels = obj["spec"]["selector"]["matchLabels"].as_object()?;
    Some(
        labels
            .iter()
            .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
            .collect::<Vec<_>>()
            .join(","),
    )
}

impl ResourceHandler for Generic {
    fn get<'a>(&'a self, t: &'a TargetRef) -> BoxFuture<'a, Result<Scale, HandlerError>> {
        Box::pin(async move {
            let (api, scalable) = self.api(t).await?;
            let obj = api
                .get(&t.name)
                .await
                .map_err(|e| api_error(t, "reading", e))?;
            let data = serde_json::to_value(&obj).unwrap_or_default();
            let replicas = int(&data["spec"]["replicas"]);
            let ready =
                int(&data["status"]["readyReplicas"]).or_else(|| int(&data["status"]["replicas"]));
            let mut selector = data["status"]["selector"]
                .as_str()
                .or_else(|| data["status"]["hpaPodSelector"].as_str())
                .map(str::to_string)
                .or_else(|| spec_selector(&data));
            let replicas = match (replicas, scalable) {
                (Some(r), _) => r,
                (None, true) => {
                    let s = api
                        .get_scale(&t.name)
                        .await
                        .map_err(|e| api_error(t, "reading /scale of", e))?;
                    if selector.is_none() {
                        selector = s.status.as_ref().and_then(|s| s.selector.clone());
                    }
                    s.spec.and_then(|s| s.replicas).unwrap_or(0)
                }
                (None, false) => {
                    return Err(HandlerError::NotScalable(format!(
                        "{t} has no scale subresource and no spec.replicas: register a resource handler for {}",
                        t.kind
                    )));
                }
            };
            Ok(Scale {
                replicas,
                ready: ready.unwrap_or(0).min(replicas.max(0)),
                selector: selector.filter(|s| !s.is_empty()),
            })
        })
    }

    fn set_replicas<'a>(
        &'a self,
        t: &'a TargetRef,
        replicas: i32,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let (api, scalable) = self.api(t).await?;
            if scalable {
                return patch_scale(&api, t, replicas).await;
            }
            let patch = serde_json::json!({"spec": {"replicas": replicas}});
            api.patch(&t.name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| api_error(t, "scaling", e))
        })
    }
}
