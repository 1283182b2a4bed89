//! The RSG's status: what a reconcile concluded ([`Outcome`]) turned into the next status, written only
//! when it differs from the current one (an idle RSG costs no writes).

use std::time::Duration;

use api_types::keys::{conditions, reasons};
use api_types::rsg::{ResourceScalingGroup, ResourceScalingGroupStatus, ScaleDownRecord};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// What one reconcile concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Whether the RSG reached its desired state.
    pub ready: bool,
    /// The Ready condition's reason.
    pub reason: &'static str,
    /// The Ready condition's message: what was done, or what blocks and how to fix it.
    pub message: String,
    /// Groups (GroupReplication) or leader replicas (InplaceScaling) observed; `None` keeps the last value.
    pub current: Option<i32>,
    /// The desired count acted on; `None` keeps the last value.
    pub last_desired: Option<i32>,
    /// The pod selector for `/scale`.
    pub selector: Option<String>,
    /// A scale-down that happened in this reconcile.
    pub scale_down: Option<ScaleDownRecord>,
    /// When to look again (a blocked RSG retries sooner than the resync).
    pub requeue: Option<Duration>,
}

impl Outcome {
    /// The desired state was reached.
    pub fn ready(message: String) -> Outcome {
        Outcome {
            ready: true,
            reason: reasons::RECONCILED,
            message,
            current: None,
            last_desired: None,
            selector: None,
            scale_down: None,
            requeue: None,
        }
    }

    /// Something blocks progress; `message` names it and the fix. Retried after `retry`.
    pub fn blocked(reason: &'static str, message: String, retry: Duration) -> Outcome {
        Outcome {
            ready: false,
            reason,
            message,
            requeue: Some(retry),
            ..Outcome::ready(String::new())
        }
    }
}

/// The status after `outcome`, carrying over from `old` (the freshest known status: the one this process
/// last wrote, else the object's) what the outcome leaves unset. The Ready condition keeps its
/// `lastTransitionTime` unless its status flips.
pub fn next_status(
    rsg: &ResourceScalingGroup,
    old: Option<&ResourceScalingGroupStatus>,
    outcome: &Outcome,
    now: Time,
) -> ResourceScalingGroupStatus {
    let old = old.cloned().unwrap_or_default();
    let generation = rsg.metadata.generation;
    let status = if outcome.ready { "True" } else { "False" };
    let transition = old
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::READY && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    let ready = Condition {
        type_: conditions::READY.to_string(),
        status: status.to_string(),
        reason: outcome.reason.to_string(),
        message: outcome.message.clone(),
        observed_generation: generation,
        last_transition_time: transition,
    };
    let mut conds: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| c.type_ != conditions::READY)
        .cloned()
        .collect();
    conds.insert(0, ready);
    let targets = rsg
        .spec
        .target_resources
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    ResourceScalingGroupStatus {
        conditions: conds,
        current_replicas: outcome.current.or(old.current_replicas),
        last_desired_replicas: outcome.last_desired.or(old.last_desired_replicas),
        observed_generation: generation,
        selector: outcome.selector.clone().or(old.selector),
        targets: Some(targets),
        last_scale_down: outcome.scale_down.clone().or(old.last_scale_down),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn rsg(status: Option<ResourceScalingGroupStatus>) -> ResourceScalingGroup {
        let mut r: ResourceScalingGroup = serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
            "metadata": {"name": "pd", "namespace": "n", "generation": 3},
            "spec": {"targetResources": [{"name": "prefill", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}},
                                         {"name": "decode", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}],
                     "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"replicas": 2}}}
        })).unwrap();
        r.status = status;
        r
    }

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn same_outcome_gives_same_status() {
        let mut o = Outcome::ready("2 of 2 groups".into());
        o.current = Some(2);
        o.last_desired = Some(2);
        let first = next_status(&rsg(None), None, &o, t(100));
        assert_eq!(first.targets.as_deref(), Some("prefill,decode"));
        assert_eq!(first.observed_generation, Some(3));
        let second = next_status(&rsg(None), Some(&first), &o, t(200));
        assert_eq!(
            first, second,
            "an unchanged outcome must not change the status (no write)"
        );
    }

    #[test]
    fn transition_time_moves_only_on_flip_and_values_carry_over() {
        let mut o = Outcome::ready("ok".into());
        o.current = Some(2);
        let s1 = next_status(&rsg(None), None, &o, t(100));
        let blocked = Outcome::blocked(
            reasons::TARGET_NOT_FOUND,
            "Deployment n/p not found".into(),
            Duration::from_secs(5),
        );
        let s2 = next_status(&rsg(None), Some(&s1), &blocked, t(200));
        assert_eq!(s2.conditions[0].status, "False");
        assert_eq!(s2.conditions[0].last_transition_time, t(200));
        assert_eq!(
            s2.current_replicas,
            Some(2),
            "a blocked reconcile keeps the last observation"
        );
        let s3 = next_status(&rsg(None), Some(&s2), &blocked, t(300));
        assert_eq!(s3.conditions[0].last_transition_time, t(200));
    }
}
