//! The vLLM metrics the autoscaler reads, in the classic Prometheus text format (`version=0.0.4`).
//!
//! They are encoded by hand rather than with `prometheus-client`: the names must be vLLM's exactly,
//! colons included, with vLLM's `_total` counter naming and the classic (not OpenMetrics) exposition
//! that a real vLLM serves, so scrapers and recording rules written for vLLM work unchanged. Six metric
//! families do not justify bending a library into that shape.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Gauge: sequences holding a slot.
pub const NUM_REQUESTS_RUNNING: &str = "vllm:num_requests_running";
/// Gauge: admitted requests waiting for a slot.
pub const NUM_REQUESTS_WAITING: &str = "vllm:num_requests_waiting";
/// Gauge: KV-cache usage, 0..1; here the fraction of slots in use.
pub const GPU_CACHE_USAGE_PERC: &str = "vllm:gpu_cache_usage_perc";
/// Histogram: time from a request's arrival to its first token.
pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "vllm:time_to_first_token_seconds";
/// Counter: requests that generated all their tokens.
pub const REQUEST_SUCCESS_TOTAL: &str = "vllm:request_success_total";
/// Counter: tokens generated.
pub const GENERATION_TOKENS_TOTAL: &str = "vllm:generation_tokens_total";

/// Upper bounds of the time-to-first-token buckets, in seconds (vLLM's, up to 10 s).
pub const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The server's metrics. Gauges and counters are atomics updated by the engine; rendering reads them
/// without stopping the world, so a scrape may see a request between `waiting` and `running`.
#[derive(Debug)]
pub struct Metrics {
    labels: String,
    max_concurrency: u32,
    running: AtomicU64,
    waiting: AtomicU64,
    success: AtomicU64,
    generation_tokens: AtomicU64,
    ttft: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    // Per-bucket (not cumulative) counts; the last slot is the +Inf overflow.
    counts: [u64; TTFT_BUCKETS.len() + 1],
    sum: f64,
}

impl Metrics {
    /// Metrics labelled `model_name="<model>"` and `group_id="<group_id>"`.
    pub fn new(model: &str, group_id: &str, max_concurrency: u32) -> Self {
        Self {
            labels: format!(
                "model_name=\"{}\",group_id=\"{}\"",
                escape(model),
                escape(group_id)
            ),
            max_concurrency,
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            success: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            ttft: Mutex::new(Histogram::default()),
        }
    }

    /// Current value of `vllm:num_requests_running`.
    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Current value of `vllm:num_requests_waiting`.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn waiting_add(&self, delta: i64) {
        add(&self.waiting, delta);
    }

    pub(crate) fn running_add(&self, delta: i64) {
        add(&self.running, delta);
    }

    pub(crate) fn token_generated(&self) {
        self.generation_tokens.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request_succeeded(&self) {
        self.success.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe_ttft(&self, ttft: Duration) {
        let secs = ttft.as_secs_f64();
        let bucket = TTFT_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(TTFT_BUCKETS.len());
        let mut h = self.ttft.lock().unwrap_or_else(|e| e.into_inner());
        h.counts[bucket] += 1;
        h.sum += secs;
    }

    /// The exposition text served on `/metrics`.
    pub fn render(&self) -> String {
        let l = &self.labels;
        let running = self.running();
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{l}}} {value}\n"
            );
        };
        family(
            NUM_REQUESTS_RUNNING,
            "gauge",
            "Number of requests currently running on GPU.",
            &running,
        );
        family(
            NUM_REQUESTS_WAITING,
            "gauge",
            "Number of requests waiting to be processed.",
            &self.waiting(),
        );
        let usage = running as f64 / f64::from(self.max_concurrency);
        family(
            GPU_CACHE_USAGE_PERC,
            "gauge",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            &usage,
        );
        let success = self.success.load(Ordering::Relaxed);
        family(
            REQUEST_SUCCESS_TOTAL,
            "counter",
            "Count of successfully processed requests.",
            &success,
        );
        let tokens = self.generation_tokens.load(Ordering::Relaxed);
        family(
            GENERATION_TOKENS_TOTAL,
            "counter",
            "Number of generation tokens processed.",
            &tokens,
        );
        self.render_ttft(&mut out);
        out
    }

    fn render_ttft(&self, out: &mut String) {
        let (l, name) = (&self.labels, TIME_TO_FIRST_TOKEN_SECONDS);
        let h = self.ttft.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(
            out,
            "# HELP {name} Histogram of time to first token in seconds.\n# TYPE {name} histogram\n"
        );
        let mut cumulative = 0;
        for (le, count) in TTFT_BUCKETS.iter().zip(h.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {cumulative}");
        }
        cumulative += h.counts[TTFT_BUCKETS.len()];
        let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{l}}} {cumulative}");
    }
}

fn add(gauge: &AtomicU64, delta: i64) {
    if delta >= 0 {
        gauge.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        gauge.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

// Label values escape backslash, double quote and newline (the text format's only escapes).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_both_labels() {
        let m = Metrics::new("m\"x", "g1", 4);
        m.running_add(1);
        m.waiting_add(2);
        m.token_generated();
        m.request_succeeded();
        m.observe_ttft(Duration::from_millis(30));
        m.observe_ttft(Duration::from_secs(60));
        let text = m.render();
        let l = r#"model_name="m\"x",group_id="g1""#;
        for line in [
            format!("vllm:num_requests_running{{{l}}} 1"),
            format!("vllm:num_requests_waiting{{{l}}} 2"),
            format!("vllm:gpu_cache_usage_perc{{{l}}} 0.25"),
            format!("vllm:request_success_total{{{l}}} 1"),
            format!("vllm:generation_tokens_total{{{l}}} 1"),
            format!("vllm:time_to_first_token_seconds_bucket{{{l},le=\"0.02\"}} 0"),
            format!("vllm:time_to_first_token_seconds_bucket{{{l},le=\"0.04\"}} 1"),
            format!("vllm:time_to_first_token_seconds_bucket{{{l},le=\"10\"}} 1"),
            format!("vllm:time_to_first_token_seconds_bucket{{{l},le=\"+Inf\"}} 2"),
            format!("vllm:time_to_first_token_seconds_sum{{{l}}} 60.03"),
            format!("vllm:time_to_first_token_seconds_count{{{l}}} 2"),
            "# TYPE vllm:time_to_first_token_seconds histogram".to_string(),
            "# TYPE vllm:request_success_total counter".to_string(),
        ] {
            assert!(
                text.lines().any(|x| x == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line is `name{labels} value`, and the text ends with a newline.
        assert!(text.ends_with('\n'));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
    }
}
