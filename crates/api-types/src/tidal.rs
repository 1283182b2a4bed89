//! `tidal.io/v1alpha1` Tidal: time-based scaling by cron rules, each `CRON_TZ=<zone> <cron>`.
//!
//! The active rule is the one that fired most recently; the Tidal writes its target's scale subresource
//! and/or publishes `status.desiredReplicas` for an ElasticScaler StateTrigger.

pub mod schedule;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Tidal.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tidal.io",
    version = "v1alpha1",
    kind = "Tidal",
    plural = "tidals",
    singular = "tidal",
    shortname = "td",
    category = "pd-orchestrator",
    namespaced,
    status = "TidalStatus",
    derive = "PartialEq",
    doc = "Tidal sets its target's replicas at times given by cron rules (CRON_TZ=<zone> prefix mandatory).",
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.targetRef.kind",
        description = "Target workload kind"
    ),
    printcolumn(
        name = "Target Name",
        type_ = "string",
        json_path = ".spec.targetRef.name",
        description = "Target workload name"
    ),
    printcolumn(
        name = "Desired Replicas",
        type_ = "integer",
        json_path = ".status.desiredReplicas",
        description = "Current desired replicas"
    ),
    printcolumn(
        name = "Active Rule",
        type_ = "string",
        json_path = ".status.activeRule",
        description = "Currently active rule"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status",
        description = "Ready status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TidalSpec {
    /// The object to scale.
    pub target_ref: TidalTargetRef,
    /// The time triggers.
    pub triggers: Triggers,
}

/// The object a Tidal scales.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TidalTargetRef {
    /// API version of the target.
    #[schemars(length(min = 1))]
    pub api_version: String,
    /// Kind of the target.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Name of the target.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Namespace of the target.
    #[schemars(length(min = 1))]
    pub namespace: String,
}

/// Trigger sources.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Triggers {
    /// Time-based rules.
    pub times: Times,
}

/// Time-based rules.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Times {
    /// 1 to 100 rules with unique names.
    #[schemars(length(min = 1, max = 100))]
    pub rules: Vec<Rule>,
}

/// One rule: from each firing of `cron` on, the target has `replicas`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Rule {
    /// Unique name, reported in status.
    #[schemars(length(min = 1))]
    pub name: String,
    /// `CRON_TZ=<IANA zone> <5-field cron>`, e.g. `CRON_TZ=Asia/Shanghai 0 9 * * 1-5`.
    #[schemars(length(max = 512), regex(pattern = "^CRON_TZ=.*"))]
    pub cron: String,
    /// Replicas while this rule is active.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Observed state of a Tidal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TidalStatus {
    /// The currently active rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_rule: Option<String>,
    /// When the active rule took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_rule_effective_time: Option<Time>,
    /// Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The replicas currently in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// The previously active rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger_rule: Option<String>,
    /// When the previously active rule fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger_time: Option<Time>,
    /// The rule that fires next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_trigger_rule: Option<String>,
    /// When the next rule fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_trigger_time: Option<Time>,
}
