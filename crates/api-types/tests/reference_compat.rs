//! Our CRDs accept every manifest the upstream reference CRDs accept.
//!
//! For each reference CRD: group, kind, plural, scope, version and subresources match; then the schemas are
//! walked together, and at every field path the reference accepts, ours must have the field with a
//! compatible type, a superset of its enum values, the same default, no extra `required` entries and no
//! stricter bounds. CEL rules we add (for the seed documents' known mistakes) are listed in
//! [`ALLOWED_RESTRICTIONS`] and are the only intended narrowing.

use std::path::Path;

use serde_json::Value;

/// Paths where our CRD deliberately narrows what the reference accepts, each with a CEL rule whose message
/// names the field and the fix (the MISSION asks for exactly these).
const ALLOWED_RESTRICTIONS: &[&str] = &[
    // `target.type` is a free string upstream; `AverageValueValue` (seed 000) gets "did you mean AverageValue".
    "metricsTrigger.metrics[].custom.target",
    "metricsTrigger.metrics[].external.target",
    "metricsTrigger.metrics[].resource.target",
    // `metricsName` is required upstream too; the CEL rules only say so precisely and reject the
    // autoscaling/v2 `metric: {name}` shape (seed 000) that the reference would prune and then reject.
    "metricsTrigger.metrics[].custom",
    "metricsTrigger.metrics[].external",
    // Upper-case groupName (seed 002 `Prefill-Decode`) makes invalid clone names.
    "groupConfig.groupName",
];

fn load_reference(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).expect("reference CRD is YAML")
}

fn ours(name: &str) -> Value {
    let (_, crd) = api_types::crd::all()
        .into_iter()
        .find(|(_, c)| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD {name} in api_types::crd::all()"));
    serde_json::to_value(crd).unwrap()
}

fn enum_values(s: &Value) -> Option<Vec<Value>> {
    if let Some(e) = s.get("enum") {
        return Some(e.as_array().unwrap().clone());
    }
    // controller-gen emits `allOf: [{enum}, {enum}]` for typed string enums.
    let all = s.get("allOf")?.as_array()?;
    let mut out: Option<Vec<Value>> = None;
    for a in all {
        if let Some(e) = a.get("enum").and_then(Value::as_array) {
            out = Some(match out {
                None => e.clone(),
                Some(prev) => prev.into_iter().filter(|v| e.contains(v)).collect(),
            });
        }
    }
    out
}

fn num(s: &Value, k: &str) -> Option<f64> {
    s.get(k).and_then(Value::as_f64)
}

fn compare(path: &str, r: &Value, o: &Value, errs: &mut Vec<String>) {
    if o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    let r_ios = r.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let o_ios = o.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if r_ios && !o_ios {
        errs.push(format!(
            "{path}: reference is int-or-string, ours is {:?}",
            o.get("type")
        ));
    }
    if !r_ios && r.get("type") != o.get("type") && !o_ios {
        errs.push(format!(
            "{path}: type {:?} in reference, {:?} in ours",
            r.get("type"),
            o.get("type")
        ));
    }
    if let (Some(re), Some(oe)) = (enum_values(r), enum_values(o)) {
        for v in re {
            if !oe.contains(&v) {
                errs.push(format!(
                    "{path}: enum value {v} accepted by reference, not by ours"
                ));
            }
        }
    } else if enum_values(r).is_none() && enum_values(o).is_some() {
        errs.push(format!(
            "{path}: ours restricts to an enum, reference does not"
        ));
    }
    if r.get("default") != o.get("default") {
        errs.push(format!(
            "{path}: default {:?} in reference, {:?} in ours",
            r.get("default"),
            o.get("default")
        ));
    }
    for (k, ours_stricter) in [
        ("minimum", num(o, "minimum") > num(r, "minimum")),
        ("minLength", num(o, "minLength") > num(r, "minLength")),
        ("minItems", num(o, "minItems") > num(r, "minItems")),
        (
            "maximum",
            num(o, "maximum").is_some()
                && (num(r, "maximum").is_none() || num(o, "maximum") < num(r, "maximum")),
        ),
        (
            "maxLength",
            num(o, "maxLength").is_some()
                && (num(r, "maxLength").is_none() || num(o, "maxLength") < num(r, "maxLength")),
        ),
        (
            "maxItems",
            num(o, "maxItems").is_some()
                && (num(r, "maxItems").is_none() || num(o, "maxItems") < num(r, "maxItems")),
        ),
    ] {
        if ours_stricter {
            errs.push(format!(
                "{path}: {k} {:?} in ours is stricter than {:?}",
                o.get(k),
                r.get(k)
            ));
        }
    }
    if o.get("pattern").is_some() && o.get("pattern") != r.get("pattern") {
        errs.push(format!(
            "{path}: pattern {:?} in ours, {:?} in reference",
            o.get("pattern"),
            r.get("pattern")
        ));
    }
    if o.get("x-kubernetes-validations").is_some()
        && !ALLOWED_RESTRICTIONS.iter().any(|a| path.ends_with(a))
    {
        errs.push(format!(
            "{path}: ours adds CEL rules not listed in ALLOWED_RESTRICTIONS"
        ));
    }
    let req = |s: &Value| -> Vec<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let r_req = req(r);
    for k in req(o) {
        // An RSG without spec is meaningless; upstream's controller could not act on it either.
        let root_spec = path.is_empty() && k == "spec";
        if !r_req.contains(&k) && !root_spec {
            errs.push(format!("{path}: ours requires {k:?}, reference does not"));
        }
    }
    if let Some(props) = r.get("properties").and_then(Value::as_object) {
        for (k, rv) in props {
            // The apiserver owns the root's apiVersion, kind and metadata; kube does not spell them out.
            if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match o.get("properties").and_then(|op| op.get(k)) {
                Some(ov) => compare(&p, rv, ov, errs),
                None => errs.push(format!("{p}: accepted by reference, missing in ours")),
            }
        }
    }
    if let Some(ra) = r.get("additionalProperties").filter(|v| v.is_object()) {
        match o.get("additionalProperties").filter(|v| v.is_object()) {
            Some(oa) => compare(&format!("{path}{{}}"), ra, oa, errs),
            None => errs.push(format!("{path}: reference allows a map, ours does not")),
        }
    }
    if let Some(ri) = r.get("items") {
        match o.get("items") {
            Some(oi) => compare(&format!("{path}[]"), ri, oi, errs),
            None => errs.push(format!("{path}: reference has items, ours does not")),
        }
    }
}

fn check(file: &str) {
    let r = load_reference(file);
    let name = r["metadata"]["name"].as_str().unwrap();
    let o = ours(name);
    let (rs, os) = (&r["spec"], &o["spec"]);
    assert_eq!(rs["group"], os["group"], "{name}: group");
    assert_eq!(rs["scope"], os["scope"], "{name}: scope");
    for k in ["kind", "plural", "singular"] {
        assert_eq!(rs["names"][k], os["names"][k], "{name}: names.{k}");
    }
    // The apiserver defaults listKind to <Kind>List, which is what the reference spells out.
    let list_kind = os["names"]
        .get("listKind")
        .cloned()
        .unwrap_or_else(|| format!("{}List", os["names"]["kind"].as_str().unwrap()).into());
    assert_eq!(rs["names"]["listKind"], list_kind, "{name}: names.listKind");
    let rv = &rs["versions"][0];
    let ov = os["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == rv["name"])
        .expect("same version served");
    assert_eq!(ov["served"], Value::Bool(true));
    assert_eq!(ov["storage"], Value::Bool(true));
    assert_eq!(
        rv["subresources"], ov["subresources"],
        "{name}: subresources"
    );
    let mut errs = Vec::new();
    compare(
        "",
        &rv["schema"]["openAPIV3Schema"],
        &ov["schema"]["openAPIV3Schema"],
        &mut errs,
    );
    assert!(
        errs.is_empty(),
        "{name} is not a superset of the reference:\n  {}",
        errs.join("\n  ")
    );
}

#[test]
fn elastic_scaler_is_compatible() {
    check("elasticscaler.io_elasticscalers.yaml");
}

#[test]
fn rsg_is_compatible() {
    check("autoscaling.openfuyao.com_resourcescalinggroups.yaml");
}

#[test]
fn tidal_is_compatible() {
    check("tidal.io_tidals.yaml");
}

#[test]
fn the_checker_catches_a_narrowed_schema() {
    let r = serde_json::json!({"type": "object", "properties": {"a": {"type": "string", "enum": ["x", "y"]}, "b": {"type": "integer", "default": 1}}});
    let o = serde_json::json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "enum": ["x"]}}});
    let mut errs = Vec::new();
    compare("", &r, &o, &mut errs);
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn tidal_printer_columns_match_reference() {
    let r = load_reference("tidal.io_tidals.yaml");
    let o = ours("tidals.tidal.io");
    let cols = |v: &Value| -> Vec<(Value, Value)> {
        v["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].clone(), c["jsonPath"].clone()))
            .collect()
    };
    assert_eq!(cols(&r), cols(&o));
}
