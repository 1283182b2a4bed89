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
//! reaching 99 %), and over targets × `minReplicas` ([`FLOORS`]: a floor is how capacity is held through
//! idle gaps). Context: constant replica counts up to the first that reaches 99 %.
//!
//! **Reactive bound** (not a policy): the cheapest rule, tuned on the trace itself, of a family of causal
//! capacity rules that see *more* than a controller — the exact peak in-flight of every period that has
//! ended ([`simulate::simulate_rule`]) — and nothing of the future: `max(floor, ceil(multiplier × memory
//! ÷ slots))` replicas, the memory being the largest peak of the last n periods or a peak decaying every
//! period ([`BOUND_FLOORS`] × [`BOUND_MULTIPLIERS`] × ([`BOUND_HOLDS`] + [`BOUND_DECAYS`])). Scale-ups take
//! the cold start. If even the best rule misses a goal, no policy that is a rule of this family (HPA/APA with
//! a scale-down window over the in-flight count and `minReplicas` are, with worse information) can meet
//! it; it is not a bound for every conceivable non-anticipating policy.
//!
//! Goals: some built-in policy ≤ 1.3 × the oracle's replica-seconds at ≥ 99 % attainment on both traces;
//! ≥ 20 % fewer replica-seconds than HPA at equal attainment. Both are checked in every reading (shared
//! target, cheapest target, cheapest target and `minReplicas`), and for the reactive bound.
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
/// `minReplicas` of the floor sweep (with every target of [`SWEEP`]).
const FLOORS: std::ops::RangeInclusive<i32> = 1..=8;

/// The reactive bound's family: floors, multipliers of the peak (in slots), hold windows (periods) and
/// decays per period of the decaying peak.
const BOUND_FLOORS: std::ops::RangeInclusive<i32> = 1..=10;
const BOUND_MULTIPLIERS: [f64; 9] = [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4];
const BOUND_HOLDS: [usize; 9] = [1, 2, 4, 8, 12, 20, 40, 80, 240];
const BOUND_DECAYS: [f64; 5] = [0.9, 0.95, 0.98, 0.99, 0.995];

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
    /// The oracle's first count: the ready replicas at the start (raised to a manifest's minReplicas).
    oracle_first: i32,
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

/// A policy at a (target, minReplicas) of the floor sweep.
type Floored = (u32, i32, Run);

/// How a rule of the reactive bound's family remembers past peaks.
#[derive(Clone, Copy, Debug)]
enum Memory {
    /// The largest peak of the last `n` periods.
    Hold(usize),
    /// The largest peak, decayed by this factor every period.
    Decay(f64),
}

/// One rule of the family: `max(floor, ceil(multiplier × memory ÷ slots))` replicas, at most
/// [`MAX_REPLICAS`].
#[derive(Clone, Copy, Debug)]
struct Rule {
    floor: i32,
    multiplier: f64,
    memory: Memory,
}

impl Rule {
    fn json(&self) -> Value {
        let memory = match self.memory {
            Memory::Hold(n) => json!({"hold_periods": n}),
            Memory::Decay(d) => json!({"decay_per_period": d}),
        };
        json!({"floor": self.floor, "multiplier": self.multiplier, "memory": memory})
    }

    fn family() -> Vec<Rule> {
        let memories = BOUND_HOLDS
            .iter()
            .map(|n| Memory::Hold(*n))
            .chain(BOUND_DECAYS.iter().map(|d| Memory::Decay(*d)));
        let mut out = Vec::new();
        for memory in memories {
            for multiplier in BOUND_MULTIPLIERS {
                for floor in BOUND_FLOORS {
                    out.push(Rule {
                        floor,
                        multiplier,
                        memory,
                    });
                }
            }
        }
        out
    }
}

impl Trace<'_> {
    /// Each variant at every (target, minReplicas) of [`SWEEP`] × [`FLOORS`]: the cheapest reaching the
    /// attainment, and per floor the cheapest target reaching it (or the best attainment).
    fn floor_sweep(&self, v: &Variant) -> Result<(Option<Floored>, Value)> {
        let mut best: Option<Floored> = None;
        let mut per_floor = Vec::new();
        for min in FLOORS {
            let mut cheapest: Option<(u32, Run)> = None;
            let mut top: Option<Run> = None;
            for target in SWEEP {
                let scaler = Scaler::parse(v.name, &manifest(v, target, min, MAX_REPLICAS))?;
                let run = self.simulate(&scaler, &mut |_| Ok(()))?;
                if top
                    .as_ref()
                    .is_none_or(|b| run.attainment() > b.attainment())
                {
                    top = Some(run.clone());
                }
                if run.attainment() >= ATTAINMENT
                    && cheapest.as_ref().is_none_or(|(_, b)| run.ratio < b.ratio)
                {
                    cheapest = Some((target, run));
                }
            }
            per_floor.push(match &cheapest {
                Some((target, run)) => json!({
                    "min_replicas": min,
                    "target": target,
                    "replica_seconds_vs_oracle": round(run.ratio, 3),
                    "slo_attainment": round(run.attainment(), 4),
                    "scale_events": run.summary.scale_events,
                }),
                None => json!({
                    "min_replicas": min,
                    "target": null,
                    "best_slo_attainment": round(top.map_or(0.0, |r| r.attainment()), 4),
                }),
            });
            if let Some((target, run)) = cheapest
                && best.as_ref().is_none_or(|(_, _, b)| run.ratio < b.ratio)
            {
                best = Some((target, min, run));
            }
        }
        Ok((best, per_floor.into()))
    }

    /// Every rule of the family replayed with [`simulate::simulate_rule`].
    fn bound_runs(&self) -> Result<Vec<(Rule, Run)>> {
        let slots = self.cfg.model.slots as f64;
        let first = self.oracle_first;
        let mut out = Vec::new();
        for rule in Rule::family() {
            let mut memory = 0.0f64;
            let mut seen = 0;
            let decide = |past: &[f64]| -> i32 {
                let m = match rule.memory {
                    Memory::Hold(n) => past[past.len().saturating_sub(n)..]
                        .iter()
                        .copied()
                        .fold(0.0, f64::max),
                    Memory::Decay(d) => {
                        for p in &past[seen..] {
                            memory = p.max(memory * d);
                        }
                        seen = past.len();
                        memory
                    }
                };
                ((rule.multiplier * m / slots).ceil() as i32).clamp(rule.floor, MAX_REPLICAS)
            };
            let summary = futures::executor::block_on(simulate::simulate_rule(
                &self.requests,
                self.cfg,
                first.max(rule.floor),
                decide,
            ))?;
            let ratio = summary.replica_seconds / self.oracle.replica_seconds;
            out.push((rule, Run { summary, ratio }));
        }
        Ok(out)
    }
}

/// The cheapest of `runs` reaching `attainment`.
fn cheapest_at(runs: &[(Rule, Run)], attainment: f64) -> Option<&(Rule, Run)> {
    runs.iter()
        .filter(|(_, r)| r.attainment() >= attainment)
        .min_by(|a, b| a.1.ratio.total_cmp(&b.1.ratio))
}

fn bound_point(p: Option<&(Rule, Run)>) -> Value {
    match p {
        Some((rule, run)) => json!({
            "rule": rule.json(),
            "replica_seconds_vs_oracle": round(run.ratio, 3),
            "slo_attainment": round(run.attainment(), 4),
            "scale_events": run.summary.scale_events,
        }),
        None => Value::Null,
    }
}

/// What one trace produced.
struct TraceResult {
    json: Value,
    /// The cheapest (target, minReplicas) reaching the attainment, by variant.
    floored: BTreeMap<&'static str, Option<Floored>>,
    /// The reactive bound's runs.
    bound: Vec<(Rule, Run)>,
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
    let oracle_first = simulate::replay::oracle(&requests, cfg, MIN_REPLICAS)
        .replicas
        .first()
        .copied()
        .unwrap_or(MIN_REPLICAS);
    let t = Trace {
        name,
        requests,
        cfg,
        oracle,
        oracle_first,
    };
    let mut shared = BTreeMap::new();
    let mut cheapest = BTreeMap::new();
    let mut policies = Map::new();
    let mut sweeps = Map::new();
    let mut floor_sweeps = Map::new();
    let mut floored = BTreeMap::new();
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
        let (best, per_floor) = t.floor_sweep(v)?;
        floor_sweeps.insert(v.name.into(), per_floor);
        floored.insert(v.name, best);
    }
    let bound = t.bound_runs()?;
    let hpa_attainment = shared["hpa"].attainment();
    // The frontier: each rule cheaper than every rule with a higher attainment.
    let mut by_attainment: Vec<&(Rule, Run)> = bound.iter().collect();
    by_attainment.sort_by(|a, b| {
        b.1.attainment()
            .total_cmp(&a.1.attainment())
            .then(a.1.ratio.total_cmp(&b.1.ratio))
    });
    let mut frontier: Vec<&(Rule, Run)> = Vec::new();
    for p in by_attainment {
        if p.1.attainment() >= 0.9 && frontier.last().is_none_or(|f| p.1.ratio < f.1.ratio) {
            frontier.push(p);
        }
    }
    let at99 = cheapest_at(&bound, ATTAINMENT);
    eprintln!(
        "{name}: reactive bound at 99 %: {}",
        at99.map_or("none".into(), |(r, run)| format!(
            "{:.3} at {:.4} ({r:?})",
            run.ratio,
            run.attainment()
        ))
    );
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
        "cheapest_target_and_min_replicas_at_99_percent": floored.iter().map(|(k, v)| (k.to_string(), match v {
            Some((target, min, run)) => json!({"target": target, "min_replicas": min, "replica_seconds_vs_oracle": round(run.ratio, 3), "slo_attainment": round(run.attainment(), 4), "scale_events": run.summary.scale_events}),
            None => Value::Null,
        })).collect::<Map<_, _>>(),
        "min_replicas_sweep": floor_sweeps,
        "static_replicas": t.static_frontier()?,
        "reactive_bound": {
            "about": "NOT a policy: the best rule of a family, tuned on this trace, that at each decision sees the exact peak in-flight of every period that has ended (more than a controller's scrape) and nothing of the future; replicas = max(floor, ceil(multiplier x memory / slots)), memory = the largest peak of the last n periods or a decaying peak; scale-ups take the same cold start",
            "rules_tried": bound.len(),
            "cheapest_at_99_percent": bound_point(at99),
            "cheapest_at_hpa_shared_target_attainment": bound_point(cheapest_at(&bound, hpa_attainment)),
            "hpa_shared_target_attainment": round(hpa_attainment, 4),
            "frontier": frontier.iter().map(|p| bound_point(Some(p))).collect::<Vec<_>>(),
        },
    });
    Ok(TraceResult {
        json,
        floored,
        bound,
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
    let near_floored = near(&|p, t| {
        t.floored[p]
            .as_ref()
            .is_some_and(|(_, _, r)| r.ratio <= 1.3)
    });
    // The reactive bound: could any rule of its family meet the goals, with hindsight tuning?
    let bound_1: Map<String, Value> = traces
        .iter()
        .map(|(name, t)| {
            let b = cheapest_at(&t.bound, ATTAINMENT);
            (
                name.to_string(),
                json!({
                    "replica_seconds_vs_oracle": b.map(|(_, r)| round(r.ratio, 3)),
                    "within_1_3": b.is_some_and(|(_, r)| r.ratio <= 1.3),
                }),
            )
        })
        .collect();
    let bound_1_met = bound_1.values().all(|v| v["within_1_3"] == json!(true));
    // Goal 2 for the bound: the cheapest rule at HPA's attainment against 0.8 × HPA's replica-seconds.
    let bound_2 = |pick: &dyn Fn(&TraceResult) -> Option<Run>| -> Value {
        let per: Map<String, Value> = traces
            .iter()
            .map(|(name, t)| {
                let v = pick(t).map(|h| {
                    let b = cheapest_at(&t.bound, h.attainment());
                    let fewer =
                        b.map(|(_, r)| 1.0 - r.summary.replica_seconds / h.summary.replica_seconds);
                    json!({
                        "hpa_slo_attainment": round(h.attainment(), 4),
                        "hpa_replica_seconds_vs_oracle": round(h.ratio, 3),
                        "bound_replica_seconds_vs_oracle": b.map(|(_, r)| round(r.ratio, 3)),
                        "most_fewer_replica_seconds_than_hpa": fewer.map(|f| round(f, 3)),
                        "reachable": fewer.is_some_and(|f| f >= 0.2),
                    })
                });
                (name.to_string(), v.unwrap_or(Value::Null))
            })
            .collect();
        let all = per.values().all(|v| v["reachable"] == json!(true));
        json!({"reachable_on_both_traces": all, "by_trace": per})
    };
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
    // Each policy at its cheapest (target, minReplicas) reaching 99 %.
    let (floored_met, floored) = savings(&|t, p| t.floored[p].as_ref().map(|(_, _, r)| r.clone()));
    json!({
        "within_1_3_x_oracle_at_99_percent": {
            "at_shared_target": {"met": !near_shared.is_empty(), "policies": near_shared},
            "at_cheapest_target_per_trace": {"met": !near_tuned.is_empty(), "policies": near_tuned},
            "at_cheapest_target_and_min_replicas_per_trace": {"met": !near_floored.is_empty(), "policies": near_floored},
            "reactive_bound": {"reachable_on_both_traces": bound_1_met, "by_trace": bound_1},
        },
        "20_percent_below_hpa_at_equal_attainment": {
            "at_shared_target": {"met": !shared_met.is_empty(), "policies": shared_met, "by_policy": shared},
            "at_cheapest_target_reaching_99_percent": {"met": !tuned_met.is_empty(), "policies": tuned_met, "by_policy": tuned},
            "at_cheapest_target_and_min_replicas_reaching_99_percent": {"met": !floored_met.is_empty(), "policies": floored_met, "by_policy": floored},
            "reactive_bound": {
                "at_shared_target": bound_2(&|t| Some(t.shared["hpa"].clone())),
                "at_cheapest_target_reaching_99_percent": bound_2(&|t| t.cheapest["hpa"].as_ref().map(|(_, r)| r.clone())),
                "at_cheapest_target_and_min_replicas_reaching_99_percent": bound_2(&|t| t.floored["hpa"].as_ref().map(|(_, _, r)| r.clone())),
            },
        },
    })
}
