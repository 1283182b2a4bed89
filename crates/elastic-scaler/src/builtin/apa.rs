//! The `apa` algorithm (the default): the load ratio with tolerances and rates
//! ([`crate::algorithms::apa`]), on the load averaged over a short window.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `upTolerance` | `0.1` | scale up when load ÷ capacity > 1 + this |
//! | `downTolerance` | `0.2` | scale down when load ÷ capacity < 1 − this |
//! | `maxScaleUpRate` | `2` | at most `ceil(rate × current)` replicas |
//! | `maxScaleDownRate` | `2` | at least `floor(current ÷ rate)` replicas |
//! | `window` | `30s` | the load is averaged over this window |

use std::collections::BTreeMap;

use futures::future::BoxFuture;

use super::config::Keys;
use crate::algorithms::apa::{self, ApaConfig};
use crate::algorithms::window::Window;
use crate::plugin::{
    AlgorithmConfig, AlgorithmError, AlgorithmFactory, ConfigError, Context, Recommendation,
    Restore, ScalingAlgorithm,
};

const KEYS: &[(&str, &str)] = &[
    ("upTolerance", "0.1"),
    ("downTolerance", "0.2"),
    ("maxScaleUpRate", "2"),
    ("maxScaleDownRate", "2"),
    ("window", "30s"),
];

/// Factory of [`Apa`].
pub struct ApaFactory;

impl AlgorithmFactory for ApaFactory {
    fn create(
        &self,
        config: &AlgorithmConfig,
        _: &Restore,
    ) -> Result<Box<dyn ScalingAlgorithm>, ConfigError> {
        let keys = Keys::new(config, KEYS)?;
        let down_tolerance = keys.number("downTolerance", 0.0)?;
        if down_tolerance >= 1.0 {
            return Err(ConfigError {
                key: "downTolerance".into(),
                message: format!("{down_tolerance} would never scale down: use a value below 1"),
            });
        }
        Ok(Box::new(Apa {
            cfg: ApaConfig {
                target: 1.0,
                up_tolerance: keys.number("upTolerance", 0.0)?,
                down_tolerance,
                up_rate: keys.number("maxScaleUpRate", 1.0)?,
                down_rate: keys.number("maxScaleDownRate", 1.0)?,
            },
            window: keys.seconds("window", 0.0)?,
            windows: BTreeMap::new(),
        }))
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        KEYS
    }
}

/// AIBrix's APA, able to scale from zero.
pub struct Apa {
    cfg: ApaConfig,
    window: f64,
    windows: BTreeMap<String, Window>,
}

impl Apa {
    /// The decision, synchronously.
    pub fn decide(&mut self, ctx: &Context<'_>) -> Result<Recommendation, AlgorithmError> {
        let mut load: Option<f64> = None;
        for m in ctx.metrics {
            let w = self
                .windows
                .entry(m.name.clone())
                .or_insert_with(|| Window::new(self.window.max(0.001)));
            if let Some(d) = m.demand(ctx.ready) {
                w.record(ctx.now, d);
            }
            if let Some(avg) = w.average(ctx.now) {
                load = Some(load.map_or(avg, |l| l.max(avg)));
            }
        }
        let load =
            load.ok_or_else(|| AlgorithmError("no metric value inside the window".into()))?;
        let replicas = apa::decide(&self.cfg, ctx.current, load);
        Ok(Recommendation {
            replicas,
            reason: format!(
                "APA: load {load:.2} replicas on {} → {replicas}",
                ctx.current
            ),
            needed: Some(load.ceil() as i32),
            panicking: false,
        })
    }
}

impl ScalingAlgorithm for Apa {
    fn recommend<'a>(
        &'a mut self,
        ctx: &'a Context<'a>,
    ) -> BoxFuture<'a, Result<Recommendation, AlgorithmError>> {
        Box::pin(async move { self.decide(ctx) })
    }
}
