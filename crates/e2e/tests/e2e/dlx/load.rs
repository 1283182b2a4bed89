//! Many clients at once through a cold start, queue caps and clients that leave.

use std::time::Duration;

use super::{Rig, Scaler, check_answer, completion};

#[tokio::test]
async fn dlx_200_concurrent_clients_half_streaming_all_complete_and_correct() {
    let rig = Rig::new("dlx-200", 2, 3000, &[]).await;
    let scaler = Scaler::start(&rig, 2);
    let mut clients = Vec::new();
    for i in 0..200 {
        let stream = i % 2 == 0;
        let req = rig.post((i / 2) % 2, completion(stream, 8));
        clients.push(tokio::spawn(async move {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("{status}: {text}"));
            }
            check_answer(&text, stream, 8)
        }));
    }
    let mut failures = Vec::new();
    for c in clients {
        if let Err(e) = c.await.unwrap() {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert_eq!(scaler.wakes(), 1);
    let mut ok = 0.0;
    for i in 0..2 {
        ok += rig
            .metric(i, "dlx_requests_total", &[r#"code="200""#])
            .await;
        assert_eq!(rig.held(i).await, 0.0);
    }
    assert_eq!(ok, 200.0);
}

#[tokio::test]
async fn dlx_queue_overflow_gives_exactly_the_expected_503s() {
    let rig = Rig::new(
        "dlx-overflow",
        1,
        1000,
        &[("DLX_MAX_HELD_PER_TARGET", "10"), ("DLX_RETRY_AFTER", "7s")],
    )
    .await;
    let clients: Vec<_> = (0..15)
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
    rig.wait_held(0, 10.0).await;
    // The five over the cap are already answered; the ten held ones wait for the workload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _scaler = Scaler::start(&rig, 1);
    let mut unavailable = 0;
    for c in clients {
        let (status, retry, text) = c.await.unwrap();
        match status {
            200 => check_answer(&text, false, 2).unwrap(),
            503 => {
                unavailable += 1;
                assert_eq!(retry.as_deref(), Some("7"));
                assert!(text.contains("already holds 10 requests"), "{text}");
            }
            other => panic!("{other}: {text}"),
        }
    }
    assert_eq!(unavailable, 5);
    assert_eq!(
        rig.metric(0, "dlx_requests_total", &[r#"code="503""#])
            .await,
        5.0
    );
    assert_eq!(
        rig.metric(0, "dlx_requests_total", &[r#"code="200""#])
            .await,
        10.0
    );
}

#[tokio::test]
async fn dlx_a_client_that_disconnects_frees_its_place_at_once() {
    let rig = Rig::new(
        "dlx-disconnect",
        1,
        1000,
        &[("DLX_MAX_HELD_PER_TARGET", "5")],
    )
    .await;
    let mut clients: Vec<_> = (0..5)
        .map(|_| {
            let req = rig.post(0, completion(true, 2));
            tokio::spawn(async move { req.send().await })
        })
        .collect();
    rig.wait_held(0, 5.0).await;
    for c in clients.drain(..3) {
        c.abort();
    }
    rig.wait_held(0, 2.0).await;
    // The three places are free: three more are held, none refused.
    for _ in 0..3 {
        let req = rig.post(0, completion(true, 2));
        clients.push(tokio::spawn(async move { req.send().await }));
    }
    rig.wait_held(0, 5.0).await;
    let _scaler = Scaler::start(&rig, 1);
    for c in clients {
        let resp = c.await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        check_answer(&resp.text().await.unwrap(), true, 2).unwrap();
    }
    assert_eq!(
        rig.metric(0, "dlx_requests_total", &[r#"code="503""#])
            .await,
        0.0
    );
}
