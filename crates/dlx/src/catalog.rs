//! What the DLX knows about the cluster, from two watches: the Services handed to it and the
//! EndpointSlices of their workload Services. Resolution of a request's target and the ready pods of a
//! target are lookups in these indices; nothing here calls the API.
//!
//! - A Service is handed to the DLX when it carries `annotations::SCALER` and
//!   `annotations::WORKLOAD_SERVICE`; other Services are not kept.
//! - The workload Service (label `labels::SHADOW_OF`) selects the workload's own pods whatever the
//!   handed-over Service's selector says; Kubernetes copies its labels onto its EndpointSlices, so the
//!   DLX watches only EndpointSlices carrying `labels::SHADOW_OF` and groups them by
//!   `kubernetes.io/service-name`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use api_types::keys::annotations;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::host::Name;
use crate::target::{Key, Ports};

/// Kubernetes' own label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service handed to the DLX.
#[derive(Clone, Debug, PartialEq)]
pub struct Handed {
    /// Namespace and name.
    pub key: Key,
    /// The ElasticScaler (same namespace) to wake.
    pub scaler: String,
    /// The workload Service whose EndpointSlices list the workload's pods.
    pub workload: String,
    /// The Service's ports.
    pub ports: Vec<SvcPort>,
    /// Its ClusterIPs (a client may use one as Host).
    pub cluster_ips: Vec<IpAddr>,
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcPort {
    /// Its name (`""` when unnamed); EndpointSlice ports carry the same name.
    pub name: String,
    /// The Service port.
    pub port: u16,
    /// A numeric targetPort.
    pub target_port: Option<u16>,
}

impl Handed {
    /// Reads a Service; `None` unless it is handed to the DLX.
    pub fn from_service(svc: &Service) -> Option<Handed> {
        let meta = &svc.metadata;
        let ann = meta.annotations.as_ref()?;
        let scaler = ann.get(annotations::SCALER)?.trim();
        let workload = ann.get(annotations::WORKLOAD_SERVICE)?.trim();
        if scaler.is_empty() || workload.is_empty() {
            return None;
        }
        let spec = svc.spec.as_ref();
        let ports = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .filter_map(|p| {
                Some(SvcPort {
                    name: p.name.clone().unwrap_or_default(),
                    port: u16::try_from(p.port).ok()?,
                    target_port: match &p.target_port {
                        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
                        None => u16::try_from(p.port).ok(),
                        Some(IntOrString::String(_)) => None,
                    },
                })
            })
            .collect();
        let cluster_ips = spec
            .and_then(|s| {
                s.cluster_ips
                    .clone()
                    .or_else(|| s.cluster_ip.clone().map(|ip| vec![ip]))
            })
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        Some(Handed {
            key: Key {
                namespace: meta.namespace.clone()?,
                service: meta.name.clone()?,
            },
            scaler: scaler.to_string(),
            workload: workload.to_string(),
            ports,
            cluster_ips,
        })
    }

    /// The Service port a request means: the port it named (a Service port, or a numeric targetPort
    /// when it came through the Service's own DNAT), else the port the connection arrived on, else the
    /// Service's only port or port 80 (a Host without a port).
    pub fn port_for(&self, named: Option<u16>, local: u16) -> Result<&SvcPort, String> {
        let by = |p: u16| {
            self.ports
                .iter()
                .find(|s| s.port == p)
                .or_else(|| self.ports.iter().find(|s| s.target_port == Some(p)))
        };
        let found = match named {
            Some(p) => by(p),
            None => by(80)
                .or_else(|| (self.ports.len() == 1).then(|| &self.ports[0]))
                .or_else(|| by(local)),
        };
        found.ok_or_else(|| {
            let list: Vec<String> = self.ports.iter().map(|p| p.port.to_string()).collect();
            match named {
                Some(p) => format!(
                    "Service {} has no port {p} (its TCP ports: {})",
                    self.key,
                    list.join(", ")
                ),
                None => format!(
                    "the request names no port and Service {} has several ({}): add the port to Host",
                    self.key,
                    list.join(", ")
                ),
            }
        })
    }
}

/// The ready pods of one EndpointSlice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slice {
    ports: Ports,
    ready: Vec<IpAddr>,
}

impl Slice {
    /// Reads an EndpointSlice: its named ports and its ready (not terminating) addresses. An endpoint
    /// without a `ready` condition counts as ready, as the API documents.
    pub fn from_endpoint_slice(s: &EndpointSlice) -> Slice {
        let ports = s
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .filter_map(|p| {
                Some((
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.port?).ok()?,
                ))
            })
            .collect();
        let ready = s
            .endpoints
            .iter()
            .flatten()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .flat_map(|e| e.addresses.iter())
            .filter_map(|a| a.parse().ok())
            .collect();
        Slice {
            ports: Arc::new(ports),
            ready,
        }
    }
}

/// Why a request's target could not be resolved (the 404 body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Miss(pub String);

#[derive(Debug, Default)]
struct Indices {
    services: HashMap<Key, Arc<Handed>>,
    by_ip: HashMap<IpAddr, Key>,
    by_name: HashMap<String, Vec<String>>,
    by_workload: HashMap<Key, Vec<String>>,
    /// (namespace, workload Service) → slice name → slice.
    slices: HashMap<Key, HashMap<String, Slice>>,
}

/// The indices, shared by the watch tasks and the request handlers.
#[derive(Debug, Default)]
pub struct Catalog {
    inner: RwLock<Indices>,
    /// Bumped by every change of the handed-over Services (not of their pods).
    version: AtomicU64,
}

impl Catalog {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Indices> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Indices> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A number that changes whenever a handed-over Service does: a resolution made under one
    /// version stays right while it holds.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Adds, updates or (when it is no longer handed over) removes Service `key`.
    pub fn put_service(&self, key: Key, handed: Option<Handed>) {
        let mut ix = self.write();
        self.version.fetch_add(1, Ordering::AcqRel);
        ix.remove_service(&key);
        if let Some(h) = handed {
            ix.insert_service(h);
        }
    }

    /// Replaces every Service (after a watch (re)list).
    pub fn reset_services(&self, all: Vec<Handed>) {
        let mut ix = self.write();
        self.version.fetch_add(1, Ordering::AcqRel);
        let slices = std::mem::take(&mut ix.slices);
        *ix = Indices {
            slices,
            ..Indices::default()
        };
        for h in all {
            ix.insert_service(h);
        }
    }

    /// Sets (or with `None` removes) slice `name` of workload Service `workload`.
    pub fn put_slice(&self, workload: Key, name: String, slice: Option<Slice>) {
        let mut ix = self.write();
        let entry = ix.slices.entry(workload.clone()).or_default();
        match slice {
            Some(s) => {
                entry.insert(name, s);
            }
            None => {
                entry.remove(&name);
                if entry.is_empty() {
                    ix.slices.remove(&workload);
                }
            }
        }
    }

    /// Replaces every slice (after a watch (re)list).
    pub fn reset_slices(&self, all: Vec<(Key, String, Slice)>) {
        let mut ix = self.write();
        ix.slices.clear();
        for (workload, name, slice) in all {
            ix.slices.entry(workload).or_default().insert(name, slice);
        }
    }

    /// Service `key`, if handed to the DLX.
    pub fn service(&self, key: &Key) -> Option<Arc<Handed>> {
        self.read().services.get(key).cloned()
    }

    /// Every handed-over Service whose workload Service is `workload`.
    pub fn services_of_workload(&self, workload: &Key) -> Vec<Key> {
        let ix = self.read();
        ix.by_workload
            .get(workload)
            .into_iter()
            .flatten()
            .map(|s| Key {
                namespace: workload.namespace.clone(),
                service: s.clone(),
            })
            .collect()
    }

    /// Ready pods of `h`'s workload, each address once, with its ports.
    pub fn endpoints(&self, h: &Handed) -> Vec<(IpAddr, Ports)> {
        let workload = Key {
            namespace: h.key.namespace.clone(),
            service: h.workload.clone(),
        };
        let ix = self.read();
        let mut out: Vec<(IpAddr, Ports)> = Vec::new();
        for slice in ix
            .slices
            .get(&workload)
            .into_iter()
            .flat_map(|m| m.values())
        {
            for ip in &slice.ready {
                if !out.iter().any(|(i, _)| i == ip) {
                    out.push((*ip, slice.ports.clone()));
                }
            }
        }
        out.sort_by_key(|(ip, _)| *ip);
        out
    }

    /// The handed-over Service `name` means.
    pub fn resolve(&self, name: &Name) -> Result<Arc<Handed>, Miss> {
        let ix = self.read();
        let key = match name {
            Name::Ip { ip, .. } => {
                ix.by_ip.get(ip).cloned().ok_or_else(|| {
                    Miss(format!("no Service handed to the DLX has ClusterIP {ip}"))
                })?
            }
            Name::Service {
                service,
                namespace: Some(ns),
                ..
            } => Key {
                namespace: ns.clone(),
                service: service.clone(),
            },
            Name::Service {
                service,
                namespace: None,
                ..
            } => match ix.by_name.get(service).map(Vec::as_slice) {
                Some([ns]) => Key {
                    namespace: ns.clone(),
                    service: service.clone(),
                },
                Some(many) => {
                    return Err(Miss(format!(
                        "Service {service} is handed to the DLX in several namespaces ({}): name the namespace, e.g. {service}.{}.svc",
                        many.join(", "),
                        many[0]
                    )));
                }
                None => {
                    return Err(Miss(format!(
                        "no Service named {service} is handed to the DLX in any namespace it watches"
                    )));
                }
            },
        };
        ix.services.get(&key).cloned().ok_or_else(|| {
            Miss(format!(
                "Service {key} is not handed to the DLX (it has no {} and {} annotations, or does not exist)",
                annotations::SCALER,
                annotations::WORKLOAD_SERVICE
            ))
        })
    }
}

impl Indices {
    fn insert_service(&mut self, h: Handed) {
        let key = h.key.clone();
        for ip in &h.cluster_ips {
            self.by_ip.insert(*ip, key.clone());
        }
        self.by_name
            .entry(key.service.clone())
            .or_default()
            .push(key.namespace.clone());
        self.by_workload
            .entry(Key {
                namespace: key.namespace.clone(),
                service: h.workload.clone(),
            })
            .or_default()
            .push(key.service.clone());
        self.services.insert(key, Arc::new(h));
    }

    fn remove_service(&mut self, key: &Key) {
        let Some(old) = self.services.remove(key) else {
            return;
        };
        self.by_ip.retain(|_, k| k != key);
        if let Some(nss) = self.by_name.get_mut(&key.service) {
            nss.retain(|n| n != &key.namespace);
            if nss.is_empty() {
                self.by_name.remove(&key.service);
            }
        }
        let wk = Key {
            namespace: key.namespace.clone(),
            service: old.workload.clone(),
        };
        if let Some(svcs) = self.by_workload.get_mut(&wk) {
            svcs.retain(|s| s != &key.service);
            if svcs.is_empty() {
                self.by_workload.remove(&wk);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::parse;
    use serde_json::json;

    fn service(ns: &str, name: &str, handed: bool, ports: serde_json::Value) -> Service {
        let annotations = if handed {
            json!({annotations::SCALER: name, annotations::WORKLOAD_SERVICE: format!("{name}-workload")})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "annotations": annotations},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": ports}
        }))
        .unwrap()
    }

    fn key(ns: &str, name: &str) -> Key {
        Key {
            namespace: ns.into(),
            service: name.into(),
        }
    }

    fn catalog_with(services: &[Service]) -> Catalog {
        let c = Catalog::default();
        c.reset_services(services.iter().filter_map(Handed::from_service).collect());
        c
    }

    #[test]
    fn only_annotated_services_are_handed_over() {
        let ports = json!([{"name": "http", "port": 80, "targetPort": "http"}]);
        assert!(Handed::from_service(&service("a", "plain", false, ports.clone())).is_none());
        let h = Handed::from_service(&service("a", "llm", true, ports)).unwrap();
        assert_eq!(h.scaler, "llm");
        assert_eq!(h.workload, "llm-workload");
        assert_eq!(
            h.ports,
            vec![SvcPort {
                name: "http".into(),
                port: 80,
                target_port: None
            }]
        );
        assert_eq!(h.cluster_ips, vec!["10.96.0.10".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn resolution_by_every_name_form_and_the_reasons_for_a_miss() {
        let ports = json!([{"name": "http", "port": 80, "targetPort": 8000}]);
        let c = catalog_with(&[
            service("a", "llm", true, ports.clone()),
            service("b", "llm", true, ports.clone()),
            service("b", "chat", true, ports.clone()),
        ]);
        let r = |v: &str| c.resolve(&parse(v).unwrap()).map(|h| h.key.clone());
        assert_eq!(r("llm.a.svc.cluster.local"), Ok(key("a", "llm")));
        assert_eq!(r("chat:80"), Ok(key("b", "chat")));
        assert_eq!(r("b/chat"), Ok(key("b", "chat")));
        let Err(Miss(m)) = r("llm") else { panic!() };
        assert!(m.contains("several namespaces (a, b)"), "{m}");
        let Err(Miss(m)) = r("nope.a.svc") else {
            panic!()
        };
        assert!(m.contains("Service a/nope is not handed to the DLX"), "{m}");
        let Err(Miss(m)) = r("nope") else { panic!() };
        assert!(m.contains("no Service named nope"), "{m}");
        // The last Service written holds the (shared, in this fixture) ClusterIP.
        assert_eq!(r("10.96.0.10:80"), Ok(key("b", "chat")));
        c.put_service(key("b", "chat"), None);
        c.put_service(key("b", "llm"), None);
        assert_eq!(r("llm"), Ok(key("a", "llm")));
        assert!(r("10.96.0.10").is_err());
    }

    #[test]
    fn the_port_a_request_means() {
        let ports = json!([
            {"name": "http", "port": 80, "targetPort": 8000},
            {"name": "grpc", "port": 9000, "targetPort": "grpc"}
        ]);
        let h = Handed::from_service(&service("a", "llm", true, ports)).unwrap();
        assert_eq!(h.port_for(None, 1234).unwrap().name, "http");
        assert_eq!(h.port_for(Some(9000), 1234).unwrap().name, "grpc");
        assert_eq!(h.port_for(Some(8000), 1234).unwrap().name, "http");
        assert!(
            h.port_for(Some(81), 1234)
                .unwrap_err()
                .contains("has no port 81 (its TCP ports: 80, 9000)")
        );
        let ports = json!([{"name": "a", "port": 8000}, {"name": "b", "port": 8001}]);
        let h = Handed::from_service(&service("a", "x", true, ports)).unwrap();
        assert_eq!(h.port_for(None, 8001).unwrap().name, "b");
        assert!(
            h.port_for(None, 1)
                .unwrap_err()
                .contains("add the port to Host")
        );
    }

    #[test]
    fn ready_pods_come_from_every_slice_of_the_workload_service() {
        let c = catalog_with(&[service(
            "a",
            "llm",
            true,
            json!([{"name": "http", "port": 80}]),
        )]);
        let slice = |eps: serde_json::Value| -> Slice {
            Slice::from_endpoint_slice(
                &serde_json::from_value(json!({
                    "metadata": {"name": "x"},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
                    "endpoints": eps
                }))
                .unwrap(),
            )
        };
        let wk = key("a", "llm-workload");
        c.put_slice(
            wk.clone(),
            "s1".into(),
            Some(slice(json!([
                {"addresses": ["10.244.1.2"], "conditions": {"ready": true}},
                {"addresses": ["10.244.1.3"], "conditions": {"ready": false, "terminating": true}},
                {"addresses": ["10.244.1.4"]}
            ]))),
        );
        c.put_slice(
            wk.clone(),
            "s2".into(),
            Some(slice(
                json!([{"addresses": ["10.244.1.2"], "conditions": {"ready": true}}]),
            )),
        );
        let h = c.service(&key("a", "llm")).unwrap();
        let eps = c.endpoints(&h);
        let ips: Vec<String> = eps.iter().map(|(ip, _)| ip.to_string()).collect();
        assert_eq!(ips, ["10.244.1.2", "10.244.1.4"]);
        assert_eq!(*eps[0].1, vec![("http".to_string(), 8000)]);
        assert_eq!(c.services_of_workload(&wk), vec![key("a", "llm")]);
        c.put_slice(wk.clone(), "s1".into(), None);
        c.put_slice(wk, "s2".into(), None);
        assert!(c.endpoints(&h).is_empty());
    }
}
