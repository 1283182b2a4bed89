//! `autoscaling.openfuyao.com/v1alpha1` ResourceScalingGroup: scales a set of workloads as one group,
//! either by cloning the whole set (GroupReplication) or by keeping followers at a ratio of a leader
//! (InplaceScaling).
//!
//! The scale subresource maps to `.spec.scalingStrategy.groupConfig.replicas` (the group count), so
//! `kubectl scale`, a native HPA and an ElasticScaler all drive the group count.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a ResourceScalingGroup.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "autoscaling.openfuyao.com",
    version = "v1alpha1",
    kind = "ResourceScalingGroup",
    plural = "resourcescalinggroups",
    singular = "resourcescalinggroup",
    shortname = "rsg",
    category = "pd-orchestrator",
    namespaced,
    status = "ResourceScalingGroupStatus",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.scalingStrategy.groupConfig.replicas",
        status_replicas_path = ".status.currentReplicas",
        label_selector_path = ".status.selector"
    ),
    doc = "ResourceScalingGroup scales a set of workloads (e.g. prefill + decode) as one unit: GroupReplication clones the whole set per group, InplaceScaling keeps followers at a ratio of a leader.",
    printcolumn(
        name = "Strategy",
        type_ = "string",
        json_path = ".spec.scalingStrategy.type"
    ),
    printcolumn(
        name = "Targets",
        type_ = "string",
        json_path = ".status.targets",
        description = "targetResources[].name, comma-separated"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.scalingStrategy.groupConfig.replicas",
        description = "Desired groups (GroupReplication)"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.currentReplicas",
        description = "Groups observed"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceScalingGroupSpec {
    /// How the group scales.
    pub scaling_strategy: ScalingStrategy,
    /// The workloads managed by this group.
    #[schemars(length(min = 1))]
    pub target_resources: Vec<TargetResource>,
}

/// The strategy type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StrategyType {
    /// Clone the whole set of targets per group.
    GroupReplication,
    /// Keep followers at leader × followRatio.
    InplaceScaling,
}

/// How the group scales.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStrategy {
    /// The strategy type.
    #[serde(rename = "type")]
    pub type_: StrategyType,
    /// GroupReplication settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_config: Option<GroupConfig>,
    /// InplaceScaling settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_follower_config: Option<LeaderFollowerConfig>,
}

/// GroupReplication settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupConfig {
    /// Prefix of clone names `<groupName>-<baseName>-<groupID>`; defaults to the RSG name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "messageExpression": "'groupName ' + self + ' is used in clone names <groupName>-<baseName>-<groupID> and Service names, which must be lowercase RFC 1123 labels (a-z, 0-9, -; starting and ending alphanumeric): use ' + self.lowerAscii() + ' or another lowercase name'",
        "reason": "FieldValueInvalid"
    }]))]
    pub group_name: Option<String>,
    /// The desired number of groups (group 0 is the base workloads).
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// How groups are chosen for removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
}

/// Scale-down ordering.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDown {
    /// The metric that orders groups for removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<ScaleDownMetric>,
    /// `ascending` removes the smallest value first, `descending` the largest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

/// The metric that orders groups for removal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownMetric {
    /// Aggregation across a group's series; default avg for Gauge, sum for Counter/Histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Aggregator>,
    /// Metric name or PromQL expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub expr: Option<String>,
    /// Counter, Gauge or Histogram.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<MetricType>,
    /// Range window for rate() (required for Counter/Histogram), e.g. `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// Aggregation operator.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aggregator {
    /// sum by (group_id)
    Sum,
    /// avg by (group_id)
    Avg,
    /// max by (group_id)
    Max,
    /// min by (group_id)
    Min,
}

impl Aggregator {
    /// The PromQL operator.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Max => "max",
            Self::Min => "min",
        }
    }
}

/// Metric type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricType {
    /// Monotonic counter: rate() over `window`.
    Counter,
    /// Point-in-time value.
    Gauge,
    /// Histogram series: rate() over `window`.
    Histogram,
}

/// Scale-down order.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Remove the group with the smallest value first.
    Ascending,
    /// Remove the group with the largest value first.
    Descending,
}

/// InplaceScaling settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderFollowerConfig {
    /// The leader resource.
    pub leader: Leader,
    /// Follower resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub follower: Option<Vec<Follower>>,
}

/// The leader of an InplaceScaling group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    /// Replicas forced on the leader before followers are computed.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// A `targetResources[].name`.
    #[schemars(length(min = 1))]
    pub resource_name: String,
}

/// A follower of an InplaceScaling group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Follower {
    /// follower replicas = leader replicas × followRatio.
    #[schemars(range(min = 1))]
    pub follow_ratio: i32,
    /// A `targetResources[].name`.
    #[schemars(length(min = 1))]
    pub resource_name: String,
}

/// A managed workload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    /// Logical name used by the strategy's references.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The workload object.
    pub resource_ref: ResourceRef,
}

/// Reference to a workload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// API version of the workload, e.g. `apps/v1`.
    #[schemars(length(min = 1))]
    pub api_version: String,
    /// Kind of the workload: Deployment, StatefulSet, LeaderWorkerSet, or RoleBasedGroup with `subresource`.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Name of the workload.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Namespace of the workload; defaults to the RSG's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Selects a role's workload inside a RoleBasedGroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<Subresource>,
}

/// The subresource selector type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SubresourceType {
    /// A role of a RoleBasedGroup.
    RoleBasedGroup,
}

/// Kinds a RoleBasedGroup role's workload can have.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WorkloadKind {
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 Deployment.
    Deployment,
    /// leaderworkerset.x-k8s.io/v1 LeaderWorkerSet.
    LeaderWorkerSet,
}

/// Selects a role's workload inside a RoleBasedGroup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subresource {
    /// The selector type.
    #[serde(rename = "type")]
    pub type_: SubresourceType,
    /// The role within the RoleBasedGroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// Overrides the API version of the role's workload.
    #[serde(
        default,
        rename = "workloadApiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub workload_api_version: Option<String>,
    /// The kind of the role's workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<WorkloadKind>,
    /// Overrides the role's workload name (default `<rbg>-<role>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_name: Option<String>,
}

/// Observed state of a ResourceScalingGroup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceScalingGroupStatus {
    /// Ready (reason Reconciled on success) and the failure conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Groups currently observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// The last desired group count the controller acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_desired_replicas: Option<i32>,
    /// The last reconciled generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Label selector of the group's pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// `targetResources[].name`, comma-separated, for `kubectl get` (server-side printer columns show only
    /// the first match of a list path, so the controller keeps this summary). Extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    /// The last GroupReplication scale-down: which groups went and which path chose them. Extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_down: Option<ScaleDownRecord>,
}

/// How the last scale-down chose its victims.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownRecord {
    /// `Prometheus`, `Annotation` (fallback 1) or `MaxGroupId` (fallback 2).
    pub path: String,
    /// The group ids removed, in removal order.
    pub groups: Vec<i32>,
    /// The values used, or why a fallback was taken.
    pub reason: String,
    /// When (RFC 3339).
    pub time: String,
}

impl ResourceScalingGroup {
    /// The clone-name prefix: `groupConfig.groupName`, or the RSG's own name.
    pub fn group_name(&self) -> &str {
        self.spec
            .scaling_strategy
            .group_config
            .as_ref()
            .and_then(|g| g.group_name.as_deref())
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

/// The name of the clone of `base` in group `group_id`: `<groupName>-<baseName>-<groupID>`.
pub fn clone_name(group_name: &str, base: &str, group_id: u32) -> String {
    format!("{group_name}-{base}-{group_id}")
}

/// The name of the clone of Service `svc` in group `group_id`: `<svc>-<groupName>-<groupID>`.
pub fn service_clone_name(svc: &str, group_name: &str, group_id: u32) -> String {
    format!("{svc}-{group_name}-{group_id}")
}

/// The name of the replica-baseline ConfigMap: `<rsg>-replica-config`.
pub fn replica_config_name(rsg: &str) -> String {
    format!("{rsg}-replica-config")
}
