//! The proxy's listeners: HTTP/1.1 (keep-alive, chunked, upgrades) and h2c with prior knowledge on the
//! same ports, every connection watched for graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::headers;
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
        let builders = Arc::new(Builders::new());
        // Each connection holds a receiver: a send asks them all to finish, and `closed` resolves
        // once every one has ended.
        let (finish, connections) = watch::channel(());
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => None,
                c = rx.recv() => c,
            };
            let Some((stream, peer, local)) = next else {
                break;
            };
            let _ = stream.set_nodelay(true);
            let conn = Conn { peer, local };
            let (proxy, builders, finish) = (proxy.clone(), builders.clone(), connections.clone());
            tokio::spawn(serve(stream, conn, proxy, builders, finish));
        }
        drop(connections);
        let _ = finish.send(());
        if tokio::time::timeout(grace, finish.closed()).await.is_err() {
            tracing::warn!("connections still open after the drain timeout; closing them");
        }
    })
}

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a client may take to send the first bytes that tell HTTP/2 from HTTP/1.1 apart.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection settings, shared by every connection.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new() -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new()).keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new());
        Self { h1, h2 }
    }
}

/// Serves one client connection until it ends, or until `finish` asks it to wind down (HTTP/1.1:
/// close after the current response; HTTP/2: GOAWAY).
///
/// The protocol is told apart by peeking at the first bytes, not by reading them: hyper then reads
/// the socket itself from the start. (A read-then-replay wrapper such as hyper-util's `auto` server
/// hands hyper a few bytes first, which makes hyper grow its HTTP/1.1 read buffer from 8 to 16 KiB on
/// the very next read — per connection, and most of what a held request costs.)
async fn serve(
    stream: TcpStream,
    conn: Conn,
    proxy: Arc<Proxy>,
    builders: Arc<Builders>,
    mut finish: watch::Receiver<()>,
) {
    let h2 = tokio::select! {
        _ = finish.changed() => return,
        sniffed = tokio::time::timeout(SNIFF_TIMEOUT, is_h2(&stream)) => match sniffed {
            Ok(Ok(Some(h2))) => h2,
            // Closed, broken or silent before a request: nothing to serve.
            Ok(Ok(None) | Err(_)) | Err(_) => return,
        },
    };
    let service = service_fn(move |mut req| {
        // Runs as hyper hands the request over, before its next read (see `headers::detach`).
        headers::detach(&mut req);
        let handled = proxy.clone().handle(req, conn);
        async move { Ok::<_, Infallible>(handled.await) }
    });
    let io = TokioIo::new(stream);
    let ended = if h2 {
        // Boxed: HTTP/2's connection state is several times HTTP/1.1's, and this task's size is the
        // larger of the two — paid by every HTTP/1.1 connection (one per held request) otherwise.
        let c = Box::pin(builders.h2.serve_connection(io, service));
        until_done(c, finish, |c| c.as_mut().graceful_shutdown()).await
    } else {
        let c = std::pin::pin!(builders.h1.serve_connection(io, service).with_upgrades());
        until_done(c, finish, |c| c.as_mut().graceful_shutdown()).await
    };
    if let Err(e) = ended {
        tracing::debug!(peer = %conn.peer, error = %e, "client connection ended");
    }
}

/// Whether the connection starts with the HTTP/2 preface; `None` when it closed before sending.
async fn is_h2(stream: &TcpStream) -> std::io::Result<Option<bool>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(false));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(true));
        }
        // Part of the preface so far (it came in pieces): the socket stays readable while the bytes
        // are unread, so wait a moment instead of for readiness.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Drives `conn` to its end; when `finish` fires first, starts its graceful shutdown and goes on.
/// (`conn` is pinned where it was made: moving it in here would give the task two slots of its size.)
async fn until_done<C>(
    mut conn: Pin<C>,
    mut finish: watch::Receiver<()>,
    shutdown: impl FnOnce(&mut Pin<C>),
) -> Result<(), hyper::Error>
where
    C: std::ops::DerefMut<Target: Future<Output = Result<(), hyper::Error>>>,
{
    tokio::select! {
        done = conn.as_mut() => return done,
        _ = finish.changed() => shutdown(&mut conn),
    }
    conn.await
}
