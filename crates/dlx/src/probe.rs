//! The optional readiness probe (`--probe-path`): a pod listed ready in an EndpointSlice gets requests
//! only once `GET <path>` on it answers 2xx, for workloads whose Kubernetes readiness probe says less
//! than "the model is loaded". Probed every 200 ms while the pod is listed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::Target;

const PERIOD: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_secs(1);

/// Probes pod `ip` of `target` on its port `port_name` until it passes or leaves the target.
pub fn spawn(target: Arc<Target>, ip: IpAddr, port_name: String, path: String) {
    tokio::spawn(async move {
        loop {
            let Some(port) = target.pod_port(ip, &port_name) else {
                return;
            };
            let addr = SocketAddr::new(ip, port);
            match tokio::time::timeout(TIMEOUT, get(addr, &path)).await {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    tracing::debug!(target = %target.key, pod = %addr, "probe passed");
                    target.verified(ip);
                    return;
                }
                Ok(Ok(status)) => {
                    tracing::debug!(target = %target.key, pod = %addr, status, "probe not passed yet")
                }
                Ok(Err(e)) => {
                    tracing::debug!(target = %target.key, pod = %addr, error = %e, "probe failed")
                }
                Err(_) => tracing::debug!(target = %target.key, pod = %addr, "probe timed out"),
            }
            tokio::time::sleep(PERIOD).await;
        }
    });
}

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(req).await?.status().as_u16())
}
