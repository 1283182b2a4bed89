//! Graceful shutdown: on SIGTERM a DLX releases what it holds if the workload comes up within the drain
//! timeout, and answers the rest 503 with Retry-After; nothing hangs.

use std::time::{Duration, Instant};

use super::{Rig, Scaler, check_answer, completion};

async fn hold(rig: &Rig, n: usize) -> Vec<tokio::task::JoinHandle<(u16, Option<String>, String)>> {
    let clients = (0..n)
        .map(|_| {
            let req = rig.post(0, completion(false, 2));
            tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (resp.status().as_u16(), retry, resp.text().await.unwrap())
            })
        })
        .collect();
    rig.wait_held(0, n as f64).await;
    clients
}

#[tokio::test]
async fn dlx_shutdown_answers_what_it_still_holds_503_with_retry_after() {
    let mut rig = Rig::new("dlx-shutdown", 1, 0, &[("DLX_DRAIN_TIMEOUT", "1s")]).await;
    let clients = hold(&rig, 3).await;
    let t = Instant::now();
    let mut dlx = rig.dlx.remove(0);
    let clean = tokio::task::spawn_blocking(move || dlx.process.stop())
        .await
        .unwrap();
    assert!(clean, "exited 0 within 5 s of SIGTERM");
    for c in clients {
        let (status, retry, text) = c.await.unwrap();
        assert_eq!(status, 503, "{text}");
        assert_eq!(retry.as_deref(), Some("5"));
        assert!(text.contains("shutting down"), "{text}");
    }
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test]
async fn dlx_shutdown_releases_held_requests_when_the_workload_comes_up_in_the_drain() {
    let mut rig = Rig::new("dlx-drain", 1, 500, &[("DLX_DRAIN_TIMEOUT", "4s")]).await;
    let clients = hold(&rig, 3).await;
    let _scaler = Scaler::start(&rig, 1);
    let mut dlx = rig.dlx.remove(0);
    let clean = tokio::task::spawn_blocking(move || dlx.process.stop())
        .await
        .unwrap();
    assert!(clean, "exited 0 within 5 s of SIGTERM");
    for c in clients {
        let (status, _, text) = c.await.unwrap();
        assert_eq!(status, 200, "{text}");
        check_answer(&text, false, 2).unwrap();
    }
}
