//! Deployments and StatefulSets, read from watch caches (no API call per period; what the upstream HPA
//! does with its informers) and written through `/scale`; and the cache of Tidals linked to scalers.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::core::Selector;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use super::generic::Generic;
use crate::plugin::{HandlerError, ResourceHandler, Scale, TargetRef};

/// The watch caches of Deployments, StatefulSets and Tidals linked to ElasticScalers.
#[derive(Clone)]
pub struct Caches {
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// StatefulSets.
    pub statefulsets: Store<StatefulSet>,
    /// Tidals carrying the `elasticscaler.io/name` label (all namespaces).
    pub tidals: Store<api_types::Tidal>,
}

impl Caches {
    /// Starts the reflectors (apps: all namespaces or `namespace`; Tidals: all); they stop with `token`.
    pub fn start(
        client: kube::Client,
        namespace: Option<&str>,
        token: CancellationToken,
    ) -> Caches {
        let all = watcher::Config::default().any_semantic();
        let linked = all.clone().labels(api_types::keys::labels::ES_NAME);
        Caches {
            tidals: spawn::<api_types::Tidal>(client.clone(), None, linked, token.clone(), |_| {}),
            deployments: spawn::<Deployment>(
                client.clone(),
                namespace,
                all.clone(),
                token.clone(),
                |d| {
                    if let Some(s) = d.spec.as_mut() {
                        s.template = Default::default();
                    }
                },
            ),
            statefulsets: spawn::<StatefulSet>(client, namespace, all, token, |s| {
                if let Some(s) = s.spec.as_mut() {
                    s.template = Default::default();
                    s.volume_claim_templates = None;
                }
            }),
        }
    }

    /// Waits until both caches have listed once.
    pub async fn ready(&self) {
        let _ = self.deployments.wait_until_ready().await;
        let _ = self.statefulsets.wait_until_ready().await;
        let _ = self.tidals.wait_until_ready().await;
    }
}

fn spawn<K>(
    client: kube::Client,
    namespace: Option<&str>,
    config: watcher::Config,
    token: CancellationToken,
    strip: fn(&mut K),
) -> Store<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(move |o: &mut K| {
            o.meta_mut().managed_fields = None;
            strip(o);
        })
        .reflect(writer)
        .applied_objects();
    tokio::spawn(async move {
        tokio::pin!(stream);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                item = stream.next() => match item {
                    None => break,
                    Some(Err(e)) => tracing::warn!(error = %e, kind = std::any::type_name::<K>(), "watch error; retrying"),
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    reader
}

fn selector(ls: Option<&LabelSelector>) -> Option<String> {
    Selector::try_from(ls?.clone()).ok().map(|s| s.to_string())
}

fn cached<K: kube::Resource<DynamicType = ()> + Clone>(
    store: &Store<K>,
    t: &TargetRef,
) -> Result<Arc<K>, HandlerError> {
    store
        .get(&ObjectRef::new(&t.name).within(&t.namespace))
        .ok_or_else(|| HandlerError::NotFound(t.clone()))
}

/// A kind read from a watch cache and written through `/scale`; `read` takes what a [`Scale`] needs.
pub struct CachedHandler<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    generic: Arc<Generic>,
    read: fn(&K) -> Scale,
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> CachedHandler<K> {
    /// Reads from `store` with `read`, writes through `generic`.
    pub fn new(store: Store<K>, generic: Arc<Generic>, read: fn(&K) -> Scale) -> Self {
        Self {
            store,
            generic,
            read,
        }
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static> ResourceHandler
    for CachedHandler<K>
{
    fn get<'a>(&'a self, t: &'a TargetRef) -> BoxFuture<'a, Result<Scale, HandlerError>> {
        Box::pin(async move { cached(&self.store, t).map(|o| (self.read)(&o)) })
    }

    fn set_replicas<'a>(
        &'a self,
        t: &'a TargetRef,
        replicas: i32,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        self.generic.set_replicas(t, replicas)
    }
}

/// A Deployment's replicas, ready replicas and selector.
pub fn deployment_scale(d: &Deployment) -> Scale {
    let spec = d.spec.as_ref();
    Scale {
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        ready: d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        selector: selector(spec.map(|s| &s.selector)),
    }
}

/// A StatefulSet's replicas, ready replicas and selector.
pub fn statefulset_scale(s: &StatefulSet) -> Scale {
    let spec = s.spec.as_ref();
    Scale {
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        ready: s
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        selector: selector(spec.map(|s| &s.selector)),
    }
}
