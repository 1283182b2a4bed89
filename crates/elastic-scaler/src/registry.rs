//! Registries for plugins (seed 000, done right): scaling algorithms by name (case-insensitive; an empty
//! name means APA) and resource handlers by `apiVersion`/`kind`. Registering a taken key is an error the
//! caller reports, never a panic; looking up an unknown key says which keys exist.

use std::collections::BTreeMap;

/// What can go wrong with a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The key is already registered.
    #[error("{what} {key:?} is already registered: choose another name")]
    Duplicate {
        /// `algorithm` or `resource handler`.
        what: &'static str,
        /// The key as normalized.
        key: String,
    },
    /// Nothing is registered under the key.
    #[error("unknown {what} {key:?}: registered are {known:?}")]
    Unknown {
        /// `algorithm` or `resource handler`.
        what: &'static str,
        /// The key as asked.
        key: String,
        /// What exists.
        known: Vec<String>,
    },
}

/// A registry of `T` under normalized keys.
pub struct Registry<T> {
    what: &'static str,
    entries: BTreeMap<String, T>,
}

impl<T> Registry<T> {
    /// An empty registry of `what` (used in messages).
    pub fn new(what: &'static str) -> Self {
        Registry {
            what,
            entries: BTreeMap::new(),
        }
    }

    /// Registers `value` under `key` (normalized by the caller's key function).
    pub fn insert(&mut self, key: String, value: T) -> Result<(), RegistryError> {
        if self.entries.contains_key(&key) {
            return Err(RegistryError::Duplicate {
                what: self.what,
                key,
            });
        }
        self.entries.insert(key, value);
        Ok(())
    }

    /// The entry under `key`.
    pub fn get(&self, key: &str) -> Result<&T, RegistryError> {
        self.entries.get(key).ok_or_else(|| RegistryError::Unknown {
            what: self.what,
            key: key.to_string(),
            known: self.keys(),
        })
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

/// The registry key of a scaling algorithm name: lowercase, trimmed; empty means `apa`.
pub fn algorithm_key(name: Option<&str>) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => n.to_ascii_lowercase(),
        None => "apa".to_string(),
    }
}

/// The registry key of a resource handler: `<group>/<kind>` (the version does not matter: a handler serves
/// every version of its kind; core kinds have an empty group).
pub fn handler_key(api_version: &str, kind: &str) -> String {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    format!("{group}/{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_case_insensitive_and_empty_is_apa() {
        assert_eq!(algorithm_key(Some("KPA")), "kpa");
        assert_eq!(algorithm_key(Some(" Apa ")), "apa");
        assert_eq!(algorithm_key(Some("")), "apa");
        assert_eq!(algorithm_key(None), "apa");
    }

    #[test]
    fn duplicates_are_errors_not_panics() {
        let mut r: Registry<u8> = Registry::new("algorithm");
        r.insert(algorithm_key(Some("hpa")), 1).unwrap();
        let err = r.insert(algorithm_key(Some("HPA")), 2).unwrap_err();
        assert_eq!(
            err,
            RegistryError::Duplicate {
                what: "algorithm",
                key: "hpa".into()
            }
        );
        assert_eq!(*r.get("hpa").unwrap(), 1, "the first registration stays");
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let mut r: Registry<u8> = Registry::new("algorithm");
        r.insert("apa".into(), 0).unwrap();
        r.insert("kpa".into(), 0).unwrap();
        let err = r.get("pka").err().unwrap().to_string();
        assert_eq!(
            err,
            r#"unknown algorithm "pka": registered are ["apa", "kpa"]"#
        );
    }

    #[test]
    fn handlers_key_on_group_and_kind() {
        assert_eq!(handler_key("apps/v1", "Deployment"), "apps/Deployment");
        assert_eq!(
            handler_key("autoscaling.openfuyao.com/v1alpha1", "ResourceScalingGroup"),
            "autoscaling.openfuyao.com/ResourceScalingGroup"
        );
        assert_eq!(
            handler_key("v1", "ReplicationController"),
            "/ReplicationController"
        );
        let mut r: Registry<u8> = Registry::new("resource handler");
        r.insert(handler_key("apps/v1", "Deployment"), 0).unwrap();
        assert!(
            r.insert(handler_key("apps/v1beta2", "Deployment"), 1)
                .is_err()
        );
    }
}
