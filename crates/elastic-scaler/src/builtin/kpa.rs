//! The `kpa` algorithm: Knative's stable and panic windows over the total load, in replicas
//! ([`crate::algorithms::kpa`]).
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `stableWindow` | `60s` | the stable window |
//! | `panicWindowPercentage` | `10` | the panic window, in percent of the stable window |
//! | `panicThresholdPercentage` | `200` | panic when the panic-window count ÷ ready ≥ this ÷ 100 |
//! | `maxScaleUpRate` | `1000` | at most `ceil(rate × ready)` replicas |
//! | `maxScaleDownRate` | `2` | at least `floor(ready ÷ rate)` replicas |
//! | `activationScale` | `1` | the smallest non-zero count |
//! | `scaleToZeroGracePeriod` | `30s` | how long 0 must be wanted before scaling to 0 |
//!
//! Each metric's load in replicas ([`Observation::demand`](crate::plugin::Observation::demand)) enters
//! both windows; the desired counts use the largest window average over metrics. A controller restart
//! resumes in panic at the current scale, so it cannot scale down in the middle of a burst.

use std::collections::BTreeMap;

use futures::future::BoxFuture;

use super::config::Keys;
use crate::algorithms::kpa::{self, KpaConfig, KpaState};
use crate::algorithms::window::Window;
use crate::plugin::{
    AlgorithmConfig, AlgorithmError, AlgorithmFactory, ConfigError, Context, Recommendation,
    Restore, ScalingAlgorithm,
};

const KEYS: &[(&str, &str)] = &[
    ("stableWindow", "60s"),
    ("panicWindowPercentage", "10"),
    ("panicThresholdPercentage", "200"),
    ("maxScaleUpRate", "1000"),
    ("maxScaleDownRate", "2"),
    ("activationScale", "1"),
    ("scaleToZeroGracePeriod", "30s"),
];

/// Factory of [`Kpa`].
pub struct KpaFactory;

impl AlgorithmFactory for KpaFactory {
    fn create(
        &self,
        config: &AlgorithmConfig,
        restore: &Restore,
    ) -> Result<Box<dyn ScalingAlgorithm>, ConfigError> {
        let keys = Keys::new(config, KEYS)?;
        let stable = keys.seconds("stableWindow", 1.0)?;
        let panic_pct = keys.number("panicWindowPercentage", 1.0)?;
        if panic_pct > 100.0 {
            return Err(ConfigError {
                key: "panicWindowPercentage".into(),
                message: format!(
                    "{panic_pct} is above 100: the panic window is a part of the stable window"
                ),
            });
        }
        let cfg = KpaConfig {
            target: 1.0,
            panic_threshold: keys.number("panicThresholdPercentage", 110.0)? / 100.0,
            stable_window_seconds: stable,
            max_scale_up_rate: keys.number("maxScaleUpRate", 1.0)?,
            max_scale_down_rate: keys.number("maxScaleDownRate", 1.0)?,
            activation_scale: keys.number("activationScale", 1.0)? as i32,
            scale_to_zero_grace_seconds: keys.seconds("scaleToZeroGracePeriod", 0.0)?,
        };
        let state = if restore.resumed {
            KpaState::restored(restore.now, restore.current)
        } else {
            KpaState::default()
        };
        Ok(Box::new(Kpa {
            cfg,
            panic_window: stable * panic_pct / 100.0,
            state,
            windows: BTreeMap::new(),
        }))
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        KEYS
    }
}

/// Knative's autoscaler on totals.
pub struct Kpa {
    cfg: KpaConfig,
    panic_window: f64,
    state: KpaState,
    /// Per metric: (stable, panic) windows of the load in replicas.
    windows: BTreeMap<String, (Window, Window)>,
}

impl Kpa {
    /// The decision, synchronously.
    pub fn decide(&mut self, ctx: &Context<'_>) -> Result<Recommendation, AlgorithmError> {
        for m in ctx.metrics {
            let (stable, panic) = self.windows.entry(m.name.clone()).or_insert_with(|| {
                (
                    Window::new(self.cfg.stable_window_seconds),
                    Window::new(self.panic_window),
                )
            });
            if let Some(d) = m.demand(ctx.ready) {
                stable.record(ctx.now, d);
                panic.record(ctx.now, d);
            }
        }
        let max_avg = |pick: fn(&(Window, Window)) -> &Window| {
            self.windows
                .values()
                .filter_map(|w| pick(w).average(ctx.now))
                .fold(None, |acc: Option<f64>, v| {
                    Some(acc.map_or(v, |a| a.max(v)))
                })
        };
        let stable = max_avg(|w| &w.0)
            .ok_or_else(|| AlgorithmError("no metric value inside the stable window".into()))?;
        let panic = max_avg(|w| &w.1).unwrap_or(stable);
        let d = kpa::decide(
            &self.cfg,
            &mut self.state,
            ctx.now,
            ctx.ready,
            stable,
            panic,
        );
        Ok(Recommendation {
            replicas: d.desired,
            reason: format!(
                "KPA: {} (stable load {stable:.2}, panic load {panic:.2} replicas)",
                if d.panicking {
                    "panic mode"
                } else {
                    "stable mode"
                }
            ),
            needed: Some(panic.max(stable).ceil() as i32),
            panicking: d.panicking,
        })
    }
}

impl ScalingAlgorithm for Kpa {
    fn recommend<'a>(
        &'a mut self,
        ctx: &'a Context<'a>,
    ) -> BoxFuture<'a, Result<Recommendation, AlgorithmError>> {
        Box::pin(async move { self.decide(ctx) })
    }
}
