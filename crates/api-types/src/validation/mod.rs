//! Pure validation: what the OpenAPI schema cannot express, with messages that name the field and the fix.
//!
//! Each `validate_*` function takes a spec (and the object's name where names matter) and returns every
//! problem it finds as a [`FieldError`], never only the first: a user fixes a manifest in one round trip.
//! The admission webhook denies with these messages; the controllers refuse to act on an invalid object and
//! report the same messages in a condition.
//!
//! - `validate_*`: one object's spec.
//! - [`rsg_enum_errors`], [`elastic_scaler_enum_errors`]: misspelt enum values in the raw JSON, for when
//!   typed decoding fails (`guage` → "did you mean Gauge?").
//! - [`rsg_conflicts`], [`scaler_conflicts`]: rules across objects, given the other objects.
//! - [`algorithm_warnings`]: an algorithm name that is not built in (accepted, with a warning).

mod cross;
mod elastic_scaler;
mod names;
mod raw;
mod rsg;
mod tidal;

pub use cross::{
    WorkloadKey, elastic_scaler_target, hpa_target, rsg_conflicts, rsg_workloads, scaler_conflicts,
};
pub use elastic_scaler::{BUILTIN_ALGORITHMS, algorithm_warnings, validate_elastic_scaler};
pub use names::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, parse_duration};
pub use raw::{elastic_scaler_enum_errors, rsg_enum_errors};
pub use rsg::validate_rsg;
pub use tidal::validate_tidal;

use std::fmt;

/// One validation problem: the JSON path of the field and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `spec.trigger.metricsTrigger.metrics[0].external.target.type`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins errors into one message, as shown in an admission denial or a condition.
pub fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Suggests the candidate closest to `input` (case-insensitive prefix or edit distance ≤ 2), for
/// "did you mean" hints.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(input)) {
        return Some(c);
    }
    if let Some(c) = candidates
        .iter()
        .filter(|c| {
            lower.starts_with(&c.to_ascii_lowercase()) || c.to_ascii_lowercase().starts_with(&lower)
        })
        .max_by_key(|c| c.len())
    {
        return Some(c);
    }
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_prefix_case_and_typos() {
        let c = ["Utilization", "Value", "AverageValue"];
        assert_eq!(did_you_mean("AverageValueValue", &c), Some("AverageValue"));
        assert_eq!(did_you_mean("averagevalue", &c), Some("AverageValue"));
        assert_eq!(
            did_you_mean("guage", &["Counter", "Gauge", "Histogram"]),
            Some("Gauge")
        );
        assert_eq!(did_you_mean("zzz", &c), None);
    }
}
