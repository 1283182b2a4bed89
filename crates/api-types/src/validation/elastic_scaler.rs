//! ElasticScaler rules: bounds, one trigger block per trigger type, one metric block per metric type,
//! target type/value consistency, algorithm/source compatibility.

use super::{FieldError, did_you_mean};
use crate::elastic_scaler::{
    ElasticScalerSpec, MetricSourceType, MetricSpec, MetricTarget, NamedMetricSource,
    PodsMetricSource, PrometheusMetricSource, TARGET_TYPES, TriggerType,
};

/// Algorithms built into the elastic-scaler (names are case-insensitive; empty means APA).
pub const BUILTIN_ALGORITHMS: [&str; 3] = ["hpa", "kpa", "apa"];

/// Warnings (not errors) about `scalingAlgorithm`: a name that is not built in is accepted, because
/// plugins register algorithms inside the running elastic-scaler and the webhook cannot see them; the
/// elastic-scaler reports an unregistered name in the ElasticScaler's status. A near-miss of a built-in
/// name (`hap`, `kpa2`) gets a "did you mean".
pub fn algorithm_warnings(spec: &ElasticScalerSpec) -> Vec<FieldError> {
    let Some(mt) = &spec.trigger.metrics_trigger else {
        return Vec::new();
    };
    let name = mt.algorithm();
    if BUILTIN_ALGORITHMS.contains(&name.as_str()) {
        return Vec::new();
    }
    let hint = did_you_mean(&name, &["HPA", "KPA", "APA"])
        .map(|s| format!("did you mean {s}? "))
        .unwrap_or_default();
    vec![FieldError::new(
        "spec.trigger.metricsTrigger.scalingAlgorithm",
        format!(
            "{name:?} is not a built-in algorithm (HPA, KPA, APA): {hint}it must be registered as a plugin in the elastic-scaler, which reports an unknown name in this ElasticScaler's status"
        ),
    )]
}

/// Validates an ElasticScaler spec.
pub fn validate_elastic_scaler(spec: &ElasticScalerSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.max_replicas < spec.min_replicas {
        errs.push(FieldError::new(
            "spec.maxReplicas",
            format!(
                "maxReplicas ({}) is below minReplicas ({}): raise maxReplicas or lower minReplicas",
                spec.max_replicas, spec.min_replicas
            ),
        ));
    }
    if spec
        .target_ref
        .kind
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(FieldError::new(
            "spec.targetRef.kind",
            "kind is required: e.g. Deployment",
        ));
    }
    if spec
        .target_ref
        .name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(FieldError::new(
            "spec.targetRef.name",
            "name is required: the object to scale",
        ));
    }
    if let Some(z) = &spec.scale_to_zero {
        if spec.min_replicas != 0 {
            errs.push(FieldError::new(
                "spec.minReplicas",
                format!("scaleToZero needs minReplicas: 0 (it is {}): set it to 0 or remove scaleToZero", spec.min_replicas),
            ));
        }
        if spec.trigger.type_ != TriggerType::MetricsTrigger {
            errs.push(FieldError::new(
                "spec.scaleToZero",
                "scaleToZero decides idleness from metrics: use trigger.type MetricsTrigger",
            ));
        }
        if !super::is_dns1035_label(&z.service) {
            errs.push(FieldError::new(
                "spec.scaleToZero.service",
                format!("{:?} is not a Service name (a DNS-1035 label): name the Service clients send to", z.service),
            ));
        }
        if z.wake_replicas > spec.max_replicas {
            errs.push(FieldError::new(
                "spec.scaleToZero.wakeReplicas",
                format!(
                    "wakeReplicas ({}) is above maxReplicas ({})",
                    z.wake_replicas, spec.max_replicas
                ),
            ));
        }
        if z.idle_seconds < 10 {
            errs.push(FieldError::new(
                "spec.scaleToZero.idleSeconds",
                format!(
                    "idleSeconds {} is below 10: a workload would flap between zero and one",
                    z.idle_seconds
                ),
            ));
        }
    }
    let t = &spec.trigger;
    let blocks = [
        (
            TriggerType::MetricsTrigger,
            "metricsTrigger",
            t.metrics_trigger.is_some(),
        ),
        (
            TriggerType::StateTrigger,
            "stateTrigger",
            t.state_trigger.is_some(),
        ),
        (
            TriggerType::SignalTrigger,
            "signalTrigger",
            t.signal_trigger.is_some(),
        ),
    ];
    for (ty, field, set) in blocks {
        if ty == t.type_ && !set {
            errs.push(FieldError::new(
                format!("spec.trigger.{field}"),
                format!("trigger.type is {ty:?} but {field} is not set: add the {field} block"),
            ));
        } else if ty != t.type_ && set {
            errs.push(FieldError::new(
                format!("spec.trigger.{field}"),
                format!(
                    "{field} is set but trigger.type is {:?}: remove {field} or set type to {ty:?}",
                    t.type_
                ),
            ));
        }
    }
    if let (TriggerType::MetricsTrigger, Some(mt)) = (t.type_, &t.metrics_trigger) {
        let base = "spec.trigger.metricsTrigger";
        if mt.metrics.is_empty() {
            errs.push(FieldError::new(
                format!("{base}.metrics"),
                "at least one metric is required",
            ));
        }
        let algorithm = mt.algorithm();
        for (i, m) in mt.metrics.iter().enumerate() {
            let path = format!("{base}.metrics[{i}]");
            validate_metric(&path, m, &mut errs);
            if algorithm == "hpa" && m.type_ == MetricSourceType::ExternalServer {
                errs.push(FieldError::new(
                    format!("{path}.type"),
                    "the HPA algorithm does not support ExternalServer metrics: use APA or KPA, or a Custom/External metric",
                ));
            }
        }
    }
    errs
}

fn validate_metric(path: &str, m: &MetricSpec, errs: &mut Vec<FieldError>) {
    let blocks = [
        (MetricSourceType::Resource, "resource", m.resource.is_some()),
        (MetricSourceType::External, "external", m.external.is_some()),
        (
            MetricSourceType::ExternalServer,
            "externalServer",
            m.external_server.is_some(),
        ),
        (MetricSourceType::Custom, "custom", m.custom.is_some()),
        (
            MetricSourceType::Prometheus,
            "prometheus",
            m.prometheus.is_some(),
        ),
        (MetricSourceType::Pods, "pods", m.pods.is_some()),
    ];
    for (ty, field, set) in blocks {
        if ty == m.type_ && !set {
            errs.push(FieldError::new(
                format!("{path}.{field}"),
                format!("type is {ty:?} but {field} is not set: add the {field} block"),
            ));
        } else if ty != m.type_ && set {
            errs.push(FieldError::new(
                format!("{path}.{field}"),
                format!(
                    "{field} is set but type is {:?}: remove {field} or set type to {ty:?}",
                    m.type_
                ),
            ));
        }
    }
    if let Some(r) = &m.resource {
        if !matches!(r.metrics_name.as_str(), "cpu" | "memory") {
            errs.push(FieldError::new(
                format!("{path}.resource.metricsName"),
                format!(
                    "resource metric {:?} is not known: use cpu or memory",
                    r.metrics_name
                ),
            ));
        }
        validate_target(&format!("{path}.resource.target"), &r.target, true, errs);
    }
    for (field, src) in [("external", &m.external), ("custom", &m.custom)] {
        if let Some(s) = src {
            validate_named(&format!("{path}.{field}"), field, s, errs);
        }
    }
    if let Some(s) = &m.prometheus {
        validate_prometheus(&format!("{path}.prometheus"), s, errs);
    }
    if let Some(s) = &m.pods {
        validate_pods(&format!("{path}.pods"), s, errs);
    }
    if let Some(s) = &m.external_server {
        if s.endpoint.trim().is_empty() {
            errs.push(FieldError::new(
                format!("{path}.externalServer.endpoint"),
                "endpoint is required",
            ));
        }
        if s.metrics_name.trim().is_empty() {
            errs.push(FieldError::new(
                format!("{path}.externalServer.metricsName"),
                "metricsName is required",
            ));
        }
    }
}

fn validate_prometheus(path: &str, s: &PrometheusMetricSource, errs: &mut Vec<FieldError>) {
    let query = s.query.as_deref().map(str::trim).unwrap_or_default();
    let name = s.metrics_name.as_deref().map(str::trim).unwrap_or_default();
    if query.is_empty() && name.is_empty() {
        errs.push(FieldError::new(
            format!("{path}.metricsName"),
            "set metricsName (the query is built for you) or query (PromQL used as written)",
        ));
    }
    if let Some(w) = &s.window
        && super::parse_duration(w).is_none()
    {
        errs.push(FieldError::new(
            format!("{path}.window"),
            format!("window {w:?} is not a Prometheus duration: use e.g. 30s, 1m or 5m"),
        ));
    }
    if let Some(q) = &s.quantile
        && !q.parse::<f64>().is_ok_and(|q| q > 0.0 && q <= 1.0)
    {
        errs.push(FieldError::new(
            format!("{path}.quantile"),
            format!("quantile {q:?} must be a number in (0, 1], e.g. \"0.95\""),
        ));
    }
    validate_target(&format!("{path}.target"), &s.target, false, errs);
}

fn validate_pods(path: &str, s: &PodsMetricSource, errs: &mut Vec<FieldError>) {
    if s.metrics_name.trim().is_empty() {
        errs.push(FieldError::new(
            format!("{path}.metricsName"),
            "metricsName is required: the metric to read from each pod's /metrics",
        ));
    }
    if let Some(p) = s.port
        && !(1..=65535).contains(&p)
    {
        errs.push(FieldError::new(
            format!("{path}.port"),
            format!("port {p} is not a TCP port (1-65535)"),
        ));
    }
    if let Some(p) = &s.path
        && !p.starts_with('/')
    {
        errs.push(FieldError::new(
            format!("{path}.path"),
            format!("path {p:?} must start with /, e.g. /metrics"),
        ));
    }
    validate_target(&format!("{path}.target"), &s.target, false, errs);
}

fn validate_named(path: &str, field: &str, s: &NamedMetricSource, errs: &mut Vec<FieldError>) {
    if s.metric.is_some() {
        errs.push(FieldError::new(
            format!("{path}.metric"),
            format!("metric.name is the autoscaling/v2 HPA shape and not part of this API: use {field}.metricsName (and {field}.selector) instead"),
        ));
    } else if s
        .metrics_name
        .as_deref()
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        errs.push(FieldError::new(
            format!("{path}.metricsName"),
            "metricsName is required: name the metric to read",
        ));
    }
    validate_target(&format!("{path}.target"), &s.target, false, errs);
}

fn validate_target(path: &str, t: &MetricTarget, resource: bool, errs: &mut Vec<FieldError>) {
    let field = format!("{path}.type");
    match t.type_.as_str() {
        "Utilization" => {
            if !resource {
                errs.push(FieldError::new(
                    &field,
                    "Utilization is only valid for Resource metrics: use Value or AverageValue",
                ));
            }
            if t.average_utilization.is_none() {
                errs.push(FieldError::new(
                    format!("{path}.averageUtilization"),
                    "type Utilization needs averageUtilization (a percentage)",
                ));
            }
        }
        "Value" if t.value.is_none() => {
            errs.push(FieldError::new(
                format!("{path}.value"),
                "type Value needs value",
            ));
        }
        "AverageValue" if t.average_value.is_none() => {
            errs.push(FieldError::new(
                format!("{path}.averageValue"),
                "type AverageValue needs averageValue",
            ));
        }
        "Value" | "AverageValue" => {}
        other => {
            let hint = did_you_mean(other, &TARGET_TYPES)
                .map(|s| format!(": did you mean {s}?"))
                .unwrap_or_default();
            errs.push(FieldError::new(
                field,
                format!("target.type {other} is not valid{hint} (one of Utilization, Value, AverageValue)"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ElasticScaler;

    fn parse(yaml: &str) -> ElasticScalerSpec {
        let es: ElasticScaler = serde_yaml::from_str(yaml).expect("fixture parses");
        es.spec
    }

    const BASE: &str = r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: HPA
      metrics:
      - type: Resource
        resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 70}}
"#;

    #[test]
    fn valid_spec_has_no_errors() {
        assert_eq!(validate_elastic_scaler(&parse(BASE)), vec![]);
    }

    #[test]
    fn max_below_min_names_both() {
        let errs =
            validate_elastic_scaler(&parse(&BASE.replace("maxReplicas: 5", "maxReplicas: 0")));
        assert_eq!(errs[0].field, "spec.maxReplicas");
        assert!(
            errs[0].message.contains("below minReplicas (1)"),
            "{errs:?}"
        );
    }

    #[test]
    fn average_value_value_gets_did_you_mean() {
        let y = BASE.replace(
            "resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 70}}",
            "resource: {metricsName: cpu, target: {type: AverageValueValue, averageValue: 1}}",
        );
        let errs = validate_elastic_scaler(&parse(&y));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].field,
            "spec.trigger.metricsTrigger.metrics[0].resource.target.type"
        );
        assert!(errs[0].message.contains("did you mean AverageValue?"));
    }

    #[test]
    fn mismatched_blocks_and_external_server_with_hpa() {
        let y = BASE.replace(
            "- type: Resource\n        resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 70}}",
            "- type: ExternalServer\n        resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 70}}",
        );
        let errs = validate_elastic_scaler(&parse(&y));
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.trigger.metricsTrigger.metrics[0].resource"),
            "{errs:?}"
        );
        assert!(
            fields.contains(&"spec.trigger.metricsTrigger.metrics[0].externalServer"),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| {
            e.message
                .contains("HPA algorithm does not support ExternalServer")
        }));
    }

    #[test]
    fn external_metric_name_points_at_metrics_name() {
        let y = BASE.replace(
            "- type: Resource\n        resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 70}}",
            "- type: External\n        external: {metric: {name: queue}, target: {type: AverageValue, averageValue: 5}}",
        );
        let errs = validate_elastic_scaler(&parse(&y));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("use external.metricsName"));
    }

    #[test]
    fn unknown_algorithm_is_a_warning_with_a_hint() {
        assert!(algorithm_warnings(&parse(BASE)).is_empty());
        let spec = parse(&BASE.replace("scalingAlgorithm: HPA", "scalingAlgorithm: hap"));
        assert!(validate_elastic_scaler(&spec).is_empty());
        let w = algorithm_warnings(&spec);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("did you mean HPA?"), "{w:?}");
        let spec = parse(&BASE.replace("scalingAlgorithm: HPA", "scalingAlgorithm: my-plugin"));
        assert!(
            algorithm_warnings(&spec)[0]
                .message
                .contains("registered as a plugin")
        );
    }

    #[test]
    fn value_targets_need_their_value_and_utilization_is_resource_only() {
        let y = BASE.replace(
            "- type: Resource\n        resource: {metricsName: cpu, target: {type: Utilization, averageUtilization: 70}}",
            "- type: Custom\n        custom: {metricsName: q, target: {type: Utilization}}\n      - type: Resource\n        resource: {metricsName: gpu, target: {type: Value}}",
        );
        let errs = validate_elastic_scaler(&parse(&y));
        let msgs: Vec<_> = errs.iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter().any(|m| m
                .contains("metrics[0].custom.target.type: Utilization is only valid for Resource")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("metrics[0].custom.target.averageUtilization")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("metrics[1].resource.metricsName: resource metric \"gpu\"")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("metrics[1].resource.target.value: type Value needs value")),
            "{msgs:?}"
        );
    }

    #[test]
    fn trigger_type_without_block() {
        let y = BASE.replace("type: MetricsTrigger", "type: StateTrigger");
        let errs = validate_elastic_scaler(&parse(&y));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e.field == "spec.trigger.stateTrigger"));
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.trigger.metricsTrigger")
        );
    }

    #[test]
    fn prometheus_and_pods_sources() {
        let spec = parse(
            r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      metrics:
      - type: Prometheus
        prometheus: {metricType: Counter, window: 1 minute, quantile: "1.5", target: {type: AverageValue, averageValue: "5"}}
      - type: Pods
        pods: {metricsName: "vllm:num_requests_waiting", port: 70000, path: metrics, target: {type: Value}}
"#,
        );
        let errs = validate_elastic_scaler(&spec);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "spec.trigger.metricsTrigger.metrics[0].prometheus.metricsName",
            "spec.trigger.metricsTrigger.metrics[0].prometheus.window",
            "spec.trigger.metricsTrigger.metrics[0].prometheus.quantile",
            "spec.trigger.metricsTrigger.metrics[1].pods.port",
            "spec.trigger.metricsTrigger.metrics[1].pods.path",
            "spec.trigger.metricsTrigger.metrics[1].pods.target.value",
        ] {
            assert!(fields.contains(&f), "{f} missing from {errs:?}");
        }
        assert_eq!(errs.len(), 6, "{errs:?}");
    }
}
