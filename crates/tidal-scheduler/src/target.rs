//! Writing a target's replicas through its `/scale` subresource, for any kind that has one.
//!
//! The kind is resolved by API discovery (`apiVersion` + `kind` → resource and subresources), cached per
//! group/version/kind once found scalable; a kind that is not served or has no `scale` subresource is
//! looked up again on the next try, so installing its CRD later just works.

use std::collections::HashMap;
use std::sync::Mutex;

use api_types::keys::reasons;
use api_types::tidal::TidalTargetRef;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::oneshot::pinned_kind;

/// Why the target could not be scaled; each maps to a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `apiVersion`/`kind` is not served by the cluster.
    #[error("{kind} in {api_version} is not served by this cluster: {source}")]
    UnknownKind {
        /// targetRef.kind
        kind: String,
        /// targetRef.apiVersion
        api_version: String,
        /// Discovery error.
        #[source]
        source: kube::Error,
    },
    /// The kind has no scale subresource.
    #[error(
        "{kind} in {api_version} has no scale subresource: a Tidal can only drive scalable kinds (Deployment, StatefulSet, ResourceScalingGroup, ...); for other kinds link an ElasticScaler with the elasticscaler.io/name and elasticscaler.io/namespace labels"
    )]
    NotScalable {
        /// targetRef.kind
        kind: String,
        /// targetRef.apiVersion
        api_version: String,
    },
    /// The named object does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// targetRef.kind
        kind: String,
        /// targetRef.namespace
        namespace: String,
        /// targetRef.name
        name: String,
    },
    /// Any other API error (forbidden, conflict, unavailable).
    #[error("writing {kind} {namespace}/{name}/scale: {source}")]
    Api {
        /// targetRef.kind
        kind: String,
        /// targetRef.namespace
        namespace: String,
        /// targetRef.name
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl TargetError {
    /// The condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownKind { .. } | Self::NotScalable { .. } => reasons::TARGET_NOT_SCALABLE,
            Self::NotFound { .. } => reasons::TARGET_NOT_FOUND,
            Self::Api { .. } => reasons::SCALE_FAILED,
        }
    }
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Scales targets through `/scale`, caching discovery.
pub struct Scaler {
    client: kube::Client,
    scalable: Mutex<HashMap<(String, String, String), ApiResource>>,
}

impl Scaler {
    /// A scaler over `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            scalable: Mutex::new(HashMap::new()),
        }
    }

    async fn resource(&self, t: &TidalTargetRef) -> Result<ApiResource, TargetError> {
        let (group, version) = group_version(&t.api_version);
        let key = (group.to_string(), version.to_string(), t.kind.clone());
        if let Some(ar) = self.scalable.lock().expect("poisoned").get(&key) {
            return Ok(ar.clone());
        }
        let gvk = GroupVersionKind::gvk(group, version, &t.kind);
        let (ar, caps) =
            pinned_kind(&self.client, &gvk)
                .await
                .map_err(|source| TargetError::UnknownKind {
                    kind: t.kind.clone(),
                    api_version: t.api_version.clone(),
                    source,
                })?;
        if !caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "scale")
        {
            return Err(TargetError::NotScalable {
                kind: t.kind.clone(),
                api_version: t.api_version.clone(),
            });
        }
        self.scalable
            .lock()
            .expect("poisoned")
            .insert(key, ar.clone());
        Ok(ar)
    }

    /// Sets the target's `spec.replicas` through its scale subresource (a merge patch: only that field).
    pub async fn scale(&self, t: &TidalTargetRef, replicas: i32) -> Result<(), TargetError> {
        let ar = self.resource(t).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &t.namespace, &ar);
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        match api
            .patch_scale(&t.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(TargetError::NotFound {
                kind: t.kind.clone(),
                namespace: t.namespace.clone(),
                name: t.name.clone(),
            }),
            Err(source) => Err(TargetError::Api {
                kind: t.kind.clone(),
                namespace: t.namespace.clone(),
                name: t.name.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_api_versions() {
        assert_eq!(group_version("apps/v1"), ("apps", "v1"));
        assert_eq!(group_version("v1"), ("", "v1"));
        assert_eq!(
            group_version("autoscaling.openfuyao.com/v1alpha1"),
            ("autoscaling.openfuyao.com", "v1alpha1")
        );
    }
}
