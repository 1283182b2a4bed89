//! The proxy's listeners: HTTP/1.1 (keep-alive, chunked, upgrades) and h2c with prior knowledge on the
//! same ports, every connection watched for graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::proxy::{Conn, Proxy};

/// Binds every address (port 0 picks a free port); the error names the flag.
pub async fn bind(addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding the proxy to {addr} (--proxy-addr): {e}"))?;
        out.push(l);
    }
    Ok(out)
}

/// Serves `listeners` until `stop`; then stops accepting, asks every connection to finish (HTTP/1.1:
/// close after the current response; HTTP/2: GOAWAY) and ends when all have, or after `grace`.
pub fn spawn(
    listeners: Vec<TcpListener>,
    proxy: Arc<Proxy>,
    stop: CancellationToken,
    grace: Duration,
) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<(TcpStream, SocketAddr, SocketAddr)>(1024);
    for listener in listeners {
        let (tx, stop) = (tx.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(local) = listener.local_addr() else {
                return;
            };
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        if tx.send((stream, peer, local)).await.is_err() {
                            return;
                        }
                    }
                    // Out of file descriptors or the like: back off instead of spinning.
                    Err(e) => {
                        tracing::warn!(%local, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(tx);
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => None,
                c = rx.recv() => c,
            };
            let Some((stream, peer, local)) = next else {
                break;
            };
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            let conn = Conn { peer, local };
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req, conn).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).keep_alive(true);
            builder.http2().timer(TokioTimer::new());
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let watched = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = watched.await {
                    tracing::debug!(%peer, error = %e, "client connection ended");
                }
            });
        }
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain timeout; closing them");
        }
    })
}
