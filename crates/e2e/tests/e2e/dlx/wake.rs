//! Holding, the single wake-up across replicas, release, the wake timeout, and a replica crashing
//! while it holds requests.

use std::time::{Duration, Instant};

use test_kit::wait_until;

use super::{Rig, Scaler, check_answer, completion, start_dlx};

#[tokio::test]
async fn dlx_holds_wakes_once_across_two_replicas_and_releases() {
    let rig = Rig::new("dlx-wake", 2, 3000, &[]).await;
    let scaler = Scaler::start(&rig, 1);
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..20 {
        let stream = i % 2 == 0;
        let req = rig.post(i % 2, completion(stream, 6));
        clients.push(tokio::spawn(async move {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("{status}: {text}"));
            }
            check_answer(&text, stream, 6)
        }));
    }
    for c in clients {
        c.await.unwrap().unwrap();
    }
    let took = started.elapsed();
    // The pod's cold start (3 s) is the floor: every request was held and then released.
    assert!(
        took >= Duration::from_secs(3),
        "answered in {took:?}, before the pod could be ready"
    );
    assert_eq!(
        scaler.wakes(),
        1,
        "one wake-up for 20 requests on two replicas"
    );
    let mut requested = 0.0;
    for i in 0..2 {
        requested += rig
            .metric(i, "dlx_wakeups_total", &[r#"result="requested""#])
            .await;
        assert!(
            rig.metric(i, "dlx_wakeups_total", &[]).await >= 1.0,
            "replica {i} asked"
        );
        assert_eq!(rig.held(i).await, 0.0);
        assert_eq!(
            rig.metric(i, "dlx_requests_total", &[r#"code="200""#])
                .await,
            10.0
        );
    }
    assert_eq!(requested, 1.0, "exactly one replica wrote the annotation");
    assert_eq!(
        rig.deployments()
            .get("llm")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(1)
    );
    // The ElasticScaler removed the annotation and restored the Service; requests that still come
    // through the DLX go straight to the ready pod without asking again.
    wait_until(
        "the wake-up annotation to go",
        Duration::from_secs(10),
        || async { Ok::<_, String>(rig.wake_requested().await.is_none().then_some(())) },
    )
    .await;
    let t = Instant::now();
    let resp = rig.post(0, completion(false, 2)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        rig.wake_requested().await.is_none(),
        "a warm target asks nothing"
    );
    assert_eq!(scaler.wakes(), 1);
}

#[tokio::test]
async fn dlx_wake_timeout_is_504_naming_the_target_and_is_not_cached() {
    let rig = Rig::new("dlx-timeout", 1, 0, &[("DLX_WAKE_TIMEOUT", "3s")]).await;
    let ns = rig.ns.name.clone();
    let t = Instant::now();
    let resp = rig.post(0, completion(false, 2)).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(&format!("gave up on {ns}/llm after 3 s"))
            && text.contains(&format!(
                "ready endpoint of its workload Service {ns}/llm-workload"
            ))
            && text.contains(&format!("ElasticScaler {ns}/llm")),
        "{text}"
    );
    assert!(
        rig.wake_requested().await.is_some(),
        "the wake-up was asked"
    );
    // Nobody woke the workload and the annotation was cleared: the next request asks again.
    let clear = serde_json::json!({"metadata": {"annotations": {api_types::keys::annotations::WAKE_REQUESTED: null}}});
    rig.scalers()
        .patch(
            "llm",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&clear),
        )
        .await
        .unwrap();
    let resp = rig.post(0, completion(false, 2)).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(rig.wake_requested().await.is_some(), "asked again");
    assert_eq!(
        rig.metric(0, "dlx_wakeups_total", &[r#"result="requested""#])
            .await,
        2.0
    );
    // While the annotation is still there, a third timed-out request does not write it again.
    let resp = rig.post(0, completion(false, 2)).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        rig.metric(0, "dlx_wakeups_total", &[r#"result="already_requested""#])
            .await,
        1.0
    );
    assert_eq!(
        rig.metric(0, "dlx_requests_total", &[r#"code="504""#])
            .await,
        3.0
    );
}

#[tokio::test]
async fn dlx_a_replica_crashing_while_it_holds_requests_leaves_the_other_working() {
    let mut rig = Rig::new("dlx-crash", 2, 2000, &[]).await;
    let mut clients = Vec::new();
    for i in 0..10 {
        let req = rig.post(i % 2, completion(false, 2));
        clients.push((i % 2, tokio::spawn(async move { req.send().await })));
    }
    rig.wait_held(0, 5.0).await;
    rig.wait_held(1, 5.0).await;
    wait_until(
        "the wake-up annotation",
        Duration::from_secs(10),
        || async { Ok::<_, String>(rig.wake_requested().await.map(|_| ())) },
    )
    .await;
    rig.dlx[1].process.crash();
    // The ElasticScaler acts on the annotation whichever replica wrote it.
    let scaler = Scaler::start(&rig, 1);
    for (replica, c) in clients {
        let result = c.await.unwrap();
        if replica == 0 {
            let resp = result.unwrap();
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        } else {
            assert!(
                result.is_err(),
                "the crashed replica's clients see their connection close"
            );
        }
    }
    assert_eq!(scaler.wakes(), 1);
    // A replacement replica serves at once.
    let ns = rig.ns.name.clone();
    rig.dlx[1] = start_dlx(&rig.env, &ns, "dlx-1b", &[]);
    rig.wait_ready(1).await;
    let resp = rig.post(1, completion(true, 3)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    check_answer(&resp.text().await.unwrap(), true, 3).unwrap();
}
