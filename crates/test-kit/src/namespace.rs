//! A fresh namespace per test. Creation waits for the `default` ServiceAccount (created by
//! kube-controller-manager), since pods cannot be admitted before it exists. Dropping deletes the namespace
//! (without waiting for its contents to go), on success and on panic alike.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use crate::{Env, wait_until};

/// A namespace that is deleted when dropped.
pub struct TestNamespace {
    /// The namespace name.
    pub name: String,
    kubectl: crate::Kubectl,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestNamespace {
    pub(crate) async fn create(env: &Env, test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut prefix: String = test
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        prefix.truncate(40);
        let name = format!(
            "e2e-{}-{:05x}{n}",
            prefix.trim_matches('-'),
            nanos & 0xfffff
        );
        let api: Api<Namespace> = Api::all(env.client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"pd-orchestrator.io/e2e": "true"}}
        }))
        .expect("namespace object");
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &name);
        wait_until(
            &format!("ServiceAccount default in {name}"),
            Duration::from_secs(60),
            || async { Ok::<_, kube::Error>(sas.get_opt("default").await?.map(|_| ())) },
        )
        .await;
        Self {
            name,
            kubectl: env.kubectl.clone(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await, and a `#[tokio::test]` runtime stops right after the test returns, so a spawned
        // task might never run: delete with a blocking kubectl call instead (about 0.1 s).
        let ns = format!("namespace/{}", self.name);
        if let Err(e) =
            self.kubectl
                .run_blocking(&["delete", &ns, "--wait=false", "--ignore-not-found"])
        {
            eprintln!("deleting {ns}: {e}");
        }
    }
}
