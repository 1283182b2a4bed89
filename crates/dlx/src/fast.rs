//! The HTTP/1.1 fast path: a request whose target has a free place at a ready pod now goes there as
//! bytes, without hyper on either side.
//!
//! Per request: read the head → [classify](h1::classify) it → resolve the target and take a place
//! without queueing ([`Target::try_admit`]) → a pooled plain TCP connection to the pod → write the
//! rewritten head with the body → read the pod's head → write it back → relay the body as framed,
//! each read written at once (SSE tokens are never held back) → pool the pod connection → next.
//!
//! Whatever the fast path does not carry — a request that must be held, an upgrade, a chunked, large
//! or expected body, HTTP/1.0, a head it cannot parse, a pod it cannot connect to — leaves it with
//! the bytes read so far ([`End::Hyper`]) and hyper serves the rest of the connection the general
//! way. Why it exists: hyper parsing and re-encoding each head on both sides was two thirds of the
//! DLX's user-space CPU per request (docs/dlx.md, "Why these choices").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::catalog::SvcPort;
use crate::h1::{self, Chunked, Framing};
use crate::proxy::{Conn, Proxy};
use crate::target::{Permit, Target};

/// How a connection left the fast path.
pub enum End {
    /// It ended (the client left, or an exchange ended with `Connection: close`).
    Closed,
    /// The next request goes the general way: hyper serves the connection from here, starting with
    /// these bytes, already read from it.
    Hyper(TcpStream, Bytes),
}

/// Bytes read from a socket at a time.
const READ_BUF: usize = 8 * 1024;

/// The largest head the fast path reads; a larger one goes to hyper, which answers it.
const MAX_HEAD: usize = 64 * 1024;

/// How long a client may pause while sending a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a pod that refused a connection is not chosen again.
const AVOID: Duration = Duration::from_secs(2);

/// Whether the request whose whole head is `bytes` (peeked, still unread) takes the fast path now.
pub fn takes(bytes: &[u8], proxy: &Proxy, local_port: u16) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; h1::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(bytes), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    if h1::classify(&req).is_none() {
        return false;
    }
    proxy
        .fast_target(&names(&req, proxy), local_port)
        .is_some_and(|(target, _)| target.has_room(Instant::now()))
}

/// The names of `req`'s target.
pub(crate) fn names<'a>(req: &httparse::Request<'_, 'a>, proxy: &Proxy) -> h1::Names<'a> {
    let target = proxy.config().target_header.as_ref().map(|n| n.as_str());
    h1::names(req.headers, target)
}

/// Serves `client` on the fast path until it closes or a request needs the general way. `finish`
/// asks the connection to wind down: the request in flight is answered with `Connection: close`.
pub async fn serve(
    mut client: TcpStream,
    conn: Conn,
    proxy: &Arc<Proxy>,
    finish: &mut watch::Receiver<()>,
) -> End {
    let mut x = Exchange {
        ip: conn.peer.ip().to_string(),
        local_port: conn.local.port(),
        buf: BytesMut::with_capacity(READ_BUF),
        out: Vec::with_capacity(1024),
        rbuf: BytesMut::new(),
        last: None,
    };
    let mut first = true;
    loop {
        let plan = loop {
            match x.plan(proxy) {
                Planned::Go(plan) => break plan,
                Planned::Slow => return End::Hyper(client, x.buf.freeze()),
                Planned::More => {
                    if !x.read_more(&mut client, finish, first).await {
                        return End::Closed;
                    }
                }
            }
        };
        first = false;
        let draining = finish.has_changed().unwrap_or(true);
        match x.one(&mut client, proxy, plan, draining).await {
            Step::Next => {}
            Step::Close => {
                let _ = client.shutdown().await;
                return End::Closed;
            }
            Step::Gone => return End::Closed,
            Step::Hyper => return End::Hyper(client, x.buf.freeze()),
        }
    }
}

/// The state of one client connection on the fast path.
struct Exchange {
    /// The client's address, as appended to `X-Forwarded-For`.
    ip: String,
    local_port: u16,
    /// Bytes read from the client and not yet sent on.
    buf: BytesMut,
    /// A head (with what follows it) about to be written.
    out: Vec<u8>,
    /// Bytes read from the pod.
    rbuf: BytesMut,
    /// The target the previous request resolved to (a keep-alive connection's requests name the same
    /// one): the resolution is reused while the names are the same and no Service changed since.
    last: Option<Resolved>,
}

/// A resolution of target names: what named it, the catalog's Service version then, the result.
struct Resolved {
    names: [Option<Box<str>>; 3],
    version: u64,
    target: Arc<Target>,
    port: SvcPort,
}

impl Resolved {
    fn key<'a>(n: &h1::Names<'a>) -> [Option<&'a str>; 3] {
        [n.target, n.host, n.forwarded_host]
    }

    fn matches(&self, n: &h1::Names<'_>, version: u64) -> bool {
        self.version == version
            && self
                .names
                .iter()
                .zip(Self::key(n))
                .all(|(a, b)| a.as_deref() == b)
    }
}

/// The outcome of planning the request at the start of the buffer.
enum Planned {
    Go(Plan),
    /// Its head is not there whole yet.
    More,
    /// It goes the general way.
    Slow,
}

/// What follows an exchange.
enum Step {
    /// The next request.
    Next,
    /// Close the connection (the response said so, or it could not be completed).
    Close,
    /// The client is gone.
    Gone,
    /// This request goes the general way; nothing of it was consumed.
    Hyper,
}

/// A request being sent, as planned from its head.
struct Plan {
    head_len: usize,
    info: h1::Request,
    target: Arc<Target>,
    permit: Permit,
    addr: SocketAddr,
    /// When it was planned.
    at: Instant,
}

/// Why an exchange with a pod failed.
enum PodError {
    /// The client left.
    Gone,
    /// Writing to the pod failed: it did not take the request.
    Write(std::io::Error),
    /// The pod closed the connection (or failed) before a byte of a response.
    Closed(String),
    /// Anything else, after the pod may have acted on the request.
    Broken(String),
}

impl Exchange {
    /// Reads more of a request head; `false` when the connection ends instead (closed, a head
    /// stalled for [`HEAD_TIMEOUT`], or a drain while idle between requests).
    async fn read_more(
        &mut self,
        client: &mut TcpStream,
        finish: &mut watch::Receiver<()>,
        first: bool,
    ) -> bool {
        self.buf.reserve(READ_BUF);
        let read = if !self.buf.is_empty() {
            match tokio::time::timeout(HEAD_TIMEOUT, client.read_buf(&mut self.buf)).await {
                Ok(r) => r,
                Err(_) => return false,
            }
        } else if first {
            client.read_buf(&mut self.buf).await
        } else {
            tokio::select! {
                biased;
                _ = finish.changed() => return false,
                r = client.read_buf(&mut self.buf) => r,
            }
        };
        matches!(read, Ok(n) if n > 0)
    }

    /// The target and place of the request at the start of `buf`, with its head for the pod in `out`.
    fn plan(&mut self, proxy: &Proxy) -> Planned {
        let mut headers = [httparse::EMPTY_HEADER; h1::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => return Planned::More,
            // Too large, too many headers or broken: hyper answers it (431, 400).
            _ => return Planned::Slow,
        };
        let Some(info) = h1::classify(&req) else {
            return Planned::Slow;
        };
        let names = names(&req, proxy);
        let version = proxy.catalog.version();
        if proxy.closing() {
            return Planned::Slow;
        }
        if !self
            .last
            .as_ref()
            .is_some_and(|r| r.matches(&names, version))
        {
            let Some((target, port)) = proxy.fast_target(&names, self.local_port) else {
                return Planned::Slow;
            };
            self.last = Some(Resolved {
                names: Resolved::key(&names).map(|n| n.map(Box::from)),
                version,
                target,
                port,
            });
        }
        let Some(last) = &self.last else {
            return Planned::Slow;
        };
        let at = Instant::now();
        let Some(permit) = last.target.try_admit(at) else {
            return Planned::Slow;
        };
        let Some(port) = permit.port(&last.port.name) else {
            return Planned::Slow;
        };
        let addr = SocketAddr::new(permit.ip, port);
        self.out.clear();
        let drop = proxy.config().target_header.as_ref().map(|n| n.as_str());
        h1::write_request(&mut self.out, &req, &self.ip, drop);
        Planned::Go(Plan {
            head_len,
            info,
            target: last.target.clone(),
            permit,
            addr,
            at,
        })
    }

    /// One request: sent to a pod and its response relayed to the end.
    async fn one(
        &mut self,
        client: &mut TcpStream,
        proxy: &Proxy,
        plan: Plan,
        draining: bool,
    ) -> Step {
        let Plan {
            head_len,
            info,
            target,
            permit,
            addr,
            at,
        } = plan;
        let (mut pod, mut reused) = match proxy.pool().raw(addr, at).await {
            Ok(c) => c,
            Err(e) => {
                // Unconsumed: the general way tries the other pods.
                proxy.backend_error();
                tracing::debug!(target = %target.key, pod = %addr, error = %e, "trying another pod");
                target.avoid(permit.ip, AVOID);
                return Step::Hyper;
            }
        };
        // The body bytes already read go with the head; the rest follows from the socket.
        let in_buf = (self.buf.len() - head_len).min(info.content_length as usize);
        self.out
            .extend_from_slice(&self.buf[head_len..head_len + in_buf]);
        self.buf.advance(head_len + in_buf);
        let rest = info.content_length - in_buf as u64;
        let keep = info.keep_alive && !draining;
        let mut retried = false;
        let head = loop {
            let sent = self.send(client, &mut pod, rest).await;
            let read = match sent {
                Ok(()) => self.response_head(client, &mut pod, info.head, keep).await,
                Err(e) => Err(e),
            };
            let retry = match &read {
                Ok(_) => false,
                // The whole request is still in `out`: send it again on a new connection when a pooled
                // one turns out closed by the pod — always if it did not take the request, only when
                // safe to repeat if it may have.
                Err(PodError::Write(_)) => rest == 0,
                Err(PodError::Closed(_)) => rest == 0 && info.idempotent,
                Err(_) => false,
            };
            if retry && reused && !retried {
                retried = true;
                reused = false;
                match proxy.pool().raw_fresh(addr).await {
                    Ok(p) => pod = p,
                    Err(e) => return self.fail(client, proxy, &target, addr, e.to_string()).await,
                }
                continue;
            }
            match read {
                Ok(h) => break h,
                Err(PodError::Gone) => return Step::Gone,
                Err(PodError::Write(e)) => {
                    return self.fail(client, proxy, &target, addr, e.to_string()).await;
                }
                Err(PodError::Closed(e) | PodError::Broken(e)) => {
                    return self.fail(client, proxy, &target, addr, e).await;
                }
            }
        };
        let (resp, head_len) = head;
        // Counted as the head goes back, as the general way counts.
        target.answered(resp.status);
        proxy.fast_relayed();
        let step = self.relay(client, &mut pod, resp, head_len, keep).await;
        match step {
            Relayed::Done { reusable } => {
                drop(permit);
                if reusable {
                    proxy.pool().put_raw(addr, pod, at);
                }
                if resp.framing == Framing::Close || !keep {
                    Step::Close
                } else {
                    Step::Next
                }
            }
            Relayed::Gone => Step::Gone,
            Relayed::Broken(why) => {
                proxy.backend_error();
                tracing::debug!(target = %target.key, pod = %addr, error = %why, "response cut short");
                Step::Close
            }
        }
    }

    /// Writes `out` to the pod, then the `rest` of the body from the client.
    async fn send(
        &mut self,
        client: &mut TcpStream,
        pod: &mut TcpStream,
        mut rest: u64,
    ) -> Result<(), PodError> {
        pod.write_all(&self.out).await.map_err(PodError::Write)?;
        while rest > 0 {
            if self.buf.is_empty() {
                self.buf.reserve(READ_BUF);
                match client.read_buf(&mut self.buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return Err(PodError::Gone),
                }
            }
            let take = (self.buf.len() as u64).min(rest) as usize;
            pod.write_all(&self.buf[..take])
                .await
                .map_err(|e| PodError::Broken(format!("writing the request body: {e}")))?;
            self.buf.advance(take);
            rest -= take as u64;
        }
        Ok(())
    }

    /// Reads the pod's response head (passing 1xx ones on) and puts the client's version in `out`.
    async fn response_head(
        &mut self,
        client: &mut TcpStream,
        pod: &mut TcpStream,
        head: bool,
        keep: bool,
    ) -> Result<(h1::Response, usize), PodError> {
        self.rbuf.clear();
        let mut any = false;
        loop {
            if !self.rbuf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; h1::MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.rbuf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let r = h1::response(&resp, head).map_err(PodError::Broken)?;
                        self.out.clear();
                        let close = !keep || r.framing == Framing::Close;
                        h1::write_response(&mut self.out, &resp, r.framing, close);
                        if !(100..200).contains(&r.status) {
                            return Ok((r, n));
                        }
                        if r.status == 101 {
                            return Err(PodError::Broken(
                                "101 to a request that asked for no upgrade".into(),
                            ));
                        }
                        client
                            .write_all(&self.out)
                            .await
                            .map_err(|_| PodError::Gone)?;
                        self.rbuf.advance(n);
                        continue;
                    }
                    Ok(httparse::Status::Partial) if self.rbuf.len() < MAX_HEAD => {}
                    Ok(httparse::Status::Partial) => {
                        return Err(PodError::Broken("a response head over 64 KiB".into()));
                    }
                    Err(e) => {
                        return Err(PodError::Broken(format!("an invalid response head: {e}")));
                    }
                }
            }
            self.rbuf.reserve(READ_BUF);
            let read = tokio::select! {
                biased;
                r = pod.read_buf(&mut self.rbuf) => r,
                () = client_left(client) => return Err(PodError::Gone),
            };
            match read {
                Ok(n) if n > 0 => any = true,
                Ok(_) if !any => {
                    return Err(PodError::Closed(
                        "the pod closed the connection before answering".into(),
                    ));
                }
                Ok(_) => {
                    return Err(PodError::Broken(
                        "the pod closed the connection within the response head".into(),
                    ));
                }
                Err(e) if !any => {
                    return Err(PodError::Closed(format!("reading the response: {e}")));
                }
                Err(e) => return Err(PodError::Broken(format!("reading the response: {e}"))),
            }
        }
    }

    /// Writes the head in `out` and the body after it to the client, the body as the pod sends it.
    async fn relay(
        &mut self,
        client: &mut TcpStream,
        pod: &mut TcpStream,
        resp: h1::Response,
        head_len: usize,
        keep: bool,
    ) -> Relayed {
        let mut body = Body::new(resp.framing);
        let mut reusable = resp.reusable && keep;
        let after = &self.rbuf[head_len..];
        let take = match body.take(after) {
            Ok(n) => n,
            Err(e) => return Relayed::Broken(e),
        };
        // More than the response: the pod's connection is out of step.
        reusable &= take == after.len();
        self.out.extend_from_slice(&after[..take]);
        if client.write_all(&self.out).await.is_err() {
            return Relayed::Gone;
        }
        while !body.done() {
            self.rbuf.clear();
            self.rbuf.reserve(READ_BUF);
            let read = tokio::select! {
                biased;
                r = pod.read_buf(&mut self.rbuf) => r,
                () = client_left(client) => return Relayed::Gone,
            };
            match read {
                Ok(0) if resp.framing == Framing::Close => break,
                Ok(0) => {
                    return Relayed::Broken("the pod closed the connection within the body".into());
                }
                Ok(_) => {}
                Err(e) => return Relayed::Broken(format!("reading the body: {e}")),
            }
            let take = match body.take(&self.rbuf) {
                Ok(n) => n,
                Err(e) => return Relayed::Broken(e),
            };
            reusable &= take == self.rbuf.len();
            if client.write_all(&self.rbuf[..take]).await.is_err() {
                return Relayed::Gone;
            }
        }
        Relayed::Done { reusable }
    }

    /// Answers 502 for a pod that failed before the response started, and ends the connection (the
    /// request body may be partly unread).
    async fn fail(
        &mut self,
        client: &mut TcpStream,
        proxy: &Proxy,
        target: &Target,
        addr: SocketAddr,
        why: String,
    ) -> Step {
        proxy.backend_error();
        let text = format!("dlx: pod {addr} of {} failed: {why}", target.key);
        proxy.answered_itself(Some(&target.key), StatusCode::BAD_GATEWAY, &text);
        self.out.clear();
        h1::write_answer(&mut self.out, StatusCode::BAD_GATEWAY, &text, true);
        let _ = client.write_all(&self.out).await;
        Step::Close
    }
}

enum Relayed {
    Done { reusable: bool },
    Gone,
    Broken(String),
}

/// Where a response body ends, as its bytes pass.
enum Body {
    Empty,
    Length(u64),
    Chunked(Chunked),
    Close,
}

impl Body {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Body::Empty,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunked::default()),
            Framing::Close => Body::Close,
        }
    }

    /// How many of `bytes` belong to the body.
    fn take(&mut self, bytes: &[u8]) -> Result<usize, String> {
        Ok(match self {
            Body::Empty => 0,
            Body::Length(left) => {
                let n = (*left).min(bytes.len() as u64);
                *left -= n;
                n as usize
            }
            Body::Chunked(c) => c.feed(bytes)?,
            Body::Close => bytes.len(),
        })
    }

    fn done(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Length(left) => *left == 0,
            Body::Chunked(c) => c.done(),
            Body::Close => false,
        }
    }
}

/// Resolves when the client closes its side of the connection; never, once it sends more bytes (a
/// pipelined request: it is read after this response).
async fn client_left(client: &TcpStream) {
    match client.ready(Interest::READABLE).await {
        Ok(r) if !r.is_read_closed() => std::future::pending().await,
        _ => {}
    }
}
