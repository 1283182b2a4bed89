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
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Handed;
use crate::prefixed::Prefixed;
use crate::proxy::{Conn, Early, Placed, Proxy};
use crate::{fast, h1, headers};

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
    h1_once: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new() -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new()).keep_alive(true);
        let mut h1_once = h1.clone();
        h1_once.keep_alive(false);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new());
        Self { h1, h1_once, h2 }
    }
}

/// Bytes of an HTTP/1.1 request head the DLX looks at before hyper reads the connection.
const EARLY_HEAD_BYTES: usize = 4096;

/// Holds the connection's first request before hyper reads it, when it is for a handed-over Service
/// and its head arrived whole in the peeked `bytes` (else it is left to hyper as is). While held, the
/// request is only bytes in the kernel's socket buffer plus this task: no hyper connection, no read or
/// write buffer — most of what a held HTTP/1.1 request would cost otherwise (see docs/dlx.md,
/// Measured). A client that leaves is noticed from the socket's read hang-up. `None`: the client left.
async fn hold_early(
    stream: TcpStream,
    bytes: Vec<u8>,
    conn: Conn,
    proxy: &Arc<Proxy>,
) -> Option<(TcpStream, Option<Placed>)> {
    // Resolved here, and only the Service kept: what lives across the wait is this task's size.
    let handed = early_target(&bytes, proxy, conn.local.port());
    drop(bytes);
    let Some(handed) = handed else {
        return Some((stream, None));
    };
    let mut watched = false;
    let gone = async {
        watched = true;
        client_gone(&stream).await
    };
    match proxy.hold_early(handed, gone).await {
        Early::Gone => None,
        Early::Placed(placed) if watched => {
            // Watching for the hang-up consumed the socket's readiness while its bytes stay unread;
            // registering it anew reports them to hyper.
            let stream = stream.into_std().and_then(TcpStream::from_std).ok()?;
            Some((stream, Some(placed)))
        }
        // Placed at once: never held, the readiness is untouched.
        Early::Placed(placed) => Some((stream, Some(placed))),
    }
}

/// The handed-over Service the request whose head starts `bytes` is for; `None` when the head is not
/// there whole (or not HTTP/1.x) or names no such Service (hyper then answers it, 404 included).
fn early_target(bytes: &[u8], proxy: &Proxy, local_port: u16) -> Option<Arc<Handed>> {
    let mut headers = [httparse::EMPTY_HEADER; h1::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !req.parse(bytes).ok()?.is_complete() {
        return None;
    }
    let names = fast::names(&req, proxy);
    proxy.resolve_named(&names, local_port).ok().map(|(h, _)| h)
}

/// The bytes at the start of the connection, peeked (up to [`EARLY_HEAD_BYTES`]); `None` when the
/// client closed or failed.
async fn peek_head(stream: &TcpStream) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; EARLY_HEAD_BYTES];
    let n = stream.peek(&mut buf).await.ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Resolves when the client has closed its side of the connection (or the socket failed), without
/// reading: the request's bytes stay in the socket for hyper.
async fn client_gone(stream: &TcpStream) -> String {
    loop {
        match stream.ready(Interest::READABLE).await {
            Ok(r) if r.is_read_closed() => {
                return "the client closed the connection while held".into();
            }
            // More bytes (a body, a pipelined request): leave them, wait for the next change.
            Ok(_) => {
                let _ = stream.try_io(Interest::READABLE, || {
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
            }
            Err(e) => return format!("the client's connection failed while held: {e}"),
        }
    }
}

/// Serves one client connection until it ends, or until `finish` asks it to wind down (HTTP/1.1:
/// close after the current response; HTTP/2: GOAWAY).
///
/// The protocol is told apart by peeking at the first bytes, not by reading them: hyper then reads
/// the socket itself from the start. (A read-then-replay wrapper such as hyper-util's `auto` server
/// hands hyper a few bytes first, which makes hyper grow its HTTP/1.1 read buffer from 8 to 16 KiB on
/// the very next read — per connection, and most of what a held request costs.)
///
/// An HTTP/1.1 connection whose first request can go to a pod at once starts on the [fast
/// path](fast), and moves to hyper for good when a request needs it; one whose first request must be
/// held is held before hyper reads it ([`hold_early`]).
async fn serve(
    stream: TcpStream,
    conn: Conn,
    proxy: Arc<Proxy>,
    builders: Arc<Builders>,
    mut finish: watch::Receiver<()>,
) {
    let _open = proxy.opened();
    let h2 = tokio::select! {
        _ = finish.changed() => return,
        sniffed = tokio::time::timeout(SNIFF_TIMEOUT, is_h2(&stream)) => match sniffed {
            Ok(Ok(Some(h2))) => h2,
            // Closed, broken or silent before a request: nothing to serve.
            Ok(Ok(None) | Err(_)) | Err(_) => return,
        },
    };
    // Every hyper connection is boxed: this task's size is that of its largest state, and a held
    // request's task waits in `hold_early`, before any of them exists.
    if h2 {
        let io = TokioIo::new(stream);
        return Box::pin(serve_hyper(io, true, None, conn, proxy, &builders, finish)).await;
    }
    let Some(bytes) = peek_head(&stream).await else {
        return;
    };
    if fast::takes(&bytes, &proxy, conn.local.port()) {
        drop(bytes);
        let fast = Box::pin(fast::serve(stream, conn, &proxy, &mut finish)).await;
        if let fast::End::Hyper(stream, read) = fast {
            let io = TokioIo::new(Prefixed::new(stream, read));
            Box::pin(serve_hyper(io, false, None, conn, proxy, &builders, finish)).await;
        }
        return;
    }
    let Some((stream, early)) = hold_early(stream, bytes, conn, &proxy).await else {
        return;
    };
    let io = TokioIo::new(stream);
    Box::pin(serve_hyper(
        io, false, early, conn, proxy, &builders, finish,
    ))
    .await;
}

/// Serves the rest of a connection with hyper: HTTP/2 (`h2`) or HTTP/1.1, the first request with the
/// place it got while held (`early`).
async fn serve_hyper<I>(
    io: TokioIo<I>,
    h2: bool,
    early: Option<Placed>,
    conn: Conn,
    proxy: Arc<Proxy>,
    builders: &Builders,
    finish: watch::Receiver<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Whether the DLX is already winding down: a request held early must still be read and answered.
    let draining = finish.has_changed().unwrap_or(true);
    let early = std::sync::Mutex::new(early);
    let service = service_fn(move |mut req| {
        // Runs as hyper hands the request over, before its next read (see `headers::detach`).
        headers::detach(&mut req);
        let early = early.lock().unwrap_or_else(|e| e.into_inner()).take();
        let handled = proxy.clone().handle(req, conn, early);
        async move { Ok::<_, Infallible>(handled.await) }
    });
    let ended = if h2 {
        // Boxed: HTTP/2's connection state is several times HTTP/1.1's, and this future's size is
        // the larger of the two.
        let c = Box::pin(builders.h2.serve_connection(io, service));
        until_done(c, finish, |c| c.as_mut().graceful_shutdown()).await
    } else if draining {
        // One request, then close (a graceful shutdown now would close before reading it).
        builders
            .h1_once
            .serve_connection(io, service)
            .with_upgrades()
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task is a `serve` future, and a held HTTP/1.1 request costs little more than
    /// its task: the future must stay small however many paths it grows (the fast path and a hyper
    /// connection after it are boxed for this).
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let metrics = crate::metrics::Metrics::register(&mut Default::default());
        let limits = crate::target::Limits {
            pod_concurrency: 1,
            max_held_per_target: 1,
            max_held: 1,
            wake_timeout: Duration::from_secs(1),
        };
        let proxy = Proxy::new(
            Default::default(),
            crate::target::Global::new(limits),
            crate::pool::Pool::new(Duration::from_secs(1), Duration::from_secs(1)),
            Arc::new(|_, _, _| {}),
            metrics,
            crate::proxy::Config {
                target_header: None,
                retry_after: Duration::from_secs(1),
                hold_body_bytes: 0,
                probe_path: None,
                attempts: 1,
            },
        );
        let (_finish, finish) = watch::channel(());
        let conn = Conn { peer, local: addr };
        let task = serve(stream, conn, proxy, Arc::new(Builders::new()), finish);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "{size} bytes");
    }
}
