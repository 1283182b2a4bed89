//! The two watches that feed the [`Catalog`] and wake the targets whose pods changed: Services (kept
//! only when handed to the DLX) and EndpointSlices carrying `labels::SHADOW_OF` (those of workload
//! Services). A (re)list replaces the whole index at once when it completes. The DLX is ready once both
//! watches have listed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use api_types::keys::labels;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use pdo_runtime::Readiness;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Handed, SERVICE_NAME_LABEL, Slice};
use crate::proxy::Proxy;
use crate::target::Key;

/// Counts the watches that have listed; sets `ready` when both have.
#[derive(Clone)]
pub struct Synced {
    ready: Readiness,
    done: Arc<AtomicUsize>,
}

impl Synced {
    /// Tracks the two watches for `ready`.
    pub fn new(ready: Readiness) -> Self {
        Self {
            ready,
            done: Arc::default(),
        }
    }

    fn listed(&self, first: &mut bool) {
        if std::mem::take(first) && self.done.fetch_add(1, Ordering::AcqRel) + 1 == 2 {
            self.ready.set(true);
            tracing::info!("Services and EndpointSlices listed; ready");
        }
    }
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn key_of<K: ResourceExt>(o: &K) -> Key {
    Key {
        namespace: o.namespace().unwrap_or_default(),
        service: o.name_any(),
    }
}

/// Watches Services until `stop`.
pub async fn services(
    client: kube::Client,
    namespace: Option<String>,
    proxy: Arc<Proxy>,
    synced: Synced,
    stop: CancellationToken,
) {
    let api: Api<Service> = api(&client, namespace.as_deref());
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut staging = Vec::new();
    let mut first = true;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        match event {
            Ok(Event::Init) => staging.clear(),
            Ok(Event::InitApply(s)) => staging.extend(Handed::from_service(&s)),
            Ok(Event::InitDone) => {
                proxy.catalog.reset_services(std::mem::take(&mut staging));
                proxy.all_changed();
                synced.listed(&mut first);
            }
            Ok(Event::Apply(s)) => {
                let key = key_of(&s);
                proxy
                    .catalog
                    .put_service(key.clone(), Handed::from_service(&s));
                proxy.service_changed(&key);
            }
            Ok(Event::Delete(s)) => {
                let key = key_of(&s);
                proxy.catalog.put_service(key.clone(), None);
                proxy.service_changed(&key);
            }
            Err(e) => tracing::warn!(error = %e, "watching Services failed; retrying"),
        }
    }
}

/// The workload Service an EndpointSlice belongs to.
fn workload_of(s: &EndpointSlice) -> Option<Key> {
    Some(Key {
        namespace: s.namespace()?,
        service: s.labels().get(SERVICE_NAME_LABEL)?.clone(),
    })
}

/// Watches the EndpointSlices of workload Services until `stop`.
pub async fn endpoint_slices(
    client: kube::Client,
    namespace: Option<String>,
    proxy: Arc<Proxy>,
    synced: Synced,
    stop: CancellationToken,
) {
    let api: Api<EndpointSlice> = api(&client, namespace.as_deref());
    let config = watcher::Config::default().labels(labels::SHADOW_OF);
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut staging = Vec::new();
    let mut first = true;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        match event {
            Ok(Event::Init) => staging.clear(),
            Ok(Event::InitApply(s)) => {
                if let Some(w) = workload_of(&s) {
                    staging.push((w, s.name_any(), Slice::from_endpoint_slice(&s)));
                }
            }
            Ok(Event::InitDone) => {
                proxy.catalog.reset_slices(std::mem::take(&mut staging));
                proxy.all_changed();
                synced.listed(&mut first);
            }
            Ok(Event::Apply(s)) => {
                if let Some(w) = workload_of(&s) {
                    let slice = Slice::from_endpoint_slice(&s);
                    proxy
                        .catalog
                        .put_slice(w.clone(), s.name_any(), Some(slice));
                    proxy.workload_changed(&w);
                }
            }
            Ok(Event::Delete(s)) => {
                if let Some(w) = workload_of(&s) {
                    proxy.catalog.put_slice(w.clone(), s.name_any(), None);
                    proxy.workload_changed(&w);
                }
            }
            Err(e) => tracing::warn!(error = %e, "watching EndpointSlices failed; retrying"),
        }
    }
}
