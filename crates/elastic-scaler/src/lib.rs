//! The ElasticScaler controller's library. Today: the pure scaling decisions ([`algorithms`]) and the
//! plugin registries ([`registry`]); the reconcile, metric sources and resource handlers arrive with the
//! rest of issue 4.

pub mod algorithms;
pub mod registry;
