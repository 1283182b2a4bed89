//! Tidal rules: the `CRON_TZ=` prefix, a five-field schedule, rule count, unique names.
//!
//! Full cron parsing and zone lookup belong to the Tidal controller (which owns a cron crate); this
//! checks the shape so the common mistakes get a precise message everywhere.

use std::collections::HashMap;

use super::FieldError;
use crate::tidal::TidalSpec;

/// Validates a Tidal spec.
pub fn validate_tidal(spec: &TidalSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = &spec.triggers.times.rules;
    if rules.is_empty() || rules.len() > 100 {
        errs.push(FieldError::new(
            "spec.triggers.times.rules",
            format!("{} rules given: a Tidal needs 1 to 100 rules", rules.len()),
        ));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        let path = format!("spec.triggers.times.rules[{i}]");
        if let Some(first) = names.insert(r.name.as_str(), i) {
            errs.push(FieldError::new(
                format!("{path}.name"),
                format!(
                    "rule name {:?} is already used by rules[{first}]: rule names must be unique",
                    r.name
                ),
            ));
        }
        if let Some(e) = check_cron(&r.cron) {
            errs.push(FieldError::new(format!("{path}.cron"), e));
        }
    }
    errs
}

fn check_cron(cron: &str) -> Option<String> {
    let Some(rest) = cron.strip_prefix("CRON_TZ=") else {
        return Some(format!(
            "cron {cron:?} must start with CRON_TZ=<zone>, e.g. \"CRON_TZ=Asia/Shanghai 0 9 * * 1-5\""
        ));
    };
    let mut parts = rest.split_whitespace();
    let zone = parts.next().unwrap_or_default();
    if zone.is_empty() {
        return Some("CRON_TZ= needs an IANA zone name, e.g. CRON_TZ=UTC".into());
    }
    let fields: Vec<&str> = parts.collect();
    if fields.len() != 5 {
        return Some(format!(
            "cron {cron:?} has {} schedule fields after the zone: give exactly 5 (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tidal;

    #[test]
    fn cron_shape_and_unique_names() {
        let t: Tidal = serde_yaml::from_str(
            r#"
apiVersion: tidal.io/v1alpha1
kind: Tidal
metadata: {name: t}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web, namespace: default}
  triggers:
    times:
      rules:
      - {name: day, cron: "CRON_TZ=Asia/Shanghai 0 9 * * 1-5", replicas: 4}
      - {name: day, cron: "0 21 * * *", replicas: 1}
      - {name: x, cron: "CRON_TZ=UTC 0 21 * *", replicas: 1}
"#,
        )
        .unwrap();
        let errs = validate_tidal(&t.spec);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0].field, "spec.triggers.times.rules[1].name");
        assert!(errs[1].message.contains("must start with CRON_TZ="));
        assert!(errs[2].message.contains("has 4 schedule fields"));
    }
}
