//! The algorithms that ship with the elastic-scaler, as plugins like any other: `hpa`, `kpa`, `apa`
//! (the default, also used when `scalingAlgorithm` is empty) and `external`. Each module documents its
//! `algorithmConfig` keys and defaults.

pub mod apa;
pub mod config;
pub mod external;
pub mod hpa;
pub mod kpa;

use std::sync::Arc;

use crate::plugin::SharedFactory;
use crate::registry::{Registry, RegistryError};

/// The registry of algorithms with the built-ins in it.
pub fn algorithms(http: reqwest::Client) -> Result<Registry<SharedFactory>, RegistryError> {
    let mut r: Registry<SharedFactory> = Registry::new("scaling algorithm");
    r.insert("hpa".into(), Arc::new(hpa::HpaFactory))?;
    r.insert("kpa".into(), Arc::new(kpa::KpaFactory))?;
    r.insert("apa".into(), Arc::new(apa::ApaFactory))?;
    r.insert(
        "external".into(),
        Arc::new(external::ExternalFactory::new(http)),
    )?;
    Ok(r)
}
