//! Tidal rules: rule count, unique names, and each cron fully parsed: the `CRON_TZ=` prefix, a zone of the
//! IANA database, five fields (or six with seconds) in range, a schedule that can fire at all.
//!
//! The parser is [`crate::tidal::schedule::CronSchedule`], the same the Tidal controller schedules with,
//! so the webhook and the controller can never disagree about a rule.

use std::collections::HashMap;

use super::FieldError;
use crate::tidal::TidalSpec;
use crate::tidal::schedule::CronSchedule;

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
    CronSchedule::parse(cron).err()
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
      - {name: y, cron: "CRON_TZ=Asia/Shangai 0 21 * * *", replicas: 1}
      - {name: z, cron: "CRON_TZ=UTC 0 24 * * *", replicas: 1}
      - {name: ok, cron: "CRON_TZ=Europe/Berlin 30 */2 * * MON-FRI", replicas: 1}
"#,
        )
        .unwrap();
        let errs = validate_tidal(&t.spec);
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert_eq!(errs[0].field, "spec.triggers.times.rules[1].name");
        assert!(errs[1].message.contains("must start with CRON_TZ="));
        assert!(errs[2].message.contains("has 4 schedule fields"));
        assert_eq!(errs[3].field, "spec.triggers.times.rules[3].cron");
        assert!(
            errs[3]
                .message
                .contains("CRON_TZ=Asia/Shangai: unknown time zone")
        );
        assert!(
            errs[4]
                .message
                .contains("hour field: 24 is out of range 0-23")
        );
    }
}
