//! The Tidal controller (`tidal.io/v1alpha1`): time-based scaling by cron rules.
//!
//! - [`plan`]: the pure decision at an instant (active/previous/next rule, apply or not), unit-tested
//!   on an injected clock;
//! - [`controller`]: the kube-runtime reconciler that acts on it and sleeps until the next firing;
//! - [`target`]: writing any scalable kind's `/scale`, found by discovery;
//! - [`clock`]: wall-clock step detection, which re-plans every Tidal;
//! - [`metrics`]: what `/metrics` exports.
//!
//! The cron syntax and semantics (zones, DST) are [`api_types::tidal::schedule`], shared with the webhook.

pub mod clock;
pub mod controller;
pub mod metrics;
pub mod plan;
pub mod target;
