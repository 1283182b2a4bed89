//! The binary starts in file mode, serves its probes, metrics and AdmissionReviews over TLS, reloads a
//! replaced certificate without a restart, and exits cleanly on SIGTERM.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use admission_webhook::tls::{Pem, new_ca, new_leaf};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn write_pair(dir: &Path, validity: Duration) -> Pem {
    let ca = new_ca(validity).unwrap();
    let leaf = new_leaf(&ca, &["127.0.0.1".into()], validity).unwrap();
    // Write the key first: the reloader installs only a matching pair, so a half-written pair is skipped.
    std::fs::write(dir.join("tls.key"), &leaf.key).unwrap();
    std::fs::write(dir.join("tls.crt"), &leaf.cert).unwrap();
    ca
}

fn client(ca: &Pem) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn review(cron: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "lifecycle", "operation": "CREATE", "namespace": "ns", "object": {
          "apiVersion": "tidal.io/v1alpha1", "kind": "Tidal", "metadata": {"name": "t"},
          "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "ns"},
            "triggers": {"times": {"rules": [{"name": "a", "cron": cron, "replicas": 1}]}}}}}})
}

#[tokio::test]
async fn serves_reviews_over_tls_reloads_certificates_and_exits_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("aw-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca1 = write_pair(&dir, Duration::from_secs(3600));
    let (admin, hook) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_admission-webhook"))
        .env("ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("WEBHOOK_ADDR", format!("127.0.0.1:{hook}"))
        .env("TLS_MODE", "files")
        .env("TLS_CERT_FILE", dir.join("tls.crt"))
        .env("TLS_KEY_FILE", dir.join("tls.key"))
        .env("TLS_RELOAD_INTERVAL", "200ms")
        .env("CLUSTER_CHECKS", "false")
        .env("RBAC_CHECK", "false")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting admission-webhook");
    let http = reqwest::Client::new();
    let admin_url = format!("http://127.0.0.1:{admin}");
    let start = Instant::now();
    loop {
        let r = http.get(format!("{admin_url}/readyz")).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not ready within 10 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited during start-up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        http.get(format!("{admin_url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let url = format!("https://127.0.0.1:{hook}/validate/tidals");
    let ok: serde_json::Value = client(&ca1)
        .post(&url)
        .json(&review("CRON_TZ=UTC 0 9 * * *"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["response"]["allowed"], true, "{ok}");
    assert_eq!(ok["response"]["uid"], "lifecycle");
    let bad: serde_json::Value = client(&ca1)
        .post(&url)
        .json(&review("0 9 * * *"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["response"]["allowed"], false);
    let msg = bad["response"]["status"]["message"].as_str().unwrap();
    assert!(msg.contains("spec.triggers.times.rules[0].cron"), "{msg}");

    // Replace the pair with one from another CA: new connections get it without a restart.
    let ca2 = write_pair(&dir, Duration::from_secs(7200));
    let start = Instant::now();
    while client(&ca2)
        .post(&url)
        .json(&review("CRON_TZ=UTC 0 9 * * *"))
        .send()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "new certificate not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client(&ca1)
            .post(&url)
            .json(&review("CRON_TZ=UTC 0 9 * * *"))
            .send()
            .await
            .is_err()
    );

    let metrics = http
        .get(format!("{admin_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("admission_webhook_build_info 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("admission_webhook_certificate_reloads_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"admission_webhook_decisions_total{kind="tidals",operation="validate",reason="invalid"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("admission_webhook_request_duration_seconds_bucket"),
        "{metrics}"
    );

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "exit status {exit} after SIGTERM");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within 10 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
