//! Enum checks on the raw JSON of an object, before it is decoded into the typed spec.
//!
//! A misspelt enum value (`type: guage`) makes typed decoding fail with serde's generic "unknown variant"
//! message, which names neither the field path nor the likely fix. These checks walk the known enum fields of
//! the raw object and say which field is wrong and what was probably meant. They are run when decoding
//! fails, so the caller can answer with them instead of the serde error.

use serde_json::Value;

use super::{FieldError, did_you_mean};

/// One enum-valued field: where it sits and what it accepts.
struct EnumField {
    /// JSON path segments; `[]` means "every element of this array".
    path: &'static [&'static str],
    allowed: &'static [&'static str],
}

const RSG_ENUMS: &[EnumField] = &[
    EnumField {
        path: &["spec", "scalingStrategy", "type"],
        allowed: &["GroupReplication", "InplaceScaling"],
    },
    EnumField {
        path: &[
            "spec",
            "scalingStrategy",
            "groupConfig",
            "scaleDown",
            "metric",
            "type",
        ],
        allowed: &["Counter", "Gauge", "Histogram"],
    },
    EnumField {
        path: &[
            "spec",
            "scalingStrategy",
            "groupConfig",
            "scaleDown",
            "metric",
            "aggregator",
        ],
        allowed: &["sum", "avg", "max", "min"],
    },
    EnumField {
        path: &[
            "spec",
            "scalingStrategy",
            "groupConfig",
            "scaleDown",
            "order",
        ],
        allowed: &["ascending", "descending"],
    },
    EnumField {
        path: &[
            "spec",
            "targetResources",
            "[]",
            "resourceRef",
            "subresource",
            "type",
        ],
        allowed: &["RoleBasedGroup"],
    },
    EnumField {
        path: &[
            "spec",
            "targetResources",
            "[]",
            "resourceRef",
            "subresource",
            "workloadKind",
        ],
        allowed: &["StatefulSet", "Deployment", "LeaderWorkerSet"],
    },
];

const ES_ENUMS: &[EnumField] = &[
    EnumField {
        path: &["spec", "trigger", "type"],
        allowed: &["MetricsTrigger", "StateTrigger", "SignalTrigger"],
    },
    EnumField {
        path: &["spec", "trigger", "metricsTrigger", "metrics", "[]", "type"],
        allowed: &[
            "Resource",
            "External",
            "ExternalServer",
            "Custom",
            "Prometheus",
            "Pods",
        ],
    },
    EnumField {
        path: &[
            "spec",
            "trigger",
            "metricsTrigger",
            "metrics",
            "[]",
            "prometheus",
            "metricType",
        ],
        allowed: &["Gauge", "Counter", "Histogram"],
    },
    EnumField {
        path: &[
            "spec",
            "trigger",
            "metricsTrigger",
            "metrics",
            "[]",
            "externalServer",
            "protocol",
        ],
        allowed: &["http", "https"],
    },
    EnumField {
        path: &["spec", "trigger", "signalTrigger", "protocol"],
        allowed: &["http", "https"],
    },
];

/// Misspelt enum values in a raw ResourceScalingGroup (`metric.type: guage` → "did you mean Gauge?").
pub fn rsg_enum_errors(object: &Value) -> Vec<FieldError> {
    check(object, RSG_ENUMS)
}

/// Misspelt enum values in a raw ElasticScaler (`trigger.type`, metric `type`, `protocol`).
pub fn elastic_scaler_enum_errors(object: &Value) -> Vec<FieldError> {
    check(object, ES_ENUMS)
}

fn check(object: &Value, fields: &[EnumField]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in fields {
        walk(object, f.path, String::new(), &mut |path, v| {
            let Some(s) = v.as_str() else {
                errs.push(FieldError::new(
                    path,
                    format!("must be a string, one of {}", f.allowed.join(", ")),
                ));
                return;
            };
            if f.allowed.contains(&s) {
                return;
            }
            let hint = did_you_mean(s, f.allowed)
                .map(|m| format!(": did you mean {m}?"))
                .unwrap_or_default();
            errs.push(FieldError::new(
                path,
                format!("{s:?} is not valid{hint} (one of {})", f.allowed.join(", ")),
            ));
        });
    }
    errs
}

fn walk(v: &Value, path: &[&str], at: String, found: &mut dyn FnMut(String, &Value)) {
    let Some((head, rest)) = path.split_first() else {
        if !v.is_null() {
            found(at, v);
        }
        return;
    };
    if *head == "[]" {
        for (i, item) in v.as_array().into_iter().flatten().enumerate() {
            walk(item, rest, format!("{at}[{i}]"), found);
        }
    } else if let Some(next) = v.get(head) {
        let at = if at.is_empty() {
            (*head).to_string()
        } else {
            format!("{at}.{head}")
        };
        walk(next, rest, at, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guage_gets_did_you_mean_gauge_with_its_path() {
        let o = json!({"spec": {"scalingStrategy": {"type": "GroupReplication", "groupConfig": {"replicas": 1,
            "scaleDown": {"metric": {"type": "guage", "aggregator": "AVG"}, "order": "asc"}}}}});
        let errs = rsg_enum_errors(&o);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(
            errs[0].field,
            "spec.scalingStrategy.groupConfig.scaleDown.metric.type"
        );
        assert!(errs[0].message.contains("did you mean Gauge?"), "{errs:?}");
        assert!(errs[1].message.contains("did you mean avg?"), "{errs:?}");
        assert!(
            errs[2].message.contains("did you mean ascending?"),
            "{errs:?}"
        );
    }

    #[test]
    fn array_elements_and_non_strings_are_reported() {
        let o = json!({"spec": {"trigger": {"type": "MetricTrigger", "metricsTrigger": {"metrics": [
            {"type": "Resource"}, {"type": "extrnal"}, {"type": 3}]}}}});
        let errs = elastic_scaler_enum_errors(&o);
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.trigger.type",
                "spec.trigger.metricsTrigger.metrics[1].type",
                "spec.trigger.metricsTrigger.metrics[2].type"
            ]
        );
        assert!(errs[0].message.contains("did you mean MetricsTrigger?"));
        assert!(errs[1].message.contains("did you mean External?"));
        assert!(errs[2].message.contains("must be a string"));
    }

    #[test]
    fn valid_values_and_missing_fields_pass() {
        let o = json!({"spec": {"scalingStrategy": {"type": "InplaceScaling"}, "targetResources": [{}]}});
        assert!(rsg_enum_errors(&o).is_empty());
        assert!(elastic_scaler_enum_errors(&json!(null)).is_empty());
    }
}
