//! The proxy end to end in one process, without a cluster: the catalog is fed directly (what the watches
//! would deliver), the pods are real fake-inference servers on loopback addresses, the clients real
//! HTTP/1.1, SSE, WebSocket and h2c/gRPC clients. The e2e suite repeats the important cases against
//! the local cluster with the real binary.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use dlx::catalog::{Catalog, Handed, Slice, SvcPort};
use dlx::metrics::Metrics;
use dlx::pool::Pool;
use dlx::proxy::{Config, Proxy, WakeFn};
use dlx::target::{Global, Key, Limits};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

const HOST: &str = "llm.t.svc.cluster.local";

struct Rig {
    proxy: Arc<Proxy>,
    addr: SocketAddr,
    wakes: Arc<AtomicUsize>,
    stop: CancellationToken,
    http: reqwest::Client,
    metrics: Metrics,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn key(service: &str) -> Key {
    Key {
        namespace: "t".into(),
        service: service.into(),
    }
}

async fn rig(mut limits: Limits, wake_timeout: Duration) -> Rig {
    limits.wake_timeout = wake_timeout;
    let catalog = Arc::new(Catalog::default());
    catalog.reset_services(vec![Handed {
        key: key("llm"),
        scaler: "llm".into(),
        workload: "llm-workload".into(),
        ports: vec![SvcPort {
            name: "http".into(),
            port: 80,
            target_port: None,
        }],
        cluster_ips: vec![],
    }]);
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let wake: WakeFn = Arc::new(move |_, _, _| {
        w.fetch_add(1, Ordering::SeqCst);
    });
    let cfg = Config {
        target_header: Some(http::HeaderName::from_static("x-dlx-target")),
        retry_after: Duration::from_secs(7),
        hold_body_bytes: 65536,
        probe_path: None,
        attempts: 3,
    };
    let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
    let pool = Pool::new(Duration::from_secs(1), Duration::from_secs(30));
    let proxy = Proxy::new(
        catalog,
        Global::new(limits),
        pool,
        wake,
        metrics.clone(),
        cfg,
    );
    let listeners = dlx::server::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let stop = CancellationToken::new();
    dlx::server::spawn(
        listeners,
        proxy.clone(),
        stop.clone(),
        Duration::from_secs(1),
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Rig {
        proxy,
        addr,
        wakes,
        stop,
        http,
        metrics,
    }
}

fn limits(pod_concurrency: usize, per_target: usize) -> Limits {
    Limits {
        pod_concurrency,
        max_held_per_target: per_target,
        max_held: 10_000,
        wake_timeout: Duration::from_secs(60),
    }
}

/// A fake inference pod on `ip` (a loopback address), with `args`.
async fn pod(ip: &str, args: &[&str]) -> SocketAddr {
    let listen = format!("{ip}:0");
    let argv = ["fake-inference", "--listen", &listen, "--model", "llm"]
        .into_iter()
        .chain(args.iter().copied());
    let server =
        fake_inference::FakeServer::bind(&fake_inference::Config::try_parse_from(argv).unwrap())
            .await
            .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

impl Rig {
    /// The workload Service's EndpointSlice now lists `pods` as ready (what the watch would deliver).
    fn pods(&self, pods: &[SocketAddr]) {
        let ports: Vec<_> = pods.iter().map(|p| p.port()).collect();
        let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": ports.first().copied().unwrap_or(1), "protocol": "TCP"}],
            "endpoints": pods.iter().map(|p| json!({"addresses": [p.ip().to_string()], "conditions": {"ready": true}})).collect::<Vec<_>>()
        }))
        .unwrap();
        let wk = key("llm-workload");
        self.proxy.catalog.put_slice(
            wk.clone(),
            "s".into(),
            Some(Slice::from_endpoint_slice(&slice)),
        );
        self.proxy.workload_changed(&wk);
    }

    fn post(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("http://{}/v1/completions", self.addr))
            .header("host", HOST)
            .json(&body)
    }

    async fn wait_held(&self, n: usize) {
        let start = Instant::now();
        while self.proxy.held() != n {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "held {} != {n}",
                self.proxy.held()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn completion(stream: bool) -> serde_json::Value {
    json!({"model": "llm", "prompt": "hello", "max_tokens": 4, "stream": stream})
}

#[tokio::test]
async fn holds_until_a_pod_is_ready_wakes_once_and_streams_every_answer() {
    let rig = rig(limits(4, 1000), Duration::from_secs(30)).await;
    let mut clients = Vec::new();
    for i in 0..40 {
        let req = rig.post(completion(i % 2 == 0));
        clients.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let sse = resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream");
            (status, sse, resp.text().await.unwrap())
        }));
    }
    rig.wait_held(40).await;
    assert_eq!(
        rig.wakes.load(Ordering::SeqCst),
        1,
        "one wake-up for 40 held requests"
    );
    let pod = pod(
        "127.0.0.1",
        &["--tokens-per-second", "200", "--ttft-ms", "5"],
    )
    .await;
    rig.pods(&[pod]);
    for (i, c) in clients.into_iter().enumerate() {
        let (status, sse, text) = c.await.unwrap();
        assert_eq!(status, 200, "{text}");
        assert_eq!(sse, i % 2 == 0);
        if sse {
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            assert_eq!(text.matches("data: ").count(), 5, "{text}");
        } else {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["choices"][0]["text"], "tok0 tok1 tok2 tok3");
        }
    }
    assert_eq!(rig.proxy.held(), 0);
}

#[tokio::test]
async fn sse_chunks_are_relayed_as_they_are_produced() {
    let rig = rig(limits(4, 10), Duration::from_secs(30)).await;
    let pod = pod(
        "127.0.0.1",
        &["--tokens-per-second", "10", "--ttft-ms", "0"],
    )
    .await;
    rig.pods(&[pod]);
    let body = json!({"model": "llm", "prompt": "x", "max_tokens": 5, "stream": true});
    let resp = rig.post(body).send().await.unwrap();
    let start = Instant::now();
    let mut stream = resp.bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        let n = chunk.windows(6).filter(|w| w == b"data: ").count();
        for _ in 0..n {
            arrivals.push(start.elapsed());
        }
    }
    assert_eq!(arrivals.len(), 6, "5 tokens and [DONE]");
    // Tokens 100 ms apart arrive 100 ms apart: nothing is buffered on the way.
    assert!(arrivals[0] < Duration::from_millis(150), "{arrivals:?}");
    assert!(
        arrivals[4] - arrivals[0] >= Duration::from_millis(300),
        "{arrivals:?}"
    );
    assert_eq!(rig.metrics.fast_path.get(), 1, "relayed by the fast path");
}

#[tokio::test]
async fn overflow_is_503_with_retry_after_and_the_held_ones_still_complete() {
    let rig = rig(limits(8, 5), Duration::from_secs(30)).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        let req = rig.post(completion(false));
        clients.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let mut codes = Vec::new();
    let mut held = Vec::new();
    for c in clients {
        // The three over the cap are answered at once; the five held ones wait.
        match tokio::time::timeout(Duration::from_millis(500), async { c.await.unwrap() }).await {
            Ok(resp) => {
                assert_eq!(resp.headers()["retry-after"], "7");
                codes.push(resp.status().as_u16());
                let text = resp.text().await.unwrap();
                assert!(text.contains("t/llm already holds 5 requests"), "{text}");
            }
            Err(_) => held.push(()),
        }
    }
    assert_eq!(codes, [503, 503, 503]);
    assert_eq!(rig.proxy.held(), 5);
    let pod = pod("127.0.0.1", &[]).await;
    rig.pods(&[pod]);
    rig.wait_held(0).await;
}

#[tokio::test]
async fn a_wake_timeout_is_504_naming_the_target_and_the_next_request_asks_again() {
    let rig = rig(limits(8, 5), Duration::from_millis(300)).await;
    let resp = rig.post(completion(false)).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("gave up on t/llm")
            && text.contains("ready endpoint of its workload Service t/llm-workload")
            && text.contains("ElasticScaler t/llm"),
        "{text}"
    );
    assert_eq!(rig.wakes.load(Ordering::SeqCst), 1);
    let resp = rig.post(completion(false)).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        rig.wakes.load(Ordering::SeqCst),
        2,
        "a timed-out wake-up is not cached"
    );
}

#[tokio::test]
async fn a_client_that_disconnects_frees_its_place() {
    let rig = rig(limits(8, 3), Duration::from_secs(30)).await;
    let mut clients: Vec<_> = (0..3)
        .map(|_| {
            let req = rig.post(completion(false));
            tokio::spawn(async move { req.send().await })
        })
        .collect();
    rig.wait_held(3).await;
    for c in clients.drain(..2) {
        c.abort();
    }
    rig.wait_held(1).await;
    // The freed places are usable at once: two more fit under the cap of 3.
    let more: Vec<_> = (0..2)
        .map(|_| {
            let req = rig.post(completion(false));
            tokio::spawn(async move { req.send().await.unwrap().status() })
        })
        .collect();
    rig.wait_held(3).await;
    let pod = pod("127.0.0.1", &[]).await;
    rig.pods(&[pod]);
    for m in more {
        assert_eq!(m.await.unwrap(), 200);
    }
    assert_eq!(clients.pop().unwrap().await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn unknown_targets_are_404_with_the_reason() {
    let rig = rig(limits(8, 3), Duration::from_secs(30)).await;
    let get = |host: &'static str| {
        rig.http
            .get(format!("http://{}/v1/models", rig.addr))
            .header("host", host)
            .send()
    };
    let resp = get("nope.t.svc.cluster.local").await.unwrap();
    assert_eq!(resp.status(), 404);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("Service t/nope is not handed to the DLX"),
        "{text}"
    );
    let resp = get("api.example.com").await.unwrap();
    assert!(resp.text().await.unwrap().contains("names no Service"));
    // The target header wins over Host.
    let resp = rig
        .http
        .get(format!("http://{}/v1/models", rig.addr))
        .header("host", "api.example.com")
        .header("x-dlx-target", "t/llm")
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(resp.is_err(), "held, not refused: {resp:?}");
}

#[tokio::test]
async fn a_pod_that_cannot_be_reached_is_skipped() {
    let rig = rig(limits(8, 10), Duration::from_secs(30)).await;
    let live = pod("127.0.0.2", &[]).await;
    // Same port on another loopback address where nothing listens: connection refused.
    let dead = SocketAddr::new(IpAddr::from([127, 0, 0, 3]), live.port());
    rig.pods(&[dead, live]);
    for _ in 0..4 {
        let resp = rig.post(completion(false)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test]
async fn websocket_echo_through_a_cold_start() {
    let rig = rig(limits(8, 10), Duration::from_secs(30)).await;
    let mut req = format!("ws://{}/ws/echo", rig.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("host", HOST.parse().unwrap());
    let addr = rig.addr;
    let client = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
        assert_eq!(resp.status(), 101);
        for i in 0..3 {
            ws.send(Message::text(format!("hello {i}"))).await.unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::text(format!("hello {i}"))
            );
        }
        ws.close(None).await.unwrap();
    });
    rig.wait_held(1).await;
    let pod = pod("127.0.0.1", &[]).await;
    rig.pods(&[pod]);
    client.await.unwrap();
}

#[tokio::test]
async fn grpc_over_h2c_through_a_cold_start() {
    let rig = rig(limits(8, 10), Duration::from_secs(30)).await;
    let addr = rig.addr;
    let call = tokio::spawn(async move {
        let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::post(format!("http://{HOST}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let collected = resp.into_body().collect().await.unwrap();
        let status = collected.trailers().unwrap()["grpc-status"].clone();
        (status, collected.to_bytes())
    });
    rig.wait_held(1).await;
    let pod = pod("127.0.0.1", &[]).await;
    rig.pods(&[pod]);
    let (status, body) = call.await.unwrap();
    assert_eq!(status, "0");
    assert_eq!(&body[..], &[0, 0, 0, 0, 2, 0x08, 1], "SERVING");
}

/// A bare HTTP/1.1 pod on `ip`: answers every `GET` with `ok` on a kept-alive connection and, with
/// `close_idle`, closes each connection that long after its answer. Counts the connections it
/// accepted.
async fn keep_alive_pod(ip: &str, close_idle: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                        if let Some(after) = close_idle {
                            tokio::time::sleep(after).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn pod_connections_are_kept_alive_and_one_the_pod_closed_while_idle_is_replaced() {
    let rig = rig(limits(8, 10), Duration::from_secs(30)).await;
    let get = || {
        rig.http
            .get(format!("http://{}/x", rig.addr))
            .header("host", HOST)
            .send()
    };

    // Kept alive: five requests in a row reuse one pod connection.
    let (steady, accepted) = keep_alive_pod("127.0.0.5", None).await;
    rig.pods(&[steady]);
    for _ in 0..5 {
        let resp = get().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one pod connection for five requests"
    );

    // The pod closes each connection 50 ms after its answer, while the DLX holds it idle in its pool:
    // the next request goes out on a new connection, with no error and no retry.
    let (closing, accepted) = keep_alive_pod("127.0.0.6", Some(Duration::from_millis(50))).await;
    rig.pods(&[closing]);
    for i in 0..3 {
        let resp = get().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.text().await.unwrap(), "ok");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(
        rig.metrics.backend_errors.get(),
        0,
        "no request was sent on a closed connection (and retried)"
    );
    assert_eq!(rig.metrics.fast_path.get(), 8, "all on the fast path");
}

/// A pod that answers every request with what it received: `method path`, one `name: value` line per
/// header (names lowercase, in order), an empty line, then the body. Built on hyper, so it decodes
/// whatever framing the DLX sent.
async fn mirror_pod(ip: &str) -> SocketAddr {
    use hyper::server::conn::http1;
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let service = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let mut text = format!("{} {}\n", req.method(), req.uri());
                    for (k, v) in req.headers() {
                        text += &format!("{k}: {}\n", v.to_str().unwrap_or("?"));
                    }
                    text += "\n";
                    let body = req.into_body().collect().await?.to_bytes();
                    text += &String::from_utf8_lossy(&body);
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(text))))
                },
            );
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(s), service));
        }
    });
    addr
}

/// A rig whose target's one pod is a [`mirror_pod`] on `ip`, and a client connection to the DLX.
async fn mirror_rig(ip: &str) -> (Rig, tokio::net::TcpStream) {
    let rig = rig(limits(8, 10), Duration::from_secs(30)).await;
    rig.pods(&[mirror_pod(ip).await]);
    let s = tokio::net::TcpStream::connect(rig.addr).await.unwrap();
    (rig, s)
}

/// Reads one response from `s`: head and body (by `content-length`; none for `head`).
async fn read_response(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    head: bool,
) -> (String, String) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head_text = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            let len: usize = head_text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.parse().unwrap())
                })
                .unwrap_or(0);
            let len = if head { 0 } else { len };
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8(buf[end + 4..end + 4 + len].to_vec()).unwrap();
                buf.drain(..end + 4 + len);
                return (head_text, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before a whole response: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn the_fast_path_rewrites_heads_keeps_bodies_and_hands_over_to_hyper_mid_connection() {
    use tokio::io::AsyncWriteExt;
    let (rig, mut s) = mirror_rig("127.0.0.7").await;
    let mut buf = Vec::new();
    // On the fast path: hop-by-hop headers go, the target header goes, X-Forwarded-For grows, the
    // rest (Host, X-Forwarded-Host, the body) passes as sent. The body arrives in a second write.
    s.write_all(b"POST /v1/completions?x=1 HTTP/1.1\r\nHost: api.example.com\r\nX-DLX-Target: t/llm\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: api.example.com\r\nContent-Length: 11\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.write_all(b" world").await.unwrap();
    let (head, body) = read_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection:"), "{head}");
    assert_eq!(
        body,
        "POST /v1/completions?x=1\nhost: api.example.com\nx-forwarded-host: api.example.com\ncontent-length: 11\nx-forwarded-for: 203.0.113.9, 127.0.0.1\n\nhello world"
    );
    // A chunked body is not the fast path's: hyper takes over the connection with the bytes read.
    s.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: llm.t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        body.starts_with("POST /v1/completions\nhost: llm.t\n"),
        "{body}"
    );
    assert!(body.ends_with("\n\nhello"), "{body}");
    // And serves the rest of it.
    s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: llm.t\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = read_response(&mut s, &mut buf, false).await;
    assert!(body.starts_with("GET /v1/models\nhost: llm.t\n"), "{body}");
    assert_eq!(rig.metrics.backend_errors.get(), 0);
    assert_eq!(rig.metrics.fast_path.get(), 1, "the first request alone");
}

#[tokio::test]
async fn pipelined_requests_head_and_close_on_the_fast_path() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (rig, mut s) = mirror_rig("127.0.0.8").await;
    s.write_all(b"GET /a HTTP/1.1\r\nHost: llm.t\r\n\r\nHEAD /b HTTP/1.1\r\nHost: llm.t\r\n\r\nGET /c HTTP/1.1\r\nHost: llm.t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (_, a) = read_response(&mut s, &mut buf, false).await;
    assert!(a.starts_with("GET /a\n"), "{a}");
    let (head, b) = read_response(&mut s, &mut buf, true).await;
    assert!(
        head.contains("content-length:"),
        "HEAD gets the length of what GET would: {head}"
    );
    assert_eq!(b, "");
    let (head, c) = read_response(&mut s, &mut buf, false).await;
    assert!(c.starts_with("GET /c\n"), "{c}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty() && buf.is_empty(), "closed after the third");
    assert_eq!(rig.metrics.fast_path.get(), 3);
}

/// A connection to the DLX that sent one streaming completion of `tokens` tokens, the first bytes of
/// its answer read.
async fn streaming(rig: &Rig, tokens: u32) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body =
        json!({"model": "llm", "prompt": "x", "max_tokens": tokens, "stream": true}).to_string();
    let mut s = tokio::net::TcpStream::connect(rig.addr).await.unwrap();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all((head + &body).as_bytes()).await.unwrap();
    let mut first = vec![0u8; 64];
    let n = s.read(&mut first).await.unwrap();
    first.truncate(n);
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    (s, first)
}

#[tokio::test]
async fn a_client_that_leaves_a_stream_on_the_fast_path_frees_its_place() {
    // One place per pod: the next request gets through only once the first has let go of it.
    let rig = rig(limits(1, 10), Duration::from_secs(30)).await;
    let pod = pod(
        "127.0.0.9",
        &["--tokens-per-second", "10", "--ttft-ms", "0"],
    )
    .await;
    rig.pods(&[pod]);
    let (s, _) = streaming(&rig, 100).await;
    let inflight = || {
        rig.metrics
            .inflight
            .get_or_create(&dlx::metrics::TargetLabels::from(&key("llm")))
            .get()
    };
    assert_eq!(inflight(), 1);
    // A 10-second stream; the client leaves after its first bytes.
    drop(s);
    let started = Instant::now();
    while inflight() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resp = rig.post(completion(false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(rig.metrics.fast_path.get(), 2, "both on the fast path");
}

#[tokio::test]
async fn a_kept_alive_connection_sees_its_service_handed_back() {
    use tokio::io::AsyncWriteExt;
    let (rig, mut s) = mirror_rig("127.0.0.10").await;
    let mut buf = Vec::new();
    let get = format!("GET /v1/models HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    s.write_all(get.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The ElasticScaler restores the Service: the DLX no longer serves it, even on this connection.
    rig.proxy.catalog.reset_services(vec![]);
    rig.proxy.service_changed(&key("llm"));
    s.write_all(get.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(body.contains("not handed to the DLX"), "{body}");
    assert_eq!(rig.metrics.fast_path.get(), 1);
}

#[tokio::test]
async fn a_drain_closes_idle_fast_path_connections_and_finishes_the_stream_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rig = rig(limits(8, 10), Duration::from_secs(30)).await;
    let pod = pod(
        "127.0.0.11",
        &["--tokens-per-second", "20", "--ttft-ms", "0"],
    )
    .await;
    rig.pods(&[pod]);
    let mut idle = tokio::net::TcpStream::connect(rig.addr).await.unwrap();
    let mut buf = Vec::new();
    idle.write_all(format!("GET /v1/models HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (head, _) = read_response(&mut idle, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Ten tokens at 20 per second: half a second of stream.
    let (mut busy, mut streamed) = streaming(&rig, 10).await;
    rig.stop.cancel();
    // The idle connection is closed at once.
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_millis(500), idle.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    // The stream in flight runs to its end, then its connection closes.
    let ended = tokio::time::timeout(Duration::from_secs(2), busy.read_to_end(&mut streamed)).await;
    assert!(ended.is_ok(), "not closed after the stream");
    let text = String::from_utf8_lossy(&streamed);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(
        text.ends_with("0\r\n\r\n"),
        "the chunked body ends whole: {text}"
    );
    assert_eq!(rig.metrics.fast_path.get(), 2);
}
