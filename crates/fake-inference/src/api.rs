//! HTTP handlers: `/health`, `/v1/models`, `/metrics` and the two completion endpoints, plus
//! `PUT /fault/metrics` (body `fail` or `ok`), which makes this one server's `/metrics` answer 500 so
//! tests can check that a scaler never reads a failing pod as 0, and the routes of
//! [`protocols`](crate::protocols) (WebSocket echo, gRPC health check, fixed-size bodies).
//!
//! A completion request is parsed into a [`Job`], admitted by the [`Engine`] (503 while loading, 429
//! when the queue is full) and then answered one of two ways:
//!
//! - non-streaming: the handler waits for a slot and for every token, then returns one JSON body;
//! - streaming: the headers go out at once (as vLLM's do) and the body stream itself waits for the slot,
//!   then writes one `data: {chunk}` event per token as it is produced, and `data: [DONE]`.
//!
//! Either way the [`Sequence`](crate::engine::Sequence) lives inside the handler future or the body
//! stream, so a client hanging up drops it and frees its slot or queue place immediately.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::engine::{AdmitError, Engine};
use crate::metrics;
use crate::openai::{ChatRequest, CompletionRequest, Endpoint, Job, Reply, Usage};
use crate::protocols::{self, Protocols};

/// Shared state of the handlers.
#[derive(Clone, Debug)]
struct AppState {
    engine: Engine,
    model: Arc<str>,
    default_max_tokens: u32,
    next_id: Arc<AtomicU64>,
    metrics_fail: Arc<AtomicBool>,
}

/// The API router over `engine`, answering as `model`.
pub fn router(engine: Engine, model: &str, default_max_tokens: u32) -> Router {
    let state = AppState {
        engine,
        model: model.into(),
        default_max_tokens,
        next_id: Arc::default(),
        metrics_fail: Arc::default(),
    };
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/fault/metrics", put(metrics_fault))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .merge(protocols_router(&state))
        .with_state(state)
}

// The WebSocket echo and the gRPC health check (`protocols`), with their own state.
fn protocols_router(s: &AppState) -> Router<AppState> {
    let p = Protocols {
        engine: s.engine.clone(),
        model: s.model.clone(),
    };
    Router::new()
        .route("/ws/echo", get(protocols::ws_echo))
        .route(protocols::GRPC_HEALTH_CHECK, post(protocols::grpc_health))
        .route("/bytes/{n}", get(protocols::bytes))
        .with_state(p)
}

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
        }
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        let (status, kind) = match e {
            AdmitError::Loading => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            AdmitError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"),
        };
        Self {
            status,
            kind,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind, "param": null, "code": self.status.as_u16()}
        });
        (self.status, Json(body)).into_response()
    }
}

async fn health(State(s): State<AppState>) -> Response {
    if s.engine.is_ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading").into_response()
    }
}

async fn models(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !s.engine.is_ready() {
        return Err(AdmitError::Loading.into());
    }
    let model = json!({
        "id": &*s.model,
        "object": "model",
        "created": unix_now(),
        "owned_by": "fake-inference",
        "root": &*s.model,
        "parent": null,
    });
    Ok(Json(json!({"object": "list", "data": [model]})))
}

async fn metrics_fault(State(s): State<AppState>, body: Bytes) -> Response {
    match &body[..] {
        b"fail" => s.metrics_fail.store(true, Ordering::Relaxed),
        b"ok" => s.metrics_fail.store(false, Ordering::Relaxed),
        _ => return (StatusCode::BAD_REQUEST, "body must be `fail` or `ok`").into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    if s.metrics_fail.load(Ordering::Relaxed) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "metrics fault injected").into_response();
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        s.engine.metrics().render(),
    )
        .into_response()
}

async fn completions(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let job = parse::<CompletionRequest>(&body)?.into();
    complete(s, job).await
}

async fn chat_completions(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request = parse::<ChatRequest>(&body)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must not be empty"));
    }
    complete(s, request.into()).await
}

// The body is parsed by hand rather than with `Json<T>` so that a missing or non-JSON content type is
// accepted (as vLLM does) and every failure becomes an OpenAI-style 400 naming the problem.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
}

async fn complete(s: AppState, job: Job) -> Result<Response, ApiError> {
    let max_tokens = job.max_tokens.unwrap_or(s.default_max_tokens);
    if max_tokens == 0 {
        return Err(ApiError::bad_request("`max_tokens` must be at least 1"));
    }
    let sequence = s.engine.admit()?;
    let prefix = match job.endpoint {
        Endpoint::Completions => "cmpl",
        Endpoint::Chat => "chatcmpl",
    };
    let reply = Reply {
        endpoint: job.endpoint,
        id: format!("{prefix}-{}", s.next_id.fetch_add(1, Ordering::Relaxed)),
        created: unix_now(),
        model: s.model.to_string(),
    };
    let usage = Usage {
        prompt_tokens: job.prompt_tokens,
        completion_tokens: max_tokens,
    };
    if !job.stream {
        let tokens = sequence.start().await.tokens(max_tokens);
        let text: String = tokens.map(|t| t.text).collect().await;
        return Ok(Json(reply.full(&text, usage)).into_response());
    }
    let usage_chunk = job.include_usage.then(|| reply.usage_chunk(usage));
    let events = futures::stream::once(sequence.start())
        .flat_map(move |seq| seq.tokens(max_tokens))
        .map(move |token| event(&reply.chunk(&token)))
        .chain(futures::stream::iter(usage_chunk.map(|u| event(&u))))
        .chain(futures::stream::once(async {
            Bytes::from_static(b"data: [DONE]\n\n")
        }))
        .map(Ok::<_, Infallible>);
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    Ok((headers, Body::from_stream(events)).into_response())
}

fn event(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
