//! Tidal, end to end: the real `tidal-scheduler` binary runs as a local process (with leader election on
//! a Lease in the test's namespace) and drives, through rules a few seconds apart in three zones, an RSG's
//! group count and a Deployment through `/scale`, and an ElasticScaler hand-off through
//! `status.desiredReplicas` only. It is stopped between two firings and restarted: the firing it missed
//! takes effect on start. Invalid rules and unusable targets are reported in status.

use std::time::{Duration, Instant};

use api_types::{ResourceScalingGroup, Tidal};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use test_kit::{Env, Process, wait_until};

fn scheduler(env: &Env, ns: &str) -> Process {
    let kubeconfig = env
        .kubectl
        .kubeconfig()
        .to_str()
        .expect("utf-8")
        .to_string();
    Process::spawn(
        "tidal-scheduler",
        &[],
        &[
            ("WATCH_NAMESPACE", ns),
            ("POD_NAMESPACE", ns),
            ("LEADER_ELECT", "true"),
            ("ADMIN_ADDR", "127.0.0.1:0"),
            ("TIDAL_RETRY_SECONDS", "1"),
            ("RUST_LOG", "info,tidal_scheduler=debug"),
            ("KUBECONFIG", kubeconfig.as_str()),
        ],
    )
}

/// A six-field cron (with seconds) that fires at `at` once a year, written in `zone`'s wall time.
fn cron_at(at: Timestamp, zone: &str) -> String {
    let z = at.to_zoned(TimeZone::get(zone).unwrap());
    format!(
        "CRON_TZ={zone} {} {} {} {} {} *",
        z.second(),
        z.minute(),
        z.hour(),
        z.day(),
        z.month()
    )
}

fn tidal_yaml(
    name: &str,
    kind: &str,
    api_version: &str,
    target: &str,
    ns: &str,
    labels: &str,
    rules: &[(&str, String, i32)],
) -> String {
    let rules: String = rules
        .iter()
        .map(|(n, c, r)| format!("      - {{name: {n}, cron: \"{c}\", replicas: {r}}}\n"))
        .collect();
    format!(
        "apiVersion: tidal.io/v1alpha1\nkind: Tidal\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  targetRef: {{apiVersion: {api_version}, kind: {kind}, name: {target}, namespace: {ns}}}\n  triggers:\n    times:\n      rules:\n{rules}"
    )
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: es-target}
spec:
  replicas: 1
  selector: {matchLabels: {app: es-target}}
  template:
    metadata: {labels: {app: es-target}}
    spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}
---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: pd}
spec:
  targetResources:
  - {name: prefill, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: prefill}}
  - {name: decode, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}}
  scalingStrategy: {type: GroupReplication, groupConfig: {groupName: pd, replicas: 1}}
"#;

async fn rsg_groups(api: &Api<ResourceScalingGroup>) -> i32 {
    api.get("pd")
        .await
        .unwrap()
        .spec
        .scaling_strategy
        .group_config
        .unwrap()
        .replicas
}

async fn deploy_replicas(api: &Api<Deployment>, name: &str) -> i32 {
    api.get(name).await.unwrap().spec.unwrap().replicas.unwrap()
}

async fn desired(api: &Api<Tidal>, name: &str) -> Option<i32> {
    api.get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.desired_replicas)
}

/// Sleeps until wall-clock instant `t`.
async fn sleep_until(t: Timestamp) {
    let d = t.duration_since(Timestamp::now());
    if d.is_positive() {
        tokio::time::sleep(Duration::try_from(d).unwrap()).await;
    }
}

/// Polls `read` every 50 ms until it returns `want`; returns how long after `at` it was seen.
async fn seen_after<F, Fut>(what: &str, at: Timestamp, want: i32, mut read: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = read().await;
        if v == want {
            return Timestamp::now().duration_since(at).as_secs_f64();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {v}, want {want} (rule at {at})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tidal_drives_rsg_deployment_and_elastic_scaler_on_time_and_catches_up_after_restart() {
    let env = Env::get().await;
    let ns = env.namespace("tidal").await;
    let n = ns.name.as_str();
    env.kubectl
        .run(&["apply", "-n", n, "-f", "-"], Some(WORKLOADS))
        .await
        .ok();
    let mut ctrl = scheduler(&env, n);

    // Rules 6 s apart from now + 8 s, each in another zone; "base" fired at midnight UTC today, which is
    // later than the yearly rules' firings a year ago, so it is the active rule at creation.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let t1 = now + jiff::SignedDuration::from_secs(8);
    let t2 = t1 + jiff::SignedDuration::from_secs(6);
    let t3 = t2 + jiff::SignedDuration::from_secs(6);
    let rules = |r: [i32; 4]| {
        vec![
            ("base", "CRON_TZ=UTC 0 0 * * *".to_string(), r[0]),
            ("r1", cron_at(t1, "Asia/Shanghai"), r[1]),
            ("r2", cron_at(t2, "America/New_York"), r[2]),
            ("r3", cron_at(t3, "Europe/Berlin"), r[3]),
        ]
    };
    let es_labels = format!("{{elasticscaler.io/name: es, elasticscaler.io/namespace: {n}}}");
    let yaml = [
        tidal_yaml(
            "rsg",
            "ResourceScalingGroup",
            "autoscaling.openfuyao.com/v1alpha1",
            "pd",
            n,
            "{}",
            &rules([1, 2, 3, 4]),
        ),
        tidal_yaml(
            "web",
            "Deployment",
            "apps/v1",
            "web",
            n,
            "{}",
            &rules([1, 3, 0, 2]),
        ),
        tidal_yaml(
            "es",
            "Deployment",
            "apps/v1",
            "es-target",
            n,
            &es_labels,
            &rules([5, 6, 7, 8]),
        ),
    ]
    .join("---\n");
    env.kubectl
        .run(&["apply", "-n", n, "-f", "-"], Some(&yaml))
        .await
        .ok();

    let rsgs: Api<ResourceScalingGroup> = Api::namespaced(env.client.clone(), n);
    let deps: Api<Deployment> = Api::namespaced(env.client.clone(), n);
    let tidals: Api<Tidal> = Api::namespaced(env.client.clone(), n);

    // At creation the base rule is applied; the ElasticScaler hand-off only publishes.
    wait_until("base rule applied", Duration::from_secs(15), || async {
        let ok = rsg_groups(&rsgs).await == 1
            && deploy_replicas(&deps, "web").await == 1
            && desired(&tidals, "es").await == Some(5)
            && desired(&tidals, "rsg").await == Some(1);
        Ok::<_, ()>(ok.then_some(()))
    })
    .await;

    // r1 fires at t1: all three paths within a second.
    sleep_until(t1 - jiff::SignedDuration::from_millis(300)).await;
    assert_eq!(rsg_groups(&rsgs).await, 1, "nothing fires early");
    let lag_rsg = seen_after("RSG groups at r1", t1, 2, || rsg_groups(&rsgs)).await;
    let lag_dep = seen_after("Deployment at r1", t1, 3, || deploy_replicas(&deps, "web")).await;
    let lag_es = seen_after("ES desiredReplicas at r1", t1, 6, || async {
        desired(&tidals, "es").await.unwrap_or(-1)
    })
    .await;
    eprintln!("r1 seen after: rsg {lag_rsg:.3}s, deployment {lag_dep:.3}s, es {lag_es:.3}s");
    assert!(
        lag_rsg < 1.0 && lag_dep < 1.0 && lag_es < 1.0,
        "fired within 1 s"
    );
    assert_eq!(
        deploy_replicas(&deps, "es-target").await,
        1,
        "the ES path never writes the target"
    );

    // Stop the controller (SIGTERM: clean exit, Lease released) and let r2 fire while it is down.
    assert!(ctrl.stop(), "tidal-scheduler exits cleanly on SIGTERM");
    sleep_until(t2 + jiff::SignedDuration::from_secs(1)).await;
    assert_eq!(
        rsg_groups(&rsgs).await,
        2,
        "nobody applied r2 while the controller was down"
    );
    let _ctrl = scheduler(&env, n);
    wait_until(
        "r2 caught up after restart",
        Duration::from_secs(10),
        || async {
            let ok = rsg_groups(&rsgs).await == 3 && deploy_replicas(&deps, "web").await == 0;
            Ok::<_, ()>(ok.then_some(()))
        },
    )
    .await;

    // r3 fires on time again.
    let lag = seen_after("RSG groups at r3", t3, 4, || rsg_groups(&rsgs)).await;
    assert!(lag < 1.0, "r3 applied {lag:.3}s after its time");
    seen_after("Deployment at r3", t3, 2, || deploy_replicas(&deps, "web")).await;
    seen_after("ES at r3", t3, 8, || async {
        desired(&tidals, "es").await.unwrap_or(-1)
    })
    .await;

    // Status: active r3 since t3, previously r2 at t2, next the base rule at the next midnight UTC.
    let midnight = {
        let z = t3.to_zoned(TimeZone::UTC);
        z.date()
            .tomorrow()
            .unwrap()
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
    };
    for name in ["rsg", "web", "es"] {
        let s = tidals.get(name).await.unwrap().status.expect("status");
        assert_eq!(s.active_rule.as_deref(), Some("r3"), "{name}");
        assert_eq!(
            s.active_rule_effective_time.map(|t| t.0),
            Some(t3),
            "{name}"
        );
        assert_eq!(s.last_trigger_rule.as_deref(), Some("r2"), "{name}");
        assert_eq!(s.last_trigger_time.map(|t| t.0), Some(t2), "{name}");
        assert_eq!(s.next_trigger_rule.as_deref(), Some("base"), "{name}");
        assert_eq!(s.next_trigger_time.map(|t| t.0), Some(midnight), "{name}");
        let cond = |ty: &str| {
            let c = s
                .conditions
                .iter()
                .find(|c| c.type_ == ty)
                .unwrap_or_else(|| panic!("{name}: no {ty}"));
            (c.status.clone(), c.reason.clone())
        };
        assert_eq!(
            cond("Ready"),
            ("True".into(), "Reconciled".into()),
            "{name}"
        );
        assert_eq!(
            cond("Progressing"),
            ("False".into(), "WaitingForNextRule".into()),
            "{name}"
        );
        assert_eq!(
            cond("Degraded"),
            ("False".into(), "Reconciled".into()),
            "{name}"
        );
    }
    // The reference CRD's printer columns.
    let table = env
        .kubectl
        .run(&["get", "tidals", "-n", n], None)
        .await
        .ok();
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "TARGET",
        "TARGET NAME",
        "DESIRED REPLICAS",
        "ACTIVE RULE",
        "READY",
        "AGE",
    ] {
        assert!(header.contains(col), "column {col} in:\n{table}");
    }
    assert!(
        table.lines().any(|l| l.starts_with("rsg ")
            && l.contains("ResourceScalingGroup")
            && l.contains(" r3 ")
            && l.contains("True")),
        "{table}"
    );
    // Leader election ran against a real Lease.
    let lease = env
        .kubectl
        .run(
            &[
                "get",
                "lease",
                "tidal-scheduler",
                "-n",
                n,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
        .await
        .ok();
    assert!(!lease.is_empty(), "the Lease has a holder");
}

#[tokio::test]
async fn invalid_rules_and_unusable_targets_are_reported_in_status() {
    let env = Env::get().await;
    let ns = env.namespace("tidal-invalid").await;
    let n = ns.name.as_str();
    let _ctrl = scheduler(&env, n);
    let daily = |c: &str| vec![("a", c.to_string(), 1)];
    let yaml = [
        tidal_yaml(
            "bad-zone",
            "Deployment",
            "apps/v1",
            "web",
            n,
            "{}",
            &daily("CRON_TZ=Asia/Shangai 0 9 * * *"),
        ),
        tidal_yaml(
            "bad-hour",
            "Deployment",
            "apps/v1",
            "web",
            n,
            "{}",
            &daily("CRON_TZ=UTC 0 24 * * *"),
        ),
        tidal_yaml(
            "missing",
            "Deployment",
            "apps/v1",
            "nope",
            n,
            "{}",
            &daily("CRON_TZ=UTC 0 9 * * *"),
        ),
        tidal_yaml(
            "unscalable",
            "ConfigMap",
            "v1",
            "kube-root-ca.crt",
            n,
            "{}",
            &daily("CRON_TZ=UTC 0 9 * * *"),
        ),
        tidal_yaml(
            "half-link",
            "Deployment",
            "apps/v1",
            "web",
            n,
            "{elasticscaler.io/name: es}",
            &daily("CRON_TZ=UTC 0 9 * * *"),
        ),
        tidal_yaml(
            "other-ns",
            "Deployment",
            "apps/v1",
            "web",
            "default",
            "{}",
            &daily("CRON_TZ=UTC 0 9 * * *"),
        ),
    ]
    .join("---\n");
    env.kubectl
        .run(&["apply", "-n", n, "-f", "-"], Some(&yaml))
        .await
        .ok();
    // A cron without the prefix never gets past the CRD's own pattern.
    let out = env
        .kubectl
        .run(
            &["apply", "-n", n, "-f", "-"],
            Some(&tidal_yaml(
                "no-tz",
                "Deployment",
                "apps/v1",
                "web",
                n,
                "{}",
                &daily("0 9 * * *"),
            )),
        )
        .await;
    assert!(
        !out.success,
        "a cron without CRON_TZ= is rejected by the API server"
    );

    let tidals: Api<Tidal> = Api::namespaced(env.client.clone(), n);
    let expect = [
        (
            "bad-zone",
            "InvalidSpec",
            "spec.triggers.times.rules[0].cron: CRON_TZ=Asia/Shangai: unknown time zone",
        ),
        (
            "bad-hour",
            "InvalidSpec",
            "hour field: 24 is out of range 0-23",
        ),
        ("missing", "TargetNotFound", "Deployment"),
        (
            "unscalable",
            "TargetNotScalable",
            "has no scale subresource",
        ),
        (
            "half-link",
            "InvalidSpec",
            "set both elasticscaler.io/name and elasticscaler.io/namespace",
        ),
        (
            "other-ns",
            "InvalidSpec",
            "differs from the Tidal's namespace",
        ),
    ];
    for (name, reason, msg) in expect {
        wait_until(
            &format!("{name}: Degraded {reason}"),
            Duration::from_secs(15),
            || async {
                let t = tidals.get(name).await.map_err(|e| e.to_string())?;
                let conds = t.status.map(|s| s.conditions).unwrap_or_default();
                let degraded = conds.iter().find(|c| c.type_ == "Degraded");
                let ready = conds.iter().find(|c| c.type_ == "Ready");
                Ok::<_, String>(
                    (degraded.is_some_and(|d| {
                        d.status == "True" && d.reason == reason && d.message.contains(msg)
                    }) && ready.is_some_and(|r| r.status == "False"))
                    .then_some(()),
                )
            },
        )
        .await;
    }
}
