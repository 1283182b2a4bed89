//! The parts of the Prometheus text exposition format a scaler needs: find one metric's samples, keep
//! those whose labels match, sum them. Comments, other metrics and malformed lines are skipped; a value
//! that is not a finite number is an error naming the line.

use std::collections::BTreeMap;

/// Sums the samples of `name` whose labels include every pair in `want`. `Ok(None)`: no such sample.
pub fn sum_metric(
    text: &str,
    name: &str,
    want: &BTreeMap<String, String>,
) -> Result<Option<f64>, String> {
    let mut total: Option<f64> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = if let Some(after) = rest.strip_prefix('{') {
            let Some(end) = after.rfind('}') else {
                continue;
            };
            (parse_labels(&after[..end]), after[end + 1..].trim())
        } else if rest.starts_with([' ', '\t']) {
            (BTreeMap::new(), rest.trim())
        } else {
            continue; // a longer name with this prefix, e.g. `<name>_bucket`
        };
        if !want.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let raw = value.split_whitespace().next().unwrap_or_default();
        let v: f64 = match raw {
            "+Inf" | "-Inf" | "NaN" => f64::NAN,
            _ => raw.parse().unwrap_or(f64::NAN),
        };
        if !v.is_finite() {
            return Err(format!(
                "line {}: {name} has value {raw:?}, not a finite number",
                n + 1
            ));
        }
        total = Some(total.unwrap_or(0.0) + v);
    }
    Ok(total)
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(body) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = body.char_indices();
        let mut end = body.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key, value);
        rest = &body[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP vllm:num_requests_waiting Requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m",group_id="0"} 3
vllm:num_requests_waiting{model_name="n",group_id="0"} 4.5
vllm:num_requests_waiting_total 99
vllm:num_requests_running 2 1700000000000
"#;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sums_matching_samples_only() {
        assert_eq!(
            sum_metric(TEXT, "vllm:num_requests_waiting", &labels(&[])),
            Ok(Some(7.5))
        );
        assert_eq!(
            sum_metric(
                TEXT,
                "vllm:num_requests_waiting",
                &labels(&[("model_name", "n")])
            ),
            Ok(Some(4.5))
        );
        assert_eq!(
            sum_metric(TEXT, "vllm:num_requests_running", &labels(&[])),
            Ok(Some(2.0))
        );
        assert_eq!(sum_metric(TEXT, "vllm:absent", &labels(&[])), Ok(None));
    }

    #[test]
    fn escaped_label_values_and_bad_values() {
        let t = "m{a=\"x\\\"y\",b=\"z\"} 1\n";
        assert_eq!(
            sum_metric(t, "m", &labels(&[("a", "x\"y"), ("b", "z")])),
            Ok(Some(1.0))
        );
        let err = sum_metric("m NaN\n", "m", &labels(&[])).unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }
}
