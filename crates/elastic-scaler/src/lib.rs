//! The ElasticScaler controller's library. Today: the pure scaling decisions ([`algorithms`]) and the
//! plugin registries ([`registry`]), and the request-trace reader of the policy simulator ([`trace`]); the reconcile, metric sources and resource handlers arrive with the
//! rest of issue 4.

pub mod algorithms;
pub mod registry;
pub mod trace;
