//! The CustomResourceDefinitions, rendered from the types.
//!
//! `cargo xtask crds` writes [`all`] to `deploy/crds/` and the umbrella chart's `crds/`, and `--check`
//! fails when the committed YAML differs, so the YAML can never drift from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{ElasticScaler, ResourceScalingGroup, Tidal};

/// Every CRD with the file name it is written to (`<plural>.<group>.yaml`).
pub fn all() -> Vec<(String, CustomResourceDefinition)> {
    [
        ElasticScaler::crd(),
        ResourceScalingGroup::crd(),
        Tidal::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let name = crd.metadata.name.clone().unwrap_or_default();
        (format!("{name}.yaml"), crd)
    })
    .collect()
}
