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
    /// Extension: scale to zero through the DLX when idle (needs `minReplicas: 0` and a MetricsTrigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero: Option<ScaleToZero>,
}

/// Default of `scaleToZero.idleSeconds`.
pub const DEFAULT_IDLE_SECONDS: i32 = 300;
/// Default of `scaleToZero.wakeReplicas`.
pub const DEFAULT_WAKE_REPLICAS: i32 = 1;
/// The DLX pod labels used when `scaleToZero.dlxSelector` is empty.
pub const DEFAULT_DLX_SELECTOR: (&str, &str) = ("app.kubernetes.io/name", "dlx");

fn default_idle_seconds() -> i32 {
    DEFAULT_IDLE_SECONDS
}
fn default_wake_replicas() -> i32 {
    DEFAULT_WAKE_REPLICAS
}

/// Extension: scale to zero without losing a request. When every metric has read 0 for `idleSeconds`,
/// the Service is pointed at the DLX pods (its original selector kept in an annotation), its
/// EndpointSlices are checked to list only DLX endpoints, and only then is the target scaled to 0. A
/// request held by the DLX wakes it: scale to `wakeReplicas`, wait for ready pods, restore the selector,
/// check the EndpointSlices again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleToZero {
    /// The Service clients send to (same namespace); it is handed to the DLX while the target is at zero.
    pub service: String,
    /// Seconds every metric must read 0 before scaling to zero.
    #[serde(default = "default_idle_seconds")]
    #[schemars(range(min = 10))]
    pub idle_seconds: i32,
    /// Labels of the DLX pods; default `app.kubernetes.io/name: dlx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlx_selector: Option<BTreeMap<String, String>>,
    /// Replicas to wake to.
    #[serde(default = "default_wake_replicas")]
    #[schemars(range(min = 1))]
    pub wake_replicas: i32,
}

impl ScaleToZero {
    /// The DLX pod labels.
    pub fn dlx_labels(&self) -> BTreeMap<String, String> {
        match &self.dlx_selector {
            Some(s) if !s.is_empty() => s.clone(),
            _ => [(
                DEFAULT_DLX_SELECTOR.0.to_string(),
                DEFAULT_DLX_SELECTOR.1.to_string(),
            )]
            .into(),
        }
    }
}

/// Where a scale-to-zero target is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ZeroPhase {
    /// Serving; the Service selects the workload.
    Active,
    /// Idle: the Service is being handed to the DLX; the target is scaled to 0 once that is verified.
    ScalingToZero,
    /// At zero; the Service selects the DLX pods.
    AtZero,
    /// A request arrived: scaling up, then the Service is handed back once pods are ready.
    Waking,
}

/// Extension: scale-to-zero state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleToZeroStatus {
    /// Active, ScalingToZero, AtZero or Waking.
    pub phase: ZeroPhase,
    /// Since when every metric has read 0 (absent while active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<Time>,
    /// What the hand-over is doing or waiting for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
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
    /// Extension: a PromQL query against Prometheus.
    Prometheus,
    /// Extension: a metric scraped from `/metrics` of every ready pod of the target.
    Pods,
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
    /// Extension: PromQL against Prometheus. Required when type is Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetricSource>,
    /// Extension: scrape every ready pod's `/metrics`. Required when type is Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSource>,
}

/// How a Prometheus series is turned into one value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PromMetricType {
    /// `sum(<name>{<scope>})`.
    #[default]
    Gauge,
    /// `sum(rate(<name>{<scope>}[<window>]))`.
    Counter,
    /// `histogram_quantile(<quantile>, sum by (le) (rate(<name>_bucket{<scope>}[<window>])))`.
    Histogram,
}

/// Extension: a value read from Prometheus. Either `query` (used as written) or `metricsName` (the query is
/// built from `metricType`, scoped to the target's ready pods by `namespace` and `pod` labels).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetricSource {
    /// A PromQL expression that returns one number (a scalar or a one-element vector); wins over metricsName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The metric name, e.g. `vllm:num_requests_waiting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_name: Option<String>,
    /// Gauge (default), Counter or Histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<PromMetricType>,
    /// rate() window for Counter and Histogram, e.g. `1m` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Quantile for Histogram, in (0, 1], as a string, e.g. `"0.95"` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<String>,
    /// Extra label matchers added to the built query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Prometheus base URL; default: the elastic-scaler's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_address: Option<String>,
    /// The target: Value compares the whole value, AverageValue divides it among replicas.
    pub target: MetricTarget,
}

/// Extension: a metric scraped from every ready pod of the target, in parallel under one deadline.
/// Unready pods and pods whose scrape fails are excluded and counted, never read as 0.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSource {
    /// The metric name in the Prometheus text format, e.g. `vllm:num_requests_waiting`; series are summed.
    pub metrics_name: String,
    /// Container port to scrape; default: the pod's `prometheus.io/port` annotation, else 8000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Path to scrape (default `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only series with these labels are summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The target: AverageValue per pod (HPA's Pods metric), or Value for the total.
    pub target: MetricTarget,
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
    /// When the status last changed. Extension note: not bumped by a reconcile that changed nothing, so
    /// an idle scaler costs no API writes; `elastic_scaler_last_sync_timestamp_seconds` has every sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Extension: the algorithm that decided (lower-case registry name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Extension: why the last decision is what it is (the algorithm's reason, then any guard that held it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Extension: the metrics seen by the last decision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub current_metrics: Vec<MetricStatus>,
    /// Extension: recent scale changes, newest last (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub history: Vec<ScaleRecord>,
    /// Extension: raw recommendations where they changed (time, replicas), for the stabilization window to
    /// survive a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub recommendations: Vec<RecommendationRecord>,
    /// Extension: the KPA is in panic mode (a restarted controller resumes in panic at the current scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panicking: Option<bool>,
    /// Extension: scale-to-zero phase (only with `spec.scaleToZero`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero: Option<ScaleToZeroStatus>,
}

/// One metric as seen by the last decision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// `<type>/<name>`, e.g. `Pods/vllm:num_requests_waiting`.
    pub name: String,
    /// The value read (the total, or the per-pod average for per-pod sources), or absent if unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The target, as `<type>=<value>`.
    pub target: String,
    /// Pods whose value counted (per-pod sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_pods: Option<i32>,
    /// Pods excluded: not ready, or their scrape failed (per-pod sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_pods: Option<i32>,
    /// Why the value is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A scale change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRecord {
    /// When.
    pub time: Time,
    /// Replicas before.
    pub from: i32,
    /// Replicas after.
    pub to: i32,
    /// Why.
    pub reason: String,
}

/// A raw recommendation that differed from the one before it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationRecord {
    /// Unix time in seconds when the recommendation started.
    pub at: i64,
    /// Replicas recommended.
    pub replicas: i32,
}
