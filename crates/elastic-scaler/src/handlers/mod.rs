//! Resource handlers: how the replicas of a target kind are read and written.
//!
//! Built in: Deployment and StatefulSet (read from a watch cache, written through `/scale`),
//! ResourceScalingGroup (replicas are groups; written through its `/scale`), and every other kind through
//! [`generic::Generic`]: API discovery finds the resource; a kind with a `scale` subresource is read and
//! written through it (LeaderWorkerSet, any CRD with `/scale`), one without falls back to `spec.replicas`
//! and `status.readyReplicas`/`status.replicas`. Plugins register more by `apiVersion` group and kind;
//! a duplicate is an error.

pub mod apps;
pub mod generic;
pub mod rsg;

use std::sync::Arc;

use kube::api::{Api, DynamicObject, Patch, PatchParams};

use crate::plugin::{HandlerError, SharedHandler, TargetRef};
use crate::registry::{Registry, RegistryError, handler_key};

/// The field manager of our writes.
pub const MANAGER: &str = "elastic-scaler";

/// Handlers by `group/Kind`, and the generic one for every other kind.
pub struct Handlers {
    registry: Registry<SharedHandler>,
    fallback: SharedHandler,
}

impl Handlers {
    /// The built-in handlers over `client`; the apps caches must be running ([`apps::Caches::start`]).
    pub fn builtin(client: kube::Client, caches: &apps::Caches) -> Result<Self, RegistryError> {
        let mut registry: Registry<SharedHandler> = Registry::new("resource handler");
        let generic = Arc::new(generic::Generic::new(client.clone()));
        registry.insert(
            handler_key("apps/v1", "Deployment"),
            Arc::new(apps::CachedHandler::new(
                caches.deployments.clone(),
                generic.clone(),
                apps::deployment_scale,
            )),
        )?;
        registry.insert(
            handler_key("apps/v1", "StatefulSet"),
            Arc::new(apps::CachedHandler::new(
                caches.statefulsets.clone(),
                generic.clone(),
                apps::statefulset_scale,
            )),
        )?;
        registry.insert(
            handler_key(
                &format!(
                    "{}/{}",
                    api_types::keys::groups::RSG,
                    api_types::keys::groups::VERSION
                ),
                "ResourceScalingGroup",
            ),
            Arc::new(rsg::RsgHandler::new(client, generic.clone())),
        )?;
        Ok(Handlers {
            registry,
            fallback: generic,
        })
    }

    /// Only the generic handler, over `client`: for `simulate`, which reads and writes no target.
    pub fn generic_only(client: kube::Client) -> Self {
        Handlers {
            registry: Registry::new("resource handler"),
            fallback: Arc::new(generic::Generic::new(client)),
        }
    }

    /// Registers a plugin handler for `apiVersion`/`kind` (any version of the group).
    pub fn register(
        &mut self,
        api_version: &str,
        kind: &str,
        handler: SharedHandler,
    ) -> Result<(), RegistryError> {
        self.registry
            .insert(handler_key(api_version, kind), handler)
    }

    /// The handler for `target`.
    pub fn for_target(&self, target: &TargetRef) -> SharedHandler {
        self.registry
            .get(&handler_key(&target.api_version, &target.kind))
            .cloned()
            .unwrap_or_else(|_| self.fallback.clone())
    }

    /// The registered `group/Kind` keys.
    pub fn keys(&self) -> Vec<String> {
        self.registry.keys()
    }
}

/// Maps a kube error on `target` to a handler error.
pub fn api_error(target: &TargetRef, what: &str, e: kube::Error) -> HandlerError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => HandlerError::NotFound(target.clone()),
        _ => HandlerError::Failed(format!("{what} {target}: {e}")),
    }
}

/// Writes `replicas` through the `/scale` subresource of `api` (a merge patch of only that field).
pub async fn patch_scale(
    api: &Api<DynamicObject>,
    target: &TargetRef,
    replicas: i32,
) -> Result<(), HandlerError> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    api.patch_scale(&target.name, &merge_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| api_error(target, "scaling", e))
}

/// Merge-patch parameters with our field manager.
pub fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}
