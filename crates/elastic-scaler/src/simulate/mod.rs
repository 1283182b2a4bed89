//! `elastic-scaler simulate`: the policy simulator. It runs an ElasticScaler's decisions through the
//! controller's own pipeline ([`Decider`](crate::engine::Decider): algorithm, guards, behavior, bounds)
//! without a cluster, so a policy can be tuned before production and algorithms compared.
//!
//! Two inputs (documented with examples in `docs/simulator.md`):
//!
//! - **a request trace** (`--trace`, the Azure LLM format of [`crate::trace`]) replayed against a
//!   simulated serving cluster ([`cluster`]: replicas with a cold start, a FIFO queue, slots) whose pods
//!   export vLLM-like metrics ([`signals`]); the summary has replica-seconds, SLO attainment on time to
//!   first token, scale events and the oracle's replica-seconds ([`replay`]);
//! - **recorded samples** (`--samples`, [`samples`]): metric values and replica counts per period, for
//!   "what would this policy have decided here".
//!
//! Output ([`output`]): one JSON line per decision, then `{"summary": {...}}`.
//!
//! The manifest is read by [`manifest`]: validated like the webhook does, algorithm and `algorithmConfig`
//! from the registry of built-ins, `behavior` from the `elasticscaler.io/behavior.*` annotations.

pub mod cluster;
pub mod manifest;
pub mod output;
pub mod replay;
pub mod samples;
pub mod signals;

use std::io::Write;
use std::path::PathBuf;

use crate::plugin::Context;
use crate::serving::ServingModel;
pub use manifest::Scaler;
pub use output::{DecisionLine, Summary};
pub use replay::{TraceConfig, simulate_oracle, simulate_rule, simulate_trace};

/// What can go wrong; every message names the file, line or field and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The manifest is unreadable or invalid.
    #[error("{file}: {message}")]
    Manifest {
        /// The manifest's path.
        file: String,
        /// The field and the problem.
        message: String,
    },
    /// A metric the simulated pods do not export.
    #[error("{field}: the simulated pods do not export {name:?}: known are {known}")]
    UnknownMetric {
        /// The manifest field naming it.
        field: String,
        /// The name.
        name: String,
        /// What is exported.
        known: String,
    },
    /// A metric the simulator cannot evaluate.
    #[error("{field}: {message}")]
    Metric {
        /// The manifest field.
        field: String,
        /// The problem.
        message: String,
    },
    /// A bad line of a trace or samples file.
    #[error("{file}:{line}: {message}")]
    Line {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The field and the problem.
        message: String,
    },
    /// An input file as a whole (unreadable, empty).
    #[error("{file}: {message}")]
    Input {
        /// The file.
        file: String,
        /// The problem.
        message: String,
    },
    /// Bad flags.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(String),
}

/// The HTTP client the algorithm registry wants (only the `external` algorithm uses it).
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// The serving model and SLO used unless flags say otherwise: an 8B-class model on one mid-range GPU
/// (see `docs/simulator.md`).
pub fn default_trace_config() -> TraceConfig {
    TraceConfig {
        model: ServingModel {
            slots: 8,
            tokens_per_second: 25.0,
            ttft_seconds: 0.5,
            cold_start_seconds: 90.0,
        },
        slo_ttft_seconds: 2.0,
        period_seconds: 15.0,
        initial_replicas: None,
    }
}

/// `elastic-scaler simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// The ElasticScaler manifest (YAML; the first document of kind ElasticScaler is used).
    #[arg(long, value_name = "FILE")]
    pub scaler: PathBuf,
    /// A request trace to replay, Azure LLM format (TIMESTAMP,ContextTokens,GeneratedTokens).
    #[arg(
        long,
        value_name = "CSV",
        required_unless_present = "samples",
        conflicts_with = "samples"
    )]
    pub trace: Option<PathBuf>,
    /// Recorded metric samples, one JSON object per line: {"t", "ready", "current", "metrics"}.
    #[arg(long, value_name = "JSONL")]
    pub samples: Option<PathBuf>,
    /// Trace mode: requests one replica serves at once [default: 8].
    #[arg(long, conflicts_with = "samples")]
    pub slots: Option<u32>,
    /// Trace mode: generation speed of one request, tokens per second [default: 25].
    #[arg(long, conflicts_with = "samples")]
    pub tokens_per_second: Option<f64>,
    /// Trace mode: time to first token without queueing, seconds [default: 0.5].
    #[arg(long, conflicts_with = "samples")]
    pub ttft_seconds: Option<f64>,
    /// Trace mode: from scale-up to a ready replica, seconds [default: 90].
    #[arg(long, conflicts_with = "samples")]
    pub cold_start_seconds: Option<f64>,
    /// Trace mode: the time-to-first-token objective, seconds [default: 2].
    #[arg(long, conflicts_with = "samples")]
    pub slo_ttft_seconds: Option<f64>,
    /// Trace mode: seconds between decisions [default: 15].
    #[arg(long, conflicts_with = "samples")]
    pub period_seconds: Option<f64>,
    /// Trace mode: ready replicas at the start [default: what the oracle starts with, within min/max].
    #[arg(long, conflicts_with = "samples")]
    pub initial_replicas: Option<i32>,
    /// Print only the summary line.
    #[arg(long)]
    pub summary_only: bool,
}

impl SimulateArgs {
    /// The trace configuration from the flags over [`default_trace_config`].
    pub fn trace_config(&self) -> TraceConfig {
        let d = default_trace_config();
        TraceConfig {
            model: ServingModel {
                slots: self.slots.unwrap_or(d.model.slots),
                tokens_per_second: self.tokens_per_second.unwrap_or(d.model.tokens_per_second),
                ttft_seconds: self.ttft_seconds.unwrap_or(d.model.ttft_seconds),
                cold_start_seconds: self
                    .cold_start_seconds
                    .unwrap_or(d.model.cold_start_seconds),
            },
            slo_ttft_seconds: self.slo_ttft_seconds.unwrap_or(d.slo_ttft_seconds),
            period_seconds: self.period_seconds.unwrap_or(d.period_seconds),
            initial_replicas: self.initial_replicas,
        }
    }
}

fn read(path: &std::path::Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|e| SimError::Input {
        file: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })
}

/// Reads an Azure-format trace.
pub fn load_trace(path: &std::path::Path) -> Result<Vec<crate::trace::Request>, SimError> {
    crate::trace::parse(&read(path)?).map_err(|e| SimError::Line {
        file: path.display().to_string(),
        line: e.line,
        message: e.message,
    })
}

/// Replays recorded samples through the scaler's decisions; `sink` receives every decision.
pub async fn simulate_samples(
    scaler: &Scaler,
    samples: &[samples::Sample],
    sink: &mut dyn FnMut(&DecisionLine) -> std::io::Result<()>,
) -> Result<Summary, SimError> {
    let mut summary = Summary {
        mode: "samples",
        algorithm: scaler.algorithm.clone(),
        ..Summary::default()
    };
    let Some(first) = samples.first() else {
        return Ok(summary);
    };
    let mut decider = scaler.decider(first.t, first.current.unwrap_or(first.ready))?;
    let mut previous: Option<i32> = None;
    let mut observed = 0.0;
    for (i, s) in samples.iter().enumerate() {
        let current = s.current.or(previous).unwrap_or(s.ready);
        let metrics = s.observations(&scaler.metrics, current);
        let ctx = Context {
            namespace: &scaler.namespace,
            name: &scaler.name,
            now: s.t,
            current,
            ready: s.ready,
            min: scaler.min,
            max: scaler.max,
            metrics: &metrics,
        };
        let d = decider.decide(&ctx).await;
        sink(&DecisionLine::new(s.t, current, s.ready, &metrics, &d))
            .map_err(|e| SimError::Output(e.to_string()))?;
        summary.count(current, d.desired);
        if let Some(next) = samples.get(i + 1) {
            let held = next.t - s.t;
            summary.replica_seconds += d.desired as f64 * held;
            observed += current as f64 * held;
        }
        summary.seconds = s.t - first.t;
        previous = Some(d.desired);
    }
    summary.observed_replica_seconds = Some(observed);
    Ok(summary)
}

/// Runs the simulator with the built-in algorithms: JSON lines on stdout, one per decision, then the
/// summary.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let http = http_client().map_err(anyhow::Error::msg)?;
    run_with(args, &crate::builtin::algorithms(http)?).await
}

/// [`run`] with the algorithms of `algorithms` (the built-ins plus a plugin crate's own).
pub async fn run_with(
    args: SimulateArgs,
    algorithms: &crate::registry::Registry<crate::plugin::SharedFactory>,
) -> anyhow::Result<()> {
    let file = args.scaler.display().to_string();
    let scaler = Scaler::parse_with(&file, &read(&args.scaler)?, algorithms)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary_only = args.summary_only;
    let mut sink = |line: &DecisionLine| -> std::io::Result<()> {
        if !summary_only {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    };
    let summary = match (&args.trace, &args.samples) {
        (Some(trace), _) => {
            let requests = load_trace(trace)?;
            simulate_trace(&scaler, &requests, &args.trace_config(), &mut sink).await?
        }
        (None, Some(path)) => {
            let file = path.display().to_string();
            let parsed = samples::parse(&file, &read(path)?, &scaler.metrics)?;
            simulate_samples(&scaler, &parsed, &mut sink).await?
        }
        (None, None) => {
            return Err(SimError::Usage("give --trace <csv> or --samples <jsonl>".into()).into());
        }
    };
    // Written by hand so the summary keeps its fields in declaration order.
    out.write_all(b"{\"summary\":")?;
    serde_json::to_writer(&mut out, &summary)?;
    out.write_all(b"}\n")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HPA: &str = r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: llm, namespace: team-a}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 1
  maxReplicas: 10
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: HPA
      metrics:
      - type: Pods
        pods: {metricsName: "vllm:num_requests_waiting", target: {type: AverageValue, averageValue: "2"}}
"#;

    #[tokio::test]
    async fn samples_decide_through_the_controllers_pipeline() {
        let scaler = Scaler::parse("hpa.yaml", HPA).unwrap();
        let text = [
            r#"{"t": 0, "ready": 2, "metrics": {"Pods/vllm:num_requests_waiting": [4, 4]}}"#,
            r#"{"t": 15, "ready": 2, "current": 4, "metrics": {"Pods/vllm:num_requests_waiting": [6, 6]}}"#,
            r#"{"t": 30, "ready": 4, "metrics": {"Pods/vllm:num_requests_waiting": [1, 1, 1, null]}}"#,
            r#"{"t": 45, "ready": 4, "metrics": {"Pods/vllm:num_requests_waiting": 0.5}}"#,
        ]
        .join("\n");
        let parsed = samples::parse("s.jsonl", &text, &scaler.metrics).unwrap();
        let mut lines = Vec::new();
        let summary = simulate_samples(&scaler, &parsed, &mut |l| {
            lines.push(l.clone());
            Ok(())
        })
        .await
        .unwrap();
        let got: Vec<(i32, i32)> = lines.iter().map(|l| (l.current, l.desired)).collect();
        // 8 waiting at 2 per pod: 4. Then 12 on 4 replicas (2 ready): 6. A pod without a value holds the
        // count (missing data never scales down); then 0.5 per pod is a scale-down, held by the 300 s
        // stabilization window.
        assert_eq!(got, vec![(2, 4), (4, 6), (6, 6), (6, 6)]);
        assert_eq!(lines[2].held, vec!["MissingMetrics"]);
        assert_eq!(lines[3].held, vec!["Behavior"]);
        assert_eq!(
            lines[1].metrics["Pods/vllm:num_requests_waiting"],
            Some(6.0)
        );
        assert_eq!(summary.mode, "samples");
        assert_eq!(
            (summary.decisions, summary.scale_ups, summary.scale_downs),
            (4, 2, 0)
        );
        assert_eq!(summary.replica_seconds, (4 + 6 + 6) as f64 * 15.0);
        assert_eq!(
            summary.observed_replica_seconds,
            Some((2 + 4 + 6) as f64 * 15.0)
        );
        assert_eq!(summary.requests, None);
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn flags() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "s", "--scaler", "a.yaml", "--trace", "t.csv", "--slots", "4",
        ])
        .unwrap();
        assert_eq!(cli.args.trace_config().model.slots, 4);
        assert_eq!(cli.args.trace_config().period_seconds, 15.0);
        for bad in [
            vec!["s", "--scaler", "a.yaml"],
            vec![
                "s",
                "--scaler",
                "a.yaml",
                "--trace",
                "t.csv",
                "--samples",
                "s.jsonl",
            ],
            vec![
                "s",
                "--scaler",
                "a.yaml",
                "--samples",
                "s.jsonl",
                "--slots",
                "4",
            ],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn run_reports_files_that_do_not_exist() {
        let args = SimulateArgs {
            scaler: "/nonexistent/scaler.yaml".into(),
            trace: Some("t.csv".into()),
            samples: None,
            slots: None,
            tokens_per_second: None,
            ttft_seconds: None,
            cold_start_seconds: None,
            slo_ttft_seconds: None,
            period_seconds: None,
            initial_replicas: None,
            summary_only: true,
        };
        let e = run(args).await.unwrap_err().to_string();
        assert!(
            e.starts_with("/nonexistent/scaler.yaml: cannot read"),
            "{e}"
        );
    }
}
