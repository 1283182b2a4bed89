//! Helpers for e2e tests against the local cluster (`cargo xtask e2e` provides the environment).
//!
//! - [`Env`]: a client from `KUBECONFIG`, plus the `kubectl` and `helm` binaries the cluster was built with.
//! - [`TestNamespace`]: a fresh namespace per test, deleted when dropped (also on panic).
//! - [`wait_until`]: poll with a timeout; the failure says what was awaited and the last state seen.
//! - [`ServiceClient`]: reaches a Service the way kube-proxy would, by picking a ready endpoint from its
//!   EndpointSlices; it only ever dials addresses inside the pod network.
//! - [`Kubectl`]: runs the real `kubectl` and keeps stdout, stderr and the exit status.
//! - [`MetricsAdapter`]: the three Kubernetes metrics APIs served through the aggregation layer, with values
//!   a test sets.
//! - [`Process`]: a component binary (from `PDO_BIN_DIR`) run as a local process, logs kept, stopped on drop.

mod kubectl;
mod metrics_adapter;
mod namespace;
mod process;
mod service;
mod wait;

use std::path::PathBuf;

pub use kubectl::{ClusterRbacGuard, Kubectl, KubectlOutput};
pub use metrics_adapter::{Answer, MetricsAdapter, Seen};
pub use namespace::TestNamespace;
pub use process::{Process, bin_path};
pub use service::{ServiceClient, in_pod_network};
pub use wait::wait_until;

/// The test environment provided by `cargo xtask e2e`.
#[derive(Clone)]
pub struct Env {
    /// A client for the local cluster.
    pub client: kube::Client,
    /// The `kubectl` binary matching the cluster.
    pub kubectl: Kubectl,
    /// The `helm` binary.
    pub helm: PathBuf,
    /// Prometheus of the local cluster, e.g. `http://127.0.0.1:PORT`.
    pub prometheus_url: String,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: e2e tests run against the local cluster; use `cargo xtask e2e` (it brings the cluster up and sets {name})")
    })
}

impl Env {
    /// Connects to the local cluster named by the environment; panics with instructions when it is absent.
    pub async fn get() -> Env {
        let kubeconfig = PathBuf::from(required_env("KUBECONFIG"));
        let client = kube::Client::try_default().await.unwrap_or_else(|e| {
            panic!(
                "building a client from KUBECONFIG={}: {e}",
                kubeconfig.display()
            )
        });
        Env {
            client,
            kubectl: Kubectl::new(PathBuf::from(required_env("PDO_KUBECTL")), kubeconfig),
            helm: PathBuf::from(required_env("PDO_HELM")),
            prometheus_url: required_env("PDO_PROMETHEUS_URL"),
        }
    }

    /// A fresh namespace named after `test` with a random suffix.
    pub async fn namespace(&self, test: &str) -> TestNamespace {
        TestNamespace::create(self, test).await
    }
}

/// The workspace root, for reading `examples/` and `deploy/`.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
