//! `algorithms-bench`: the driver behind `cargo xtask bench algorithms` (run it through xtask, which builds
//! it in release mode and passes the repository root). The two Azure LLM traces (`bench/traces/azure-llm-2023`) replayed
//! through the policy simulator (`elastic_scaler::simulate`, in process: the controller's own decision
//! pipeline) for HPA, KPA and APA with their defaults, the tuned variants in [`VARIANTS`], and the oracle
//! (perfect foresight, same cold start and decision period). Every policy scales on the same metric —
//! in-flight requests (running + waiting) per replica — on the same serving model
//! (`elastic_scaler::simulate::default_trace_config`).
//!
//! Per trace and policy: replica-seconds ÷ the oracle's, SLO attainment (share of requests whose time to
//! first token is within the SLO), scale events; first at the shared target ([`TARGET`]), then over a
//! sweep of targets ([`SWEEP`]) so policies can also be compared at equal attainment (the cheapest target
//! reaching 99 %). Context: constant replica counts up to the first that reaches 99 %.
//!
//! Goals: some built-in policy ≤ 1.3 × the oracle's replica-seconds at ≥ 99 % attainment on both traces;
//! ≥ 20 % fewer replica-seconds than HPA at equal attainment. Both are checked in both readings.
//!
//! `--decisions <dir>` (after the bench name in xtask) also writes every decision of the shared-target runs
//! as JSON lines (`<dir>/<trace>-<policy>.jsonl`), as `elastic-scaler simulate` prints them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use elastic_scaler::serving;
use elastic_scaler::simulate::{self, DecisionLine, Scaler, Summary, TraceConfig};
use elastic_scaler::trace::Request;
use serde_json::{Map, Value, json};

const TRACES: [(&str, &str); 2] = [
    ("code", "bench/traces/azure-llm-2023/code.csv"),
    ("conv", "bench/traces/azure-llm-2023/conv.csv"),
];

/// The metric every policy scales on: in-flight requests.
const QUERY: &str = "sum(vllm:num_requests_running) + sum(vllm:num_requests_waiting)";
/// Its per-replica target (AverageValue): 6 of 8 slots, the usual 75 % headroom.
const TARGET: u32 = 6;
/// Targets of the sweep.
const SWEEP: [u32; 7] = [2, 3, 4, 5, 6, 7, 8];
const MIN_REPLICAS: i32 = 1;
const MAX_REPLICAS: i32 = 60;
const ATTAINMENT: f64 = 0.99;

/// One policy: a name, the algorithm, its `algorithmConfig` and `behavior` annotations, and why.
struct Variant {
    name: &'static str,
    algorithm: &'static str,
    config: &'static [(&'static str, &'static str)],
    behavior: &'static [(&'static str, &'static str)],
    about: &'static str,
}

const TUNED_WHY: &str = "for a 90 s cold start sampled every 15 s: a window of several samples, and no scale-down before 10 minutes of lower recommendations (a replica given up costs a cold start of queueing to get back, and bursts come back within minutes)";

/// The policies compared: the three built-ins with defaults, then two tuned variants.
const VARIANTS: &[Variant] = &[
    Variant {
        name: "hpa",
        algorithm: "HPA",
        config: &[],
        behavior: &[],
        about: "defaults (Kubernetes behavior: up at once, down after a 300 s window)",
    },
    Variant {
        name: "kpa",
        algorithm: "KPA",
        config: &[],
        behavior: &[],
        about: "defaults (Knative: 60 s stable window, 10 % panic window, scale-down rate 2, no behavior)",
    },
    Variant {
        name: "apa",
        algorithm: "APA",
        config: &[],
        behavior: &[],
        about: "defaults (tolerances 10 % / 20 %, rates 2, 30 s window, 180 s scale-down window)",
    },
    Variant {
        name: "kpa-tuned",
        algorithm: "KPA",
        config: &[("stableWindow", "180s")],
        behavior: &[("scaleDown.stabilizationWindowSeconds", "600")],
        about: TUNED_WHY,
    },
    Variant {
        name: "apa-tuned",
        algorithm: "APA",
        config: &[("window", "60s")],
        behavior: &[("scaleDown.stabilizationWindowSeconds", "600")],
        about: TUNED_WHY,
    },
];

fn manifest(v: &Variant, target: u32, min: i32, max: i32) -> String {
    let map = |pairs: &[(&str, &str)], prefix: &str| -> String {
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, val)| format!("\"{prefix}{k}\": \"{val}\""))
            .collect();
        format!("{{{}}}", inner.join(", "))
    };
    format!(
        r#"apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata:
  name: llm
  annotations: {annotations}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: llm}}
  minReplicas: {min}
  maxReplicas: {max}
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: {algorithm}
      algorithmConfig: {config}
      metrics:
      - type: Prometheus
        prometheus:
          query: "{QUERY}"
          target: {{type: AverageValue, averageValue: "{target}"}}
"#,
        annotations = map(v.behavior, "elasticscaler.io/behavior."),
        algorithm = v.algorithm,
        config = map(v.config, ""),
    )
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// One run's numbers, with replica-seconds relative to the trace's oracle.
#[derive(Clone, Debug)]
struct Run {
    summary: Summary,
    ratio: f64,
}

impl Run {
    fn attainment(&self) -> f64 {
        self.summary.slo_attainment.unwrap_or(0.0)
    }

    fn json(&self) -> Value {
        let s = &self.summary;
        json!({
            "replica_seconds": s.replica_seconds.round(),
            "replica_seconds_vs_oracle": round(self.ratio, 3),
            "slo_attainment": round(self.attainment(), 4),
            "requests_over_slo": s.requests_over_slo,
            "scale_events": s.scale_events,
            "max_replicas": s.max_replicas,
            "ttft_p50_seconds": s.ttft_p50_seconds.map(|v| round(v, 2)),
            "ttft_p99_seconds": s.ttft_p99_seconds.map(|v| round(v, 2)),
        })
    }
}

/// One trace's inputs.
struct Trace<'a> {
    name: &'a str,
    requests: Vec<Request>,
    cfg: &'a TraceConfig,
    oracle: Summary,
}

impl Trace<'_> {
    fn simulate(
        &self,
        scaler: &Scaler,
        sink: &mut dyn FnMut(&DecisionLine) -> std::io::Result<()>,
    ) -> Result<Run> {
        let summary = futures::executor::block_on(simulate::simulate_trace(
            scaler,
            &self.requests,
            self.cfg,
            sink,
        ))
        .with_context(|| format!("simulating {} on {}", scaler.algorithm, self.name))?;
        // Against the oracle at the shared minReplicas, whatever this manifest's bounds.
        let ratio = summary.replica_seconds / self.oracle.replica_seconds;
        Ok(Run { summary, ratio })
    }

    /// A variant at `target`; decisions go to `<dir>/<trace>-<variant>.jsonl` if asked.
    fn policy(&self, v: &Variant, target: u32, dir: Option<&Path>) -> Result<Run> {
        let scaler = Scaler::parse(v.name, &manifest(v, target, MIN_REPLICAS, MAX_REPLICAS))?;
        let mut lines = String::new();
        let run = self.simulate(&scaler, &mut |line| {
            if dir.is_some() {
                lines.push_str(&serde_json::to_string(line)?);
                lines.push('\n');
            }
            Ok(())
        })?;
        if let Some(dir) = dir {
            let path = dir.join(format!("{}-{}.jsonl", self.name, v.name));
            std::fs::write(&path, &lines).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(run)
    }

    /// Constant replica counts (HPA with minReplicas = maxReplicas = n) from 1 up to the first that
    /// meets the attainment: what capacity held all the time costs.
    fn static_frontier(&self) -> Result<Vec<Value>> {
        let mut rows = Vec::new();
        for n in 1..=MAX_REPLICAS {
            let scaler = Scaler::parse("static", &manifest(&VARIANTS[0], TARGET, n, n))?;
            let run = self.simulate(&scaler, &mut |_| Ok(()))?;
            rows.push(json!({
                "replicas": n,
                "replica_seconds_vs_oracle": round(run.ratio, 3),
                "slo_attainment": round(run.attainment(), 4),
            }));
            if run.attainment() >= ATTAINMENT {
                break;
            }
        }
        Ok(rows)
    }
}

/// What one trace produced.
struct TraceResult {
    json: Value,
    /// At the shared target, by variant.
    shared: BTreeMap<&'static str, Run>,
    /// The cheapest target reaching the attainment, by variant: (target, run).
    cheapest: BTreeMap<&'static str, Option<(u32, Run)>>,
}

fn run_trace(
    root: &Path,
    name: &str,
    file: &str,
    cfg: &TraceConfig,
    dir: Option<&Path>,
) -> Result<TraceResult> {
    let requests = simulate::load_trace(&root.join(file))?;
    let oracle =
        futures::executor::block_on(simulate::simulate_oracle(&requests, cfg, MIN_REPLICAS))?;
    let fine = serving::oracle(
        &serving::demand(&requests, &cfg.model, 1.0),
        &cfg.model,
        1.0,
        MIN_REPLICAS,
    );
    let t = Trace {
        name,
        requests,
        cfg,
        oracle,
    };
    let mut shared = BTreeMap::new();
    let mut cheapest = BTreeMap::new();
    let mut policies = Map::new();
    let mut sweeps = Map::new();
    for v in VARIANTS {
        let mut sweep = Vec::new();
        let mut best: Option<(u32, Run)> = None;
        for target in SWEEP {
            let run = t.policy(v, target, dir.filter(|_| target == TARGET))?;
            sweep.push(json!({
                "target": target,
                "replica_seconds_vs_oracle": round(run.ratio, 3),
                "slo_attainment": round(run.attainment(), 4),
                "scale_events": run.summary.scale_events,
            }));
            if run.attainment() >= ATTAINMENT
                && best.as_ref().is_none_or(|(_, b)| run.ratio < b.ratio)
            {
                best = Some((target, run.clone()));
            }
            if target == TARGET {
                eprintln!(
                    "{name}: {:<10} replica-s/oracle {:.3}  SLO {:.4}  scale events {}",
                    v.name,
                    run.ratio,
                    run.attainment(),
                    run.summary.scale_events
                );
                policies.insert(v.name.into(), run.json());
                shared.insert(v.name, run);
            }
        }
        sweeps.insert(v.name.into(), sweep.into());
        cheapest.insert(v.name, best);
    }
    let oracle_run = Run {
        summary: t.oracle.clone(),
        ratio: 1.0,
    };
    policies.insert("oracle".into(), oracle_run.json());
    let json = json!({
        "file": file,
        "requests": t.requests.len(),
        "oracle_replica_seconds": t.oracle.replica_seconds.round(),
        "oracle_acting_every_second_replica_seconds": fine.replica_seconds.round(),
        "at_shared_target": policies,
        "cheapest_target_at_99_percent": cheapest.iter().map(|(k, v)| (k.to_string(), match v {
            Some((target, run)) => json!({"target": target, "replica_seconds_vs_oracle": round(run.ratio, 3), "slo_attainment": round(run.attainment(), 4)}),
            None => Value::Null,
        })).collect::<Map<_, _>>(),
        "target_sweep": sweeps,
        "static_replicas": t.static_frontier()?,
    });
    Ok(TraceResult {
        json,
        shared,
        cheapest,
    })
}

/// Runs the benchmark: `algorithms-bench <repository root> [--decisions <dir>]`; JSON on stdout.
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (root, rest) = args
        .split_first()
        .context("usage: algorithms-bench <repository root> [--decisions <dir>]")?;
    let root = PathBuf::from(root);
    let dir = match rest {
        [] => None,
        [flag, dir] if flag == "--decisions" => {
            std::fs::create_dir_all(dir)?;
            Some(PathBuf::from(dir))
        }
        other => anyhow::bail!(
            "unexpected arguments {other:?}: the only option is --decisions <dir> (every decision as JSON lines)"
        ),
    };
    let value = run(&root, dir.as_deref())?;
    println!("{}", serde_json::to_string(&value)?);
    Ok(())
}

fn run(root: &Path, dir: Option<&Path>) -> Result<Value> {
    let cfg = simulate::default_trace_config();
    let mut traces = BTreeMap::new();
    for (name, file) in TRACES {
        traces.insert(name, run_trace(root, name, file, &cfg, dir)?);
    }
    let goals = goals(&traces);
    Ok(json!({
        "command": "cargo xtask bench algorithms",
        "goal": "some built-in policy <= 1.3 x oracle replica-seconds at >= 99 % SLO attainment on both traces; >= 20 % fewer replica-seconds than HPA at equal attainment",
        "serving_model": {
            "slots": cfg.model.slots,
            "tokens_per_second": cfg.model.tokens_per_second,
            "ttft_seconds": cfg.model.ttft_seconds,
            "cold_start_seconds": cfg.model.cold_start_seconds,
        },
        "slo_ttft_seconds": cfg.slo_ttft_seconds,
        "period_seconds": cfg.period_seconds,
        "metric": {
            "prometheus_query": QUERY,
            "shared_target_average_value": TARGET,
            "sweep_targets": SWEEP,
            "min_replicas": MIN_REPLICAS,
            "max_replicas": MAX_REPLICAS,
        },
        "variants": VARIANTS.iter().map(|v| json!({
            "name": v.name,
            "algorithm": v.algorithm,
            "algorithm_config": v.config.iter().map(|(k, val)| (k.to_string(), json!(val))).collect::<Map<_, _>>(),
            "behavior_annotations": v.behavior.iter().map(|(k, val)| (format!("elasticscaler.io/behavior.{k}"), json!(val))).collect::<Map<_, _>>(),
            "about": v.about,
        })).collect::<Vec<_>>(),
        "traces": traces.iter().map(|(k, t)| (k.to_string(), t.json.clone())).collect::<Map<_, _>>(),
        "goals": goals,
    }))
}

/// Both goals in both readings: every policy at the shared target, and each policy at its cheapest
/// target reaching 99 % on each trace (a service tuned with the simulator).
fn goals(traces: &BTreeMap<&str, TraceResult>) -> Value {
    let policies: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
    // Goal 1.
    let near = |ok: &dyn Fn(&str, &TraceResult) -> bool| -> Vec<&str> {
        policies
            .iter()
            .copied()
            .filter(|p| traces.values().all(|t| ok(p, t)))
            .collect()
    };
    let near_shared = near(&|p, t| {
        let r = &t.shared[p];
        r.ratio <= 1.3 && r.attainment() >= ATTAINMENT
    });
    let near_tuned = near(&|p, t| t.cheapest[p].as_ref().is_some_and(|(_, r)| r.ratio <= 1.3));
    // Goal 2: savings against HPA per trace, where the policy's attainment is at least HPA's.
    let savings =
        |pick: &dyn Fn(&TraceResult, &str) -> Option<Run>| -> (Vec<&str>, Map<String, Value>) {
            let mut met = Vec::new();
            let mut by = Map::new();
            for p in policies.iter().copied().filter(|p| *p != "hpa") {
                let mut all = true;
                let mut per = Map::new();
                for (name, t) in traces {
                    let v = match (pick(t, p), pick(t, "hpa")) {
                        (Some(r), Some(h)) => {
                            let fewer = 1.0 - r.summary.replica_seconds / h.summary.replica_seconds;
                            all &= fewer >= 0.2 && r.attainment() >= h.attainment();
                            json!({
                                "fewer_replica_seconds_than_hpa": round(fewer, 3),
                                "slo_attainment": round(r.attainment(), 4),
                                "hpa_slo_attainment": round(h.attainment(), 4),
                            })
                        }
                        _ => {
                            all = false;
                            Value::Null
                        }
                    };
                    per.insert(name.to_string(), v);
                }
                if all {
                    met.push(p);
                }
                by.insert(p.to_string(), per.into());
            }
            (met, by)
        };
    let (shared_met, shared) = savings(&|t, p| Some(t.shared[p].clone()));
    // Each policy (HPA too) at its cheapest target reaching 99 %: "at equal attainment" as a service
    // tuned with the simulator would see it; the attainment condition is then ≥ HPA's as well.
    let (tuned_met, tuned) = savings(&|t, p| t.cheapest[p].as_ref().map(|(_, r)| r.clone()));
    json!({
        "within_1_3_x_oracle_at_99_percent": {
            "at_shared_target": {"met": !near_shared.is_empty(), "policies": near_shared},
            "at_cheapest_target_per_trace": {"met": !near_tuned.is_empty(), "policies": near_tuned},
        },
        "20_percent_below_hpa_at_equal_attainment": {
            "at_shared_target": {"met": !shared_met.is_empty(), "policies": shared_met, "by_policy": shared},
            "at_cheapest_target_reaching_99_percent": {"met": !tuned_met.is_empty(), "policies": tuned_met, "by_policy": tuned},
        },
    })
}
