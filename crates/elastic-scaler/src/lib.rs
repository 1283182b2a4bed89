//! The ElasticScaler controller's library. Today: the pure scaling decisions ([`algorithms`]) and the
//! plugin registries ([`registry`]), and the policy simulator's request traces ([`trace`]), serving model and oracle ([`serving`]); the reconcile, metric sources and resource handlers arrive with the
//! rest of issue 4.

pub mod algorithms;
pub mod registry;
pub mod serving;
pub mod trace;
