//! Connections to pods: HTTP/1.1 keep-alive connections pooled per pod address (hyper's, and plain
//! TCP ones of the [fast path](crate::fast)), and one multiplexed HTTP/2 (h2c, prior knowledge)
//! connection per pod address.
//!
//! The DLX speaks to a pod in the protocol the client spoke to it: HTTP/1.1 (and upgrades) over
//! HTTP/1.1, HTTP/2 (gRPC) over h2c. It connects before it hands a request over, so a pod that cannot
//! be reached costs only the connect attempt and the request goes to another pod untouched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::Held;

/// Errors of bodies in flight.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of responses sent to clients.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A pod could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed.
    #[error("connecting to {addr}: {source}")]
    Io {
        /// The pod address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TCP connect did not finish in time.
    #[error("connecting to {addr}: no answer within {timeout:?}")]
    Timeout {
        /// The pod address.
        addr: SocketAddr,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The HTTP handshake failed.
    #[error("HTTP handshake with {addr}: {source}")]
    Handshake {
        /// The pod address.
        addr: SocketAddr,
        /// Hyper's error.
        source: hyper::Error,
    },
}

type H2Slot = Arc<tokio::sync::Mutex<Option<http2::SendRequest<Held>>>>;

/// Idle connections by pod address, with the instant each became idle.
type Idle<C> = HashMap<SocketAddr, Vec<(C, Instant)>>;

/// Connections to pods.
pub struct Pool {
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<Idle<http1::SendRequest<Held>>>,
    raw: Mutex<Idle<TcpStream>>,
    h2: Mutex<HashMap<SocketAddr, H2Slot>>,
}

impl Pool {
    /// A pool whose connects give up after `connect_timeout` and whose idle HTTP/1.1 connections are
    /// dropped after `idle_timeout`.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            connect_timeout,
            idle_timeout,
            idle: Mutex::default(),
            raw: Mutex::default(),
            h2: Mutex::default(),
        })
    }

    async fn tcp(&self, addr: SocketAddr) -> Result<TcpStream, ConnectError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout {
                addr,
                timeout: self.connect_timeout,
            })?
            .map_err(|source| ConnectError::Io { addr, source })?;
        // Token streams are many small writes: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A plain TCP connection to `addr` for the fast path at `now`: an idle one that is still open,
    /// else a new one. The flag says whether it was reused (the pod may close it at the very moment it
    /// is used).
    pub async fn raw(
        &self,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<(TcpStream, bool), ConnectError> {
        while let Some(stream) = take(&self.raw, addr, self.idle_timeout, now, |_| false) {
            // Open and quiet: nothing to read (a pod's close would read as 0 bytes). No system call
            // unless the socket became readable since its last read.
            let mut byte = [0u8; 1];
            if matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            {
                return Ok((stream, true));
            }
        }
        Ok((self.tcp(addr).await?, false))
    }

    /// A new plain TCP connection to `addr`.
    pub async fn raw_fresh(&self, addr: SocketAddr) -> Result<TcpStream, ConnectError> {
        self.tcp(addr).await
    }

    /// Returns a fast-path connection whose response was read to the end; `since` is when its
    /// request started (close enough to when it went idle, and one clock read fewer per request).
    pub fn put_raw(&self, addr: SocketAddr, stream: TcpStream, since: Instant) {
        let mut idle = self.raw.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(addr).or_default().push((stream, since));
    }

    /// An HTTP/1.1 connection to `addr` that is ready for a request: an idle one, else a new one.
    /// The flag says whether it was reused (a reused one may have been closed by the pod meanwhile).
    pub async fn http1(
        &self,
        addr: SocketAddr,
    ) -> Result<(http1::SendRequest<Held>, bool), ConnectError> {
        while let Some(mut sender) = self.take_idle(addr) {
            // A connection is pooled as soon as its response was read to the end; its task may not have
            // seen that yet, so it becomes ready in a moment (or fails if the pod is closing it).
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        let io = TokioIo::new(self.tcp(addr).await?);
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "pod connection ended");
            }
        });
        Ok((sender, false))
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<http1::SendRequest<Held>> {
        take(&self.idle, addr, self.idle_timeout, Instant::now(), |s| {
            s.is_closed()
        })
    }

    /// Returns an HTTP/1.1 connection whose response was read to the end.
    pub fn put_http1(&self, addr: SocketAddr, sender: http1::SendRequest<Held>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(addr).or_default().push((sender, Instant::now()));
    }

    /// The HTTP/2 connection to `addr`, opened on first use and replaced when it closes.
    pub async fn http2(&self, addr: SocketAddr) -> Result<http2::SendRequest<Held>, ConnectError> {
        let slot = {
            let mut h2 = self.h2.lock().unwrap_or_else(|e| e.into_inner());
            h2.entry(addr).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(s) = slot.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        let io = TokioIo::new(self.tcp(addr).await?);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "pod HTTP/2 connection ended");
            }
        });
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// The most recently used idle connection to `addr` that is not stale at `now` (idle for `timeout`,
/// or `closed`); the least recently used one is dropped once it went stale.
fn take<C>(
    pool: &Mutex<Idle<C>>,
    addr: SocketAddr,
    timeout: Duration,
    now: Instant,
    closed: impl Fn(&C) -> bool,
) -> Option<C> {
    let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
    let list = idle.get_mut(&addr)?;
    let stale = |(c, at): &(C, Instant)| closed(c) || now.duration_since(*at) >= timeout;
    if list.first().is_some_and(stale) {
        list.remove(0);
    }
    let mut out = None;
    while let Some(entry) = list.pop() {
        if !stale(&entry) {
            out = Some(entry.0);
            break;
        }
    }
    if list.is_empty() {
        idle.remove(&addr);
    }
    out
}
