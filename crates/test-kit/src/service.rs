//! Reaching a Service the way kube-proxy would: read its EndpointSlices, pick a ready endpoint, map the
//! Service port to the endpoint port by name, and send the request there.
//!
//! Network rule: the chosen address must be inside the pod network (10.244.0.0/16), which lives in the
//! cluster's own network namespace; anything else is refused before a connection is attempted.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

/// Whether `ip` is inside the local cluster's pod network.
pub fn in_pod_network(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| a.octets()[..2] == [10, 244])
}

/// Sends HTTP to a Service through one of its ready endpoints.
pub struct ServiceClient {
    client: kube::Client,
    namespace: String,
    service: String,
    http: reqwest::Client,
    next: AtomicUsize,
}

impl ServiceClient {
    /// A client for Service `service` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, service: &str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client");
        Self {
            client,
            namespace: namespace.into(),
            service: service.into(),
            http,
            next: AtomicUsize::new(0),
        }
    }

    /// Ready `ip:port` endpoints for the Service port named `port_name` (or its only port).
    pub async fn ready_endpoints(&self, port_name: Option<&str>) -> Result<Vec<String>> {
        let svc = Api::<Service>::namespaced(self.client.clone(), &self.namespace)
            .get(&self.service)
            .await?;
        let ports = svc.spec.and_then(|s| s.ports).unwrap_or_default();
        let port = match port_name {
            Some(n) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(n))
                .with_context(|| format!("Service has no port {n}"))?,
            None => ports.first().context("Service has no ports")?,
        };
        let slices = Api::<EndpointSlice>::namespaced(self.client.clone(), &self.namespace)
            .list(
                &ListParams::default()
                    .labels(&format!("kubernetes.io/service-name={}", self.service)),
            )
            .await?;
        let mut out = Vec::new();
        for s in slices {
            let Some(ep_port) = s
                .ports
                .unwrap_or_default()
                .into_iter()
                .find(|p| p.name == port.name)
                .and_then(|p| p.port)
            else {
                continue;
            };
            for ep in s.endpoints.into_iter().flatten() {
                if ep.conditions.as_ref().and_then(|c| c.ready) != Some(true) {
                    continue;
                }
                out.extend(ep.addresses.iter().map(|a| format!("{a}:{ep_port}")));
            }
        }
        out.sort();
        Ok(out)
    }

    /// A request to `path` on a ready endpoint (round-robin), checked against the network rule.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder> {
        let eps = self.ready_endpoints(None).await?;
        if eps.is_empty() {
            bail!(
                "Service {}/{} has no ready endpoints",
                self.namespace,
                self.service
            );
        }
        let ep = &eps[self.next.fetch_add(1, Ordering::Relaxed) % eps.len()];
        let ip = ep.rsplit_once(':').map(|(ip, _)| ip).unwrap_or_default();
        if !in_pod_network(ip) {
            bail!("endpoint {ep} is outside the pod network 10.244.0.0/16; refusing to dial it");
        }
        Ok(self.http.request(method, format!("http://{ep}{path}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pod_network_addresses_are_dialled() {
        assert!(in_pod_network("10.244.1.7"));
        assert!(!in_pod_network("10.96.0.1"));
        assert!(!in_pod_network("192.0.2.1"));
        assert!(!in_pod_network("not-an-ip"));
    }
}
