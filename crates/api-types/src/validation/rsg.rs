//! ResourceScalingGroup rules: targets, references between the strategy and the targets, the strategy's
//! own block, the scale-down metric, and the names clones will get.

use std::collections::{BTreeSet, HashMap};

use super::{FieldError, did_you_mean, is_dns1123_subdomain, parse_duration};
use crate::rsg::{
    MetricType, ResourceScalingGroupSpec, StrategyType, clone_name, service_clone_name,
};

/// Workload kinds an RSG can manage directly.
pub const SUPPORTED_KINDS: [&str; 4] = [
    "Deployment",
    "StatefulSet",
    "LeaderWorkerSet",
    "RoleBasedGroup",
];

/// Validates an RSG spec. `rsg_name` is the object's name (the default groupName).
pub fn validate_rsg(rsg_name: &str, spec: &ResourceScalingGroupSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let targets = &spec.target_resources;
    if targets.is_empty() {
        errs.push(FieldError::new(
            "spec.targetResources",
            "at least one target resource is required",
        ));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut refs: HashMap<(String, String, String, String), usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        let path = format!("spec.targetResources[{i}]");
        if let Some(first) = names.insert(t.name.as_str(), i) {
            errs.push(FieldError::new(
                format!("{path}.name"),
                format!("name {:?} is already used by targetResources[{first}]: give each target a unique name", t.name),
            ));
        }
        let r = &t.resource_ref;
        let key = (
            r.api_version.clone(),
            r.kind.clone(),
            r.namespace.clone().unwrap_or_default(),
            r.name.clone(),
        );
        if let Some(first) = refs.insert(key, i) {
            errs.push(FieldError::new(
                format!("{path}.resourceRef"),
                format!("{} {} is already referenced by targetResources[{first}]: each workload may appear once", r.kind, r.name),
            ));
        }
        if !SUPPORTED_KINDS.contains(&r.kind.as_str()) {
            let hint = did_you_mean(&r.kind, &SUPPORTED_KINDS)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            errs.push(FieldError::new(
                format!("{path}.resourceRef.kind"),
                format!(
                    "kind {:?} is not supported{hint}: use one of {}",
                    r.kind,
                    SUPPORTED_KINDS.join(", ")
                ),
            ));
        }
        if r.kind == "RoleBasedGroup"
            && r.subresource
                .as_ref()
                .and_then(|s| s.role_name.as_deref())
                .is_none()
        {
            errs.push(FieldError::new(
                format!("{path}.resourceRef.subresource.roleName"),
                "a RoleBasedGroup target needs subresource.type RoleBasedGroup and subresource.roleName naming the role to scale",
            ));
        }
    }

    let s = &spec.scaling_strategy;
    match s.type_ {
        StrategyType::GroupReplication => {
            if s.leader_follower_config.is_some() {
                errs.push(FieldError::new(
                    "spec.scalingStrategy.leaderFollowerConfig",
                    "leaderFollowerConfig is for InplaceScaling: remove it, or set type InplaceScaling",
                ));
            }
            match &s.group_config {
                None => errs.push(FieldError::new(
                    "spec.scalingStrategy.groupConfig",
                    "GroupReplication needs groupConfig with replicas (the number of groups)",
                )),
                Some(g) => {
                    let group = g.group_name.as_deref().unwrap_or(rsg_name);
                    validate_clone_names(group, g.group_name.is_some(), spec, &mut errs);
                    if let Some(m) = g.scale_down.as_ref().and_then(|d| d.metric.as_ref()) {
                        let path = "spec.scalingStrategy.groupConfig.scaleDown.metric";
                        if m.expr.as_deref().unwrap_or_default().trim().is_empty() {
                            errs.push(FieldError::new(
                                format!("{path}.expr"),
                                "expr is required: a metric name or PromQL expression",
                            ));
                        }
                        let needs_window =
                            matches!(m.type_, Some(MetricType::Counter | MetricType::Histogram));
                        match m.window.as_deref() {
                            None if needs_window => errs.push(FieldError::new(
                                format!("{path}.window"),
                                format!(
                                    "window is required for type {:?}: e.g. 2m",
                                    m.type_.unwrap_or(MetricType::Counter)
                                ),
                            )),
                            Some(w) if parse_duration(w).is_none() => errs.push(FieldError::new(
                                format!("{path}.window"),
                                format!("window {w:?} is not a duration: use e.g. 30s, 2m, 1h"),
                            )),
                            _ => {}
                        }
                    }
                }
            }
        }
        StrategyType::InplaceScaling => {
            if s.group_config.is_some() {
                errs.push(FieldError::new(
                    "spec.scalingStrategy.groupConfig",
                    "groupConfig is for GroupReplication: remove it, or set type GroupReplication",
                ));
            }
            match &s.leader_follower_config {
                None => errs.push(FieldError::new(
                    "spec.scalingStrategy.leaderFollowerConfig",
                    "InplaceScaling needs leaderFollowerConfig with a leader and followers",
                )),
                Some(lf) => {
                    let known = |n: &str| names.contains_key(n);
                    let base = "spec.scalingStrategy.leaderFollowerConfig";
                    if lf.leader.resource_name.trim().is_empty() {
                        errs.push(FieldError::new(
                            format!("{base}.leader.resourceName"),
                            "a leader is required: set leader.resourceName to one of targetResources[].name",
                        ));
                    } else if !known(&lf.leader.resource_name) {
                        errs.push(unknown_ref(
                            &format!("{base}.leader.resourceName"),
                            &lf.leader.resource_name,
                            &names,
                        ));
                    }
                    let mut seen = BTreeSet::new();
                    for (i, f) in lf.follower.iter().flatten().enumerate() {
                        let path = format!("{base}.follower[{i}]");
                        if !known(&f.resource_name) {
                            errs.push(unknown_ref(
                                &format!("{path}.resourceName"),
                                &f.resource_name,
                                &names,
                            ));
                        }
                        if f.resource_name == lf.leader.resource_name {
                            errs.push(FieldError::new(
                                format!("{path}.resourceName"),
                                format!("{:?} is the leader and cannot also follow it: remove it from follower", f.resource_name),
                            ));
                        }
                        if !seen.insert(f.resource_name.as_str()) {
                            errs.push(FieldError::new(
                                format!("{path}.resourceName"),
                                format!(
                                    "{:?} is listed as a follower twice: keep one entry",
                                    f.resource_name
                                ),
                            ));
                        }
                        if f.follow_ratio < 1 {
                            errs.push(FieldError::new(
                                format!("{path}.followRatio"),
                                "followRatio must be at least 1",
                            ));
                        }
                    }
                    if lf.follower.as_ref().is_none_or(Vec::is_empty) {
                        errs.push(FieldError::new(
                            format!("{base}.follower"),
                            "at least one follower is required",
                        ));
                    }
                }
            }
        }
    }
    errs
}

fn unknown_ref(field: &str, name: &str, names: &HashMap<&str, usize>) -> FieldError {
    let mut known: Vec<&str> = names.keys().copied().collect();
    known.sort_unstable();
    FieldError::new(
        field,
        format!(
            "{name:?} is not a targetResources[].name: use one of {}",
            known.join(", ")
        ),
    )
}

fn validate_clone_names(
    group: &str,
    explicit: bool,
    spec: &ResourceScalingGroupSpec,
    errs: &mut Vec<FieldError>,
) {
    let field = if explicit {
        "spec.scalingStrategy.groupConfig.groupName"
    } else {
        "metadata.name"
    };
    if !super::is_dns1123_label(group) {
        errs.push(FieldError::new(
            field,
            format!(
                "groupName {group:?} is used in clone names <groupName>-<baseName>-<groupID> and must be a lowercase RFC 1123 label: use {:?}",
                group.to_ascii_lowercase()
            ),
        ));
        return;
    }
    // Services selecting the base are cloned as <svc>-<groupName>-<id>; Service names are RFC 1035
    // labels (≤ 63), so a long groupName breaks them for any Service longer than what is left.
    // Group ids are small; 99 bounds the suffix length for the name-length checks.
    let room = 63usize.saturating_sub(service_clone_name("", group, 99).len());
    if room < 8 {
        errs.push(FieldError::new(
            field,
            format!("groupName {group:?} leaves only {room} characters for Service names in clones <svc>-<groupName>-<groupID> (max 63): shorten groupName"),
        ));
    }
    for t in &spec.target_resources {
        let workload = clone_name(group, &t.resource_ref.name, 99);
        if !is_dns1123_subdomain(&workload) {
            errs.push(FieldError::new(
                field,
                format!("clone name {workload:?} (for target {:?}) would not be a valid object name: shorten groupName or the workload name", t.name),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResourceScalingGroup;

    fn parse(yaml: &str) -> (String, ResourceScalingGroupSpec) {
        let r: ResourceScalingGroup = serde_yaml::from_str(yaml).expect("fixture parses");
        (r.metadata.name.unwrap(), r.spec)
    }

    const GROUP: &str = r#"
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: pd}
spec:
  targetResources:
  - name: prefill
    resourceRef: {apiVersion: apps/v1, kind: Deployment, name: prefill}
  - name: decode
    resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}
  scalingStrategy:
    type: GroupReplication
    groupConfig:
      groupName: pd
      replicas: 2
      scaleDown:
        metric: {expr: "vllm:num_requests_running", type: Gauge}
        order: ascending
"#;

    const INPLACE: &str = r#"
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: ip}
spec:
  targetResources:
  - name: prefill
    resourceRef: {apiVersion: apps/v1, kind: Deployment, name: prefill}
  - name: decode
    resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}
  scalingStrategy:
    type: InplaceScaling
    leaderFollowerConfig:
      leader: {resourceName: prefill, replicas: 3}
      follower:
      - {resourceName: decode, followRatio: 2}
"#;

    fn check(yaml: &str) -> Vec<FieldError> {
        let (name, spec) = parse(yaml);
        validate_rsg(&name, &spec)
    }

    #[test]
    fn valid_specs() {
        assert_eq!(check(GROUP), vec![]);
        assert_eq!(check(INPLACE), vec![]);
    }

    #[test]
    fn uppercase_group_name_is_named() {
        let errs = check(&GROUP.replace("groupName: pd", "groupName: Prefill-Decode"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.scalingStrategy.groupConfig.groupName");
        assert!(errs[0].message.contains("\"prefill-decode\""));
    }

    #[test]
    fn long_group_name_is_reported_once_and_every_clone_name_is_still_checked() {
        let long = "g".repeat(60);
        let y = GROUP
            .replace("groupName: pd", &format!("groupName: {long}"))
            .replace(
                "kind: Deployment, name: decode}",
                &format!("kind: Deployment, name: {}}}", "d".repeat(200)),
            );
        let errs = check(&y);
        assert_eq!(
            errs.iter()
                .filter(|e| e.message.contains("characters for Service names"))
                .count(),
            1,
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.message.contains("for target \"decode\"")),
            "{errs:?}"
        );
    }

    #[test]
    fn duplicate_targets_and_unsupported_kind() {
        let y = GROUP.replace("name: decode\n    resourceRef: {apiVersion: apps/v1, kind: Deployment, name: decode}", "name: prefill\n    resourceRef: {apiVersion: apps/v1, kind: Deploymnet, name: prefill}");
        let errs = check(&y);
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.targetResources[1].name"),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.message.contains("did you mean Deployment?")),
            "{errs:?}"
        );
    }

    #[test]
    fn counter_needs_a_valid_window() {
        let errs = check(&GROUP.replace("type: Gauge}", "type: Counter}"));
        assert!(
            errs.iter()
                .any(|e| e.field.ends_with("metric.window") && e.message.contains("required")),
            "{errs:?}"
        );
        let errs = check(&GROUP.replace("type: Gauge}", "type: Counter, window: 2 minutes}"));
        assert!(
            errs.iter().any(|e| e.message.contains("not a duration")),
            "{errs:?}"
        );
    }

    #[test]
    fn leader_follower_errors() {
        let y = INPLACE.replace("- {resourceName: decode, followRatio: 2}", "- {resourceName: prefill, followRatio: 2}\n      - {resourceName: nope, followRatio: 1}");
        let errs = check(&y);
        assert!(
            errs.iter()
                .any(|e| e.message.contains("is the leader and cannot also follow")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e
                .message
                .contains("\"nope\" is not a targetResources[].name: use one of decode, prefill")),
            "{errs:?}"
        );
    }

    #[test]
    fn missing_leader_twice_follower_low_ratio_and_no_targets() {
        let y = INPLACE
            .replace("resourceName: prefill, replicas: 3", "resourceName: \"\", replicas: 3")
            .replace(
                "- {resourceName: decode, followRatio: 2}",
                "- {resourceName: decode, followRatio: 0}\n      - {resourceName: decode, followRatio: 1}",
            );
        let msgs: Vec<_> = check(&y).iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("leader.resourceName: a leader is required")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m
                .contains("follower[1].resourceName: \"decode\" is listed as a follower twice")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("follower[0].followRatio: followRatio must be at least 1")),
            "{msgs:?}"
        );
        let (name, mut spec) = parse(GROUP);
        spec.target_resources.clear();
        let errs = validate_rsg(&name, &spec);
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.targetResources" && e.message.contains("at least one")),
            "{errs:?}"
        );
    }

    #[test]
    fn role_based_group_needs_a_role_and_default_group_name_is_the_rsg_name() {
        let y = GROUP
            .replace(
                "kind: Deployment, name: decode}",
                "kind: RoleBasedGroup, name: decode}",
            )
            .replace("      groupName: pd\n", "")
            .replace("name: pd}", "name: My.RSG}");
        let msgs: Vec<_> = check(&y).iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter().any(|m| m.contains("subresource.roleName")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("metadata.name: groupName \"My.RSG\"")),
            "{msgs:?}"
        );
    }

    #[test]
    fn strategy_blocks_must_match_type() {
        let y = INPLACE.replace("type: InplaceScaling", "type: GroupReplication");
        let errs = check(&y);
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.scalingStrategy.leaderFollowerConfig"),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.scalingStrategy.groupConfig"),
            "{errs:?}"
        );
    }
}
