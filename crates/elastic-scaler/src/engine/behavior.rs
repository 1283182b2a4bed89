//! `behavior` from the upstream annotations, over per-algorithm defaults.
//!
//! | annotation (prefix `elasticscaler.io/behavior.`) | example |
//! | --- | --- |
//! | `scaleUp.stabilizationWindowSeconds`, `scaleDown.stabilizationWindowSeconds` | `300` |
//! | `scaleUp.selectPolicy`, `scaleDown.selectPolicy` | `Max`, `Min` or `Disabled` |
//! | `scaleUp.policies`, `scaleDown.policies` | `Pods:4:15,Percent:100:15` (kind:value:periodSeconds) |
//!
//! Defaults: `hpa` uses the Kubernetes defaults (up at once, +4 pods or +100 % per 15 s; down after 300 s,
//! −100 % per 15 s); `apa` the same but a 180 s scale-down window (openFuyao's stabilizer); `kpa` and plugins
//! none (their own windows and rates decide).

use std::collections::BTreeMap;

use api_types::keys::annotations::ES_BEHAVIOR_PREFIX;
use api_types::validation::FieldError;

use crate::algorithms::behavior::{Behavior, Policy, PolicyKind, Rules, SelectPolicy};

/// Rules that never hold back a change.
fn unbounded() -> Rules {
    Rules {
        stabilization_window_seconds: 0,
        policies: vec![Policy {
            kind: PolicyKind::Pods,
            value: 1_000_000,
            period_seconds: 1,
        }],
        select: SelectPolicy::Max,
    }
}

/// The defaults for `algorithm`.
pub fn default_for(algorithm: &str) -> Behavior {
    match algorithm {
        "hpa" => Behavior::default(),
        "apa" => {
            let mut b = Behavior::default();
            b.scale_down.stabilization_window_seconds = 180;
            b
        }
        _ => Behavior {
            scale_up: unbounded(),
            scale_down: unbounded(),
        },
    }
}

fn parse_policies(value: &str) -> Option<Vec<Policy>> {
    value
        .split(',')
        .map(|p| {
            let mut it = p.trim().split(':');
            let kind = match it.next()? {
                "Pods" => PolicyKind::Pods,
                "Percent" => PolicyKind::Percent,
                _ => return None,
            };
            let value = it.next()?.parse().ok().filter(|v: &i32| *v > 0)?;
            let period_seconds = it
                .next()?
                .parse()
                .ok()
                .filter(|p: &u32| (1..=1800).contains(p))?;
            it.next().is_none().then_some(Policy {
                kind,
                value,
                period_seconds,
            })
        })
        .collect()
}

/// `behavior` for `algorithm` from the object's annotations; a malformed annotation is an error naming it.
pub fn from_annotations(
    algorithm: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Behavior, Vec<FieldError>> {
    let mut b = default_for(algorithm);
    let mut errs = Vec::new();
    for (key, value) in annotations {
        let Some(rest) = key.strip_prefix(ES_BEHAVIOR_PREFIX) else {
            continue;
        };
        let field = format!("metadata.annotations[{key}]");
        let Some((dir, what)) = rest.split_once('.') else {
            errs.push(FieldError::new(
                field,
                "unknown behavior annotation: use scaleUp.<field> or scaleDown.<field>",
            ));
            continue;
        };
        let rules = match dir {
            "scaleUp" => &mut b.scale_up,
            "scaleDown" => &mut b.scale_down,
            _ => {
                errs.push(FieldError::new(
                    field,
                    format!("{dir:?} is neither scaleUp nor scaleDown"),
                ));
                continue;
            }
        };
        let v = value.trim();
        match what {
            "stabilizationWindowSeconds" => match v.parse::<u32>() {
                Ok(s) if s <= 3600 => rules.stabilization_window_seconds = s,
                _ => errs.push(FieldError::new(field, format!("{v:?} is not a number of seconds from 0 to 3600"))),
            },
            "selectPolicy" => match v {
                "Max" => rules.select = SelectPolicy::Max,
                "Min" => rules.select = SelectPolicy::Min,
                "Disabled" => rules.select = SelectPolicy::Disabled,
                _ => errs.push(FieldError::new(field, format!("{v:?} is not Max, Min or Disabled"))),
            },
            "policies" => match parse_policies(v) {
                Some(p) if !p.is_empty() => rules.policies = p,
                _ => errs.push(FieldError::new(
                    field,
                    format!("{v:?} is not a policy list: write kind:value:periodSeconds separated by commas, e.g. Pods:4:15,Percent:100:15"),
                )),
            },
            _ => errs.push(FieldError::new(
                field,
                format!("unknown field {what:?}: use stabilizationWindowSeconds, selectPolicy or policies"),
            )),
        }
    }
    if errs.is_empty() { Ok(b) } else { Err(errs) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{ES_BEHAVIOR_PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_override_the_algorithm_defaults() {
        let b = from_annotations(
            "hpa",
            &ann(&[
                ("scaleDown.stabilizationWindowSeconds", "60"),
                ("scaleUp.policies", "Pods:2:30"),
                ("scaleUp.selectPolicy", "Min"),
            ]),
        )
        .unwrap();
        assert_eq!(b.scale_down.stabilization_window_seconds, 60);
        assert_eq!(
            b.scale_up.policies,
            vec![Policy {
                kind: PolicyKind::Pods,
                value: 2,
                period_seconds: 30
            }]
        );
        assert_eq!(b.scale_up.select, SelectPolicy::Min);
        assert_eq!(
            default_for("apa").scale_down.stabilization_window_seconds,
            180
        );
        assert_eq!(
            default_for("kpa").scale_down.stabilization_window_seconds,
            0
        );
    }

    #[test]
    fn malformed_annotations_name_the_key() {
        let errs = from_annotations(
            "hpa",
            &ann(&[
                ("scaleUp.policies", "Pods:four:15"),
                ("scaleSideways.selectPolicy", "Max"),
            ]),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].field.contains("scaleSideways"), "{errs:?}");
        assert!(
            errs[1].message.contains("kind:value:periodSeconds"),
            "{errs:?}"
        );
    }
}
