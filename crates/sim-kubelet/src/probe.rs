//! Readiness probing of fake servers: `GET http://<podIP>:<port><path>` every 500 ms; a 2xx answer makes the
//! container ready, three failures in a row make a ready container unready again.
//!
//! The HTTP client never uses a proxy and never follows redirects, so a probe only ever connects to the pod
//! address it was given (one sim-kubelet allocated).

use std::net::Ipv4Addr;
use std::time::Duration;

/// Interval between probes.
pub const PERIOD: Duration = Duration::from_millis(500);

/// Consecutive failures that make a ready container unready.
pub const FAILURE_THRESHOLD: u32 = 3;

/// Readiness as derived from probe results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeTracker {
    ready: bool,
    failures: u32,
}

impl ProbeTracker {
    /// Records one probe result; returns whether readiness changed.
    pub fn observe(&mut self, ok: bool) -> bool {
        let before = self.ready;
        if ok {
            self.ready = true;
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= FAILURE_THRESHOLD {
                self.ready = false;
            }
        }
        before != self.ready
    }

    /// Whether the container counts as ready.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Forgets everything (the process exited or restarted); returns whether readiness changed.
    pub fn reset(&mut self) -> bool {
        let before = self.ready;
        *self = Self::default();
        before
    }
}

/// The HTTP client for probes: no proxy, no redirects, short timeouts.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(1)
        .build()
}

/// The probe URL.
pub fn url(ip: Ipv4Addr, port: u16, path: &str) -> String {
    format!("http://{ip}:{port}{path}")
}

/// Probes once; true on a 2xx answer.
pub async fn probe(http: &reqwest::Client, ip: Ipv4Addr, port: u16, path: &str) -> bool {
    match http.get(url(ip, port, path)).send().await {
        Ok(r) => r.status().is_success(),
        Err(e) => {
            tracing::trace!(%ip, port, path, error = %e, "probe failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_first_success_unready_after_three_failures() {
        let mut t = ProbeTracker::default();
        assert!(!t.observe(false));
        assert!(!t.observe(false));
        assert!(!t.observe(false));
        assert!(!t.ready());
        assert!(t.observe(true));
        assert!(t.ready());
        assert!(!t.observe(false));
        assert!(!t.observe(false));
        assert!(!t.observe(true), "a success resets the failure count");
        assert!(!t.observe(false));
        assert!(!t.observe(false));
        assert!(t.observe(false));
        assert!(!t.ready());
    }

    #[test]
    fn reset_reports_a_change_only_when_ready() {
        let mut t = ProbeTracker::default();
        assert!(!t.reset());
        t.observe(true);
        assert!(t.reset());
        assert!(!t.ready());
    }

    #[test]
    fn probe_url() {
        assert_eq!(
            url("10.244.1.3".parse().unwrap(), 8000, "/health"),
            "http://10.244.1.3:8000/health"
        );
    }

    #[tokio::test]
    async fn probes_a_local_server() {
        // Loopback stands in for a pod address here; the tests never dial anything else.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for answer in ["200 OK", "503 Service Unavailable", "302 Found"] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {answer}\r\ncontent-length: 0\r\nlocation: http://127.0.0.2/\r\nconnection: close\r\n\r\n"
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let http = http_client().unwrap();
        let ip = Ipv4Addr::LOCALHOST;
        assert!(probe(&http, ip, port, "/health").await);
        assert!(!probe(&http, ip, port, "/health").await);
        assert!(
            !probe(&http, ip, port, "/health").await,
            "redirects are not followed"
        );
        assert!(
            !probe(&http, ip, port, "/health").await,
            "nothing listens any more"
        );
    }
}
