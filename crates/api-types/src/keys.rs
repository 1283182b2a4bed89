//! Every label, annotation, finalizer, condition type and reason the components share.
//!
//! Controllers never spell these as string literals; they use the constants here, so a rename is one edit
//! and a typo is a compile error.

/// API groups and versions.
pub mod groups {
    /// ElasticScaler's group.
    pub const ELASTIC_SCALER: &str = "elasticscaler.io";
    /// ResourceScalingGroup's group.
    pub const RSG: &str = "autoscaling.openfuyao.com";
    /// Tidal's group.
    pub const TIDAL: &str = "tidal.io";
    /// The version all three are served at.
    pub const VERSION: &str = "v1alpha1";
}

/// Labels.
pub mod labels {
    /// The ResourceScalingGroup that manages a workload, Service, snapshot or ConfigMap.
    pub const RSG_NAME: &str = "rsg.io/name";
    /// The group a workload or pod belongs to; group `0` is the base workload itself.
    pub const RSG_GROUP_ID: &str = "rsg.io/group-id";
    /// On a Tidal (or another state source): the ElasticScaler whose StateTrigger follows it.
    pub const ES_NAME: &str = "elasticscaler.io/name";
    /// On a Tidal (or another state source): the namespace of that ElasticScaler.
    pub const ES_NAMESPACE: &str = "elasticscaler.io/namespace";
    /// The component that manages an object (`app.kubernetes.io/managed-by`).
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Value of [`MANAGED_BY`] for objects pd-orchestrator creates.
    pub const MANAGED_BY_VALUE: &str = "pd-orchestrator";
    /// LeaderWorkerSet's own name label; Service selectors on it are rewritten in clones.
    pub const LWS_NAME: &str = "leaderworkerset.sigs.k8s.io/name";
    /// Scale to zero: on the workload Service an ElasticScaler keeps beside a scaled-to-zero Service (same
    /// ports, the original selector, headless): the name of the Service it shadows. Its EndpointSlices
    /// list the workload's own pods whatever the Service's selector points at.
    pub const SHADOW_OF: &str = "elasticscaler.io/shadow-of";
}

/// Annotations.
pub mod annotations {
    /// On a group's copy of `targetResources[0]`: the value used to order scale-down when Prometheus is
    /// unavailable (seed 002's first fallback).
    pub const RSG_METRIC_VALUES: &str = "autoscaling.rsg.metric.values";
    /// On a Service handed to the DLX: its original selector, as JSON, to restore on wake-up.
    pub const ORIGINAL_SELECTOR: &str = "elasticscaler.io/original-selector";
    /// Scale to zero: on a Service whose workload scales to zero, the ElasticScaler (same namespace) that
    /// manages it. The DLX serves only Services that carry it.
    pub const SCALER: &str = "elasticscaler.io/scaler";
    /// Scale to zero: on that Service, the name of its workload Service (see `labels::SHADOW_OF`).
    pub const WORKLOAD_SERVICE: &str = "elasticscaler.io/workload-service";
    /// Scale to zero: on the ElasticScaler, the RFC 3339 time of the request that asked to wake the workload.
    /// Written by one DLX replica (optimistic concurrency on resourceVersion); removed by the ElasticScaler
    /// when the workload is serving again.
    pub const WAKE_REQUESTED: &str = "elasticscaler.io/wake-requested";
    /// On an RSG snapshot (ControllerRevision): the `targetResources[].name` it was taken of.
    pub const RSG_TARGET: &str = "rsg.io/target";
    /// On an RSG snapshot: the workload it was taken of, `<Kind>/<namespace>/<name>`.
    pub const RSG_SOURCE: &str = "rsg.io/source";
    /// Prefix of the upstream behaviour annotations (`elasticscaler.io/behavior.scaleUp.stabilizationWindowSeconds`, ...).
    pub const ES_BEHAVIOR_PREFIX: &str = "elasticscaler.io/behavior.";
    /// Prefix of the upstream metric-window annotations (`elasticscaler.io/metrics.windowSeconds`, ...).
    pub const ES_METRICS_PREFIX: &str = "elasticscaler.io/metrics.";
}

/// Finalizers.
pub mod finalizers {
    /// Held by the RSG controller until snapshots and the replica ConfigMap are removed.
    pub const RSG_CLEANUP: &str = "autoscaling.openfuyao.com/rsg-cleanup";
}

/// Condition types.
pub mod conditions {
    /// Generic readiness (RSG, Tidal).
    pub const READY: &str = "Ready";
    /// Work is under way (Tidal, ElasticScaler).
    pub const PROGRESSING: &str = "Progressing";
    /// The object failed to reach or keep its desired state.
    pub const DEGRADED: &str = "Degraded";
    /// ElasticScaler: the spec passed validation.
    pub const VALIDATED: &str = "Validated";
    /// ElasticScaler: metrics were collected.
    pub const METRICS_COLLECTED: &str = "MetricsCollected";
    /// ElasticScaler: desired replicas were calculated.
    pub const SCALING_CALCULATED: &str = "ScalingCalculated";
    /// ElasticScaler: the reconcile completed.
    pub const RECONCILIATION_COMPLETE: &str = "ReconciliationComplete";
    /// ElasticScaler: the scaler is fully functional.
    pub const AVAILABLE: &str = "Available";
}

/// Condition reasons (CamelCase, as the condition schema requires).
pub mod reasons {
    /// Successful reconcile (seed 002: `Ready=True, reason Reconciled`).
    pub const RECONCILED: &str = "Reconciled";
    /// The spec failed validation; the message names the field and the fix.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The referenced target does not exist.
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    /// A name the controller must create is taken by an object it does not own.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// Another object already manages the same target.
    pub const TARGET_CONFLICT: &str = "TargetConflict";
    /// Metrics could not be collected, or are stale; scale-down is withheld.
    pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
    /// Metrics were collected.
    pub const METRICS_OK: &str = "MetricsOk";
    /// Scaling is in progress.
    pub const SCALING: &str = "Scaling";
    /// A Tidal rule fired.
    pub const RULE_TRIGGERED: &str = "RuleTriggered";
    /// No rule has fired yet.
    pub const NO_RULE_FIRED: &str = "NoRuleFired";
    /// Tidal: the target's kind is not served or has no scale subresource.
    pub const TARGET_NOT_SCALABLE: &str = "TargetNotScalable";
    /// Tidal: writing the target's scale subresource failed; retried.
    pub const SCALE_FAILED: &str = "ScaleFailed";
    /// Tidal: the next rule is scheduled; nothing to do until it fires.
    pub const WAITING_FOR_NEXT_RULE: &str = "WaitingForNextRule";
    /// The controller lacks an RBAC permission it needs; the message names it.
    pub const FORBIDDEN: &str = "Forbidden";
    /// The replica-baseline ConfigMap holds a value that is not a replica count.
    pub const INVALID_BASELINE: &str = "InvalidBaseline";
    /// Event: GroupReplication created groups.
    pub const GROUPS_CREATED: &str = "GroupsCreated";
    /// Event: GroupReplication removed groups (the note says which path chose them).
    pub const GROUPS_REMOVED: &str = "GroupsRemoved";
    /// Event: group 0 (the base workloads) scaled to 0 or restored to its baseline.
    pub const GROUP0_SCALED: &str = "Group0Scaled";
    /// Event: InplaceScaling set the leader's or followers' replicas.
    pub const REPLICAS_SET: &str = "ReplicasSet";
    /// ElasticScaler: the spec passed validation.
    pub const VALID: &str = "Valid";
    /// ElasticScaler: the algorithm recommended a count.
    pub const CALCULATED: &str = "Calculated";
    /// ElasticScaler: the algorithm failed (external service down, no metric inside its window); replicas held.
    pub const ALGORITHM_FAILED: &str = "AlgorithmFailed";
    /// ElasticScaler: some pods' metrics failed; they are excluded and scale-down is withheld.
    pub const PARTIAL_METRICS: &str = "PartialMetrics";
    /// ElasticScaler: the target is at the desired count and ready.
    pub const STABLE: &str = "Stable";
    /// Event: ElasticScaler changed the target's replicas.
    pub const RESCALED: &str = "Rescaled";
    /// ElasticScaler StateTrigger: no object carries the linking labels, or none publishes desiredReplicas.
    pub const NO_LINKED_OBJECT: &str = "NoLinkedObject";
    /// ElasticScaler: the trigger type is not handled by this version; the message says what to use.
    pub const UNSUPPORTED_TRIGGER: &str = "UnsupportedTrigger";
    /// ElasticScaler scale to zero: a step of the hand-over failed (Service missing, API error); retried.
    pub const SCALE_TO_ZERO_FAILED: &str = "ScaleToZeroFailed";
    /// Event: the scale-to-zero phase changed (Active, ScalingToZero, AtZero, Waking); the action names it.
    pub const SCALE_TO_ZERO: &str = "ScaleToZero";
}
