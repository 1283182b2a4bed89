//! API access for the programs sim-kubelet runs in pods: what the kubelet's projected ServiceAccount token
//! and the `kubernetes` Service give a real pod.
//!
//! - [`ApiAccess::from_kubeconfig`] reads sim-kubelet's own kubeconfig once: the API server's CA, and the
//!   address pods reach it at — the `--apiserver-forward` address when set (the API server's advertise
//!   address, where [`forward`] relays to the real listener on loopback), else the server URL as is.
//! - [`pod_kubeconfig`] asks the TokenRequest API for a token of the pod's ServiceAccount, bound to the pod
//!   (it stops working when the pod is deleted), and writes it with a kubeconfig that names the pod's
//!   namespace into the pod's directory. The program finds it through `KUBECONFIG`, so it runs with exactly
//!   the permissions its RBAC grants, as in a real cluster.
//! - [`forward`] is a plain TCP relay (TLS passes through untouched) from the pod network to the API server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::podspec::service_account;

/// Lifetime asked for a pod's token. A pod that outlives it gets a new token when its program restarts.
pub const TOKEN_SECONDS: i64 = 24 * 3600;

/// Environment variable carrying the pod's UID into every program sim-kubelet starts (how
/// [`crate::leftovers`] recognises them after a crash).
pub const POD_UID_ENV: &str = "SIM_KUBELET_POD_UID";

/// How a pod's program reaches the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiAccess {
    /// `https://host:port` as seen from the pod network.
    pub server: String,
    /// The CA: `certificate-authority-data` (base64 PEM) or a `certificate-authority` file.
    pub ca: Ca,
    /// `host:port` of the real API server (the relay's upstream).
    pub upstream: String,
}

/// The API server's CA, as the kubeconfig gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ca {
    /// Base64-encoded PEM.
    Data(String),
    /// A PEM file.
    File(PathBuf),
    /// None (the system roots).
    None,
}

impl ApiAccess {
    /// From the current context of `kubeconfig`; `forward` replaces the server's address for pods.
    pub fn from_kubeconfig(
        kubeconfig: &Kubeconfig,
        forward: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let ctx_name = kubeconfig
            .current_context
            .as_deref()
            .context("the kubeconfig has no current-context")?;
        let ctx = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .and_then(|c| c.context.as_ref())
            .with_context(|| format!("context {ctx_name:?} is not in the kubeconfig"))?;
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.as_ref())
            .with_context(|| format!("cluster {:?} is not in the kubeconfig", ctx.cluster))?;
        let server = cluster
            .server
            .as_deref()
            .context("the kubeconfig's cluster has no server")?;
        let url: http::Uri = server
            .parse()
            .with_context(|| format!("the kubeconfig's server {server:?} is not a URL"))?;
        let host = url.host().context("the kubeconfig's server has no host")?;
        let upstream = format!("{host}:{}", url.port_u16().unwrap_or(443));
        let ca = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(d), _) => Ca::Data(d.clone()),
            (None, Some(f)) => Ca::File(PathBuf::from(f)),
            (None, None) => Ca::None,
        };
        Ok(Self {
            server: match forward {
                Some(a) => format!("https://{a}"),
                None => server.to_owned(),
            },
            ca,
            upstream,
        })
    }

    /// The kubeconfig of a pod: this server and CA, the token in `token_file`, namespace `namespace`.
    pub fn kubeconfig(&self, token_file: &Path, namespace: &str) -> serde_json::Value {
        let mut cluster = serde_json::json!({ "server": self.server });
        match &self.ca {
            Ca::Data(d) => cluster["certificate-authority-data"] = d.clone().into(),
            Ca::File(f) => cluster["certificate-authority"] = f.display().to_string().into(),
            Ca::None => {}
        }
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "serviceaccount", "user": {"tokenFile": token_file.display().to_string()}}],
            "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": "serviceaccount", "namespace": namespace}}],
            "current-context": "pod",
        })
    }
}

/// The TokenRequest for `pod`'s ServiceAccount, bound to the pod.
pub fn token_request(pod: &Pod) -> TokenRequest {
    TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..TokenRequest::default()
    }
}

/// Requests a token for `pod` and writes `token` and `kubeconfig` into `dir`; returns the kubeconfig's path.
pub async fn pod_kubeconfig(
    client: &kube::Client,
    access: &ApiAccess,
    pod: &Pod,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let sa = service_account(pod);
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let answer: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &token_request(pod))
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {ns}/{sa}"))?;
    let token = answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .with_context(|| format!("the TokenRequest for {ns}/{sa} returned no token"))?;
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let token_file = dir.join("token");
    write_private(&token_file, token.as_bytes()).await?;
    let kubeconfig = dir.join("kubeconfig");
    let text = serde_json::to_vec_pretty(&access.kubeconfig(&token_file, ns))?;
    write_private(&kubeconfig, &text).await?;
    Ok(kubeconfig)
}

async fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = path.to_owned();
    let data = data.to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&data)?;
        std::fs::rename(&tmp, &path)
    })
    .await?
    .with_context(|| "writing a pod credential file".to_string())
}

/// Binds `listen` and relays every connection to `upstream` until `shutdown`.
pub async fn forward(
    listen: SocketAddr,
    upstream: String,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "binding the API server relay on {listen} (--apiserver-forward): is the pod network up?"
        )
    })?;
    tracing::info!(%listen, %upstream, "relaying the pod network to the API server");
    Ok(tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = listener.accept() => c,
            };
            let (mut down, peer) = match conn {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting on the API server relay");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let upstream = upstream.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut up = match TcpStream::connect(&upstream).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, %upstream, error = %e, "connecting the relay to the API server");
                        return;
                    }
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                }
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(cluster: serde_json::Value) -> Kubeconfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x"
        }))
        .unwrap()
    }

    #[test]
    fn access_from_kubeconfig() {
        let k = kubeconfig(
            serde_json::json!({"server": "https://127.0.0.1:6443", "certificate-authority": "/pki/ca.crt"}),
        );
        let a = ApiAccess::from_kubeconfig(&k, Some("10.244.0.1:6443".parse().unwrap())).unwrap();
        assert_eq!(a.server, "https://10.244.0.1:6443");
        assert_eq!(a.upstream, "127.0.0.1:6443");
        assert_eq!(a.ca, Ca::File("/pki/ca.crt".into()));
        let cfg = a.kubeconfig(Path::new("/p/token"), "ns");
        assert_eq!(
            cfg["clusters"][0]["cluster"]["certificate-authority"],
            "/pki/ca.crt"
        );
        assert_eq!(cfg["users"][0]["user"]["tokenFile"], "/p/token");
        assert_eq!(cfg["contexts"][0]["context"]["namespace"], "ns");
        // The written kubeconfig is one kube-rs reads.
        let parsed: Kubeconfig = serde_json::from_value(cfg).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("pod"));

        let k = kubeconfig(
            serde_json::json!({"server": "https://api.example:8443", "certificate-authority-data": "QUJD"}),
        );
        let a = ApiAccess::from_kubeconfig(&k, None).unwrap();
        assert_eq!(
            (a.server.as_str(), a.upstream.as_str()),
            ("https://api.example:8443", "api.example:8443")
        );
        assert_eq!(
            a.kubeconfig(Path::new("/t"), "d")["clusters"][0]["cluster"]["certificate-authority-data"],
            "QUJD"
        );

        let err = ApiAccess::from_kubeconfig(&kubeconfig(serde_json::json!({})), None).unwrap_err();
        assert!(err.to_string().contains("no server"), "{err}");
    }

    #[test]
    fn token_is_bound_to_the_pod() {
        let pod: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p", "namespace": "n", "uid": "u-1"}}),
        )
        .unwrap();
        let tr = token_request(&pod);
        let spec = tr.spec.unwrap();
        let b = spec.bound_object_ref.unwrap();
        assert_eq!(
            (b.kind.as_deref(), b.name.as_deref(), b.uid.as_deref()),
            (Some("Pod"), Some("p"), Some("u-1"))
        );
        assert_eq!(spec.expiration_seconds, Some(TOKEN_SECONDS));
    }

    #[tokio::test]
    async fn relays_bytes_both_ways() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = free.local_addr().unwrap();
        drop(free);
        let stop = CancellationToken::new();
        let task = forward(listen, upstream, stop.clone()).await.unwrap();
        let mut c = TcpStream::connect(listen).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        stop.cancel();
        task.await.unwrap();
    }
}
