//! Reading `algorithmConfig`: unknown keys are errors with a "did you mean", values are parsed with the
//! key named in the error, and every key has a documented default.

use api_types::validation::{did_you_mean, parse_duration};

use crate::plugin::{AlgorithmConfig, ConfigError};

/// `algorithmConfig` checked against an algorithm's keys.
pub struct Keys<'a> {
    config: &'a AlgorithmConfig,
    known: &'static [(&'static str, &'static str)],
}

impl<'a> Keys<'a> {
    /// Fails on the first key the algorithm does not read.
    pub fn new(
        config: &'a AlgorithmConfig,
        known: &'static [(&'static str, &'static str)],
    ) -> Result<Self, ConfigError> {
        let names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
        if let Some(key) = config.keys().find(|k| !names.contains(&k.as_str())) {
            let hint = did_you_mean(key, &names)
                .map(|s| format!("did you mean {s}? "))
                .unwrap_or_default();
            return Err(ConfigError {
                key: key.clone(),
                message: format!("unknown key: {hint}this algorithm reads {names:?}"),
            });
        }
        Ok(Keys { config, known })
    }

    fn raw(&self, key: &str) -> &str {
        self.config
            .get(key)
            .map(|s| s.trim())
            .or_else(|| self.known.iter().find(|(k, _)| *k == key).map(|(_, d)| *d))
            .unwrap_or_default()
    }

    fn err(key: &str, message: String) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            message,
        }
    }

    /// A number that must be at least `min`.
    pub fn number(&self, key: &str, min: f64) -> Result<f64, ConfigError> {
        let raw = self.raw(key);
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min => Ok(v),
            _ => Err(Self::err(
                key,
                format!(
                    "{raw:?} is not a number ≥ {min}: write e.g. \"{}\"",
                    min.max(1.0)
                ),
            )),
        }
    }

    /// A duration (`30s`, `2m`) in seconds, at least `min`.
    pub fn seconds(&self, key: &str, min: f64) -> Result<f64, ConfigError> {
        let raw = self.raw(key);
        match parse_duration(raw) {
            Some(v) if v >= min => Ok(v),
            _ => Err(Self::err(
                key,
                format!(
                    "{raw:?} is not a duration of at least {min}s: write e.g. \"30s\" or \"2m\""
                ),
            )),
        }
    }

    /// A string, possibly empty.
    pub fn string(&self, key: &str) -> String {
        self.raw(key).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[(&str, &str)] = &[("tolerance", "0.1"), ("window", "30s")];

    fn config(pairs: &[(&str, &str)]) -> AlgorithmConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_parse_and_errors_name_the_key() {
        let c = config(&[]);
        let k = Keys::new(&c, KEYS).unwrap();
        assert_eq!(k.number("tolerance", 0.0).unwrap(), 0.1);
        assert_eq!(k.seconds("window", 1.0).unwrap(), 30.0);
        let c = config(&[("tolerance", "lots")]);
        let e = Keys::new(&c, KEYS)
            .unwrap()
            .number("tolerance", 0.0)
            .unwrap_err();
        assert_eq!(e.key, "tolerance");
        assert!(
            e.to_string()
                .starts_with("algorithmConfig.tolerance: \"lots\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_hint() {
        let c = config(&[("tolerence", "0.2")]);
        let e = Keys::new(&c, KEYS).err().unwrap();
        assert!(e.to_string().contains("did you mean tolerance?"), "{e}");
    }
}
