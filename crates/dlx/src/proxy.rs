//! One request through the DLX: find its target → get a place at a ready pod, holding it while
//! there is none (and asking for a wake-up) → send it to the pod → stream the answer back.
//!
//! Answers of the DLX itself are plain text naming the target and the reason: 404 (no target), 503 +
//! `Retry-After` (a queue cap, or shutting down), 504 (the wake timeout passed), 502 (no pod could be
//! reached). Everything else is the pod's answer, relayed as it arrives.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::{Held, Prefetch, Relayed};
use crate::catalog::{Catalog, Handed, Miss, SvcPort};
use crate::host;
use crate::metrics::{Metrics, TargetLabels};
use crate::pool::{Pool, ProxyBody};
use crate::probe;
use crate::target::{Admission, Full as QueueFull, Global, Key, Permit, Target, WaitError};
use crate::{h1, headers};

/// Asks for a wake-up of a target (the [`Waker`](crate::wake::Waker) in the binary, a stub in tests).
pub type WakeFn = Arc<dyn Fn(Arc<Handed>, Arc<Target>, Instant) + Send + Sync>;

/// How the proxy behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// A header naming the target explicitly (checked first, removed before forwarding).
    pub target_header: Option<HeaderName>,
    /// `Retry-After` of a 503.
    pub retry_after: Duration,
    /// Bytes of a held request's body read ahead (see [`Prefetch`]).
    pub hold_body_bytes: usize,
    /// When set, a new pod gets requests only after `GET <path>` answers 2xx.
    pub probe_path: Option<String>,
    /// Attempts at reaching a pod before answering 502.
    pub attempts: u32,
}

/// Where a connection came from and arrived.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    /// The client.
    pub peer: SocketAddr,
    /// The DLX's own address the client connected to.
    pub local: SocketAddr,
}

/// The proxy: catalog, targets, connections.
pub struct Proxy {
    /// What the watches know.
    pub catalog: Arc<Catalog>,
    global: Arc<Global>,
    targets: Mutex<HashMap<Key, Arc<Target>>>,
    pool: Arc<Pool>,
    wake: WakeFn,
    metrics: Metrics,
    cfg: Config,
    closing: std::sync::atomic::AtomicBool,
    connections: AtomicUsize,
}

impl Proxy {
    /// A proxy over `catalog`.
    pub fn new(
        catalog: Arc<Catalog>,
        global: Arc<Global>,
        pool: Arc<Pool>,
        wake: WakeFn,
        metrics: Metrics,
        cfg: Config,
    ) -> Arc<Self> {
        Arc::new(Self {
            catalog,
            global,
            targets: Mutex::default(),
            pool,
            wake,
            metrics,
            cfg,
            closing: Default::default(),
            connections: AtomicUsize::new(0),
        })
    }

    /// Counts a client connection as open until the guard drops.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Target>>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live state of `h`, created (with its current pods) on first use.
    pub fn target(&self, h: &Arc<Handed>) -> Arc<Target> {
        let (target, created) = {
            let mut map = self.targets();
            match map.get(&h.key) {
                Some(t) => (t.clone(), false),
                None => {
                    let t = Target::new(
                        h.key.clone(),
                        self.global.clone(),
                        self.metrics.gauges(&h.key),
                    );
                    map.insert(h.key.clone(), t.clone());
                    (t, true)
                }
            }
        };
        if created {
            self.refresh_one(&target, h);
        }
        target
    }

    fn refresh_one(&self, target: &Arc<Target>, h: &Handed) {
        let probing = self.cfg.probe_path.clone();
        let endpoints = self.catalog.endpoints(h);
        let (before, after) = (target.pods(), endpoints.len());
        let new_pods = target.set_endpoints(endpoints, probing.is_some());
        if before != after {
            tracing::info!(target = %h.key, workload = %h.workload, pods = after, was = before, held = target.held(),
                "ready pods of the workload changed");
        }
        if let (Some(path), Some(first)) = (probing, h.ports.first()) {
            for ip in new_pods {
                probe::spawn(target.clone(), ip, first.name.clone(), path.clone());
            }
        }
    }

    /// The pods of workload Service `workload` changed: refresh the targets it serves.
    pub fn workload_changed(&self, workload: &Key) {
        for key in self.catalog.services_of_workload(workload) {
            self.service_changed(&key);
        }
    }

    /// Service `key` changed: refresh its target, or close it if it is no longer handed over.
    pub fn service_changed(&self, key: &Key) {
        let Some(target) = self.targets().get(key).cloned() else {
            return;
        };
        match self.catalog.service(key) {
            Some(h) => self.refresh_one(&target, &h),
            None => {
                // Requests in flight keep their target alive; new ones no longer resolve to it.
                self.targets().remove(key);
                target.close(&format!(
                    "Service {key} is no longer handed to the DLX: send the request again"
                ));
            }
        }
    }

    /// Everything may have changed (a watch re-listed).
    pub fn all_changed(&self) {
        let keys: Vec<Key> = self.targets().keys().cloned().collect();
        for k in keys {
            self.service_changed(&k);
        }
    }

    /// Shutting down: every held request gets 503 now, and so do later ones.
    pub fn close_all(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
        for t in self.targets().values() {
            t.close("the DLX is shutting down");
        }
    }

    /// Requests held in this process now.
    pub fn held(&self) -> usize {
        self.global.held()
    }

    /// Handles one request. What needs no waiting is done here; the returned future owns only what the
    /// rest needs, each value once (a held request is, besides its connection, this future).
    ///
    /// `early` is the place of a request held before hyper read it ([`hold_early`](Self::hold_early)).
    pub fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        conn: Conn,
        mut early: Option<Placed>,
    ) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>> {
        let arrived = Instant::now();
        let (handed, port) = match self.resolve(&req, conn.local.port()) {
            Ok(found) => found,
            Err(why) => {
                let resp = self.answer(
                    None,
                    StatusCode::NOT_FOUND,
                    format!("dlx: no target for this request: {why}"),
                );
                return Box::pin(std::future::ready(resp));
            }
        };
        let client = conn.peer.ip();
        let upgrade = req.version() != Version::HTTP_2 && headers::is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut body = Prefetch::new(body, self.cfg.hold_body_bytes);
        Box::pin(async move {
            let target = self.target(&handed);
            let deadline = arrived + self.global.limits().wake_timeout;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let placed = match early.take() {
                    Some(placed) => placed,
                    None => {
                        let gone = body_gone(&mut body);
                        self.place(&handed, &target, gone, arrived, deadline).await
                    }
                };
                let permit = match placed {
                    Ok(p) => p,
                    Err(resp) => return resp,
                };
                let Some(pod_port) = permit.port(&port.name) else {
                    let msg = format!(
                        "dlx: pod {} of {} lists no port named {:?} in the EndpointSlices of Service {}/{}",
                        permit.ip, handed.key, port.name, handed.key.namespace, handed.workload
                    );
                    return self.answer(Some(&handed.key), StatusCode::BAD_GATEWAY, msg);
                };
                let addr = SocketAddr::new(permit.ip, pod_port);
                let last = attempt >= self.cfg.attempts;
                let to = To {
                    addr,
                    client,
                    upgrade,
                    last,
                    released_by: permit.released_by,
                };
                // Boxed: a held request's future stays small (it is all a held request costs, besides
                // its connection); the sending state exists only while sending.
                let sent = if parts.version == Version::HTTP_2 {
                    Box::pin(self.send_h2(&parts, &mut body, to)).await
                } else {
                    Box::pin(self.send_h1(&parts, &mut body, to)).await
                };
                match sent {
                    Sent::Ok(resp, pooled) => {
                        return self.relay(&target, resp, permit, pooled, client_upgrade);
                    }
                    Sent::Retry(why) => {
                        self.metrics.backend_errors.inc();
                        tracing::debug!(target = %handed.key, pod = %addr, error = %why, "trying another pod");
                        target.avoid(permit.ip, Duration::from_secs(2));
                        drop(permit);
                    }
                    Sent::Failed(why) => {
                        self.metrics.backend_errors.inc();
                        let msg = format!("dlx: pod {addr} of {} failed: {why}", handed.key);
                        return self.answer(Some(&handed.key), StatusCode::BAD_GATEWAY, msg);
                    }
                }
            }
        })
    }

    /// Holds the first request of an HTTP/1.1 connection for handed-over Service `handed` before
    /// hyper reads it: its bytes stay in the kernel's socket buffer meanwhile, so a held request costs
    /// no hyper buffers (nor its parsed head: only the Service is kept). `gone` resolves when the
    /// client leaves. The place (or the answer that replaces one: 503, 504) goes to
    /// [`handle`](Self::handle) once hyper has read the request.
    pub async fn hold_early(
        self: &Arc<Self>,
        handed: Arc<Handed>,
        gone: impl Future<Output = String>,
    ) -> Early {
        let target = self.target(&handed);
        let arrived = Instant::now();
        let deadline = arrived + self.global.limits().wake_timeout;
        let mut left = false;
        let gone = async {
            let why = gone.await;
            left = true;
            why
        };
        let placed = self.place(&handed, &target, gone, arrived, deadline).await;
        if left {
            Early::Gone
        } else {
            Early::Placed(placed)
        }
    }

    /// Which handed-over Service and port the request is for: the target header, then Host (or the
    /// HTTP/2 authority), then `X-Forwarded-Host`. The error lists what each said.
    fn resolve<B>(
        &self,
        req: &Request<B>,
        local_port: u16,
    ) -> Result<(Arc<Handed>, SvcPort), String> {
        let h = req.headers();
        let value = |name: &HeaderName| h.get(name).and_then(|v| v.to_str().ok());
        let authority = req.uri().authority().map(|a| a.as_str());
        let names = h1::Names {
            target: self.cfg.target_header.as_ref().and_then(value),
            host: value(&header::HOST).or(authority),
            forwarded_host: value(&HeaderName::from_static("x-forwarded-host"))
                .map(h1::first_forwarded),
        };
        self.resolve_named(&names, local_port)
    }

    /// [`resolve`](Self::resolve) from the values the request gave.
    pub(crate) fn resolve_named(
        &self,
        named: &h1::Names<'_>,
        local_port: u16,
    ) -> Result<(Arc<Handed>, SvcPort), String> {
        let target_name = self.cfg.target_header.as_ref().map(HeaderName::as_str);
        let candidates = [
            (target_name.unwrap_or_default(), named.target),
            ("Host", named.host),
            ("X-Forwarded-Host", named.forwarded_host),
        ];
        let mut tried = Vec::new();
        for (what, v) in candidates {
            let Some(v) = v else { continue };
            let Some(name) = host::parse(v) else {
                tried.push(format!("{what} {v:?} names no Service"));
                continue;
            };
            match self.catalog.resolve(&name) {
                Ok(h) => match h.port_for(name.port(), local_port) {
                    Ok(p) => {
                        let p = p.clone();
                        return Ok((h, p));
                    }
                    Err(m) => tried.push(format!("{what} {v:?}: {m}")),
                },
                Err(Miss(m)) => tried.push(format!("{what} {v:?}: {m}")),
            }
        }
        if tried.is_empty() {
            tried.push("the request has no Host".into());
        }
        Err(tried.join("; "))
    }

    /// The target of a request for the fast path and the Service port it is for; `None` (no target,
    /// or the DLX is shutting down) sends the request the general way, which answers it.
    pub(crate) fn fast_target(
        &self,
        named: &h1::Names<'_>,
        local_port: u16,
    ) -> Option<(Arc<Target>, SvcPort)> {
        if self.closing() {
            return None;
        }
        let (handed, port) = self.resolve_named(named, local_port).ok()?;
        Some((self.target(&handed), port))
    }

    /// Whether the DLX is shutting down (new requests get 503).
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The connections to pods.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The proxy's settings.
    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counts a pod that failed a request (`dlx_backend_errors`).
    pub(crate) fn backend_error(&self) {
        self.metrics.backend_errors.inc();
    }

    /// Counts a request relayed on the fast path (`dlx_fast_path_requests`).
    pub(crate) fn fast_relayed(&self) {
        self.metrics.fast_path.inc();
    }

    /// Counts an answer of the DLX itself and logs it.
    /// (A 404 is not logged: any client can cause it.)
    pub(crate) fn answered_itself(&self, key: Option<&Key>, status: StatusCode, text: &str) {
        self.metrics.outcome(key, status.as_u16());
        if status != StatusCode::NOT_FOUND {
            tracing::info!(target = ?key.map(ToString::to_string), status = status.as_u16(), "{text}");
        }
    }

    /// A place at a pod, holding the request while there is none.
    async fn place(
        &self,
        h: &Arc<Handed>,
        target: &Arc<Target>,
        gone: impl Future<Output = String>,
        arrived: Instant,
        deadline: Instant,
    ) -> Result<Permit, Response<ProxyBody>> {
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(self.unavailable(&h.key, "the DLX is shutting down".into()));
        }
        let (waiter, wake) = match target.admit(Instant::now()) {
            Admission::Go(p) => return Ok(p),
            Admission::Full(QueueFull::Target(n)) => {
                let why = format!(
                    "{} already holds {n} requests waiting for its workload (--max-held-per-target)",
                    h.key
                );
                return Err(self.unavailable(&h.key, why));
            }
            Admission::Full(QueueFull::Global(n)) => {
                let why = format!(
                    "this DLX already holds {n} requests (--max-held); {} was not admitted",
                    h.key
                );
                return Err(self.unavailable(&h.key, why));
            }
            Admission::Wait { waiter, wake } => (waiter, wake),
        };
        if wake {
            (self.wake)(h.clone(), target.clone(), arrived);
        }
        let wait = waiter.wait(deadline);
        tokio::pin!(wait, gone);
        let result = tokio::select! {
            biased;
            r = &mut wait => r,
            // The client is gone (or its body is broken): nobody reads this answer.
            why = &mut gone => return Err(self.answer(Some(&h.key), StatusCode::BAD_REQUEST, why)),
        };
        let held = arrived.elapsed().as_secs_f64();
        self.metrics
            .hold_seconds
            .get_or_create(&TargetLabels::from(&h.key))
            .observe(held);
        match result {
            Ok(p) => Ok(p),
            Err(WaitError::Closed(why)) => Err(self.unavailable(&h.key, why)),
            Err(WaitError::Timeout { pods: 0 }) => Err(self.answer(
                Some(&h.key),
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "dlx: gave up on {} after {:.0} s: waited for a ready endpoint of its workload Service {}/{} and none appeared (wake-up asked of ElasticScaler {}/{})",
                    h.key, held, h.key.namespace, h.workload, h.key.namespace, h.scaler
                ),
            )),
            Err(WaitError::Timeout { pods }) => Err(self.answer(
                Some(&h.key),
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "dlx: gave up on {} after {held:.0} s: waited for a free place at its {pods} ready pod(s), which stayed at their limit (--pod-concurrency)",
                    h.key
                ),
            )),
        }
    }

    /// Observes the release delay of a held request about to be written to its pod.
    fn forwarding(&self, to: &To) {
        if let Some(t) = to.released_by {
            self.metrics
                .release_delay_seconds
                .observe(t.elapsed().as_secs_f64());
        }
    }

    async fn send_h1(&self, parts: &http::request::Parts, body: &mut Prefetch, to: To) -> Sent {
        let To {
            addr,
            client,
            upgrade,
            last,
            ..
        } = to;
        let mut out = self.outbound(parts, client, upgrade);
        *out.version_mut() = Version::HTTP_11;
        *out.uri_mut() = parts
            .uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let mut fresh_tries = 0;
        loop {
            let (mut sender, reused) = match self.pool.http1(addr).await {
                Ok(s) => s,
                Err(e) if last => return Sent::Failed(e.to_string()),
                Err(e) => return Sent::Retry(e.to_string()),
            };
            let Some(req) = with_body(out, body) else {
                return Sent::Failed("the request body was already sent to another pod".into());
            };
            self.forwarding(&to);
            match sender.try_send_request(req).await {
                Ok(resp) => return Sent::Ok(resp, Some((addr, sender))),
                Err(mut e) => {
                    // Not written at all: a reused connection the pod had closed. Try a fresh one.
                    if let Some(req) = e.take_message()
                        && reused
                        && fresh_tries < 2
                    {
                        fresh_tries += 1;
                        let (head, held) = req.into_parts();
                        out = Request::from_parts(head, ());
                        body.restore(held);
                        continue;
                    }
                    let err = e.into_error();
                    return if last || !body.restartable() {
                        Sent::Failed(err.to_string())
                    } else {
                        Sent::Retry(err.to_string())
                    };
                }
            }
        }
    }

    async fn send_h2(&self, parts: &http::request::Parts, body: &mut Prefetch, to: To) -> Sent {
        let To {
            addr, client, last, ..
        } = to;
        let mut out = self.outbound(parts, client, false);
        *out.version_mut() = Version::HTTP_2;
        if out.uri().authority().is_none() {
            // HTTP/2 needs an authority: the original Host, else the pod.
            let authority = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map_or_else(|| addr.to_string(), str::to_string);
            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            if let Ok(uri) = format!("http://{authority}{pq}").parse() {
                *out.uri_mut() = uri;
            }
        }
        let mut sender = match self.pool.http2(addr).await {
            Ok(s) => s,
            Err(e) if last => return Sent::Failed(e.to_string()),
            Err(e) => return Sent::Retry(e.to_string()),
        };
        let Some(req) = with_body(out, body) else {
            return Sent::Failed("the request body was already sent to another pod".into());
        };
        self.forwarding(&to);
        match sender.try_send_request(req).await {
            Ok(resp) => Sent::Ok(resp, None),
            Err(mut e) => {
                if let Some(req) = e.take_message() {
                    body.restore(req.into_body());
                }
                let err = e.into_error();
                if last || !body.restartable() {
                    Sent::Failed(err.to_string())
                } else {
                    Sent::Retry(err.to_string())
                }
            }
        }
    }

    /// The request's head as sent to the pod (no body yet).
    fn outbound(&self, parts: &http::request::Parts, client: IpAddr, upgrade: bool) -> Request<()> {
        let mut req = Request::new(());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = parts.uri.clone();
        let mut h = parts.headers.clone();
        if let Some(name) = &self.cfg.target_header {
            h.remove(name);
        }
        headers::strip_hop_by_hop(&mut h, upgrade);
        headers::append_forwarded_for(&mut h, client);
        *req.headers_mut() = h;
        req
    }

    fn relay(
        &self,
        target: &Target,
        resp: Response<Incoming>,
        permit: Permit,
        pooled: Option<(SocketAddr, hyper::client::conn::http1::SendRequest<Held>)>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ProxyBody> {
        let key = &target.key;
        target.answered(resp.status().as_u16());
        let mut resp = resp;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client) = client_upgrade
        {
            let pod = hyper::upgrade::on(&mut resp);
            let key = key.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::try_join!(client, pod) {
                    Ok((c, p)) => {
                        let mut c = hyper_util::rt::TokioIo::new(c);
                        let mut p = hyper_util::rt::TokioIo::new(p);
                        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut p).await {
                            tracing::debug!(target = %key, error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => tracing::debug!(target = %key, error = %e, "upgrade failed"),
                }
            });
            let (mut parts, _) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, true);
            return Response::from_parts(parts, empty());
        }
        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        let pool = self.pool.clone();
        let on_end = pooled.map(|(addr, sender)| -> crate::body::OnEnd {
            Box::new(move || pool.put_http1(addr, sender))
        });
        Response::from_parts(parts, Relayed::new(body, permit, on_end).boxed_unsync())
    }

    fn unavailable(&self, key: &Key, why: String) -> Response<ProxyBody> {
        let secs = self.cfg.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = self.answer(
            Some(key),
            StatusCode::SERVICE_UNAVAILABLE,
            format!("dlx: {why}; retry after {secs} s"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r
    }

    fn answer(&self, key: Option<&Key>, status: StatusCode, text: String) -> Response<ProxyBody> {
        self.answered_itself(key, status, &text);
        let mut r = Response::new(
            Full::new(Bytes::from(text + "\n"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

/// An open client connection, counted by [`Proxy::connections`] until dropped.
pub struct OpenConnection(Arc<Proxy>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A place at a pod, or the answer that replaces it.
pub type Placed = Result<Permit, Response<ProxyBody>>;

/// The outcome of [`Proxy::hold_early`].
pub enum Early {
    /// The client left while held.
    Gone,
    /// Placed (or answered).
    Placed(Placed),
}

/// Resolves when reading ahead in the body of a held request fails: the client is gone (or sent a
/// broken body). Reading is what makes hyper notice a departing client.
async fn body_gone(body: &mut Prefetch) -> String {
    loop {
        if !body.active() {
            return std::future::pending().await;
        }
        if let Err(e) = body.step().await {
            return format!("dlx: reading the request body failed while held: {e}");
        }
    }
}

/// Where and how one attempt sends.
#[derive(Clone, Copy)]
struct To {
    addr: SocketAddr,
    client: IpAddr,
    upgrade: bool,
    last: bool,
    released_by: Option<Instant>,
}

enum Sent {
    Ok(
        Response<Incoming>,
        Option<(SocketAddr, hyper::client::conn::http1::SendRequest<Held>)>,
    ),
    /// The pod could not take the request and the body is intact: try another pod.
    Retry(String),
    Failed(String),
}

/// The request to send: `head` with the body (`None` when the body already went to another pod).
fn with_body(head: Request<()>, body: &mut Prefetch) -> Option<Request<Held>> {
    let held = body.take()?;
    let (head, ()) = head.into_parts();
    Some(Request::from_parts(head, held))
}

fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}
