//! The admission webhook, called by the real kube-apiserver.
//!
//! Each test runs its own `admission-webhook` process on a free loopback port in self-managed TLS mode (its
//! CA and certificate in a Secret of the test namespace, caBundle patched by the webhook itself) and creates
//! a ValidatingWebhookConfiguration and a MutatingWebhookConfiguration with `clientConfig.url:
//! https://127.0.0.1:PORT/...`, scoped by `namespaceSelector` to namespaces carrying a label unique to the
//! test, so concurrent tests of other components never reach it. Both configurations are deleted when the
//! test ends (also on panic).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use test_kit::{Env, Kubectl, Process, TestNamespace, wait_until};

const LABEL: &str = "pd-orchestrator.io/webhook-e2e";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A webhook process plus its two configurations; dropping it deletes the configurations, then stops the
/// process.
struct Webhook {
    name: String,
    kubectl: Kubectl,
    admin: String,
    process: Process,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        for kind in [
            "validatingwebhookconfiguration",
            "mutatingwebhookconfiguration",
        ] {
            if let Err(e) =
                self.kubectl
                    .run_blocking(&["delete", kind, &self.name, "--ignore-not-found"])
            {
                eprintln!("deleting {kind} {}: {e}", self.name);
            }
        }
        self.process.stop();
    }
}

fn configuration(kind: &str, name: &str, port: u16, id: &str) -> String {
    let (prefix, path) = if kind == "ValidatingWebhookConfiguration" {
        ("validate", "validate")
    } else {
        ("mutate", "mutate")
    };
    let hooks: Vec<String> = [
        ("elasticscaler.io", "elasticscalers"),
        ("autoscaling.openfuyao.com", "resourcescalinggroups"),
        ("tidal.io", "tidals"),
    ]
    .iter()
    .map(|(group, res)| {
        format!(
            r#"
- name: {prefix}.{res}.pd-orchestrator.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 10
  clientConfig: {{url: "https://127.0.0.1:{port}/{path}/{res}"}}
  namespaceSelector: {{matchLabels: {{{LABEL}: "{id}"}}}}
  rules:
  - {{apiGroups: ["{group}"], apiVersions: [v1alpha1], resources: [{res}], operations: [CREATE, UPDATE], scope: Namespaced}}"#
        )
    })
    .collect();
    format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nwebhooks:{}\n",
        hooks.concat()
    )
}

const PROBE: &str = r#"
apiVersion: tidal.io/v1alpha1
kind: Tidal
metadata: {name: webhook-probe}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: w, namespace: default}
  triggers: {times: {rules: [{name: a, cron: "CRON_TZ=UTC 0 9 * * *", replicas: 1}, {name: a, cron: "CRON_TZ=UTC 0 9 * * *", replicas: 1}]}}
"#;

impl Webhook {
    /// Starts a webhook for `ns` (labelled here) with extra environment, and waits until the apiserver calls it.
    async fn start(env: &Env, ns: &TestNamespace, envs: &[(&str, &str)]) -> Webhook {
        let id = ns.name.trim_start_matches("e2e-").to_string();
        let name = format!("pdo-e2e-{id}");
        env.kubectl
            .run(
                &["label", "namespace", &ns.name, &format!("{LABEL}={id}")],
                None,
            )
            .await
            .ok();
        let (port, admin_port) = (free_port(), free_port());
        let addr = format!("127.0.0.1:{port}");
        let admin = format!("127.0.0.1:{admin_port}");
        let mut all = vec![
            ("WEBHOOK_ADDR", addr.as_str()),
            ("ADMIN_ADDR", admin.as_str()),
            ("POD_NAMESPACE", ns.name.as_str()),
            ("TLS_SECRET", "webhook-tls"),
            ("CERT_SANS", "127.0.0.1"),
            ("VALIDATING_WEBHOOK_CONFIGURATION", name.as_str()),
            ("MUTATING_WEBHOOK_CONFIGURATION", name.as_str()),
            ("CERT_CHECK_INTERVAL", "1s"),
            ("SAR_CACHE_TTL", "1s"),
            ("RUST_LOG", "info,admission_webhook=debug"),
        ];
        all.extend_from_slice(envs);
        // The configurations first (without caBundle, as a chart installs them), so the webhook's first
        // certificate round already patches them.
        for kind in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            env.kubectl
                .run(
                    &["apply", "-f", "-"],
                    Some(&configuration(kind, &name, port, &id)),
                )
                .await
                .ok();
        }
        let process = Process::spawn("admission-webhook", &[], &all);
        let hook = Webhook {
            name: name.clone(),
            kubectl: env.kubectl.clone(),
            admin: format!("http://{admin}"),
            process,
        };
        // Ready (certificate served, caches synced), then the apiserver really calls it: the probe has a
        // duplicate rule name only our validation reports.
        let http = reqwest::Client::new();
        let readyz = format!("{}/readyz", hook.admin);
        wait_until("webhook /readyz", Duration::from_secs(30), || async {
            Ok::<_, reqwest::Error>((http.get(&readyz).send().await?.status() == 200).then_some(()))
        })
        .await;
        let kubectl = env.kubectl.clone();
        let n = ns.name.clone();
        wait_until(
            "the apiserver calling the webhook",
            Duration::from_secs(30),
            || {
                let (kubectl, n) = (kubectl.clone(), n.clone());
                async move {
                    let out = kubectl
                        .run(
                            &["apply", "--dry-run=server", "-n", &n, "-f", "-"],
                            Some(PROBE),
                        )
                        .await;
                    let called = out.stderr.contains("rule names must be unique");
                    Ok::<_, String>(called.then_some(()).or_else(|| {
                        eprintln!("probe: {}", out.stderr.trim());
                        None
                    }))
                }
            },
        )
        .await;
        hook
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }
}

/// Applies `yaml` in `ns` as `user` (empty: admin) with server-side dry-run or for real.
async fn apply(
    env: &Env,
    ns: &str,
    yaml: &str,
    dry_run: bool,
    user: &str,
) -> test_kit::KubectlOutput {
    let mut args = vec!["apply", "-n", ns, "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let as_user = format!("--as={user}");
    if !user.is_empty() {
        args.push(&as_user);
    }
    env.kubectl.run(&args, Some(yaml)).await
}

async fn assert_denied(env: &Env, ns: &str, yaml: &str, expected: &str) {
    let out = apply(env, ns, yaml, true, "").await;
    assert!(
        !out.success && out.stderr.contains(expected),
        "expected a denial containing {expected:?}\nmanifest:{yaml}\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

fn rsg(name: &str, targets: &str, strategy: &str) -> String {
    format!(
        "apiVersion: autoscaling.openfuyao.com/v1alpha1\nkind: ResourceScalingGroup\nmetadata: {{name: {name}}}\nspec:\n  targetResources:{targets}\n  scalingStrategy:{strategy}\n"
    )
}

const TWO: &str = "\n  - {name: prefill, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: prefill}}\n  - {name: decode, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}}";

fn group(extra: &str) -> String {
    format!("\n    type: GroupReplication\n    groupConfig:\n      replicas: 1{extra}")
}

fn inplace(follower: &str) -> String {
    format!(
        "\n    type: InplaceScaling\n    leaderFollowerConfig:\n      leader: {{resourceName: prefill, replicas: 1}}\n      follower: {follower}"
    )
}

fn scaler(name: &str, target: &str, trigger: &str) -> String {
    format!(
        "apiVersion: elasticscaler.io/v1alpha1\nkind: ElasticScaler\nmetadata: {{name: {name}}}\nspec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}\n  minReplicas: 1\n  maxReplicas: 5\n  trigger:{trigger}\n"
    )
}

fn metrics_trigger(algorithm: &str, metric: &str) -> String {
    format!(
        "\n    type: MetricsTrigger\n    metricsTrigger:\n      scalingAlgorithm: {algorithm}\n      metrics:\n      - {metric}"
    )
}

const CPU: &str = "{type: Resource, resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 60}}}";

fn tidal(rules: &str) -> String {
    format!(
        "apiVersion: tidal.io/v1alpha1\nkind: Tidal\nmetadata: {{name: t}}\nspec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: w, namespace: default}}\n  triggers: {{times: {{rules: {rules}}}}}\n"
    )
}

#[tokio::test]
async fn webhook_denies_each_documented_mistake_with_its_message() {
    let env = Env::get().await;
    let ns = env.namespace("webhook-denials").await;
    let _hook = Webhook::start(&env, &ns, &[]).await;
    let n = ns.name.as_str();
    let long = "d".repeat(240);
    let cases: Vec<(String, &str)> = vec![
        // ResourceScalingGroup
        (
            rsg("r", " []", &group("")),
            "spec.targetResources: at least one target resource is required",
        ),
        (
            rsg(
                "r",
                "\n  - {name: a, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: x1}}\n  - {name: a, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: x2}}",
                &group(""),
            ),
            "spec.targetResources[1].name: name \"a\" is already used by targetResources[0]",
        ),
        (
            rsg(
                "r",
                "\n  - {name: a, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: x}}\n  - {name: b, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: x}}",
                &group(""),
            ),
            "spec.targetResources[1].resourceRef: Deployment x is already referenced by targetResources[0]",
        ),
        (
            rsg(
                "r",
                "\n  - {name: a, resourceRef: {apiVersion: apps/v1, kind: Deploymnet, name: x}}",
                &group(""),
            ),
            "kind \"Deploymnet\" is not supported (did you mean Deployment?)",
        ),
        (
            rsg("r", TWO, &inplace("[{resourceName: nope, followRatio: 1}]")),
            "follower[0].resourceName: \"nope\" is not a targetResources[].name: use one of decode, prefill",
        ),
        (
            rsg(
                "r",
                TWO,
                &inplace(
                    "[{resourceName: prefill, followRatio: 1}, {resourceName: decode, followRatio: 1}]",
                ),
            ),
            "\"prefill\" is the leader and cannot also follow it",
        ),
        (
            rsg(
                "r",
                TWO,
                &inplace(
                    "[{resourceName: decode, followRatio: 1}, {resourceName: decode, followRatio: 2}]",
                ),
            ),
            "follower[1].resourceName: \"decode\" is listed as a follower twice",
        ),
        (
            rsg(
                "r",
                TWO,
                &inplace("[{resourceName: decode, followRatio: 0}]"),
            ),
            "follower[0].followRatio: followRatio must be at least 1",
        ),
        (
            rsg(
                "r",
                TWO,
                &format!(
                    "{}\n    groupConfig: {{replicas: 1}}",
                    inplace("[{resourceName: decode, followRatio: 1}]")
                ),
            ),
            "spec.scalingStrategy.groupConfig: groupConfig is for GroupReplication",
        ),
        (
            rsg(
                "r",
                TWO,
                &format!(
                    "{}\n    leaderFollowerConfig: {{leader: {{resourceName: prefill, replicas: 1}}}}",
                    group("")
                ),
            ),
            "spec.scalingStrategy.leaderFollowerConfig: leaderFollowerConfig is for InplaceScaling",
        ),
        (
            rsg(
                "r",
                TWO,
                &group("\n      scaleDown: {metric: {expr: q, type: guage}}"),
            ),
            "spec.scalingStrategy.groupConfig.scaleDown.metric.type: \"guage\" is not valid: did you mean Gauge?",
        ),
        (
            rsg(
                "r",
                TWO,
                &group("\n      scaleDown: {metric: {expr: q, type: Counter}}"),
            ),
            "metric.window: window is required for type Counter",
        ),
        (
            rsg(
                "r",
                TWO,
                &group(
                    "\n      scaleDown: {metric: {expr: q, type: Histogram, window: 2 minutes}}",
                ),
            ),
            "window \"2 minutes\" is not a duration",
        ),
        (
            rsg(
                "r",
                TWO,
                &group("\n      scaleDown: {metric: {expr: q, type: Gauge, aggregator: avrg}}"),
            ),
            "metric.aggregator: \"avrg\" is not valid: did you mean avg?",
        ),
        (
            rsg("r", TWO, &group("\n      scaleDown: {order: asc}")),
            "scaleDown.order: \"asc\" is not valid: did you mean ascending?",
        ),
        (
            rsg("r", TWO, &group("\n      groupName: Prefill-Decode")),
            "spec.scalingStrategy.groupConfig.groupName: groupName \"Prefill-Decode\" is used in clone names",
        ),
        (
            rsg(
                "r",
                &format!(
                    "\n  - {{name: a, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: {long}}}}}"
                ),
                &group(""),
            ),
            "would not be a valid object name: shorten groupName or the workload name",
        ),
        // A wrong type our webhook cannot name precisely is left to the schema, which names the field.
        (
            rsg("r", TWO, &group("").replace("replicas: 1", "replicas: two")),
            "spec.scalingStrategy.groupConfig.replicas: Invalid value: \"string\"",
        ),
        // ElasticScaler
        (
            scaler("s", "web", &metrics_trigger("HPA", CPU))
                .replace("minReplicas: 1", "minReplicas: 7"),
            "spec.maxReplicas: maxReplicas (5) is below minReplicas (7)",
        ),
        (
            scaler("s", "web", &metrics_trigger("HPA", CPU))
                .replace("type: MetricsTrigger", "type: StateTrigger"),
            "spec.trigger.stateTrigger: trigger.type is StateTrigger but stateTrigger is not set",
        ),
        (
            scaler(
                "s",
                "web",
                &metrics_trigger("HPA", &CPU.replace("{type: Resource", "{type: External")),
            ),
            "metrics[0].external: type is External but external is not set",
        ),
        (
            scaler(
                "s",
                "web",
                &metrics_trigger(
                    "APA",
                    "{type: External, external: {metricsName: q, target: {type: AverageValueValue, averageValue: 5}}}",
                ),
            ),
            "did you mean AverageValue?",
        ),
        (
            scaler(
                "s",
                "web",
                &metrics_trigger(
                    "HPA",
                    "{type: ExternalServer, externalServer: {endpoint: \"m:80\", metricsName: q, target: \"5\"}}",
                ),
            ),
            "the HPA algorithm does not support ExternalServer metrics",
        ),
        (
            scaler(
                "s",
                "web",
                &metrics_trigger(
                    "APA",
                    "{type: External, external: {metric: {name: q}, target: {type: AverageValue, averageValue: 5}}}",
                ),
            ),
            "use external.metricsName",
        ),
        // Tidal
        (
            tidal("[{name: a, cron: \"0 9 * * *\", replicas: 1}]"),
            "spec.triggers.times.rules[0].cron: cron \"0 9 * * *\" must start with CRON_TZ=",
        ),
        (
            tidal("[{name: a, cron: \"CRON_TZ=Asia/Shangai 0 9 * * *\", replicas: 1}]"),
            "unknown time zone",
        ),
        (
            tidal(
                "[{name: a, cron: \"CRON_TZ=UTC 0 9 * * *\", replicas: 1}, {name: a, cron: \"CRON_TZ=UTC 0 21 * * *\", replicas: 2}]",
            ),
            "spec.triggers.times.rules[1].name: rule name \"a\" is already used by rules[0]",
        ),
        (tidal("[]"), "0 rules given: a Tidal needs 1 to 100 rules"),
    ];
    let mut failures = Vec::new();
    for (yaml, expected) in &cases {
        let out = apply(&env, n, yaml, true, "").await;
        if out.success || !out.stderr.contains(expected) {
            failures.push(format!(
                "expected {expected:?}\n  got: {}",
                out.stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // An algorithm that is not built in is admitted with a warning (plugins live in the elastic-scaler).
    let out = apply(
        &env,
        n,
        &scaler("plugin", "web", &metrics_trigger("my-plugin", CPU)),
        true,
        "",
    )
    .await;
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("\"my-plugin\" is not a built-in algorithm"),
        "{}",
        out.stderr
    );

    // Cross-object rules need real objects.
    apply(&env, n, &rsg("first", TWO, &group("")), false, "")
        .await
        .ok();
    assert_denied(
        &env,
        n,
        &rsg("second", "\n  - {name: d, resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}}", &group("")),
        &format!("spec.targetResources[0].resourceRef: Deployment {n}/decode is already managed by ResourceScalingGroup {n}/first with strategy GroupReplication"),
    )
    .await;
    // The same workload under the other strategy is fine.
    let out = apply(
        &env,
        n,
        &rsg(
            "other",
            TWO,
            &inplace("[{resourceName: decode, followRatio: 2}]"),
        ),
        true,
        "",
    )
    .await;
    assert!(out.success, "{}", out.stderr);

    apply(
        &env,
        n,
        &scaler("one", "web", &metrics_trigger("HPA", CPU)),
        false,
        "",
    )
    .await
    .ok();
    assert_denied(
        &env,
        n,
        &scaler("two", "web", &metrics_trigger("KPA", CPU)),
        &format!("spec.targetRef: Deployment {n}/web is already scaled by ElasticScaler {n}/one"),
    )
    .await;
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: native}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}\n  maxReplicas: 3\n";
    apply(&env, n, hpa, false, "").await.ok();
    let denied =
        format!("Deployment {n}/api is already scaled by HorizontalPodAutoscaler {n}/native");
    // The HPA reaches the webhook's watch cache a moment after it is created.
    let kubectl_env = env.clone();
    wait_until("the HPA conflict", Duration::from_secs(10), || {
        let (env, denied) = (kubectl_env.clone(), denied.clone());
        async move {
            let out = apply(
                &env,
                n,
                &scaler("three", "api", &metrics_trigger("HPA", CPU)),
                true,
                "",
            )
            .await;
            Ok::<_, String>(out.stderr.contains(&denied).then_some(()))
        }
    })
    .await;
    // Editing the existing scaler's labels is not re-checked.
    env.kubectl
        .run(&["label", "es", "one", "-n", n, "edited=yes"], None)
        .await
        .ok();
}

#[tokio::test]
async fn webhook_defaults_appear_on_created_objects() {
    let env = Env::get().await;
    let ns = env.namespace("webhook-defaults").await;
    let _hook = Webhook::start(&env, &ns, &[]).await;
    let n = ns.name.as_str();
    apply(
        &env,
        n,
        &rsg(
            "pd",
            TWO,
            &group("\n      scaleDown: {metric: {expr: q, type: Gauge}}"),
        ),
        false,
        "",
    )
    .await
    .ok();
    let get = |what: &'static str, path: &'static str| {
        let kubectl = env.kubectl.clone();
        let n = n.to_string();
        async move {
            kubectl
                .run(
                    &["get", what, "-n", &n, "-o", &format!("jsonpath={path}")],
                    None,
                )
                .await
                .ok()
        }
    };
    assert_eq!(
        get("rsg/pd", "{.spec.scalingStrategy.groupConfig.groupName}").await,
        "pd"
    );
    assert_eq!(
        get(
            "rsg/pd",
            "{.spec.scalingStrategy.groupConfig.scaleDown.metric.aggregator}"
        )
        .await,
        "sum"
    );
    assert_eq!(
        get("rsg/pd", "{.spec.targetResources[*].resourceRef.namespace}").await,
        format!("{n} {n}")
    );
    let es = scaler(
        "es",
        "web",
        "\n    type: SignalTrigger\n    signalTrigger: {endpoint: \"dlx:8080\"}",
    )
    .replace("  minReplicas: 1\n  maxReplicas: 5\n", "");
    apply(&env, n, &es, false, "").await.ok();
    assert_eq!(get("es/es", "{.spec.targetRef.namespace}").await, n);
    assert_eq!(
        get("es/es", "{.spec.trigger.signalTrigger.protocol}").await,
        "https"
    );
    assert_eq!(
        get("es/es", "{.spec.minReplicas} {.spec.maxReplicas}").await,
        "1 10"
    );
}

#[tokio::test]
async fn webhook_denies_references_the_requester_cannot_read_or_scale() {
    let env = Env::get().await;
    let ns = env.namespace("webhook-rbac").await;
    let _hook = Webhook::start(&env, &ns, &[]).await;
    let n = ns.name.as_str();
    // Everyone here may create our objects; what differs is what they may do to Deployments.
    let rbac = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: author}
rules:
- {apiGroups: [autoscaling.openfuyao.com, elasticscaler.io, tidal.io], resources: ["*"], verbs: [get, list, create, update, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-deployments}
rules:
- {apiGroups: [apps], resources: [deployments], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: scale-deployments}
rules:
- {apiGroups: [apps], resources: [deployments, deployments/scale], verbs: [get, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: authors}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: author}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: nobody}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: reader}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: scaler}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-deployments}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: scalers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: scale-deployments}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: scaler}
"#;
    apply(&env, n, rbac, false, "").await.ok();
    let grouped = rsg("pd", TWO, &group(""));
    let cases = [
        (
            "nobody",
            grouped.clone(),
            format!(
                "spec.targetResources[0].resourceRef: user \"nobody\" cannot get deployments.apps \"prefill\" in namespace \"{n}\""
            ),
        ),
        (
            "reader",
            grouped.clone(),
            format!(
                "user \"reader\" cannot update deployments.apps/scale (nor update deployments.apps) \"prefill\" in namespace \"{n}\""
            ),
        ),
        (
            "scaler",
            grouped.clone(),
            format!(
                "user \"scaler\" cannot create deployments.apps in namespace \"{n}\", where GroupReplication creates the clones"
            ),
        ),
        (
            "nobody",
            scaler("es", "web", &metrics_trigger("HPA", CPU)),
            "spec.targetRef: user \"nobody\" cannot get deployments.apps \"web\"".to_string(),
        ),
        (
            "reader",
            tidal("[{name: a, cron: \"CRON_TZ=UTC 0 9 * * *\", replicas: 1}]")
                .replace("namespace: default", &format!("namespace: {n}")),
            format!(
                "spec.targetRef: user \"reader\" cannot update deployments.apps/scale (nor update deployments.apps) \"w\" in namespace \"{n}\""
            ),
        ),
    ];
    for (user, yaml, expected) in &cases {
        // RoleBindings reach the authorizer's cache a moment after they are created.
        let msg = expected.clone();
        wait_until(
            &format!("{user}: {expected}"),
            Duration::from_secs(15),
            || {
                let (env, yaml, msg) = (env.clone(), yaml.clone(), msg.clone());
                async move {
                    let out = apply(&env, n, &yaml, true, user).await;
                    Ok::<_, String>(
                        (!out.success && out.stderr.contains(&msg))
                            .then_some(())
                            .or_else(|| {
                                eprintln!("{user}: {}", out.stderr.trim());
                                None
                            }),
                    )
                }
            },
        )
        .await;
    }
    // InplaceScaling creates nothing, so reading and scaling is enough; the admin may do anything.
    let out = apply(
        &env,
        n,
        &rsg(
            "ip",
            TWO,
            &inplace("[{resourceName: decode, followRatio: 2}]"),
        ),
        true,
        "scaler",
    )
    .await;
    assert!(out.success, "{}", out.stderr);
    let out = apply(&env, n, &grouped, false, "").await;
    assert!(out.success, "{}", out.stderr);
}

#[tokio::test]
async fn webhook_rotates_its_certificates_under_load_without_losing_an_admission() {
    let env = Env::get().await;
    let ns = env.namespace("webhook-rotation").await;
    // A serving certificate valid for 8 s renewed 5 s before expiry (every ~3 s), and a CA valid for 16 s
    // (renewed once during the run).
    let hook = Webhook::start(
        &env,
        &ns,
        &[
            ("CERT_VALIDITY", "8s"),
            ("CA_VALIDITY", "16s"),
            ("CERT_RENEW_BEFORE", "5s"),
            ("CERT_CHECK_INTERVAL", "500ms"),
            ("CA_PROPAGATION_DELAY", "2s"),
        ],
    )
    .await;
    let reloads = |m: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix("admission_webhook_certificate_reloads_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let before = reloads(&hook.metrics().await);
    let (ok, denied, lost) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::<String>::new())),
    );
    let deadline = Instant::now() + Duration::from_secs(25);
    let api: Api<api_types::Tidal> = Api::namespaced(env.client.clone(), &ns.name);
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (api, ok, denied, lost) = (api.clone(), ok.clone(), denied.clone(), lost.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            while Instant::now() < deadline {
                i += 1;
                // Every fourth object is invalid: its denial proves the webhook answered.
                let cron = if i.is_multiple_of(4) { "0 9 * * *" } else { "CRON_TZ=UTC 0 9 * * *" };
                let t: api_types::Tidal = serde_json::from_value(serde_json::json!({
                    "apiVersion": "tidal.io/v1alpha1", "kind": "Tidal", "metadata": {"name": format!("t{w}-{i}")},
                    "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "default"},
                      "triggers": {"times": {"rules": [{"name": "a", "cron": cron, "replicas": 1}]}}}
                }))
                .expect("tidal");
                let pp = kube::api::PostParams { dry_run: true, ..Default::default() };
                match (api.create(&pp, &t).await, i.is_multiple_of(4)) {
                    (Ok(_), false) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    (Err(kube::Error::Api(e)), true) if e.message.contains("must start with CRON_TZ=") => {
                        denied.fetch_add(1, Ordering::Relaxed);
                    }
                    (r, _) => lost.lock().expect("lock").push(format!("{i}: {:?}", r.map(|_| ()))),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
    let after = reloads(&hook.metrics().await);
    let lost = lost.lock().expect("lock").clone();
    let (ok, denied) = (ok.load(Ordering::Relaxed), denied.load(Ordering::Relaxed));
    eprintln!(
        "rotation under load: {ok} admitted, {denied} denied as expected, {} lost, {} certificates installed",
        lost.len(),
        after - before
    );
    assert!(
        lost.is_empty(),
        "{} admissions lost during rotation: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        ok > 200 && denied > 50,
        "too little load: {ok} admitted, {denied} denied"
    );
    assert!(
        after - before >= 4,
        "only {} certificates installed during the run",
        after - before
    );
    // The CA was renewed: caBundle holds the new CA and the previous one.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns.name);
    let s = secrets.get("webhook-tls").await.expect("TLS Secret");
    let bundle = String::from_utf8(s.data.expect("data")["ca.crt"].0.clone()).expect("pem");
    assert!(
        bundle.matches("BEGIN CERTIFICATE").count() >= 2,
        "CA not rotated: {bundle}"
    );
}
