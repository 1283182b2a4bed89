//! `dlx-bench`: protocol probes for the DLX's e2e tests and benchmarks, which need clients the test
//! crates do not carry: a WebSocket echo round trip and a gRPC health check over h2c. Each subcommand
//! connects to `--addr` (the DLX, or a pod directly), sends `Host`/`:authority` `--host`, prints one
//! JSON line with the result and exits 0 when the exchange was correct, 1 otherwise.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser, Debug)]
#[command(name = "dlx-bench", about = "Protocol probes through the DLX")]
struct Cli {
    /// Where to connect (the DLX's proxy address, or a pod).
    #[arg(long)]
    addr: SocketAddr,
    /// The Host (HTTP/1.1) or :authority (HTTP/2) to send, e.g. llm.ns.svc.cluster.local.
    #[arg(long)]
    host: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_seconds: u64,
    #[command(subcommand)]
    probe: Probe,
}

#[derive(Subcommand, Debug)]
enum Probe {
    /// Upgrade `GET /ws/echo` to a WebSocket and check `--messages` text messages come back.
    Ws {
        #[arg(long, default_value_t = 3)]
        messages: u32,
    },
    /// `grpc.health.v1.Health/Check` over h2c; correct when grpc-status is 0 and the status SERVING.
    Grpc,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let started = Instant::now();
    let run = async {
        match cli.probe {
            Probe::Ws { messages } => ws(cli.addr, &cli.host, messages).await,
            Probe::Grpc => grpc(cli.addr, &cli.host).await,
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(cli.timeout_seconds), run)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "no answer within {} s",
                cli.timeout_seconds
            ))
        });
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(detail) => {
            println!("{}", json!({"ok": true, "ms": ms, "detail": detail}));
        }
        Err(e) => {
            println!(
                "{}",
                json!({"ok": false, "ms": ms, "error": format!("{e:#}")})
            );
            std::process::exit(1);
        }
    }
}

async fn ws(addr: SocketAddr, host: &str, messages: u32) -> anyhow::Result<serde_json::Value> {
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

async fn grpc(addr: SocketAddr, host: &str) -> anyhow::Result<serde_json::Value> {
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
