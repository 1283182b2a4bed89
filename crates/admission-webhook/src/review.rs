//! The `admission.k8s.io/v1` AdmissionReview wire format: decoding a request, encoding a response.
//!
//! Our own small serde types rather than a generic object model: the webhook needs the request's identity
//! fields, the user, and the objects as raw JSON (each kind is decoded into its typed spec later), and
//! decoding must never panic on whatever bytes arrive.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only AdmissionReview version served (the webhook configurations list `admissionReviewVersions: [v1]`).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An AdmissionReview as the API server sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

/// Group, version and kind (of the object, or of the request).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Gvk {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

/// Who sent the request the API server is admitting.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The request part of an AdmissionReview.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    #[serde(default)]
    pub kind: Gvk,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl AdmissionRequest {
    /// The object's name: `request.name`, else `metadata.name`, else `metadata.generateName`.
    pub fn object_name(&self) -> String {
        let meta = self.object.as_ref().and_then(|o| o.get("metadata"));
        self.name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| meta.and_then(|m| m.get("name")?.as_str().map(str::to_string)))
            .or_else(|| meta.and_then(|m| m.get("generateName")?.as_str().map(str::to_string)))
            .unwrap_or_default()
    }

    /// The namespace of the request (`request.namespace`, else `metadata.namespace`).
    pub fn object_namespace(&self) -> String {
        self.namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| {
                self.object
                    .as_ref()?
                    .get("metadata")?
                    .get("namespace")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// An UPDATE whose `spec` is unchanged (metadata or finalizer edits): nothing of ours to re-check, and
    /// re-checking would let an old invalid object block its own cleanup.
    pub fn spec_unchanged(&self) -> bool {
        self.operation == "UPDATE"
            && match (&self.object, &self.old_object) {
                (Some(new), Some(old)) => new.get("spec") == old.get("spec"),
                _ => false,
            }
    }
}

/// Decodes an AdmissionReview body; the error says what was wrong with it.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, String> {
    let review: AdmissionReview =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(format!(
            "expected apiVersion {API_VERSION} kind AdmissionReview, got {:?} {:?}",
            review.api_version, review.kind
        ));
    }
    review
        .request
        .ok_or_else(|| "AdmissionReview has no request".to_string())
}

/// The outcome of one admission, before encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Admit or deny.
    pub allowed: bool,
    /// Short label for the decisions metric (`allowed`, `patched`, `invalid`, `conflict`, `forbidden`, ...).
    pub reason: &'static str,
    /// The denial message (names the field and the fix).
    pub message: Option<String>,
    /// HTTP-like status code of a denial (400 invalid, 403 forbidden, 409 conflict, 500 error).
    pub code: u16,
    /// JSON Patch operations (mutating webhook).
    pub patch: Vec<Value>,
    /// Warnings shown to the client (kubectl prints them).
    pub warnings: Vec<String>,
}

impl Decision {
    /// Admit unchanged.
    pub fn allow() -> Self {
        Self {
            allowed: true,
            reason: "allowed",
            message: None,
            code: 200,
            patch: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Deny with `message`.
    pub fn deny(reason: &'static str, code: u16, message: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reason,
            message: Some(message.into()),
            code,
            patch: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Encodes the response AdmissionReview for request `uid`.
pub fn encode(uid: &str, d: &Decision) -> Vec<u8> {
    let mut response = serde_json::json!({"uid": uid, "allowed": d.allowed});
    if let Some(m) = &d.message {
        let reason = match d.code {
            403 => "Forbidden",
            409 => "Conflict",
            500 => "InternalError",
            _ => "Invalid",
        };
        response["status"] = serde_json::json!({"code": d.code, "message": m, "reason": reason});
    }
    if d.allowed && !d.patch.is_empty() {
        let patch = serde_json::to_vec(&d.patch).unwrap_or_default();
        response["patchType"] = Value::from("JSONPatch");
        response["patch"] = Value::from(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    if !d.warnings.is_empty() {
        response["warnings"] = Value::from(d.warnings.clone());
    }
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_request_and_encodes_a_patch_response() {
        let body = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"uid": "u1", "kind": {"group": "tidal.io", "version": "v1alpha1", "kind": "Tidal"},
                "operation": "CREATE", "namespace": "ns", "userInfo": {"username": "alice", "groups": ["g"]},
                "object": {"metadata": {"generateName": "t-"}}}
        });
        let req = decode(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(req.object_name(), "t-");
        assert_eq!(req.object_namespace(), "ns");
        assert_eq!(req.user_info.username, "alice");
        let mut d = Decision::allow();
        d.patch = vec![serde_json::json!({"op": "add", "path": "/spec/x", "value": 1})];
        let out: Value = serde_json::from_slice(&encode("u1", &d)).unwrap();
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let deny: Value =
            serde_json::from_slice(&encode("u2", &Decision::deny("invalid", 400, "bad"))).unwrap();
        assert_eq!(deny["response"]["allowed"], false);
        assert_eq!(deny["response"]["status"]["message"], "bad");
    }

    #[test]
    fn rejects_other_versions_and_missing_requests() {
        assert!(decode(b"{}").unwrap_err().contains("expected apiVersion"));
        assert!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
                .unwrap_err()
                .contains("no request")
        );
        assert!(
            decode(b"\xff")
                .unwrap_err()
                .contains("not an AdmissionReview")
        );
    }
}
