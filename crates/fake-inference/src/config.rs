//! Command-line flags of the server. Every flag has an environment fallback because the simulated
//! kubelet launches the binary with a pod's env; the names and defaults are a contract with it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// Everything the fake server is configured with.
///
/// It derives [`Parser`] so a test can build one with `Config::try_parse_from`, and it is `flatten`ed
/// into the binary's arguments next to the logging flags.
#[derive(Parser, Clone, Debug)]
pub struct Config {
    /// Address to serve the HTTP API on.
    #[arg(long, env = "FAKE_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
    /// Value of the `group_id` label on every metric.
    #[arg(long, env = "FAKE_GROUP_ID", default_value = "0")]
    pub group_id: String,
    /// Model name served, reported by `/v1/models`, in responses and in the `model_name` label.
    #[arg(long, env = "FAKE_MODEL", default_value = "fake-llm")]
    pub model: String,
    /// Sequences decoded at the same time; further requests wait in FIFO order.
    #[arg(long, env = "FAKE_MAX_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: u32,
    /// Decode rate of each sequence, in tokens per second.
    #[arg(long, env = "FAKE_TOKENS_PER_SECOND", default_value_t = 50.0, value_parser = positive_rate)]
    pub tokens_per_second: f64,
    /// Simulated prefill time between getting a slot and the first token, in milliseconds.
    #[arg(long, env = "FAKE_TTFT_MS", default_value_t = 50)]
    pub ttft_ms: u64,
    /// Simulated model loading after start: `/health` and the inference endpoints answer 503 until it ends.
    #[arg(long, env = "FAKE_COLD_START_MS", default_value_t = 0)]
    pub cold_start_ms: u64,
    /// Tokens generated when a request gives no `max_tokens`.
    #[arg(long, env = "FAKE_DEFAULT_MAX_TOKENS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub default_max_tokens: u32,
    /// Requests allowed to wait beyond the running ones; more are refused with 429.
    #[arg(long, env = "FAKE_MAX_QUEUE", default_value_t = 1000)]
    pub max_queue: u32,
}

impl Config {
    /// Time from getting a slot to the first token.
    pub fn ttft(&self) -> Duration {
        Duration::from_millis(self.ttft_ms)
    }

    /// Time between two tokens of one sequence.
    pub fn inter_token(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.tokens_per_second)
    }

    /// How long the server pretends to load the model.
    pub fn cold_start(&self) -> Duration {
        Duration::from_millis(self.cold_start_ms)
    }
}

// A zero, negative or non-finite rate would make the inter-token delay meaningless (or panic).
fn positive_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if rate.is_finite() && rate > 0.0 && 1.0 / rate < 86_400.0 {
        Ok(rate)
    } else {
        Err(format!("{s:?} must be a positive tokens-per-second rate"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_launch_contract() {
        let c = Config::try_parse_from(["fake-inference"]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!((c.group_id.as_str(), c.model.as_str()), ("0", "fake-llm"));
        assert_eq!(
            (c.max_concurrency, c.default_max_tokens, c.max_queue),
            (8, 16, 1000)
        );
        assert_eq!((c.ttft_ms, c.cold_start_ms), (50, 0));
        assert_eq!(c.inter_token(), Duration::from_millis(20));
    }

    #[test]
    fn rejects_nonsense_rates_and_zero_concurrency() {
        for bad in ["0", "-1", "nan", "inf", "x"] {
            assert!(
                Config::try_parse_from(["f", "--tokens-per-second", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Config::try_parse_from(["f", "--max-concurrency", "0"]).is_err());
        assert!(Config::try_parse_from(["f", "--default-max-tokens", "0"]).is_err());
    }
}
