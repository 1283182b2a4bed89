//! The ElasticScaler controller's library. Today, the pure pieces of issue 4:
//!
//! - [`algorithms`]: the scaling decisions (HPA with behavior, KPA, APA), sample windows and the
//!   pending-replica guard;
//! - [`registry`]: the plugin registries;
//! - [`trace`] and [`serving`]: the policy simulator's request traces, serving model and oracle.
//!
//! The reconcile, metric sources, resource handlers and the simulator's replay loop arrive with the rest of
//! issue 4.

pub mod algorithms;
pub mod registry;
pub mod serving;
pub mod trace;
