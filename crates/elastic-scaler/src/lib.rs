//! The ElasticScaler controller's library.
//!
//! - [`plugin`]: the `ScalingAlgorithm` and `ResourceHandler` plugin interfaces;
//! - [`algorithms`]: the pure decisions (HPA with behavior, KPA, APA), sample windows and the
//!   pending-replica guard;
//! - [`builtin`]: the algorithms that ship (`hpa`, `kpa`, `apa`, `external`) as plugins;
//! - [`engine`]: one scaler's decision pipeline (algorithm → guards → behavior → bounds), shared by the
//!   controller and the simulator;
//! - [`registry`]: the plugin registries;
//! - [`trace`] and [`serving`]: the policy simulator's request traces, serving model and oracle.

pub mod algorithms;
pub mod app;
pub mod builtin;
pub mod controller;
pub mod engine;
pub mod handlers;
pub mod metrics;
pub mod plugin;
pub mod registry;
pub mod serving;
pub mod simulate;
pub mod sources;
pub mod trace;

/// The HTTP client type the built-in `external` algorithm and the metric sources use.
pub use reqwest::Client as HttpClient;
