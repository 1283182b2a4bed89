//! The pd-orchestrator API: CRD types, the keys every component agrees on, and pure validation.
//!
//! Every other crate depends on this one and on nothing of each other's: the controllers, the admission
//! webhook and the DLX talk only through the Kubernetes API, and this crate is that API.
//!
//! - [`elastic_scaler`]: `elasticscaler.io/v1alpha1` ElasticScaler.
//! - [`rsg`]: `autoscaling.openfuyao.com/v1alpha1` ResourceScalingGroup, with the scale subresource at
//!   `.spec.scalingStrategy.groupConfig.replicas` / `.status.currentReplicas` / `.status.selector`.
//! - [`tidal`]: `tidal.io/v1alpha1` Tidal.
//! - [`keys`]: labels, annotations, finalizers, condition types and reasons, as constants.
//! - [`validation`]: checks the OpenAPI schema cannot express, as pure functions returning
//!   [`validation::FieldError`]s that name the field and the fix. The webhook and the controllers run the
//!   same functions, so an object that slipped past a webhook with `failurePolicy: Ignore` is reported in
//!   status, not acted on.
//! - [`crd`]: the CustomResourceDefinitions rendered from the types (what `cargo xtask crds` writes).
//!
//! The types are wire-compatible with the upstream openFuyao CRDs: every manifest those schemas accept is
//! accepted here (checked by `tests/reference_compat.rs` against the reference YAML). Where the upstream
//! documents contradict the schema (`AverageValueValue`, `external.metric.name`, upper-case names in clone
//! names), the CRD carries a CEL rule whose message names the field and the fix.

// `#[kube(printcolumn(type_ = ...), printcolumn(type_ = ...))]` repeats keys inside distinct columns;
// clippy reads them as one attribute's duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod conditions;
pub mod crd;
pub mod elastic_scaler;
pub mod keys;
pub mod rsg;
pub mod tidal;
pub mod validation;

pub use elastic_scaler::{ElasticScaler, ElasticScalerSpec, ElasticScalerStatus};
pub use rsg::{ResourceScalingGroup, ResourceScalingGroupSpec, ResourceScalingGroupStatus};
pub use tidal::{Tidal, TidalSpec, TidalStatus};
