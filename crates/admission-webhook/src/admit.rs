//! Pure admission decisions: decode the object into its typed spec, run `api_types::validation`, compute
//! the defaulting patch. No IO; the cluster-dependent checks (other objects, RBAC) are in [`crate::checks`].

use api_types::validation::{
    self, FieldError, algorithm_warnings, elastic_scaler_enum_errors, is_dns1123_label,
    rsg_enum_errors, summarize,
};
use api_types::{ElasticScaler, ResourceScalingGroup, Tidal};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::review::{AdmissionRequest, Decision};

/// The kinds served, by the last segment of `/validate/<kind>` and `/mutate/<kind>` (the resource plural).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `elasticscaler.io/v1alpha1` ElasticScaler.
    ElasticScaler,
    /// `autoscaling.openfuyao.com/v1alpha1` ResourceScalingGroup.
    ResourceScalingGroup,
    /// `tidal.io/v1alpha1` Tidal.
    Tidal,
}

impl Kind {
    /// Every kind, for metrics and routing.
    pub const ALL: [Kind; 3] = [Self::ElasticScaler, Self::ResourceScalingGroup, Self::Tidal];

    /// The kind for a URL segment (`elasticscalers`, `resourcescalinggroups`, `tidals`).
    pub fn from_resource(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.resource() == s)
    }

    /// The resource plural.
    pub fn resource(self) -> &'static str {
        match self {
            Self::ElasticScaler => "elasticscalers",
            Self::ResourceScalingGroup => "resourcescalinggroups",
            Self::Tidal => "tidals",
        }
    }

    /// The Kind name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ElasticScaler => "ElasticScaler",
            Self::ResourceScalingGroup => "ResourceScalingGroup",
            Self::Tidal => "Tidal",
        }
    }
}

/// An object decoded into its type.
#[derive(Debug)]
pub enum Typed {
    /// An ElasticScaler.
    ElasticScaler(Box<ElasticScaler>),
    /// A ResourceScalingGroup.
    ResourceScalingGroup(Box<ResourceScalingGroup>),
    /// A Tidal.
    Tidal(Box<Tidal>),
}

/// Decodes `object` as `kind`. A failure is a denial whose message names the misspelt enum fields when
/// it can (`guage` → "did you mean Gauge?", reason `invalid`), else carries serde's message (reason
/// `undecodable`).
pub fn decode(kind: Kind, object: &Value) -> Result<Typed, Decision> {
    let r = match kind {
        Kind::ElasticScaler => {
            ElasticScaler::deserialize(object).map(|o| Typed::ElasticScaler(Box::new(o)))
        }
        Kind::ResourceScalingGroup => ResourceScalingGroup::deserialize(object)
            .map(|o| Typed::ResourceScalingGroup(Box::new(o))),
        Kind::Tidal => Tidal::deserialize(object).map(|o| Typed::Tidal(Box::new(o))),
    };
    r.map_err(|e| {
        let precise = match kind {
            Kind::ElasticScaler => elastic_scaler_enum_errors(object),
            Kind::ResourceScalingGroup => rsg_enum_errors(object),
            Kind::Tidal => Vec::new(),
        };
        if precise.is_empty() {
            Decision::deny(
                "undecodable",
                400,
                format!("{} does not match its schema: {e}", kind.name()),
            )
        } else {
            Decision::deny("invalid", 400, summarize(&precise))
        }
    })
}

/// The single-object rules, plus warnings (an algorithm name that is not built in).
pub fn rules(object_name: &str, typed: &Typed) -> (Vec<FieldError>, Vec<FieldError>) {
    match typed {
        Typed::ElasticScaler(es) => (
            validation::validate_elastic_scaler(&es.spec),
            algorithm_warnings(&es.spec),
        ),
        Typed::ResourceScalingGroup(r) => (validation::validate_rsg(object_name, &r.spec), vec![]),
        Typed::Tidal(t) => (validation::validate_tidal(&t.spec), vec![]),
    }
}

/// A denial listing `errors`, prefixed with the kind and name.
pub fn deny_invalid(kind: Kind, name: &str, errors: &[FieldError]) -> Decision {
    Decision::deny(
        "invalid",
        400,
        format!("{} {name:?} is invalid: {}", kind.name(), summarize(errors)),
    )
}

/// Decode and single-object rules: the part of validation that needs nothing but the request.
/// `Ok` carries the typed object and the warnings to attach.
pub fn validate_pure(kind: Kind, req: &AdmissionRequest) -> Result<(Typed, Vec<String>), Decision> {
    let Some(object) = &req.object else {
        return Err(Decision::deny(
            "invalid",
            400,
            "the request carries no object",
        ));
    };
    let typed = decode(kind, object)?;
    let name = req.object_name();
    let (errors, warnings) = rules(&name, &typed);
    if !errors.is_empty() {
        return Err(deny_invalid(kind, &name, &errors));
    }
    Ok((typed, warnings.iter().map(ToString::to_string).collect()))
}

/// The mutating webhook: decode, check the single-object rules (so the user sees our precise messages
/// before the schema's), and add the defaults the schema cannot express.
pub fn mutate(kind: Kind, req: &AdmissionRequest) -> Decision {
    if req.spec_unchanged() {
        return Decision::allow();
    }
    match validate_pure(kind, req) {
        // A type mismatch we cannot name precisely: admit unchanged and let the API server's schema
        // validation, which runs next and names the field, reject it.
        Err(d) if d.reason == "undecodable" => Decision::allow(),
        Err(d) => d,
        Ok((_, warnings)) => {
            let object = req.object.as_ref().unwrap_or(&Value::Null);
            let mut d = Decision::allow();
            d.patch = defaults(kind, &req.object_name(), &req.object_namespace(), object);
            if !d.patch.is_empty() {
                d.reason = "patched";
            }
            d.warnings = warnings;
            d
        }
    }
}

/// JSON Patch `add` operations for the reference CRD defaults that are absent:
///
/// - ResourceScalingGroup: `groupConfig.groupName` = the RSG's name (when that is a valid label),
///   `resourceRef.namespace` = the RSG's namespace, `scaleDown.metric.aggregator` = `sum`;
/// - ElasticScaler: `minReplicas` 1, `maxReplicas` 10, `targetRef.namespace` = the scaler's namespace,
///   `protocol` = `https` for signal triggers and external servers;
/// - Tidal: nothing (its `targetRef.namespace` is required by the schema).
pub fn defaults(kind: Kind, name: &str, namespace: &str, object: &Value) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut add =
        |path: String, value: Value| ops.push(json!({"op": "add", "path": path, "value": value}));
    let spec = &object["spec"];
    match kind {
        Kind::ResourceScalingGroup => {
            let s = &spec["scalingStrategy"];
            let g = &s["groupConfig"];
            if s["type"] == "GroupReplication"
                && g.is_object()
                && g.get("groupName").is_none()
                && is_dns1123_label(name)
            {
                add(
                    "/spec/scalingStrategy/groupConfig/groupName".into(),
                    name.into(),
                );
            }
            if let Some(m) = g["scaleDown"]["metric"].as_object()
                && !m.contains_key("aggregator")
            {
                add(
                    "/spec/scalingStrategy/groupConfig/scaleDown/metric/aggregator".into(),
                    "sum".into(),
                );
            }
            for (i, t) in spec["targetResources"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(r) = t["resourceRef"].as_object()
                    && !r.contains_key("namespace")
                    && !namespace.is_empty()
                {
                    add(
                        format!("/spec/targetResources/{i}/resourceRef/namespace"),
                        namespace.into(),
                    );
                }
            }
        }
        Kind::ElasticScaler => {
            if spec.get("minReplicas").is_none() {
                add("/spec/minReplicas".into(), 1.into());
            }
            if spec.get("maxReplicas").is_none() {
                add("/spec/maxReplicas".into(), 10.into());
            }
            if let Some(t) = spec["targetRef"].as_object()
                && !t.contains_key("namespace")
                && !namespace.is_empty()
            {
                add("/spec/targetRef/namespace".into(), namespace.into());
            }
            let trigger = &spec["trigger"];
            if let Some(st) = trigger["signalTrigger"].as_object()
                && !st.contains_key("protocol")
            {
                add(
                    "/spec/trigger/signalTrigger/protocol".into(),
                    "https".into(),
                );
            }
            for (i, m) in trigger["metricsTrigger"]["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(es) = m["externalServer"].as_object()
                    && !es.contains_key("protocol")
                {
                    add(
                        format!("/spec/trigger/metricsTrigger/metrics/{i}/externalServer/protocol"),
                        "https".into(),
                    );
                }
            }
        }
        Kind::Tidal => {}
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: Kind, op: &str, object: Value) -> AdmissionRequest {
        serde_json::from_value(json!({
            "uid": "u", "kind": {"kind": kind.name()}, "operation": op, "namespace": "ns",
            "object": object
        }))
        .unwrap()
    }

    fn rsg(strategy: Value) -> Value {
        json!({
            "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
            "metadata": {"name": "pd", "namespace": "ns"},
            "spec": {"targetResources": [
                {"name": "p", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill"}},
                {"name": "d", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "decode", "namespace": "other"}}],
              "scalingStrategy": strategy}
        })
    }

    #[test]
    fn rsg_defaults_group_name_namespace_and_aggregator() {
        let obj = rsg(
            json!({"type": "GroupReplication", "groupConfig": {"replicas": 1,
            "scaleDown": {"metric": {"expr": "q", "type": "Gauge"}}}}),
        );
        let d = mutate(
            Kind::ResourceScalingGroup,
            &request(Kind::ResourceScalingGroup, "CREATE", obj),
        );
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.reason, "patched");
        let paths: Vec<_> = d
            .patch
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/spec/scalingStrategy/groupConfig/groupName",
                "/spec/scalingStrategy/groupConfig/scaleDown/metric/aggregator",
                "/spec/targetResources/0/resourceRef/namespace",
            ]
        );
        assert_eq!(d.patch[0]["value"], "pd");
        assert_eq!(d.patch[2]["value"], "ns");
    }

    #[test]
    fn es_defaults_bounds_namespace_and_protocols() {
        let obj = json!({"apiVersion": "elasticscaler.io/v1alpha1", "kind": "ElasticScaler",
            "metadata": {"name": "s"},
            "spec": {"targetRef": {"kind": "Deployment", "name": "web"},
              "trigger": {"type": "MetricsTrigger", "metricsTrigger": {"scalingAlgorithm": "APA", "metrics": [
                {"type": "ExternalServer", "externalServer": {"endpoint": "e:80", "metricsName": "m", "target": "5"}}]}}}});
        let d = mutate(
            Kind::ElasticScaler,
            &request(Kind::ElasticScaler, "CREATE", obj),
        );
        assert!(d.allowed, "{d:?}");
        let ops: Vec<_> = d
            .patch
            .iter()
            .map(|p| format!("{}={}", p["path"].as_str().unwrap(), p["value"]))
            .collect();
        assert_eq!(
            ops,
            [
                "/spec/minReplicas=1",
                "/spec/maxReplicas=10",
                "/spec/targetRef/namespace=\"ns\"",
                "/spec/trigger/metricsTrigger/metrics/0/externalServer/protocol=\"https\"",
            ]
        );
    }

    #[test]
    fn mutate_denies_with_precise_messages_and_skips_unchanged_updates() {
        let obj = rsg(
            json!({"type": "GroupReplication", "groupConfig": {"replicas": 1,
            "scaleDown": {"metric": {"expr": "q", "type": "guage"}}}}),
        );
        let d = mutate(
            Kind::ResourceScalingGroup,
            &request(Kind::ResourceScalingGroup, "CREATE", obj.clone()),
        );
        assert!(!d.allowed);
        assert!(
            d.message
                .as_ref()
                .unwrap()
                .contains("metric.type: \"guage\" is not valid: did you mean Gauge?"),
            "{d:?}"
        );
        // A wrong type without a precise message is left to the schema (which names the field).
        let wrong = rsg(json!({"type": "GroupReplication", "groupConfig": {"replicas": "two"}}));
        let d = mutate(
            Kind::ResourceScalingGroup,
            &request(Kind::ResourceScalingGroup, "CREATE", wrong.clone()),
        );
        assert!(d.allowed && d.patch.is_empty(), "{d:?}");
        let d = validate_pure(
            Kind::ResourceScalingGroup,
            &request(Kind::ResourceScalingGroup, "CREATE", wrong),
        )
        .unwrap_err();
        assert!(d.message.unwrap().contains("does not match its schema"));
        let mut upd = request(Kind::ResourceScalingGroup, "UPDATE", obj.clone());
        upd.old_object = Some(obj);
        assert!(mutate(Kind::ResourceScalingGroup, &upd).allowed);
    }

    #[test]
    fn validate_pure_names_the_kind_object_and_fields() {
        let obj = rsg(json!({"type": "InplaceScaling", "groupConfig": {"replicas": 1}}));
        let d = validate_pure(
            Kind::ResourceScalingGroup,
            &request(Kind::ResourceScalingGroup, "CREATE", obj),
        )
        .unwrap_err();
        let m = d.message.unwrap();
        assert!(
            m.starts_with("ResourceScalingGroup \"pd\" is invalid: "),
            "{m}"
        );
        assert!(
            m.contains("spec.scalingStrategy.groupConfig: groupConfig is for GroupReplication"),
            "{m}"
        );
        assert!(
            m.contains("spec.scalingStrategy.leaderFollowerConfig: InplaceScaling needs"),
            "{m}"
        );
        let tidal = json!({"apiVersion": "tidal.io/v1alpha1", "kind": "Tidal", "metadata": {"name": "t"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "ns"},
              "triggers": {"times": {"rules": [{"name": "a", "cron": "0 9 * * *", "replicas": 1}]}}}});
        let d = validate_pure(Kind::Tidal, &request(Kind::Tidal, "CREATE", tidal)).unwrap_err();
        assert!(
            d.message
                .unwrap()
                .contains("rules[0].cron: cron \"0 9 * * *\" must start with CRON_TZ=")
        );
        assert!(
            validate_pure(
                Kind::Tidal,
                &request(Kind::Tidal, "CREATE", json!({"spec": 1}))
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_algorithm_is_admitted_with_a_warning() {
        let obj = json!({"apiVersion": "elasticscaler.io/v1alpha1", "kind": "ElasticScaler",
            "metadata": {"name": "s"}, "spec": {"targetRef": {"kind": "Deployment", "name": "web"},
              "minReplicas": 1, "maxReplicas": 3, "trigger": {"type": "MetricsTrigger", "metricsTrigger": {
                "scalingAlgorithm": "hap", "metrics": [{"type": "Resource", "resource": {"metricsName": "cpu",
                  "target": {"type": "Utilization", "averageUtilization": 50}}}]}}}});
        let d = mutate(
            Kind::ElasticScaler,
            &request(Kind::ElasticScaler, "CREATE", obj),
        );
        assert!(d.allowed);
        assert!(d.warnings[0].contains("did you mean HPA?"), "{d:?}");
    }
}
