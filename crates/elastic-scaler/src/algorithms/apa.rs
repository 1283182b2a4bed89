//! APA (AIBrix's "aggregated" policy, Huo et al. 2023), able to scale from zero.
//!
//! `r = total / (target × N)`; above `1 + upTolerance` the count goes to `ceil(N·r)` but at most
//! `ceil(upRate·N)`; below `1 − downTolerance` to `ceil(N·r)` but at least `floor(N / downRate)`; otherwise it
//! stays. From `N = 0`, any load gives `ceil(total / target)` (at least 1) — AIBrix's APA cannot leave 0.

/// APA parameters (`algorithmConfig` keys in parentheses).
#[derive(Clone, Debug, PartialEq)]
pub struct ApaConfig {
    /// Target load per pod (the metric's target).
    pub target: f64,
    /// `upFluctuationTolerance` (0.1).
    pub up_tolerance: f64,
    /// `downFluctuationTolerance` (0.2).
    pub down_tolerance: f64,
    /// `maxScaleUpRate` (2.0).
    pub up_rate: f64,
    /// `maxScaleDownRate` (2.0).
    pub down_rate: f64,
}

impl ApaConfig {
    /// The defaults for `target`.
    pub fn with_target(target: f64) -> ApaConfig {
        ApaConfig {
            target,
            up_tolerance: 0.1,
            down_tolerance: 0.2,
            up_rate: 2.0,
            down_rate: 2.0,
        }
    }
}

/// Desired replicas for `current` pods carrying `total` load.
pub fn decide(cfg: &ApaConfig, current: i32, total: f64) -> i32 {
    if cfg.target <= 0.0 || total.is_nan() {
        return current;
    }
    if current <= 0 {
        return if total > 0.0 {
            ((total / cfg.target).ceil() as i32).max(1)
        } else {
            0
        };
    }
    let n = current as f64;
    let r = total / (cfg.target * n);
    if r > 1.0 + cfg.up_tolerance {
        (n * r).ceil().min((cfg.up_rate * n).ceil()) as i32
    } else if r < 1.0 - cfg.down_tolerance {
        (n * r).ceil().max((n / cfg.down_rate).floor()) as i32
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_and_rates() {
        let c = ApaConfig::with_target(10.0);
        assert_eq!(decide(&c, 4, 42.0), 4, "r = 1.05 within the up tolerance");
        assert_eq!(decide(&c, 4, 60.0), 6, "r = 1.5 → ceil(6)");
        assert_eq!(decide(&c, 4, 200.0), 8, "r = 5 → bounded by ceil(2 × 4)");
        assert_eq!(decide(&c, 4, 34.0), 4, "r = 0.85 within the down tolerance");
        assert_eq!(decide(&c, 4, 25.0), 3, "r = 0.625 → ceil(2.5)");
        assert_eq!(decide(&c, 10, 1.0), 5, "bounded by floor(10 / 2)");
    }

    #[test]
    fn scales_from_zero() {
        let c = ApaConfig::with_target(10.0);
        assert_eq!(decide(&c, 0, 0.0), 0);
        assert_eq!(decide(&c, 0, 1.0), 1);
        assert_eq!(decide(&c, 0, 35.0), 4);
    }
}
