//! Least privilege, proven: the chart's ServiceAccount and (namespaced, with watchNamespace) Role are
//! installed, and the real dlx runs impersonating that ServiceAccount through a whole cold start: watches
//! of Services and EndpointSlices, the wake-up write on the ElasticScaler, the Event about it. A missing
//! rule would show up as `forbidden` in its log and the request would time out.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use test_kit::{repo_root, wait_until};

use super::{Rig, Scaler, check_answer, completion, start_dlx};

#[tokio::test]
async fn dlx_works_with_exactly_the_chart_rbac() {
    let mut rig = Rig::new("dlx-rbac", 0, 1000, &[]).await;
    let ns = rig.ns.name.clone();
    let release = format!("rbac-{}", &ns[ns.len() - 6..]);
    let out = std::process::Command::new(&rig.env.helm)
        .args(["template", &release, "--namespace", &ns])
        .arg(repo_root().join("charts/pd-orchestrator"))
        .args(["--set", &format!("dlx.watchNamespace={ns}")])
        .args(["--show-only", "charts/dlx/templates/rbac.yaml"])
        .args(["--show-only", "charts/dlx/templates/serviceaccount.yaml"])
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        rendered.contains("kind: Role\n") && !rendered.contains("ClusterRole"),
        "{rendered}"
    );
    rig.env
        .kubectl
        .run(&["apply", "-n", &ns, "-f", "-"], Some(&rendered))
        .await
        .ok();
    let sa = format!("system:serviceaccount:{ns}:{release}-dlx");
    let groups = format!("system:serviceaccounts,system:serviceaccounts:{ns},system:authenticated");
    rig.dlx.push(start_dlx(
        &rig.env,
        &ns,
        "dlx-rbac",
        &[
            ("KUBE_RS_DEBUG_IMPERSONATE_USER", &sa),
            ("KUBE_RS_DEBUG_IMPERSONATE_GROUP", &groups),
            ("DLX_WAKE_TIMEOUT", "60s"),
        ],
    ));
    rig.wait_ready(0).await;
    let _scaler = Scaler::start(&rig, 1);
    let resp = rig.post(0, completion(true, 3)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    check_answer(&resp.text().await.unwrap(), true, 3).unwrap();
    assert_eq!(
        rig.metric(0, "dlx_wakeups_total", &[r#"result="requested""#])
            .await,
        1.0
    );
    let events: Api<Event> = Api::namespaced(rig.env.client.clone(), &ns);
    let note = wait_until(
        "a WakeRequested Event on the ElasticScaler",
        Duration::from_secs(20),
        || async {
            let list = events.list(&Default::default()).await?;
            Ok::<_, kube::Error>(list.items.into_iter().find_map(|e| {
                (e.reason.as_deref() == Some("WakeRequested")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("llm"))
                .then(|| e.note.unwrap_or_default())
            }))
        },
    )
    .await;
    assert!(
        note.contains(&format!("Service {ns}/llm held by DLX dlx-rbac")),
        "{note}"
    );
    let log = rig.dlx[0].process.logs();
    assert!(!log.contains("forbidden"), "{log}");
}
