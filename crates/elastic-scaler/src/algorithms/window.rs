//! A sliding time window of metric samples, for the KPA's stable and panic windows and the APA's window.
//!
//! Samples are `(time, value)`; the average is over the samples inside the window. A window whose newest
//! sample is older than a maximum age is *stale*: the caller must not decide a scale-down on it (missing
//! or stale data withholds scale-down, it never causes one).

use std::collections::VecDeque;

/// Samples over the last `seconds`.
#[derive(Clone, Debug)]
pub struct Window {
    seconds: f64,
    samples: VecDeque<(f64, f64)>,
}

impl Window {
    /// An empty window of `seconds`.
    pub fn new(seconds: f64) -> Window {
        Window {
            seconds,
            samples: VecDeque::new(),
        }
    }

    /// Records `value` at `now` and forgets samples that left the window.
    pub fn record(&mut self, now: f64, value: f64) {
        if value.is_finite() {
            self.samples.push_back((now, value));
        }
        self.evict(now);
    }

    fn evict(&mut self, now: f64) {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| *t <= now - self.seconds)
        {
            self.samples.pop_front();
        }
    }

    /// The mean of the samples inside the window at `now`, or `None` without any.
    pub fn average(&self, now: f64) -> Option<f64> {
        let inside: Vec<f64> = self
            .samples
            .iter()
            .filter(|(t, _)| *t > now - self.seconds)
            .map(|(_, v)| *v)
            .collect();
        (!inside.is_empty()).then(|| inside.iter().sum::<f64>() / inside.len() as f64)
    }

    /// Whether the newest sample is older than `max_age` seconds (or there is none).
    pub fn is_stale(&self, now: f64, max_age: f64) -> bool {
        self.samples.back().is_none_or(|(t, _)| now - t > max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_only_what_is_inside() {
        let mut w = Window::new(60.0);
        w.record(0.0, 10.0);
        w.record(30.0, 20.0);
        assert_eq!(w.average(30.0), Some(15.0));
        w.record(70.0, 30.0);
        assert_eq!(
            w.average(70.0),
            Some(25.0),
            "the sample at 0 left the window"
        );
        assert_eq!(w.average(200.0), None);
    }

    #[test]
    fn non_finite_values_are_not_recorded_and_staleness_is_reported() {
        let mut w = Window::new(60.0);
        w.record(0.0, f64::NAN);
        assert_eq!(w.average(0.0), None);
        assert!(w.is_stale(0.0, 30.0));
        w.record(10.0, 1.0);
        assert!(!w.is_stale(20.0, 30.0));
        assert!(w.is_stale(50.0, 30.0));
    }
}
