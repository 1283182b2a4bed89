//! The samples input: recorded metric values and replica counts, one JSON object per line, each one
//! decision period.
//!
//! ```json
//! {"t": 0,  "ready": 2, "current": 2, "metrics": {"Pods/vllm:num_requests_waiting": [3, 4], "Prometheus/sum(vllm:num_requests_running)": 12}}
//! {"t": 15, "ready": 2, "metrics": {"Pods/vllm:num_requests_waiting": 5.5, "Prometheus/sum(vllm:num_requests_running)": null}}
//! ```
//!
//! - `t` (required): seconds, increasing from line to line (any origin, e.g. Unix time);
//! - `ready` (required): ready replicas;
//! - `current` (optional): the target's replicas; default: the previous line's decision (the first line:
//!   `ready`), as if each decision had been applied;
//! - `metrics` (required): values by status name (`<type>/<metricsName or query>`). For a per-pod source
//!   (`Pods`, `Resource`, `Custom`) a list has one entry per ready pod (`null` for a pod whose scrape
//!   failed) and a number is the per-pod average over `ready` pods; for a whole-target source a number is
//!   the total. `null` or an absent name is a missing reading (scale-down is withheld, as in the
//!   controller).
//!
//! Blank lines and lines starting with `#` are skipped. Errors name the file, the line and the field.

use serde_json::{Map, Value};

use super::SimError;
use super::manifest::MetricSlot;
use crate::algorithms::hpa::PodMetrics;
use crate::plugin::{Observation, Reading};

/// One parsed line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// 1-based line number.
    pub line: usize,
    /// Seconds.
    pub t: f64,
    /// Ready replicas.
    pub ready: i32,
    /// The target's replicas, if recorded.
    pub current: Option<i32>,
    /// Values by metric, in the scaler's metric order (`None` = missing).
    pub values: Vec<Value>,
}

impl Sample {
    /// The observations of this sample with `current` replicas.
    pub fn observations(&self, slots: &[MetricSlot], current: i32) -> Vec<Observation> {
        slots
            .iter()
            .zip(&self.values)
            .map(|(slot, v)| {
                let reading = match v {
                    Value::Null => Reading::Missing("no value in the sample".into()),
                    Value::Number(n) if slot.per_pod => {
                        let avg = n.as_f64().unwrap_or(f64::NAN);
                        Reading::PerPod(PodMetrics {
                            ready: vec![avg; self.ready.max(0) as usize],
                            missing: 0,
                            unready: (current - self.ready).max(0) as usize,
                        })
                    }
                    Value::Number(n) => Reading::Total(n.as_f64().unwrap_or(f64::NAN)),
                    Value::Array(list) => {
                        let ready: Vec<f64> = list.iter().filter_map(Value::as_f64).collect();
                        Reading::PerPod(PodMetrics {
                            missing: list.len() - ready.len(),
                            ready,
                            unready: (current - self.ready).max(0) as usize,
                        })
                    }
                    // `parse` accepts nothing else.
                    _ => Reading::Missing("not a number".into()),
                };
                Observation {
                    name: slot.name.clone(),
                    target: slot.target,
                    reading,
                }
            })
            .collect()
    }
}

const FIELDS: &str = "t, ready, current and metrics";

fn count(obj: &Map<String, Value>, key: &str) -> Result<Option<i32>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key}: {v} is not a replica count (a whole number ≥ 0)")),
    }
}

fn parse_line(
    obj: &Map<String, Value>,
    slots: &[MetricSlot],
) -> Result<(f64, i32, Option<i32>, Vec<Value>), String> {
    if let Some(k) = obj
        .keys()
        .find(|k| !["t", "ready", "current", "metrics"].contains(&k.as_str()))
    {
        return Err(format!("unknown field {k:?}: a sample has {FIELDS}"));
    }
    let t = match obj.get("t") {
        None => return Err("t: missing: give the sample's time in seconds".into()),
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite())
            .ok_or_else(|| format!("t: {v} is not a number of seconds"))?,
    };
    let ready = count(obj, "ready")?.ok_or("ready: missing: give the ready replicas")?;
    let current = count(obj, "current")?;
    let metrics = match obj.get("metrics") {
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(format!(
                "metrics: {v} is not an object of values by metric name"
            ));
        }
        None => return Err("metrics: missing: give an object of values by metric name".into()),
    };
    let names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
    if let Some(k) = metrics.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(format!(
            "metrics[{k:?}]: not a metric of the ElasticScaler: its metrics are {names:?}"
        ));
    }
    let mut values = Vec::new();
    for slot in slots {
        let field = format!("metrics[{:?}]", slot.name);
        let v = metrics.get(&slot.name).cloned().unwrap_or(Value::Null);
        match &v {
            Value::Null | Value::Number(_) => {}
            Value::Array(list) if slot.per_pod => {
                if let Some(bad) = list.iter().find(|x| !(x.is_null() || x.is_number())) {
                    return Err(format!("{field}: {bad} is not a number or null"));
                }
                if list.len() != ready as usize {
                    return Err(format!(
                        "{field}: {} values for {ready} ready pods: give one per ready pod (null for a pod that could not be read)",
                        list.len()
                    ));
                }
            }
            Value::Array(_) => {
                return Err(format!(
                    "{field}: a whole-target metric has one value: give the total as a number"
                ));
            }
            other => return Err(format!("{field}: {other} is not a number")),
        }
        values.push(v);
    }
    Ok((t, ready, current, values))
}

/// Parses a samples file against the scaler's metrics; `file` is named in errors.
pub fn parse(file: &str, text: &str, slots: &[MetricSlot]) -> Result<Vec<Sample>, SimError> {
    let mut out: Vec<Sample> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let row = raw.trim();
        if row.is_empty() || row.starts_with('#') {
            continue;
        }
        let err = |message: String| SimError::Line {
            file: file.to_string(),
            line,
            message,
        };
        let obj = match serde_json::from_str::<Value>(row) {
            Ok(Value::Object(o)) => o,
            Ok(other) => return Err(err(format!("{other} is not a JSON object with {FIELDS}"))),
            Err(e) => return Err(err(format!("not JSON: {e}"))),
        };
        let (t, ready, current, values) = parse_line(&obj, slots).map_err(err)?;
        if let Some(prev) = out.last()
            && t <= prev.t
        {
            return Err(err(format!(
                "t: {t} is not after the previous sample's {} (line {}): samples must be in time order",
                prev.t, prev.line
            )));
        }
        out.push(Sample {
            line,
            t,
            ready,
            current,
            values,
        });
    }
    if out.is_empty() {
        return Err(SimError::Input {
            file: file.to_string(),
            message: "no samples: write one JSON object per line".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Target;

    fn slots() -> Vec<MetricSlot> {
        vec![
            MetricSlot {
                name: "Pods/q".into(),
                field: "f0".into(),
                source: "q".into(),
                per_pod: true,
                target: Target::AverageValue(2.0),
            },
            MetricSlot {
                name: "External/r".into(),
                field: "f1".into(),
                source: "r".into(),
                per_pod: false,
                target: Target::Value(5.0),
            },
        ]
    }

    #[test]
    fn parses_lists_averages_totals_and_gaps() {
        let text = "# recorded 2026-11-23\n\
            {\"t\": 100, \"ready\": 2, \"current\": 3, \"metrics\": {\"Pods/q\": [1, null], \"External/r\": 7}}\n\
            \n\
            {\"t\": 115, \"ready\": 2, \"metrics\": {\"Pods/q\": 1.5}}\n";
        let s = parse("s.jsonl", text, &slots()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].line, s[0].t, s[0].ready, s[0].current),
            (2, 100.0, 2, Some(3))
        );
        let o = s[0].observations(&slots(), 3);
        assert_eq!(
            o[0].reading,
            Reading::PerPod(PodMetrics {
                ready: vec![1.0],
                missing: 1,
                unready: 1
            })
        );
        assert_eq!(o[1].reading, Reading::Total(7.0));
        let o = s[1].observations(&slots(), 2);
        assert_eq!(
            o[0].reading,
            Reading::PerPod(PodMetrics {
                ready: vec![1.5, 1.5],
                missing: 0,
                unready: 0
            })
        );
        assert!(matches!(o[1].reading, Reading::Missing(_)));
    }

    fn error(text: &str) -> String {
        parse("s.jsonl", text, &slots()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let ok = "{\"t\": 0, \"ready\": 1, \"metrics\": {}}\n";
        assert_eq!(
            error(&format!(
                "{ok}{{\"t\": 0, \"ready\": 1, \"metrics\": {{}}}}"
            )),
            "s.jsonl:2: t: 0 is not after the previous sample's 0 (line 1): samples must be in time order"
        );
        assert!(
            error(&format!("{ok}{{\"t\": 1, \"ready\": 1}}"))
                .starts_with("s.jsonl:2: metrics: missing")
        );
        assert!(
            error("{\"t\": 1, \"ready\": -1, \"metrics\": {}}")
                .starts_with("s.jsonl:1: ready: -1 is not a replica count")
        );
        assert!(
            error("{\"t\": \"now\", \"ready\": 1, \"metrics\": {}}")
                .starts_with("s.jsonl:1: t: \"now\" is not a number")
        );
        assert!(
            error("{\"t\": 1, \"ready\": 1, \"metrics\": {}, \"readdy\": 1}")
                .contains("unknown field \"readdy\"")
        );
        let e = error("{\"t\": 1, \"ready\": 1, \"metrics\": {\"Pods/qq\": 1}}");
        assert!(
            e.starts_with("s.jsonl:1: metrics[\"Pods/qq\"]: not a metric of the ElasticScaler"),
            "{e}"
        );
        assert!(e.contains("\"Pods/q\""), "{e}");
        let e = error("{\"t\": 1, \"ready\": 2, \"metrics\": {\"Pods/q\": [1]}}");
        assert!(e.contains("1 values for 2 ready pods"), "{e}");
        let e = error("{\"t\": 1, \"ready\": 2, \"metrics\": {\"External/r\": [1, 2]}}");
        assert!(e.contains("whole-target metric has one value"), "{e}");
        let e = error("{\"t\": 1, \"ready\": 2, \"metrics\": {\"External/r\": \"7\"}}");
        assert!(
            e.contains("metrics[\"External/r\"]: \"7\" is not a number"),
            "{e}"
        );
        assert!(error("{\"t\": 1,").starts_with("s.jsonl:1: not JSON"));
        assert!(error("\n# nothing\n").starts_with("s.jsonl: no samples"));
    }
}
