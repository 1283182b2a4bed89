//! The proxy's listeners: HTTP/1.1 (keep-alive, chunked, upgrades) and h2c with prior knowledge on the
//! same ports, every connection watched for graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::headers;
use crate::proxy::{Conn, Early, Placed, Proxy};

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
/// and its head arrived whole (else it is left to hyper as is). While held, the request is only bytes
/// in the kernel's socket buffer plus this task: no hyper connection, no read or write buffer — most
/// of what a held HTTP/1.1 request would cost otherwise (see docs/dlx.md, Measured). A client that
/// leaves is noticed from the socket's read hang-up. `None`: the client left.
async fn hold_early(
    stream: TcpStream,
    conn: Conn,
    proxy: &Arc<Proxy>,
) -> Option<(TcpStream, Option<Placed>)> {
    let Some(head) = peek_head(&stream).await else {
        return Some((stream, None));
    };
    let mut watched = false;
    let gone = async {
        watched = true;
        client_gone(&stream).await
    };
    let early = proxy.hold_early(&head, conn.local.port(), gone).await;
    drop(head);
    match early {
        Early::NotHeld => Some((stream, None)),
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

/// The request head at the start of the connection, parsed from a peek; `None` when it is not there
/// whole yet (or not HTTP/1.x).
async fn peek_head(stream: &TcpStream) -> Option<Request<()>> {
    let mut buf = vec![0u8; EARLY_HEAD_BYTES];
    let n = stream.peek(&mut buf).await.ok()?;
    parse_head(&buf[..n])
}

fn parse_head(bytes: &[u8]) -> Option<Request<()>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    if !parsed.parse(bytes).ok()?.is_complete() {
        return None;
    }
    let mut req = Request::new(());
    *req.method_mut() = http::Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    *req.uri_mut() = parsed.path?.parse().ok()?;
    for h in parsed.headers.iter() {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = http::HeaderValue::from_bytes(h.value).ok()?;
        req.headers_mut().append(name, value);
    }
    Some(req)
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
    let (stream, early) = if h2 {
        (stream, None)
    } else {
        match hold_early(stream, conn, &proxy).await {
            Some(held) => held,
            None => return,
        }
    };
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
    let io = TokioIo::new(stream);
    let ended = if h2 {
        // Boxed: HTTP/2's connection state is several times HTTP/1.1's, and this task's size is the
        // larger of the two — paid by every HTTP/1.1 connection (one per held request) otherwise.
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

    #[test]
    fn parse_head_needs_a_whole_head() {
        let head = b"GET /v1/models?x=1 HTTP/1.1\r\nHost: llm.ns\r\nX-A: 1\r\nX-A: 2\r\n\r\nbody";
        let req = parse_head(head).expect("a whole head");
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(req.uri(), "/v1/models?x=1");
        assert_eq!(req.headers()["host"], "llm.ns");
        assert_eq!(req.headers().get_all("x-a").iter().count(), 2);
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: llm").is_none());
        assert!(parse_head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").is_none());
    }
}
