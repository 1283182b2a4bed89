//! Test support for binaries built on this crate: start one, check its admin endpoints, stop it with SIGTERM.
//!
//! Uses only std (a raw HTTP/1.0 GET over loopback), so a component's lifecycle test adds no dependencies.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, buf))
}

/// Starts `bin` with `ADMIN_ADDR` on a free loopback port, asserts `/healthz` and `/readyz` answer 200 and
/// `/metrics` has `<metrics_prefix>_build_info`, then sends SIGTERM and asserts a clean exit within 20 s (the log is printed if not).
pub fn assert_serves_and_stops(bin: &str, metrics_prefix: &str) {
    assert_serves_and_stops_with(bin, metrics_prefix, &[]);
}

/// [`assert_serves_and_stops`] with extra environment variables (e.g. a controller's `WATCH_NAMESPACE`; a
/// controller inherits `KUBECONFIG` from the test, so its lifecycle test runs in the e2e suite).
pub fn assert_serves_and_stops_with(bin: &str, metrics_prefix: &str, envs: &[(&str, &str)]) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // Logs go to a file whose tail a failure prints.
    let log_path = std::env::temp_dir().join(format!("lifecycle-{port}.log"));
    let log = std::fs::File::create(&log_path).expect("creating the lifecycle log");
    let tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let mut child = Command::new(bin)
        .env("ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .envs(envs.iter().copied())
        .stdout(Stdio::from(log))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let start = Instant::now();
    while get(port, "/healthz").is_none_or(|(c, _)| c != 200) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{bin} did not serve /healthz within 10 s"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "{bin} exited during start-up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Readiness may take a moment (a controller first reaches the API and its Lease).
    while get(port, "/readyz").is_none_or(|(c, _)| c != 200) {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{bin} /readyz did not answer 200 within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, metrics) = get(port, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(
        metrics.contains(&format!("{metrics_prefix}_build_info 1")),
        "{bin} /metrics:\n{metrics}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = child.try_wait().expect("try_wait") {
            assert!(exit.success(), "{bin} exited with {exit} after SIGTERM");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{bin} did not exit within 20 s of SIGTERM; its log:\n{}",
                tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
