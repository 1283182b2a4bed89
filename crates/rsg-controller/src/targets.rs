//! Resolving `spec.targetResources[]` to the workloads to act on.
//!
//! Deployment, StatefulSet and LeaderWorkerSet references are the workload itself (namespace defaulting to
//! the RSG's). A RoleBasedGroup reference names a role; its workload is `subresource.workloadName` or the
//! RBG's own naming `<rbg>-<role>` (truncated to 63 characters), of kind `subresource.workloadKind` or, when
//! unset, the kind the role's pattern implies. The RBG is read, never written.

use api_types::rsg::{ResourceRef, TargetResource, WorkloadKind};
use serde_json::Value;

use crate::kinds::Kind;

/// A resolved target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `targetResources[].name`.
    pub target: String,
    /// The workload's kind.
    pub kind: Kind,
    /// Its API version.
    pub api_version: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// Why a target cannot be resolved without reading a RoleBasedGroup (or at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolve {
    /// Resolved directly.
    Direct(Workload),
    /// A RoleBasedGroup role: read the RBG (`api_version`, `namespace`, `name`) and call [`rbg_role_workload`].
    RoleBasedGroup {
        /// The RBG's API version (e.g. `workloads.x-k8s.io/v1alpha2`).
        api_version: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The role.
        role: String,
    },
    /// The kind is not supported (validation reports it with a hint).
    Unsupported(String),
}

/// The first step of resolving target `t` of an RSG in `rsg_namespace`.
pub fn resolve(t: &TargetResource, rsg_namespace: &str) -> Resolve {
    let r: &ResourceRef = &t.resource_ref;
    let namespace = r
        .namespace
        .clone()
        .unwrap_or_else(|| rsg_namespace.to_string());
    if r.kind == "RoleBasedGroup" {
        return Resolve::RoleBasedGroup {
            api_version: r.api_version.clone(),
            namespace,
            name: r.name.clone(),
            role: r
                .subresource
                .as_ref()
                .and_then(|s| s.role_name.clone())
                .unwrap_or_default(),
        };
    }
    match Kind::parse(&r.kind) {
        Some(kind) => Resolve::Direct(Workload {
            target: t.name.clone(),
            kind,
            api_version: r.api_version.clone(),
            namespace,
            name: r.name.clone(),
        }),
        None => Resolve::Unsupported(r.kind.clone()),
    }
}

/// RBG's workload naming: `<rbg>-<role>`, at most 63 characters.
pub fn rbg_workload_name(rbg: &str, role: &str) -> String {
    let mut n = format!("{rbg}-{role}");
    n.truncate(63);
    n.trim_end_matches('-').to_string()
}

/// The name a RoleBasedGroup target's workload has, without reading the RBG (used to map workload events
/// back to RSGs).
pub fn rbg_target_workload_name(r: &ResourceRef) -> Option<String> {
    let s = r.subresource.as_ref()?;
    Some(
        s.workload_name.clone().unwrap_or_else(|| {
            rbg_workload_name(&r.name, s.role_name.as_deref().unwrap_or_default())
        }),
    )
}

/// Whether target `t` of an RSG in `rsg_namespace` refers to workload `kind` `namespace/name` (used to map
/// a workload's watch events to the RSGs that manage it).
pub fn references(
    t: &TargetResource,
    rsg_namespace: &str,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> bool {
    let r = &t.resource_ref;
    if r.namespace.as_deref().unwrap_or(rsg_namespace) != namespace {
        return false;
    }
    if r.kind == "RoleBasedGroup" {
        return rbg_target_workload_name(r).as_deref() == Some(name);
    }
    r.kind == kind.as_str() && r.name == name
}

/// The workload of `role` in RoleBasedGroup `rbg` (its JSON), for target `t`. The error names what is
/// missing.
pub fn rbg_role_workload(
    t: &TargetResource,
    rbg: &Value,
    namespace: &str,
) -> Result<Workload, String> {
    let r = &t.resource_ref;
    let sub = r.subresource.as_ref();
    let role_name = sub.and_then(|s| s.role_name.as_deref()).unwrap_or_default();
    let roles = rbg.pointer("/spec/roles").and_then(Value::as_array);
    let role = roles
        .into_iter()
        .flatten()
        .find(|role| role.get("name").and_then(Value::as_str) == Some(role_name))
        .ok_or_else(|| {
            let names: Vec<&str> = roles
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("name").and_then(Value::as_str))
                .collect();
            format!(
                "RoleBasedGroup {namespace}/{} has no role {role_name:?} (roles: {names:?}): fix spec.targetResources[].resourceRef.subresource.roleName",
                r.name
            )
        })?;
    let kind = match sub.and_then(|s| s.workload_kind) {
        Some(WorkloadKind::Deployment) => Kind::Deployment,
        Some(WorkloadKind::StatefulSet) => Kind::StatefulSet,
        Some(WorkloadKind::LeaderWorkerSet) => Kind::LeaderWorkerSet,
        None => implied_kind(role),
    };
    let api_version = sub
        .and_then(|s| s.workload_api_version.clone())
        .or_else(|| {
            role.pointer("/workload/apiVersion")
                .and_then(Value::as_str)
                .filter(|_| kind != Kind::LeaderWorkerSet)
                .map(str::to_string)
        })
        .unwrap_or_else(|| kind.default_api_version().to_string());
    Ok(Workload {
        target: t.name.clone(),
        kind,
        api_version,
        namespace: namespace.to_string(),
        name: rbg_target_workload_name(r).unwrap_or_default(),
    })
}

/// A role's workload kind when the reference does not say: a leader/worker pattern runs as a
/// LeaderWorkerSet, a v1alpha1 role says `workload.kind`, otherwise a StatefulSet (RBG's default).
fn implied_kind(role: &Value) -> Kind {
    if role.get("leaderWorkerPattern").is_some() || role.get("leaderWorkerSet").is_some() {
        return Kind::LeaderWorkerSet;
    }
    role.pointer("/workload/kind")
        .and_then(Value::as_str)
        .and_then(Kind::parse)
        .unwrap_or(Kind::StatefulSet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(v: Value) -> TargetResource {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn namespace_defaults_to_rsg() {
        let t = target(
            json!({"name": "p", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}),
        );
        let Resolve::Direct(w) = resolve(&t, "ns") else {
            panic!()
        };
        assert_eq!(w.namespace, "ns");
        assert_eq!(w.kind, Kind::Deployment);
    }

    #[test]
    fn rbg_role_resolves_to_its_workload() {
        let t = target(
            json!({"name": "prefill", "resourceRef": {"apiVersion": "workloads.x-k8s.io/v1alpha2",
            "kind": "RoleBasedGroup", "name": "llm", "subresource": {"type": "RoleBasedGroup", "roleName": "prefill"}}}),
        );
        let rbg = json!({"spec": {"roles": [{"name": "prefill", "replicas": 2, "standalonePattern": {}},
                                             {"name": "decode", "leaderWorkerPattern": {"size": 2}}]}});
        let w = rbg_role_workload(&t, &rbg, "ns").unwrap();
        assert_eq!(
            (w.kind, w.name.as_str(), w.api_version.as_str()),
            (Kind::StatefulSet, "llm-prefill", "apps/v1")
        );
        let mut t2 = t.clone();
        t2.resource_ref.subresource.as_mut().unwrap().role_name = Some("decode".into());
        let w = rbg_role_workload(&t2, &rbg, "ns").unwrap();
        assert_eq!(
            (w.kind, w.name.as_str()),
            (Kind::LeaderWorkerSet, "llm-decode")
        );
        t2.resource_ref.subresource.as_mut().unwrap().role_name = Some("router".into());
        let err = rbg_role_workload(&t2, &rbg, "ns").unwrap_err();
        assert!(
            err.contains("no role \"router\"") && err.contains("prefill"),
            "{err}"
        );
    }

    #[test]
    fn rbg_overrides_win() {
        let t = target(
            json!({"name": "p", "resourceRef": {"apiVersion": "workloads.x-k8s.io/v1alpha2",
            "kind": "RoleBasedGroup", "name": "llm", "subresource": {"type": "RoleBasedGroup", "roleName": "p",
            "workloadKind": "Deployment", "workloadName": "custom"}}}),
        );
        let w = rbg_role_workload(&t, &json!({"spec": {"roles": [{"name": "p"}]}}), "ns").unwrap();
        assert_eq!((w.kind, w.name.as_str()), (Kind::Deployment, "custom"));
    }

    #[test]
    fn references_match_kind_namespace_name() {
        let t = target(
            json!({"name": "p", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}),
        );
        assert!(references(&t, "ns", Kind::Deployment, "ns", "d"));
        assert!(!references(&t, "ns", Kind::StatefulSet, "ns", "d"));
        assert!(!references(&t, "ns", Kind::Deployment, "other", "d"));
        let rbg = target(
            json!({"name": "p", "resourceRef": {"apiVersion": "workloads.x-k8s.io/v1alpha2",
            "kind": "RoleBasedGroup", "name": "llm", "subresource": {"type": "RoleBasedGroup", "roleName": "prefill"}}}),
        );
        assert!(references(
            &rbg,
            "ns",
            Kind::StatefulSet,
            "ns",
            "llm-prefill"
        ));
    }

    #[test]
    fn rbg_name_truncates() {
        let long = "a".repeat(70);
        assert_eq!(rbg_workload_name(&long, "r").len(), 63);
    }
}
