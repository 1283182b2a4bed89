//! The umbrella chart installs into the real cluster: every enabled component's Deployment becomes
//! Available (sim-kubelet runs non-inference images as Ready placeholders), and uninstall removes them.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;
use test_kit::{Env, repo_root, wait_until};

#[tokio::test]
async fn umbrella_chart_installs_and_uninstalls() {
    let env = Env::get().await;
    let ns = env.namespace("helm").await;
    let chart = repo_root().join("charts/pd-orchestrator");
    let helm = |args: Vec<String>| {
        let mut c = std::process::Command::new(&env.helm);
        c.arg("--kubeconfig")
            .arg(env.kubectl.kubeconfig())
            .args(args);
        c
    };
    let release = format!("pdo-{}", &ns.name[ns.name.len() - 6..]);
    let out = helm(vec![
        "install".into(),
        release.clone(),
        chart.display().to_string(),
        "-n".into(),
        ns.name.clone(),
        "--set".into(),
        "dlx.enabled=false".into(),
        // The RSG controller defaults to seed 002's namespace scaling-system; keep it in the test's.
        "--set".into(),
        format!("resourcescalinggroup.namespace.name={}", ns.name),
        // The chart's webhook configurations (failurePolicy Fail) would otherwise intercept every other
        // test's objects while this release's placeholder Pods cannot answer: scope them to this namespace.
        "--set".into(),
        format!(
            "admission-webhook.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name={}",
            ns.name
        ),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "helm install failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &ns.name);
    let names = wait_until(
        "4 chart Deployments to be available",
        Duration::from_secs(120),
        || async {
            let list = api.list(&ListParams::default()).await?;
            let ready: Vec<String> = list
                .items
                .iter()
                .filter(|d| {
                    d.status
                        .as_ref()
                        .and_then(|s| s.available_replicas)
                        .unwrap_or(0)
                        >= 1
                })
                .filter_map(|d| d.metadata.name.clone())
                .collect();
            Ok::<_, kube::Error>((ready.len() == 4 && list.items.len() == 4).then_some(ready))
        },
    )
    .await;
    assert!(
        !names.iter().any(|n| n.contains("dlx")),
        "dlx was disabled: {names:?}"
    );

    let out = helm(vec![
        "uninstall".into(),
        release,
        "-n".into(),
        ns.name.clone(),
        "--wait".into(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "helm uninstall failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
