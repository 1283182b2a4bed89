//! Scaling decisions as pure functions (no cluster, no clock: time is passed in as seconds).
//!
//! - [`hpa`]: the Kubernetes HPA replica calculation, per metric, with its tolerance and its treatment of
//!   missing and unready pods.
//! - [`kpa`]: Knative's KPA on totals across ready pods, with panic entry/hold/exit, rates, activation
//!   scale, scale-to-zero grace and a conservative restart state.
//! - [`apa`]: ratio to target with up/down tolerances and rates, able to scale from zero.
//! - [`window`]: sliding windows of samples with staleness; [`pending`]: the pending-replica guard.
//! - [`behavior`]: HPA `behavior`: stabilization windows (scale-down takes the max of the recommendations
//!   in its window, scale-up the min) and Pods/Percent rate policies over periods, with `selectPolicy`.
//!
//! These are the first pieces of the ElasticScaler controller (issue 4); the reconcile that feeds them
//! metrics and applies their result is not built yet.

pub mod apa;
pub mod behavior;
pub mod hpa;
pub mod kpa;
pub mod pending;
pub mod window;
