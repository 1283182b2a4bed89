//! ResourceScalingGroup: replicas are groups (`spec.scalingStrategy.groupConfig.replicas`, written through
//! the RSG's `/scale`); ready replicas are the groups the RSG reports in `status.currentReplicas` (pods
//! that are not ready inside a group are excluded by the per-pod metric sources); the pods of every group
//! are selected by `status.selector`.

use std::sync::Arc;

use api_types::ResourceScalingGroup;
use futures::future::BoxFuture;
use kube::api::Api;

use super::api_error;
use super::generic::Generic;
use crate::plugin::{HandlerError, ResourceHandler, Scale, TargetRef};

/// The RSG handler.
pub struct RsgHandler {
    client: kube::Client,
    generic: Arc<Generic>,
}

impl RsgHandler {
    /// A handler over `client`, writing through `generic`.
    pub fn new(client: kube::Client, generic: Arc<Generic>) -> Self {
        RsgHandler { client, generic }
    }
}

impl ResourceHandler for RsgHandler {
    fn get<'a>(&'a self, t: &'a TargetRef) -> BoxFuture<'a, Result<Scale, HandlerError>> {
        Box::pin(async move {
            let api: Api<ResourceScalingGroup> = Api::namespaced(self.client.clone(), &t.namespace);
            let rsg = api
                .get(&t.name)
                .await
                .map_err(|e| api_error(t, "reading", e))?;
            let replicas = rsg
                .spec
                .scaling_strategy
                .group_config
                .as_ref()
                .map(|g| g.replicas)
                .unwrap_or_else(|| {
                    rsg.status
                        .as_ref()
                        .and_then(|s| s.current_replicas)
                        .unwrap_or(0)
                });
            let status = rsg.status.unwrap_or_default();
            Ok(Scale {
                replicas,
                ready: status.current_replicas.unwrap_or(0).min(replicas),
                selector: status.selector.filter(|s| !s.is_empty()),
            })
        })
    }

    fn set_replicas<'a>(
        &'a self,
        t: &'a TargetRef,
        replicas: i32,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        self.generic.set_replicas(t, replicas)
    }
}
