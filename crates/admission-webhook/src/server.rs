//! The HTTPS admission server: routes, body limit, per-request deadline, decisions, metrics, and the TLS
//! accept loop with graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admit::{self, Kind};
use crate::checks::{Caches, Sar, references};
use crate::metrics::{DecisionLabels, Metrics, OpLabels};
use crate::review::{self, AdmissionRequest, Decision};

/// Which webhook a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `/validate/<resource>`.
    Validate,
    /// `/mutate/<resource>`.
    Mutate,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Validate => "validate",
            Op::Mutate => "mutate",
        }
    }
}

/// Everything a request needs.
pub struct App {
    /// Watch caches for the conflict rules (`None`: `--cluster-checks=false`).
    pub caches: Option<Caches>,
    /// SubjectAccessReview checker (`None`: `--rbac-check=false`).
    pub sar: Option<Sar>,
    /// `--allow-multiple-scalers`.
    pub allow_multiple_scalers: bool,
    /// Metrics.
    pub metrics: Metrics,
    /// `--request-timeout`.
    pub timeout: Duration,
}

impl App {
    /// The decision for one request.
    pub async fn decide(&self, op: Op, kind: Kind, req: &AdmissionRequest) -> Decision {
        match op {
            Op::Mutate => {
                let mut d = admit::mutate(kind, req);
                // Warnings are given once, by the validating webhook.
                d.warnings.clear();
                d
            }
            Op::Validate => self.validate(kind, req).await,
        }
    }

    async fn validate(&self, kind: Kind, req: &AdmissionRequest) -> Decision {
        if req.spec_unchanged() {
            return Decision::allow();
        }
        let (typed, warnings) = match admit::validate_pure(kind, req) {
            Ok(x) => x,
            Err(d) => return d,
        };
        let (ns, name) = (req.object_namespace(), req.object_name());
        if let Some(c) = &self.caches {
            let errs = c.conflicts(&ns, &name, &typed, self.allow_multiple_scalers);
            if !errs.is_empty() {
                return Decision::deny(
                    "conflict",
                    409,
                    format!(
                        "{} {name:?} conflicts with another object: {}",
                        kind.name(),
                        api_types::validation::summarize(&errs)
                    ),
                );
            }
        }
        if let Some(sar) = &self.sar {
            let refs = references(&ns, &typed);
            // On UPDATE only new references need the requester's permissions: label or replica edits by
            // someone else must not be blocked by the author's grants.
            let unchanged = req.operation == "UPDATE"
                && req
                    .old_object
                    .as_ref()
                    .and_then(|o| admit::decode(kind, o).ok())
                    .is_some_and(|old| references(&ns, &old) == refs);
            if !unchanged {
                match sar.missing(&req.user_info, kind.name(), &refs).await {
                    Ok(None) => {}
                    Ok(Some(e)) => {
                        return Decision::deny(
                            "forbidden",
                            403,
                            format!("{} {name:?} is not allowed: {e}", kind.name()),
                        );
                    }
                    Err(e) => {
                        return Decision::deny(
                            "error",
                            500,
                            format!("checking the requester's permissions failed: {e}"),
                        );
                    }
                }
            }
        }
        let mut d = Decision::allow();
        d.warnings = warnings;
        d
    }

    fn count(&self, kind: &'static str, op: Op, reason: &'static str) {
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                kind,
                operation: op.label(),
                reason,
            })
            .inc();
    }
}

/// The admission routes: `POST /validate/{resource}` and `POST /mutate/{resource}`.
pub fn router(app: Arc<App>, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/validate/{resource}",
            post(|s, p, b| handle(s, p, b, Op::Validate)),
        )
        .route(
            "/mutate/{resource}",
            post(|s, p, b| handle(s, p, b, Op::Mutate)),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

async fn handle(
    State(app): State<Arc<App>>,
    Path(resource): Path<String>,
    body: Bytes,
    op: Op,
) -> Response {
    let start = Instant::now();
    let Some(kind) = Kind::from_resource(&resource) else {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no webhook for {resource:?}: use elasticscalers, resourcescalinggroups or tidals"
            ),
        )
            .into_response();
    };
    let label = kind.resource();
    let req = match review::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            app.count(label, op, "bad_request");
            return (StatusCode::BAD_REQUEST, e).into_response();
        }
    };
    let decision = match tokio::time::timeout(app.timeout, app.decide(op, kind, &req)).await {
        Ok(d) => d,
        Err(_) => {
            app.count(label, op, "timeout");
            tracing::warn!(kind = label, op = op.label(), uid = %req.uid, "review timed out");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no decision within {:?}", app.timeout),
            )
                .into_response();
        }
    };
    app.count(label, op, decision.reason);
    app.metrics
        .duration
        .get_or_create(&OpLabels {
            kind: label,
            operation: op.label(),
        })
        .observe(start.elapsed().as_secs_f64());
    if !decision.allowed {
        tracing::info!(
            kind = label,
            op = op.label(),
            namespace = %req.object_namespace(),
            name = %req.object_name(),
            user = %req.user_info.username,
            reason = decision.reason,
            message = decision.message.as_deref().unwrap_or_default(),
            "denied"
        );
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        review::encode(&req.uid, &decision),
    )
        .into_response()
}

/// Accepts TLS connections on `listener` and serves `app` (HTTP/1.1 and HTTP/2) until `shutdown`; then stops
/// accepting and gives open connections up to 10 s to finish their requests.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let svc = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder
                .serve_connection(TokioIo::new(tls), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn app() -> Router {
        let mut reg = prometheus_client::registry::Registry::default();
        router(
            Arc::new(App {
                caches: None,
                sar: None,
                allow_multiple_scalers: false,
                metrics: Metrics::register(&mut reg),
                timeout: Duration::from_secs(1),
            }),
            1024,
        )
    }

    async fn post(path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let r = app()
            .oneshot(
                http::Request::post(path)
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = r.status();
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn routes_limit_bodies_and_answer_reviews() {
        assert_eq!(
            post("/validate/pods", b"{}".to_vec()).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            post("/validate/tidals", vec![b' '; 2048]).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            post("/validate/tidals", b"[]".to_vec()).await.0,
            StatusCode::BAD_REQUEST
        );
        let review = serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "x", "operation": "CREATE", "namespace": "ns", "object": {
              "apiVersion": "tidal.io/v1alpha1", "kind": "Tidal", "metadata": {"name": "t"},
              "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "ns"},
                "triggers": {"times": {"rules": [{"name": "a", "cron": "CRON_TZ=UTC 0 9 * * *", "replicas": 1}]}}}}}});
        let (code, body) = post("/validate/tidals", serde_json::to_vec(&review).unwrap()).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("\"allowed\":true"), "{body}");
    }
}
