//! The ExternalServer stub of `es-bench`: answers `0` to every `GET /metric?metric=<name>` on 127.0.0.1 and
//! records when each name was asked, so each scaler's effective period is the gap between two of its asks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;

/// When each metric name was asked, in seconds since the stub started.
type Asked = Arc<Mutex<HashMap<String, Vec<f64>>>>;

/// A running stub.
pub struct Stub {
    /// Where it listens.
    pub addr: SocketAddr,
    asked: Asked,
    start: Instant,
}

#[derive(serde::Deserialize)]
struct Params {
    metric: String,
}

async fn answer(
    State((asked, start)): State<(Asked, Instant)>,
    Query(p): Query<Params>,
) -> &'static str {
    let at = start.elapsed().as_secs_f64();
    asked
        .lock()
        .expect("poisoned")
        .entry(p.metric)
        .or_default()
        .push(at);
    // desired = 0 = current: the scalers decide every period and never scale.
    "0"
}

/// Starts the stub on an ephemeral loopback port.
pub async fn start() -> Result<Stub> {
    let asked = Asked::default();
    let start = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metric", get(answer))
        .with_state((asked.clone(), start));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Stub { addr, asked, start })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1]
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Stub {
    /// Seconds since the stub started (the clock of [`Stub::periods`]).
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Every ask so far.
    pub fn total(&self) -> usize {
        self.asked
            .lock()
            .expect("poisoned")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// The effective period of `metrics` between `from` and `to` (stub clock): the gaps between
    /// consecutive asks of one name, pooled over all names, against the configured `period`.
    pub fn periods(
        &self,
        metrics: &[String],
        from: f64,
        to: f64,
        period: f64,
    ) -> serde_json::Value {
        let asked = self.asked.lock().expect("poisoned");
        let mut gaps = Vec::new();
        let mut medians = Vec::new();
        let (mut asks, mut never, mut once) = (0usize, 0usize, 0usize);
        for m in metrics {
            let times: Vec<f64> = asked
                .get(m)
                .map(|t| {
                    t.iter()
                        .copied()
                        .filter(|t| (from..=to).contains(t))
                        .collect()
                })
                .unwrap_or_default();
            asks += times.len();
            match times.len() {
                0 => never += 1,
                1 => once += 1,
                _ => {}
            }
            let mut own: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
            own.sort_by(f64::total_cmp);
            if !own.is_empty() {
                medians.push(percentile(&own, 50.0));
            }
            gaps.extend(own);
        }
        gaps.sort_by(f64::total_cmp);
        medians.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&gaps, 50.0), percentile(&gaps, 99.0));
        serde_json::json!({
            "configured_seconds": period,
            "intervals": gaps.len(),
            "p50_s": r3(p50),
            "p99_s": r3(p99),
            "max_s": r3(gaps.last().copied().unwrap_or(f64::NAN)),
            "p50_ratio": r3(p50 / period),
            "p99_ratio": r3(p99 / period),
            "max_ratio": r3(gaps.last().copied().unwrap_or(f64::NAN) / period),
            "per_scaler_median_p50_s": r3(percentile(&medians, 50.0)),
            "per_scaler_median_p99_s": r3(percentile(&medians, 99.0)),
            "asks_in_window": asks,
            "scalers_not_asked": never,
            "scalers_asked_once": once,
        })
    }
}
