//! Trace mode: a request trace replayed against the simulated cluster, the scaler deciding every period
//! through the controller's [`Decider`](crate::engine::Decider); and the oracle replayed the same way.
//!
//! The cluster starts with the initial replicas ready. Decisions happen at `t = P, 2P, …` (P = the
//! period; not at 0, where nothing has arrived yet and every policy would drop to its minimum). Before each one the cluster runs every arrival,
//! completion and readiness up to `t`; the scaler reads the pods' metrics at `t` (instantaneous, as a
//! scrape would), decides, and the new count is applied at once. The run ends at the first decision at or
//! after the oracle's horizon (the last request's completion if served on arrival) when every request has
//! been served; a policy that leaves requests queued is cut off one hour (or ten cold starts) later and the
//! queued requests count as over the SLO.
//!
//! **The oracle** knows the whole trace. It changes replicas at the same period and has the same cold
//! start: for each period it needs `ceil(peak in-flight / slots)` replicas, the peak being the largest
//! one-second average of in-flight requests inside the period if every request were served on arrival, and
//! it starts them one cold start early ([`serving::oracle`]). Its replica-seconds are the floor a policy is
//! measured against; replaying its schedule on the same cluster gives its SLO attainment and scale events.

use super::SimError;
use super::cluster::Cluster;
use super::manifest::Scaler;
use super::output::{DecisionLine, Summary, quantile};
use super::signals;
use crate::plugin::Context;
use crate::serving::{self, ServingModel};
use crate::trace::Request;

/// The simulated serving, SLO and decision period.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceConfig {
    /// How a replica serves.
    pub model: ServingModel,
    /// The time-to-first-token objective, seconds.
    pub slo_ttft_seconds: f64,
    /// Seconds between decisions.
    pub period_seconds: f64,
    /// Ready replicas at time 0; default: the oracle's first count, within `[minReplicas, maxReplicas]`.
    pub initial_replicas: Option<i32>,
}

/// The oracle's schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct OracleSchedule {
    /// Replicas (starting or ready) in each period.
    pub replicas: Vec<i32>,
    /// Their replica-seconds.
    pub replica_seconds: f64,
}

/// Per decision period, the largest one-second average of in-flight requests inside it if every request
/// were served on arrival (what the oracle sizes each period for). Period `j` is `[jP, (j+1)P)`; its peak
/// depends only on requests that arrived before its end.
pub fn period_peaks(requests: &[Request], cfg: &TraceConfig) -> Vec<f64> {
    let period = cfg.period_seconds;
    let per_period = period.ceil().max(1.0) as usize;
    let fine = serving::demand(requests, &cfg.model, period / per_period as f64);
    fine.chunks(per_period)
        .map(|c| c.iter().copied().fold(0.0, f64::max))
        .collect()
}

/// The oracle for `requests` at `cfg`'s period, never below `min_replicas`.
pub fn oracle(requests: &[Request], cfg: &TraceConfig, min_replicas: i32) -> OracleSchedule {
    let peaks = period_peaks(requests, cfg);
    let o = serving::oracle(&peaks, &cfg.model, cfg.period_seconds, min_replicas);
    OracleSchedule {
        replicas: o.replicas,
        replica_seconds: o.replica_seconds,
    }
}

fn validate(cfg: &TraceConfig) -> Result<(), SimError> {
    let m = &cfg.model;
    let checks = [
        (m.slots >= 1, "--slots must be at least 1"),
        (
            m.tokens_per_second > 0.0 && m.tokens_per_second.is_finite(),
            "--tokens-per-second must be above 0",
        ),
        (
            m.ttft_seconds >= 0.0 && m.ttft_seconds.is_finite(),
            "--ttft-seconds must be 0 or more",
        ),
        (
            m.cold_start_seconds >= 0.0 && m.cold_start_seconds.is_finite(),
            "--cold-start-seconds must be 0 or more",
        ),
        (
            cfg.period_seconds > 0.0 && cfg.period_seconds.is_finite(),
            "--period-seconds must be above 0",
        ),
        (
            cfg.slo_ttft_seconds > 0.0,
            "--slo-ttft-seconds must be above 0",
        ),
        (
            cfg.initial_replicas.is_none_or(|n| n >= 0),
            "--initial-replicas must be 0 or more",
        ),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, msg)) => Err(SimError::Usage(msg.to_string())),
        None => Ok(()),
    }
}

/// A driver of the cluster: returns the count to set at decision `k` (time `t`).
trait Policy {
    async fn decide(
        &mut self,
        k: usize,
        t: f64,
        cluster: &Cluster,
    ) -> Result<(i32, Option<DecisionLine>), SimError>;
}

struct ScalerPolicy<'a> {
    scaler: &'a Scaler,
    bound: Vec<signals::Bound>,
    decider: crate::engine::Decider,
}

impl Policy for ScalerPolicy<'_> {
    async fn decide(
        &mut self,
        _: usize,
        t: f64,
        cluster: &Cluster,
    ) -> Result<(i32, Option<DecisionLine>), SimError> {
        let view = cluster.view();
        let metrics = signals::observe(&self.bound, &view);
        let ctx = Context {
            namespace: &self.scaler.namespace,
            name: &self.scaler.name,
            now: t,
            current: cluster.current(),
            ready: cluster.ready(),
            min: self.scaler.min,
            max: self.scaler.max,
            metrics: &metrics,
        };
        let d = self.decider.decide(&ctx).await;
        let mut line = DecisionLine::new(t, ctx.current, ctx.ready, &metrics, &d);
        line.queued = Some(view.queued);
        line.running = Some(cluster.running());
        Ok((d.desired, Some(line)))
    }
}

/// A causal capacity rule: at decision `k` it sees the exact peaks of the periods before `k` only.
struct RulePolicy<'a, F> {
    peaks: &'a [f64],
    rule: F,
}

impl<F: FnMut(&[f64]) -> i32> Policy for RulePolicy<'_, F> {
    async fn decide(
        &mut self,
        k: usize,
        _: f64,
        _: &Cluster,
    ) -> Result<(i32, Option<DecisionLine>), SimError> {
        let past = &self.peaks[..k.min(self.peaks.len())];
        Ok(((self.rule)(past).max(0), None))
    }
}

/// The oracle's schedule, then its floor once the schedule is over.
struct OraclePolicy<'a>(&'a [i32], i32);

impl Policy for OraclePolicy<'_> {
    async fn decide(
        &mut self,
        k: usize,
        _: f64,
        _: &Cluster,
    ) -> Result<(i32, Option<DecisionLine>), SimError> {
        Ok((self.0.get(k).copied().unwrap_or(self.1), None))
    }
}

async fn drive(
    policy: &mut impl Policy,
    requests: &[Request],
    cfg: &TraceConfig,
    initial: i32,
    horizon: f64,
    sink: &mut dyn FnMut(&DecisionLine) -> std::io::Result<()>,
) -> Result<(Summary, Cluster), SimError> {
    let mut cluster = Cluster::new(cfg.model.clone(), cfg.slo_ttft_seconds, initial);
    let mut summary = Summary::default();
    let last_arrival = requests.last().map_or(0.0, |r| r.at);
    let cutoff = horizon.max(last_arrival) + 3600f64.max(10.0 * cfg.model.cold_start_seconds);
    let mut next = 0;
    // The first decision comes one period in, once the metrics reflect the trace's load: at 0 nothing
    // has arrived yet, and every policy would scale its initial replicas down to the minimum.
    let mut k = 1;
    loop {
        let t = k as f64 * cfg.period_seconds;
        cluster.run_until(t, requests, &mut next);
        let current = cluster.current();
        let (desired, line) = policy.decide(k, t, &cluster).await?;
        if let Some(line) = line {
            sink(&line).map_err(|e| SimError::Output(e.to_string()))?;
        }
        summary.count(current, desired);
        cluster.scale_to(desired);
        summary.seconds = t;
        let served = next == requests.len() && cluster.idle();
        if (t >= horizon && served) || t >= cutoff {
            break;
        }
        k += 1;
    }
    Ok((summary, cluster))
}

fn finish(mut summary: Summary, cluster: Cluster, requests: &[Request]) -> Summary {
    let mut tally = cluster.finish();
    let n = requests.len() as u64;
    // Millisecond precision: the sum of many small intervals carries float noise below it.
    summary.replica_seconds = (tally.replica_seconds * 1000.0).round() / 1000.0;
    summary.max_replicas = summary.max_replicas.max(tally.max_replicas);
    summary.requests = Some(n);
    summary.requests_over_slo = Some(tally.over_slo);
    summary.slo_attainment = Some(if n == 0 {
        1.0
    } else {
        (n - tally.over_slo.min(n)) as f64 / n as f64
    });
    summary.ttft_p50_seconds = quantile(&mut tally.ttft, 0.5);
    summary.ttft_p99_seconds = quantile(&mut tally.ttft, 0.99);
    summary
}

/// Replays `requests` with `scaler` deciding; `sink` receives every decision.
pub async fn simulate_trace(
    scaler: &Scaler,
    requests: &[Request],
    cfg: &TraceConfig,
    sink: &mut dyn FnMut(&DecisionLine) -> std::io::Result<()>,
) -> Result<Summary, SimError> {
    validate(cfg)?;
    let bound = signals::bind(&scaler.metrics)?;
    let o = oracle(requests, cfg, scaler.min);
    let initial = cfg.initial_replicas.unwrap_or_else(|| {
        o.replicas
            .first()
            .copied()
            .unwrap_or(scaler.min)
            .clamp(scaler.min, scaler.max.max(scaler.min))
    });
    let mut policy = ScalerPolicy {
        scaler,
        bound,
        decider: scaler.decider(0.0, initial)?,
    };
    let horizon = o.replicas.len() as f64 * cfg.period_seconds;
    let (mut summary, cluster) = drive(&mut policy, requests, cfg, initial, horizon, sink).await?;
    summary.mode = "trace";
    summary.algorithm = scaler.algorithm.clone();
    let mut summary = finish(summary, cluster, requests);
    summary.oracle_replica_seconds = Some(o.replica_seconds);
    summary.replica_seconds_vs_oracle =
        (o.replica_seconds > 0.0).then(|| summary.replica_seconds / o.replica_seconds);
    Ok(summary)
}

/// The oracle's run: its replica-seconds are [`oracle`]'s; SLO attainment and scale events come from
/// replaying its schedule on the simulated cluster.
pub async fn simulate_oracle(
    requests: &[Request],
    cfg: &TraceConfig,
    min_replicas: i32,
) -> Result<Summary, SimError> {
    validate(cfg)?;
    let o = oracle(requests, cfg, min_replicas);
    let initial = o.replicas.first().copied().unwrap_or(min_replicas);
    let horizon = o.replicas.len() as f64 * cfg.period_seconds;
    let mut policy = OraclePolicy(&o.replicas, min_replicas);
    let (mut summary, cluster) =
        drive(
            &mut policy,
            requests,
            cfg,
            initial,
            horizon,
            &mut |_| Ok(()),
        )
        .await?;
    summary.mode = "oracle";
    summary.algorithm = "oracle".into();
    let mut summary = finish(summary, cluster, requests);
    summary.replica_seconds = o.replica_seconds;
    summary.oracle_replica_seconds = Some(o.replica_seconds);
    summary.replica_seconds_vs_oracle = Some(1.0);
    Ok(summary)
}

/// Replays `requests` under a **causal capacity rule** — not a scaler: at each decision `k` (time `kP`)
/// `rule` gets the exact peak in-flight (as [`period_peaks`]) of every period that has ended, `peaks[..k]`,
/// and returns the replicas to run; scale-ups take the cold start like any other. It sees more than a
/// controller (exact per-period peaks of the demand served on arrival, not a scrape of running + waiting
/// at one instant) but nothing of the future, so the best rule of a family, tuned on the trace itself,
/// bounds what reactive policies of that family can reach (`algorithms-bench`'s reactive bound). The run
/// starts with `initial` ready replicas and ends like [`simulate_trace`]'s.
pub async fn simulate_rule(
    requests: &[Request],
    cfg: &TraceConfig,
    initial: i32,
    rule: impl FnMut(&[f64]) -> i32,
) -> Result<Summary, SimError> {
    validate(cfg)?;
    let peaks = period_peaks(requests, cfg);
    let horizon = peaks.len() as f64 * cfg.period_seconds;
    let mut policy = RulePolicy {
        peaks: &peaks,
        rule,
    };
    let (mut summary, cluster) =
        drive(
            &mut policy,
            requests,
            cfg,
            initial,
            horizon,
            &mut |_| Ok(()),
        )
        .await?;
    summary.mode = "rule";
    summary.algorithm = "rule".into();
    Ok(finish(summary, cluster, requests))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(min: i32, metric: &str) -> Scaler {
        let yaml = format!(
            r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {{name: llm}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: llm}}
  minReplicas: {min}
  maxReplicas: 10
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: KPA
      metrics:
      - type: Prometheus
        prometheus:
          query: sum({metric})
          target: {{type: AverageValue, averageValue: "2"}}
"#
        );
        Scaler::parse("llm.yaml", &yaml).unwrap()
    }

    fn cfg(cold: f64) -> TraceConfig {
        TraceConfig {
            model: ServingModel {
                slots: 2,
                tokens_per_second: 10.0,
                ttft_seconds: 0.5,
                cold_start_seconds: cold,
            },
            slo_ttft_seconds: 2.0,
            period_seconds: 10.0,
            initial_replicas: Some(1),
        }
    }

    /// `n` requests a second from `from` to `to`, each holding a slot 0.5 + 15/10 = 2 s.
    fn load(from: f64, to: f64, n: u32) -> Vec<Request> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            for _ in 0..n {
                out.push(Request {
                    at: t,
                    prompt_tokens: 100,
                    output_tokens: 15,
                });
            }
            t += 1.0;
        }
        out
    }

    async fn run(s: &Scaler, reqs: &[Request], c: &TraceConfig) -> (Summary, Vec<DecisionLine>) {
        let mut lines = Vec::new();
        let summary = simulate_trace(s, reqs, c, &mut |l| {
            lines.push(l.clone());
            Ok(())
        })
        .await
        .unwrap();
        (summary, lines)
    }

    #[tokio::test]
    async fn a_step_in_load_scales_up_and_requests_wait_out_the_cold_start() {
        // 1 request/s for 60 s, then 4/s for 120 s: 2 then 8 in flight, 1 then 4 replicas of 2 slots.
        let mut reqs = load(0.0, 60.0, 1);
        reqs.extend(load(60.0, 180.0, 4));
        let s = scaler(1, "vllm:num_requests_running + vllm:num_requests_waiting");
        let (summary, lines) = run(&s, &reqs, &cfg(30.0)).await;
        assert_eq!(lines[0].t, 10.0, "the first decision is one period in");
        assert_eq!(lines[0].desired, 1);
        let up = lines.iter().find(|l| l.desired > 1).unwrap();
        assert_eq!(up.t, 60.0, "the decision at 60 sees the arrivals at 60");
        assert!(up.queued.unwrap() > 0, "{up:?}");
        assert_eq!(summary.requests, Some(540));
        // Until the new replicas are ready (30 s after 60) the queue grows: those requests miss the SLO.
        let missed = summary.requests_over_slo.unwrap();
        assert!(missed > 50 && missed < 300, "{summary:?}");
        assert!(summary.slo_attainment.unwrap() < 0.95);
        assert!(summary.max_replicas >= 4, "{summary:?}");
        assert!(summary.scale_ups >= 1 && summary.scale_events >= summary.scale_ups);
        let oracle = summary.oracle_replica_seconds.unwrap();
        assert!(summary.replica_seconds > oracle, "{summary:?}");

        // Without a cold start the same policy loses far fewer requests.
        let (fast, _) = run(&s, &reqs, &cfg(0.0)).await;
        assert!(
            fast.requests_over_slo.unwrap() < missed / 2,
            "{fast:?} vs {summary:?}"
        );
    }

    #[tokio::test]
    async fn the_oracle_starts_replicas_a_cold_start_early_and_meets_the_slo() {
        let mut reqs = load(0.0, 60.0, 1);
        reqs.extend(load(60.0, 180.0, 4));
        let c = cfg(30.0);
        let o = simulate_oracle(&reqs, &c, 1).await.unwrap();
        assert_eq!(o.slo_attainment, Some(1.0), "{o:?}");
        assert_eq!(o.max_replicas, 4);
        let sched = oracle(&reqs, &c, 1);
        // The 4 replicas needed from 60 s are running from 30 s (one cold start early).
        assert_eq!(&sched.replicas[..8], &[1, 1, 1, 4, 4, 4, 4, 4]);
        assert_eq!(o.replica_seconds, sched.replica_seconds);
    }

    #[tokio::test]
    async fn a_rule_sees_only_periods_that_have_ended() {
        // 1 request/s for 60 s (2 in flight, 1 replica of 2 slots), then 4/s for 120 s (8 in flight).
        let mut reqs = load(0.0, 60.0, 1);
        reqs.extend(load(60.0, 180.0, 4));
        let c = cfg(30.0);
        let peaks = period_peaks(&reqs, &c);
        assert_eq!(&peaks[..8], &[2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 8.0, 8.0]);
        let mut seen = Vec::new();
        // Follow the last period's peak: the step at 60 s is seen at the decision at 70 s, and the
        // replicas started then are ready at 100 s, so requests queue in between.
        let s = simulate_rule(&reqs, &c, 1, |past| {
            seen.push(past.len());
            past.last().map_or(1, |p| (p / 2.0).ceil() as i32)
        })
        .await
        .unwrap();
        assert_eq!(&seen[..3], &[1, 2, 3], "decision k sees periods 0..k");
        assert_eq!(s.requests, Some(540));
        assert!(s.slo_attainment.unwrap() < 0.95, "{s:?}");
        // A rule holding 4 replicas from the start never queues.
        let s = simulate_rule(&reqs, &c, 4, |_| 4).await.unwrap();
        assert_eq!(s.slo_attainment, Some(1.0), "{s:?}");
    }

    #[tokio::test]
    async fn an_unknown_metric_is_an_error_naming_the_field() {
        let s = scaler(1, "vllm:num_requests_queued");
        let e = simulate_trace(&s, &load(0.0, 10.0, 1), &cfg(0.0), &mut |_| Ok(()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("spec.trigger.metricsTrigger.metrics[0].prometheus.query: the simulated pods do not export \"vllm:num_requests_queued\": known are vllm:num_requests_running"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn bad_flags_are_reported() {
        let s = scaler(1, "vllm:num_requests_running");
        let mut c = cfg(0.0);
        c.model.slots = 0;
        let e = simulate_trace(&s, &[], &c, &mut |_| Ok(()))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "--slots must be at least 1");
    }
}
