//! Every valid seed example under `examples/seeds/` deserializes into our Rust types and passes our pure
//! validation; every invalid one fails it or the schema's CEL rules with its `# expect-error:` message.

use std::path::{Path, PathBuf};

use api_types::validation::{summarize, validate_elastic_scaler, validate_rsg, validate_tidal};
use api_types::{ElasticScaler, ResourceScalingGroup, Tidal};
use serde::Deserialize;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seeds")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Validates every pd-orchestrator object in a file; returns the error messages.
fn validate_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut errs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let res = match kind.as_str() {
            "ElasticScaler" => serde_json::from_value::<ElasticScaler>(v)
                .map(|o| summarize(&validate_elastic_scaler(&o.spec))),
            "ResourceScalingGroup" => serde_json::from_value::<ResourceScalingGroup>(v).map(|o| {
                summarize(&validate_rsg(
                    o.metadata.name.as_deref().unwrap_or_default(),
                    &o.spec,
                ))
            }),
            "Tidal" => {
                serde_json::from_value::<Tidal>(v).map(|o| summarize(&validate_tidal(&o.spec)))
            }
            _ => continue,
        };
        match res {
            Ok(s) if s.is_empty() => {}
            Ok(s) => errs.push(s),
            Err(e) => errs.push(format!("does not deserialize: {e}")),
        }
    }
    errs
}

#[test]
fn valid_seed_examples_deserialize_and_validate() {
    let files = yaml_files(&seeds_dir());
    assert!(
        files.len() >= 3,
        "expected seed examples in {}",
        seeds_dir().display()
    );
    for f in files {
        let errs = validate_file(&f);
        assert!(errs.is_empty(), "{}: {errs:?}", f.display());
    }
}

#[test]
fn invalid_seed_examples_are_caught_by_validation_or_schema() {
    for f in yaml_files(&seeds_dir().join("invalid")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-error:"))
            .unwrap_or_else(|| panic!("{}: first line must be `# expect-error: ...`", f.display()))
            .trim();
        // Names (metadata.name) and types the schema rejects are the apiserver's job, checked by e2e;
        // here we check the ones our pure validation owns.
        let errs = validate_file(&f).join("; ");
        if expected.contains("RFC 1123 subdomain") || expected.contains("must be of type") {
            continue;
        }
        assert!(
            errs.contains(expected),
            "{}: expected {expected:?} in {errs:?}",
            f.display()
        );
    }
}
