//! For testing and benchmarking proxies in front of the server (the DLX): a WebSocket echo at
//! `GET /ws/echo`, the standard gRPC health check `grpc.health.v1.Health/Check` (over h2c, the server
//! speaks HTTP/2 with prior knowledge on the same port), and `GET /bytes/{n}`, a body of `n` bytes (at
//! most 1 MiB) answered without touching the engine, the fixed response of a proxy benchmark.
//!
//! Both follow the cold start: the echo refuses the upgrade with 503 while the model loads, the health
//! check answers `NOT_SERVING` until it is ready and `SERVING` after; a service name other than `""`
//! or the served model answers gRPC status `NOT_FOUND`. The gRPC messages are encoded by hand (one
//! varint field each), so the server needs no protobuf toolchain.

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};

use crate::engine::Engine;

/// Path of the gRPC health check.
pub const GRPC_HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// State of the two handlers.
#[derive(Clone, Debug)]
pub struct Protocols {
    /// Readiness follows the engine's cold start.
    pub engine: Engine,
    /// The served model: a health-check service name that is answered.
    pub model: std::sync::Arc<str>,
}

/// `GET /ws/echo`: every text or binary message comes back unchanged; close ends it.
pub async fn ws_echo(State(p): State<Protocols>, ws: WebSocketUpgrade) -> Response {
    if !p.engine.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "loading").into_response();
    }
    ws.on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => break,
            // Pings are answered by the library; pongs need nothing.
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

/// Largest body `GET /bytes/{n}` answers.
pub const MAX_BYTES: usize = 1 << 20;

/// `GET /bytes/{n}`: `n` bytes of `x` (400 above [`MAX_BYTES`]).
pub async fn bytes(Path(n): Path<usize>) -> Response {
    if n > MAX_BYTES {
        return (StatusCode::BAD_REQUEST, "at most 1048576 bytes").into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        vec![b'x'; n],
    )
        .into_response()
}

/// Health status values of `grpc.health.v1.HealthCheckResponse.ServingStatus`.
const SERVING: u8 = 1;
const NOT_SERVING: u8 = 2;
/// gRPC status codes used here.
const GRPC_OK: &str = "0";
const GRPC_INVALID_ARGUMENT: &str = "3";
const GRPC_NOT_FOUND: &str = "5";

/// `POST /grpc.health.v1.Health/Check`: one length-prefixed `HealthCheckRequest` in, one
/// `HealthCheckResponse` out, status in the trailers.
pub async fn grpc_health(State(p): State<Protocols>, body: Bytes) -> Response {
    let Some(service) = health_request_service(&body) else {
        return grpc_reply(None, GRPC_INVALID_ARGUMENT, "malformed HealthCheckRequest");
    };
    if !service.is_empty() && service != *p.model {
        return grpc_reply(None, GRPC_NOT_FOUND, "unknown service");
    }
    let status = if p.engine.is_ready() {
        SERVING
    } else {
        NOT_SERVING
    };
    // Field 1 (status), varint: tag 0x08, then the value.
    grpc_reply(Some(&[0x08, status]), GRPC_OK, "")
}

/// The `service` field of a length-prefixed `HealthCheckRequest`; `None` if malformed.
pub fn health_request_service(frame: &[u8]) -> Option<String> {
    if frame.is_empty() {
        return Some(String::new());
    }
    let (&compressed, rest) = frame.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let msg = rest.get(4..4 + len)?;
    if compressed != 0 {
        return None;
    }
    let mut i = 0;
    let mut service = String::new();
    while i < msg.len() {
        let tag = msg[i];
        i += 1;
        let (n, used) = varint(&msg[i..])?;
        i += used;
        match tag {
            // Field 1, length-delimited: the service name.
            0x0a => {
                let s = msg.get(i..i + n as usize)?;
                service = String::from_utf8(s.to_vec()).ok()?;
                i += n as usize;
            }
            _ => return None,
        }
    }
    Some(service)
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn grpc_reply(message: Option<&[u8]>, status: &'static str, text: &'static str) -> Response {
    let mut data = Vec::new();
    if let Some(m) = message {
        data.push(0);
        data.extend_from_slice(&(m.len() as u32).to_be_bytes());
        data.extend_from_slice(m);
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    if !text.is_empty() {
        trailers.insert("grpc-message", HeaderValue::from_static(text));
    }
    let body = Full::new(Bytes::from(data)).with_trailers(async move { Some(Ok(trailers)) });
    let mut r = Response::new(Body::new(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_service_of_a_health_request() {
        assert_eq!(health_request_service(&[]), Some(String::new()));
        assert_eq!(
            health_request_service(&[0, 0, 0, 0, 0]),
            Some(String::new())
        );
        let mut frame = vec![0, 0, 0, 0, 5, 0x0a, 3];
        frame.extend_from_slice(b"llm");
        assert_eq!(health_request_service(&frame), Some("llm".into()));
        assert_eq!(health_request_service(&[0, 0, 0, 0, 9]), None);
        assert_eq!(health_request_service(&[1, 0, 0, 0, 0]), None);
    }
}
