//! The WebSocket echo and the gRPC health check over h2c, against a real server on 127.0.0.1:0.

use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use fake_inference::{Config, FakeServer};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::Message;

async fn start(args: &[&str]) -> std::net::SocketAddr {
    let argv = [
        "fake-inference",
        "--listen",
        "127.0.0.1:0",
        "--model",
        "llm",
    ]
    .into_iter()
    .chain(args.iter().copied());
    let server = FakeServer::bind(&Config::try_parse_from(argv).unwrap())
        .await
        .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// One gRPC health check over a fresh h2c connection: (grpc-status, response message).
async fn health(addr: std::net::SocketAddr, request: &[u8]) -> (String, Bytes) {
    let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::copy_from_slice(request)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let collected = resp.into_body().collect().await.unwrap();
    let status = collected.trailers().unwrap()["grpc-status"]
        .to_str()
        .unwrap()
        .to_string();
    (status, collected.to_bytes())
}

#[tokio::test]
async fn grpc_health_check_follows_the_cold_start() {
    let addr = start(&["--cold-start-ms", "300"]).await;
    let empty = [0u8, 0, 0, 0, 0];
    assert_eq!(
        health(addr, &empty).await,
        ("0".into(), Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 2]))
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        health(addr, &empty).await,
        ("0".into(), Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 1]))
    );
    let named = [0u8, 0, 0, 0, 5, 0x0a, 3, b'l', b'l', b'm'];
    assert_eq!(health(addr, &named).await.0, "0");
    let other = [0u8, 0, 0, 0, 3, 0x0a, 1, b'x'];
    assert_eq!(health(addr, &other).await, ("5".into(), Bytes::new()));
}

#[tokio::test]
async fn websocket_echo_after_the_cold_start() {
    let addr = start(&["--cold-start-ms", "300"]).await;
    let url = format!("ws://{addr}/ws/echo");
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503 while loading, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn fixed_size_bodies() {
    let addr = start(&[]).await;
    let body = reqwest::get(format!("http://{addr}/bytes/1024"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 1024);
    let big = reqwest::get(format!("http://{addr}/bytes/2000000"))
        .await
        .unwrap();
    assert_eq!(big.status(), 400);
}
