//! Request traces for the policy simulator, in the Azure LLM inference trace format
//! (`TIMESTAMP,ContextTokens,GeneratedTokens`, one row per arrival; `bench/traces/azure-llm-2023`): each request
//! becomes its arrival time in seconds from the first one, its prompt tokens and its generated tokens.
//! A malformed row is an error naming the line and what is wrong, never skipped silently.

use jiff::civil::DateTime;

/// One request of a trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Seconds since the first request of the trace.
    pub at: f64,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub output_tokens: u32,
}

/// A malformed trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {message}")]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

const HEADER: &str = "TIMESTAMP,ContextTokens,GeneratedTokens";

/// Parses a whole trace; requests come out sorted by arrival.
pub fn parse(text: &str) -> Result<Vec<Request>, TraceError> {
    let mut rows: Vec<(DateTime, u32, u32)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let row = raw.trim();
        if row.is_empty() || (line == 1 && row == HEADER) {
            continue;
        }
        let err = |message: String| TraceError { line, message };
        let cols: Vec<&str> = row.split(',').map(str::trim).collect();
        let [ts, prompt, output] = cols[..] else {
            return Err(err(format!(
                "expected 3 columns ({HEADER}), found {}",
                cols.len()
            )));
        };
        let at: DateTime = ts.replacen(' ', "T", 1).parse().map_err(|e| {
            err(format!(
                "TIMESTAMP {ts:?} is not a date-time like 2023-11-16 18:17:03.97996: {e}"
            ))
        })?;
        let tokens = |name: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| err(format!("{name} {v:?} is not a non-negative integer")))
        };
        rows.push((
            at,
            tokens("ContextTokens", prompt)?,
            tokens("GeneratedTokens", output)?,
        ));
    }
    rows.sort_by_key(|r| r.0);
    let Some(first) = rows.first().map(|r| r.0) else {
        return Ok(Vec::new());
    };
    Ok(rows
        .into_iter()
        .map(|(at, prompt_tokens, output_tokens)| Request {
            at: (at - first).total(jiff::Unit::Second).unwrap_or(0.0),
            prompt_tokens,
            output_tokens,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_azure_format() {
        let t = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                 2023-11-16 18:17:04.0319600,3180,8\n\
                 2023-11-16 18:17:03.9799600,4808,10\n\
                 2023-11-16 19:14:19.9280160,549,173\n";
        let r = parse(t).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            Request {
                at: 0.0,
                prompt_tokens: 4808,
                output_tokens: 10
            }
        );
        assert!((r[1].at - 0.052).abs() < 1e-6, "{}", r[1].at);
        assert!((r[2].at - 3435.94806).abs() < 1e-4, "{}", r[2].at);
    }

    #[test]
    fn malformed_rows_name_the_line() {
        let e = parse("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,12\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("3 columns"), "{e}");
        let e = parse("2023-11-16 18:17:03.97,12,x\n").unwrap_err();
        assert!(e.to_string().contains("GeneratedTokens \"x\""), "{e}");
        let e = parse("yesterday,1,2\n").unwrap_err();
        assert!(e.message.contains("TIMESTAMP \"yesterday\""), "{e}");
    }

    #[test]
    fn the_shipped_traces_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/traces/azure-llm-2023");
        for (file, n) in [("code.csv", 8_819), ("conv.csv", 19_366)] {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
                // The traces live beside the repository on the development machine, not in it.
                continue;
            };
            let r = parse(&text).unwrap();
            assert_eq!(r.len(), n, "{file}");
            assert!(r.windows(2).all(|w| w[0].at <= w[1].at));
        }
    }
}
