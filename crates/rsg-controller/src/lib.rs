//! The ResourceScalingGroup controller.
//!
//! One reconcile of an RSG is a short pipeline (see [`controller::reconcile`]):
//!
//! 1. validate the spec with the same rules as the admission webhook (`api_types::validation`); an invalid
//!    spec is reported in `Ready=False, reason InvalidSpec` and never acted on;
//! 2. resolve the targets ([`targets`]): Deployment, StatefulSet, LeaderWorkerSet, or a RoleBasedGroup
//!    role's workload;
//! 3. run the strategy: [`group_replication`] (snapshots, replica baseline, group labels, clones and their
//!    Services, scale-down ordering through Prometheus with fallbacks) or [`inplace`] (followers at
//!    leader × followRatio);
//! 4. write the status only if it changed ([`status`]), and publish Events for every change and failure.
//!
//! Decisions are pure functions tested without a cluster: [`plan`] (what to create/remove), [`victims`]
//! (which groups go), [`clone`] (what a clone looks like), [`status`] (the next status). A reconcile
//! re-observes everything and re-plans, so a crash at any point converges on restart. Deleting an RSG runs
//! the finalizer: snapshots and the ConfigMap go, workloads and Services stay.

pub mod clone;
pub mod context;
pub mod controller;
pub mod group_replication;
pub mod inplace;
pub mod kinds;
pub mod metrics;
pub mod plan;
pub mod prometheus;
pub mod status;
pub mod targets;
pub mod victims;

use status::Outcome;

/// Why a reconcile stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed in a way worth retrying with backoff.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Something the user must fix (or wait for); reported in the Ready condition and retried later.
    #[error("{}", .0.message)]
    Blocked(Box<Outcome>),
    /// An object could not be (de)serialized.
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}
