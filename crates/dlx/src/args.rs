//! Command-line flags, each with an environment-variable fallback.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pdo_runtime::{AdminArgs, LogArgs};

/// Parses a Go-style duration (`500ms`, `30s`, `10m`).
pub fn duration(s: &str) -> Result<Duration, String> {
    api_types::validation::parse_duration(s)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a duration: use e.g. 500ms, 30s, 10m"))
}

/// The scale-to-zero proxy: holds requests for Services whose workload is at zero, asks their
/// ElasticScaler to wake it, and releases the requests to the pods as they become ready.
#[derive(Parser, Debug, Clone)]
#[command(name = "dlx", version, about)]
pub struct Args {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub admin: AdminArgs,

    /// Addresses the proxy listens on, comma-separated: HTTP/1.1 and h2c on each. A Service handed to
    /// the DLX sends its traffic to the DLX pods' targetPort, so listen on every targetPort in use.
    #[arg(
        long,
        env = "PROXY_ADDR",
        value_delimiter = ',',
        default_value = "0.0.0.0:8081"
    )]
    pub proxy_addr: Vec<SocketAddr>,
    /// Watch only this namespace's Services and EndpointSlices; default: all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// A request header naming the target explicitly (`svc.ns`, `ns/svc`, ...), checked before Host and
    /// X-Forwarded-Host and removed before forwarding; empty turns it off.
    #[arg(long, env = "DLX_TARGET_HEADER", default_value = "X-DLX-Target")]
    pub target_header: String,
    /// Requests of this DLX in flight to one pod at once; held requests are released at this pace.
    /// 0 means no limit.
    #[arg(long, env = "DLX_POD_CONCURRENCY", default_value_t = 32)]
    pub pod_concurrency: usize,
    /// Requests held for one target at once; more get 503 with Retry-After.
    #[arg(long, env = "DLX_MAX_HELD_PER_TARGET", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_held_per_target: u64,
    /// Requests held for all targets together; more get 503 with Retry-After.
    #[arg(long, env = "DLX_MAX_HELD", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_held: u64,
    /// How long a request is held for its workload; past it, 504 naming the target and what it
    /// waited for. Also how long a wake-up counts as under way before the next request asks again.
    #[arg(long, env = "DLX_WAKE_TIMEOUT", default_value = "10m", value_parser = duration)]
    pub wake_timeout: Duration,
    /// `Retry-After` of a 503 (rounded up to whole seconds).
    #[arg(long, env = "DLX_RETRY_AFTER", default_value = "5s", value_parser = duration)]
    pub retry_after: Duration,
    /// When set, a newly ready pod gets requests only once `GET <path>` on it answers 2xx.
    #[arg(long, env = "DLX_PROBE_PATH", default_value = "")]
    pub probe_path: String,
    /// Bytes of a held request's body read ahead (lets a client's departure be noticed at once; the
    /// rest waits in the client's socket).
    #[arg(long, env = "DLX_HOLD_BODY_BYTES", default_value_t = 65_536)]
    pub hold_body_bytes: usize,
    /// Time to connect to a pod before trying another.
    #[arg(long, env = "DLX_CONNECT_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub connect_timeout: Duration,
    /// Pods tried for one request before 502.
    #[arg(long, env = "DLX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
    /// Idle keep-alive connections to pods are closed after this.
    #[arg(long, env = "DLX_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// After SIGTERM, keep serving this long with /readyz failing, so endpoints stop sending here.
    #[arg(long, env = "DLX_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration)]
    pub shutdown_delay: Duration,
    /// Then stop accepting and let held requests be released for at most this long; those still held
    /// get 503 with Retry-After, and open streams are closed.
    #[arg(long, env = "DLX_DRAIN_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub drain_timeout: Duration,
    /// Threads serving connections; 0 means one per CPU the process may use (its cgroup quota counts).
    #[arg(long, env = "DLX_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// This replica's name, in logs and in the Events it publishes.
    #[arg(long, env = "POD_NAME", default_value = "dlx")]
    pub pod_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_lists() {
        let a = Args::try_parse_from(["dlx"]).unwrap();
        assert_eq!(a.proxy_addr, ["0.0.0.0:8081".parse().unwrap()]);
        assert_eq!(a.wake_timeout, Duration::from_secs(600));
        assert_eq!(
            (a.pod_concurrency, a.max_held_per_target, a.max_held),
            (32, 1000, 10_000)
        );
        let a = Args::try_parse_from([
            "dlx",
            "--proxy-addr",
            "127.0.0.1:8081,127.0.0.1:8000",
            "--wake-timeout",
            "90s",
        ])
        .unwrap();
        assert_eq!(a.proxy_addr.len(), 2);
        assert_eq!(a.wake_timeout, Duration::from_secs(90));
        assert!(Args::try_parse_from(["dlx", "--wake-timeout", "soon"]).is_err());
        assert!(Args::try_parse_from(["dlx", "--max-held", "0"]).is_err());
    }
}
