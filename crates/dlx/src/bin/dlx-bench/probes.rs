//! Protocol probes: a WebSocket echo round trip and a gRPC health check over h2c, sent with
//! `Host`/`:authority` naming the target.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Upgrades `GET /ws/echo` and checks `messages` text messages come back.
pub async fn ws(addr: SocketAddr, host: &str, messages: u32) -> anyhow::Result<serde_json::Value> {
    let mut req = format!("ws://{addr}/ws/echo").into_client_request()?;
    req.headers_mut().insert("host", host.parse()?);
    let stream = TcpStream::connect(addr).await?;
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream).await?;
    anyhow::ensure!(resp.status() == 101, "upgrade answered {}", resp.status());
    for i in 0..messages {
        let text = format!("echo {i}");
        ws.send(Message::text(text.clone())).await?;
        let back = ws
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("the connection closed before echo {i}"))??;
        anyhow::ensure!(
            back == Message::text(text.clone()),
            "sent {text:?}, got {back:?}"
        );
    }
    ws.close(None).await?;
    Ok(json!({"messages": messages}))
}

/// `grpc.health.v1.Health/Check`; correct when grpc-status is 0 and the status SERVING.
pub async fn grpc(addr: SocketAddr, host: &str) -> anyhow::Result<serde_json::Value> {
    let io = TokioIo::new(TcpStream::connect(addr).await?);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    // An empty HealthCheckRequest (service ""), length-prefixed, uncompressed.
    let req = hyper::Request::post(format!("http://{host}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))?;
    let resp = sender.send_request(req).await?;
    anyhow::ensure!(resp.status() == 200, "HTTP status {}", resp.status());
    let collected = resp.into_body().collect().await?;
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    let body = collected.to_bytes();
    anyhow::ensure!(status == "0", "grpc-status {status}");
    // HealthCheckResponse{status: SERVING}: field 1 varint 1.
    anyhow::ensure!(
        body[..] == [0, 0, 0, 0, 2, 0x08, 1],
        "not SERVING: {:?}",
        &body[..]
    );
    Ok(json!({"grpc_status": 0, "serving": true}))
}
