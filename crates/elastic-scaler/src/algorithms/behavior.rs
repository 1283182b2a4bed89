//! HPA `behavior` (`pkg/controller/podautoscaler/horizontal.go`): stabilization, then rate policies.
//!
//! **Stabilization.** Every raw recommendation is remembered with its time. A scale-up goes only as high as
//! the *lowest* recommendation inside the scale-up window; a scale-down goes only as low as the *highest*
//! recommendation inside the scale-down window (default 300 s). So a brief dip cannot scale down and a
//! brief spike cannot scale up beyond what persisted. (AIBrix inverts the scale-down side.)
//!
//! **Rate policies.** Each policy bounds the change over its period from the replica count at the start of
//! the period (current ± the scale events inside it): `Pods` by a count, `Percent` by a fraction.
//! `selectPolicy: Max` takes the policy allowing the largest change, `Min` the smallest, `Disabled` forbids
//! changes in that direction.
//!
//! The [`History`] is plain data, so the controller can keep it in status and rebuild it after a restart.

use serde::{Deserialize, Serialize};

/// A policy's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyKind {
    /// A number of pods per period.
    Pods,
    /// A percentage of the period's starting replicas.
    Percent,
}

/// One rate policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// The amount.
    pub value: i32,
    /// The period, in seconds.
    pub period_seconds: u32,
}

/// How policies combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// Rules for one direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// Stabilization window, in seconds.
    pub stabilization_window_seconds: u32,
    /// Rate policies.
    pub policies: Vec<Policy>,
    /// How they combine.
    pub select: SelectPolicy,
}

/// Both directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Behavior {
    /// Scale-up rules.
    pub scale_up: Rules,
    /// Scale-down rules.
    pub scale_down: Rules,
}

impl Default for Behavior {
    /// The Kubernetes defaults: up without stabilization, at most +4 pods or +100 % per 15 s (the larger);
    /// down after a 300 s window, at most −100 % per 15 s.
    fn default() -> Self {
        Behavior {
            scale_up: Rules {
                stabilization_window_seconds: 0,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_seconds: 15,
                    },
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_seconds: 15,
                    },
                ],
                select: SelectPolicy::Max,
            },
            scale_down: Rules {
                stabilization_window_seconds: 300,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                }],
                select: SelectPolicy::Max,
            },
        }
    }
}

/// A remembered raw recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// When, in seconds.
    pub at: f64,
    /// Replicas recommended.
    pub replicas: i32,
}

/// A scale that happened: `delta` > 0 up, < 0 down.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// When, in seconds.
    pub at: f64,
    /// Replicas added (positive) or removed (negative).
    pub delta: i32,
}

/// What stabilization and policies need to remember.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Raw recommendations, oldest first.
    pub recommendations: Vec<Recommendation>,
    /// Scale events, oldest first.
    pub events: Vec<ScaleEvent>,
}

impl History {
    /// Forgets what no window or period can reach any more.
    pub fn prune(&mut self, now: f64, behavior: &Behavior) {
        let window = behavior
            .scale_up
            .stabilization_window_seconds
            .max(behavior.scale_down.stabilization_window_seconds) as f64;
        self.recommendations.retain(|r| r.at > now - window);
        let period = behavior
            .scale_up
            .policies
            .iter()
            .chain(&behavior.scale_down.policies)
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0) as f64;
        self.events.retain(|e| e.at > now - period);
    }
}

/// The stabilized recommendation: `desired` bounded by the min of the scale-up window and the max of the
/// scale-down window, starting from `current`. Records `desired` in the history.
pub fn stabilize(
    current: i32,
    desired: i32,
    now: f64,
    behavior: &Behavior,
    history: &mut History,
) -> i32 {
    let up_cutoff = now - behavior.scale_up.stabilization_window_seconds as f64;
    let down_cutoff = now - behavior.scale_down.stabilization_window_seconds as f64;
    let mut up = desired;
    let mut down = desired;
    for r in &history.recommendations {
        if r.at > up_cutoff {
            up = up.min(r.replicas);
        }
        if r.at > down_cutoff {
            down = down.max(r.replicas);
        }
    }
    history.recommendations.push(Recommendation {
        at: now,
        replicas: desired,
    });
    let mut out = current;
    if out < up {
        out = up;
    }
    if out > down {
        out = down;
    }
    out
}

fn period_changes(history: &History, now: f64, period: u32) -> (i32, i32) {
    let cutoff = now - period as f64;
    history
        .events
        .iter()
        .filter(|e| e.at > cutoff)
        .fold((0, 0), |(added, removed), e| {
            if e.delta > 0 {
                (added + e.delta, removed)
            } else {
                (added, removed - e.delta)
            }
        })
}

/// The highest count scale-up may reach now.
pub fn scale_up_limit(current: i32, now: f64, rules: &Rules, history: &History) -> i32 {
    if rules.select == SelectPolicy::Disabled || rules.policies.is_empty() {
        return current;
    }
    let mut limit = if rules.select == SelectPolicy::Max {
        i32::MIN
    } else {
        i32::MAX
    };
    for p in &rules.policies {
        let (added, removed) = period_changes(history, now, p.period_seconds);
        let start = current - added + removed;
        let proposed = match p.kind {
            PolicyKind::Pods => start.saturating_add(p.value),
            PolicyKind::Percent => (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i32,
        };
        limit = if rules.select == SelectPolicy::Max {
            limit.max(proposed)
        } else {
            limit.min(proposed)
        };
    }
    limit.max(current)
}

/// The lowest count scale-down may reach now.
pub fn scale_down_limit(current: i32, now: f64, rules: &Rules, history: &History) -> i32 {
    if rules.select == SelectPolicy::Disabled || rules.policies.is_empty() {
        return current;
    }
    let mut limit = if rules.select == SelectPolicy::Max {
        i32::MAX
    } else {
        i32::MIN
    };
    for p in &rules.policies {
        let (added, removed) = period_changes(history, now, p.period_seconds);
        let start = current + removed - added;
        let proposed = match p.kind {
            PolicyKind::Pods => start.saturating_sub(p.value),
            PolicyKind::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)) as i32,
        };
        limit = if rules.select == SelectPolicy::Max {
            limit.min(proposed)
        } else {
            limit.max(proposed)
        };
    }
    limit.min(current)
}

/// The whole behavior step: stabilize `desired`, bound it by the rate policies and by `[min, max]`.
/// Records the recommendation; the caller records the scale event it then performs.
pub fn apply(
    current: i32,
    desired: i32,
    (min, max): (i32, i32),
    now: f64,
    behavior: &Behavior,
    history: &mut History,
) -> i32 {
    history.prune(now, behavior);
    let stable = stabilize(current, desired, now, behavior, history);
    let bounded = if stable > current {
        stable.min(scale_up_limit(current, now, &behavior.scale_up, history))
    } else if stable < current {
        stable.max(scale_down_limit(
            current,
            now,
            &behavior.scale_down,
            history,
        ))
    } else {
        stable
    };
    bounded.clamp(min, max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_down_waits_for_the_max_over_its_window() {
        let b = Behavior::default();
        let mut h = History::default();
        // Load high at t=0 (10), drops at t=60 (2): the window still holds 10, so no scale-down.
        assert_eq!(apply(10, 10, (1, 20), 0.0, &b, &mut h), 10);
        assert_eq!(apply(10, 2, (1, 20), 60.0, &b, &mut h), 10);
        assert_eq!(apply(10, 2, (1, 20), 299.0, &b, &mut h), 10);
        // Once the 10 has left the 300 s window, the max of what is left (2) wins.
        assert_eq!(apply(10, 2, (1, 20), 301.0, &b, &mut h), 2);
    }

    #[test]
    fn a_brief_dip_does_not_scale_down_and_the_highest_recent_wins() {
        let b = Behavior::default();
        let mut h = History::default();
        apply(8, 8, (1, 20), 0.0, &b, &mut h);
        apply(8, 6, (1, 20), 200.0, &b, &mut h);
        // At 310 the 8 is out of the window; 6 (at 200) is the highest left, not the latest 3.
        assert_eq!(apply(8, 3, (1, 20), 310.0, &b, &mut h), 6);
    }

    #[test]
    fn scale_up_window_takes_the_min() {
        let mut b = Behavior::default();
        b.scale_up.stabilization_window_seconds = 60;
        let mut h = History::default();
        apply(2, 2, (1, 20), 0.0, &b, &mut h);
        // A spike to 10 right after a recommendation of 2: the min over the window is 2.
        assert_eq!(apply(2, 10, (1, 20), 10.0, &b, &mut h), 2);
        // After the window passes with 10 sustained, it scales up as fast as the policies allow:
        // max(+4 pods, +100 %) from 2 is 6.
        assert_eq!(apply(2, 10, (1, 20), 75.0, &b, &mut h), 6);
    }

    #[test]
    fn default_scale_up_rate_is_max_of_4_pods_and_100_percent() {
        let b = Behavior::default();
        let h = History::default();
        assert_eq!(scale_up_limit(2, 0.0, &b.scale_up, &h), 6); // +4 pods beats +100 % (4)
        assert_eq!(scale_up_limit(10, 0.0, &b.scale_up, &h), 20); // +100 % beats +4
    }

    #[test]
    fn rate_counts_events_inside_the_period() {
        let rules = Rules {
            stabilization_window_seconds: 0,
            policies: vec![Policy {
                kind: PolicyKind::Pods,
                value: 2,
                period_seconds: 60,
            }],
            select: SelectPolicy::Max,
        };
        let mut h = History::default();
        h.events.push(ScaleEvent { at: 10.0, delta: 2 });
        // 2 pods already added within the last 60 s from 4 → 6: the period started at 4, so no more now.
        assert_eq!(scale_up_limit(6, 30.0, &rules, &h), 6);
        // After the period the budget is back.
        assert_eq!(scale_up_limit(6, 80.0, &rules, &h), 8);
    }

    #[test]
    fn min_policy_and_disabled() {
        let mut rules = Rules {
            stabilization_window_seconds: 0,
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 1,
                    period_seconds: 15,
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period_seconds: 15,
                },
            ],
            select: SelectPolicy::Min,
        };
        let h = History::default();
        assert_eq!(scale_down_limit(10, 0.0, &rules, &h), 9); // min change: −1 pod, not −50 %
        rules.select = SelectPolicy::Max;
        assert_eq!(scale_down_limit(10, 0.0, &rules, &h), 5);
        rules.select = SelectPolicy::Disabled;
        assert_eq!(scale_down_limit(10, 0.0, &rules, &h), 10);
    }

    #[test]
    fn bounds_apply_last() {
        let b = Behavior::default();
        let mut h = History::default();
        assert_eq!(apply(3, 50, (1, 5), 0.0, &b, &mut h), 5);
        let mut h = History::default();
        assert_eq!(
            apply(
                3,
                0,
                (2, 5),
                0.0,
                &Behavior {
                    scale_down: Rules {
                        stabilization_window_seconds: 0,
                        ..Behavior::default().scale_down
                    },
                    ..Behavior::default()
                },
                &mut h
            ),
            2
        );
    }

    #[test]
    fn history_round_trips_through_json() {
        let mut h = History::default();
        apply(3, 4, (1, 5), 1.0, &Behavior::default(), &mut h);
        let back: History = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }
}
