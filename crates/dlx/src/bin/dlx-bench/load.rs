//! A keep-alive HTTP/1.1 load generator: `connections` connections, each sending `GET` requests one after
//! another — as fast as answers come (saturation), or on a fixed schedule (a rate), where latency is
//! measured from the scheduled instant so a slow answer cannot hide the queueing it causes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What to send.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// The path; the answer must be `body_bytes` long.
    pub path: String,
    /// Expected body length.
    pub body_bytes: usize,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Requests per second in total; `None` is saturation.
    pub rate: Option<f64>,
    /// Measured time, after `warmup`.
    pub duration: Duration,
    /// Unmeasured time first.
    pub warmup: Duration,
}

/// What came back.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Correct answers in the measured window.
    pub requests: u64,
    /// Failed or wrong answers in the measured window.
    pub errors: u64,
    /// `requests` per second.
    pub rps: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs `spec` to its end.
pub async fn run(spec: &Spec) -> Report {
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let interval = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.connections as f64 / r));
    let tasks: Vec<_> = (0..spec.connections)
        .map(|i| {
            let spec = spec.clone();
            // Spread the connections' schedules over one interval.
            let first = start
                + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / spec.connections as u32);
            tokio::spawn(async move { connection(&spec, first, interval, measure_from, end).await })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    Report {
        requests: lat.len() as u64,
        errors,
        rps: lat.len() as f64 / spec.duration.as_secs_f64(),
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn one(sender: &mut Sender, spec: &Spec) -> anyhow::Result<()> {
    sender.ready().await?;
    let req = hyper::Request::get(spec.path.as_str())
        .header(hyper::header::HOST, spec.host.as_str())
        .body(Empty::new())?;
    let resp = sender.send_request(req).await?;
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(body.len() == spec.body_bytes, "{} bytes", body.len());
    Ok(())
}

/// One connection's loop: latencies (µs) and errors inside the measured window.
async fn connection(
    spec: &Spec,
    mut next: Instant,
    interval: Option<Duration>,
    measure_from: Instant,
    end: Instant,
) -> (Vec<u32>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut sender: Option<Sender> = None;
    loop {
        let scheduled = match interval {
            Some(iv) => {
                tokio::time::sleep_until(next).await;
                let s = next;
                next += iv;
                s
            }
            None => Instant::now(),
        };
        if scheduled >= end {
            break;
        }
        let result = async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = Some(connect(spec.addr).await?);
            }
            one(sender.as_mut().expect("connected"), spec).await
        }
        .await;
        let measured = scheduled >= measure_from;
        match result {
            Ok(()) if measured => {
                lat.push(scheduled.elapsed().as_micros().min(u32::MAX as u128) as u32)
            }
            Ok(()) => {}
            Err(_) => {
                sender = None;
                if measured {
                    errors += 1;
                }
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (lat, errors)
}
