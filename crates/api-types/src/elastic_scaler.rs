//! `elasticscaler.io/v1alpha1` ElasticScaler: scales one target by a trigger (metrics, a linked object's
//! state, or a signal).
//!
//! Field names, defaults and enums follow the upstream CRD. Additive differences: `scalingAlgorithm` is
//! optional (empty means APA, as the upstream README says), and `external`/`custom` accept a `metric` block
//! only to reject it with a message pointing at `metricsName` (the seed's autoscaling/v2 shape).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default of `spec.minReplicas`.
pub const DEFAULT_MIN_REPLICAS: i32 = 1;
/// Default of `spec.maxReplicas`.
pub const DEFAULT_MAX_REPLICAS: i32 = 10;
/// The algorithm used when `scalingAlgorithm` is empty.
pub const DEFAULT_ALGORITHM: &str = "apa";
/// The metric target types the API knows.
pub const TARGET_TYPES: [&str; 3] = ["Utilization", "Value", "AverageValue"];

fn default_min_replicas() -> i32 {
    DEFAULT_MIN_REPLICAS
}
fn default_max_replicas() -> i32 {
    DEFAULT_MAX_REPLICAS
}

/// Desired state of an ElasticScaler.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "elasticscaler.io",
    version = "v1alpha1",
    kind = "ElasticScaler",
    plural = "elasticscalers",
    singular = "elasticscaler",
    shortname = "es",
    category = "pd-orchestrator",
    namespaced,
    status = "ElasticScalerStatus",
    derive = "PartialEq",
    doc = "ElasticScaler scales one target (Deployment, StatefulSet, ResourceScalingGroup, or any kind with a scale subresource or a registered resource handler) from metrics, a linked object's state, or a signal.",
    printcolumn(
        name = "Kind",
        type_ = "string",
        json_path = ".spec.targetRef.kind",
        description = "Target kind"
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.targetRef.name",
        description = "Target name"
    ),
    printcolumn(name = "Trigger", type_ = "string", json_path = ".spec.trigger.type"),
    printcolumn(
        name = "Algorithm",
        type_ = "string",
        json_path = ".spec.trigger.metricsTrigger.scalingAlgorithm"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.currentReplicas"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Available')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ElasticScalerSpec {
    /// The object to scale. The controller picks the resource handler from its apiVersion and kind.
    pub target_ref: ObjectReference,
    /// Lower bound of the replica count; 0 enables scale to zero.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0))]
    pub min_replicas: i32,
    /// Upper bound of the replica count; must not be below minReplicas.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// What drives scaling. Exactly the block named by `type` must be set.
    pub trigger: Trigger,
}

/// Which trigger drives the scaler.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TriggerType {
    /// Metrics and a scaling algorithm.
    MetricsTrigger,
    /// Follow `status.desiredReplicas` of a linked object (e.g. a Tidal).
    StateTrigger,
    /// Event-driven wake-up (scale from zero).
    SignalTrigger,
}

/// The trigger: a type and the one matching block.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// The trigger type; the block of the same name must be set.
    #[serde(rename = "type")]
    pub type_: TriggerType,
    /// Metrics-driven scaling. Required when type is MetricsTrigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_trigger: Option<MetricsTrigger>,
    /// State-driven scaling: follows an object labelled `elasticscaler.io/name` / `elasticscaler.io/namespace`.
    /// Required when type is StateTrigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_trigger: Option<StateTrigger>,
    /// Event-driven scaling. Required when type is SignalTrigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_trigger: Option<SignalTrigger>,
}

/// Metrics-driven scaling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsTrigger {
    /// Algorithm name, case-insensitive: `HPA`, `KPA`, `APA`, or a registered plugin. Empty means APA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_algorithm: Option<String>,
    /// Algorithm parameters (string values); the keys each algorithm reads are documented with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_config: Option<BTreeMap<String, String>>,
    /// The metrics to scale on; the desired count is the maximum over metrics.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub metrics: Vec<MetricSpec>,
}

impl MetricsTrigger {
    /// The algorithm name, lower-cased, with empty meaning APA.
    pub fn algorithm(&self) -> String {
        match self.scaling_algorithm.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_ALGORITHM.to_string(),
            Some(name) => name.to_ascii_lowercase(),
        }
    }
}

/// State-driven scaling. The upstream schema has no fields; the linked object is found by label.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StateTrigger {}

/// Event-driven scaling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalTrigger {
    /// Where signals come from; a full URL wins over `protocol`.
    pub endpoint: String,
    /// Scheme used when `endpoint` has none.
    #[serde(default)]
    pub protocol: Protocol,
}

/// HTTP or HTTPS.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTPS (the upstream default).
    #[default]
    Https,
}

/// The kind of a metric source.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricSourceType {
    /// CPU or memory from metrics.k8s.io.
    Resource,
    /// external.metrics.k8s.io.
    External,
    /// A metric served over HTTP by an external server.
    ExternalServer,
    /// custom.metrics.k8s.io.
    Custom,
}

/// One metric; exactly the block named by `type` must be set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// The metric source type.
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    /// Kubernetes resource metrics (cpu, memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    /// external.metrics.k8s.io.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<NamedMetricSource>,
    /// A metric from an external HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_server: Option<ExternalServerMetricSource>,
    /// custom.metrics.k8s.io.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<NamedMetricSource>,
}

/// A resource metric (cpu, memory).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    /// `cpu` or `memory`.
    pub metrics_name: String,
    /// The target value.
    pub target: MetricTarget,
}

/// A named metric with an optional selector (the shape of both `external` and `custom`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.metric)",
        "message": "metric.name is the autoscaling/v2 HPA shape and not part of this API: use external.metricsName (or custom.metricsName) and selector instead",
        "fieldPath": ".metric",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "has(self.metricsName) || has(self.metric)",
        "message": "metricsName is required: name the metric to read",
        "fieldPath": ".metricsName",
        "reason": "FieldValueRequired"
    }
]))]
pub struct NamedMetricSource {
    /// The metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_name: Option<String>,
    /// Narrows the metric series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The target value.
    pub target: MetricTarget,
    /// Rejected: accepted by the schema only so that the error names `metricsName` as the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MisplacedMetricIdentifier>,
}

/// The autoscaling/v2 `metric: {name, selector}` block, kept only to be rejected with a precise message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct MisplacedMetricIdentifier {
    /// Ignored; use `metricsName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ignored; use the source's `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A metric served by an external HTTP server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalServerMetricSource {
    /// Host[:port][/path] or a full URL.
    pub endpoint: String,
    /// The metric name.
    pub metrics_name: String,
    /// The target value.
    pub target: Quantity,
    /// Optional query sent to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Scheme used when `endpoint` has none.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A metric target (the autoscaling/v2 MetricTarget shape).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.type in ['Utilization', 'Value', 'AverageValue']",
    "messageExpression": "'target.type ' + self.type + ' is not valid' + (self.type.lowerAscii().startsWith('averagevalue') ? ': did you mean AverageValue?' : (self.type.lowerAscii().startsWith('util') ? ': did you mean Utilization?' : '')) + ' (one of Utilization, Value, AverageValue)'",
    "fieldPath": ".type",
    "reason": "FieldValueInvalid"
}]))]
pub struct MetricTarget {
    /// Utilization, Value or AverageValue.
    #[serde(rename = "type")]
    pub type_: String,
    /// Target value of the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// Target of the per-pod average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// Target of the per-pod average, as a percentage of requests (Resource metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

/// Observed state of an ElasticScaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElasticScalerStatus {
    /// Validated, MetricsCollected, ScalingCalculated, ReconciliationComplete, Available, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Replicas of the target when last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// Replicas the scaler last decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// When the target was last scaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// When the scaler last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
}
