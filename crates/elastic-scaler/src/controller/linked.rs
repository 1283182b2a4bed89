//! The Tidal hand-off: a Tidal labelled `elasticscaler.io/name: <es>` and `elasticscaler.io/namespace:
//! <ns>` publishes `status.desiredReplicas` for that ElasticScaler instead of scaling the target itself.
//!
//! - A **StateTrigger** scaler follows it: desired = the Tidal's value clamped to `[minReplicas,
//!   maxReplicas]`.
//! - A **MetricsTrigger** scaler uses it as a floor: desired = max(metrics decision, the Tidal's value),
//!   clamped to `[minReplicas, maxReplicas]` — the schedule guarantees capacity, metrics can add more.
//!
//! Only a Tidal that is `Ready=True` for its current generation counts; two linked Tidals are an error
//! (which one should win is not guessable). Linked Tidals are read from a watch cache.

use api_types::Tidal;
use api_types::keys::{conditions, labels};
use kube::ResourceExt;
use kube::runtime::reflector::Store;

/// What the linked Tidal says.
#[derive(Clone, Debug, PartialEq)]
pub enum Link {
    /// No Tidal is linked.
    None,
    /// The Tidal's desired count and a description for status.
    Desired(i32, String),
    /// A Tidal is linked but cannot be used; why.
    Unusable(String),
}

/// The linked Tidal of scaler `namespace`/`name` among `tidals`.
pub fn find(tidals: &[std::sync::Arc<Tidal>], namespace: &str, name: &str) -> Link {
    let linked: Vec<&Tidal> = tidals
        .iter()
        .map(|t| t.as_ref())
        .filter(|t| {
            let l = t.labels();
            l.get(labels::ES_NAME).map(String::as_str) == Some(name)
                && l.get(labels::ES_NAMESPACE).map(String::as_str) == Some(namespace)
        })
        .collect();
    let id = |t: &Tidal| {
        format!(
            "Tidal {}/{}",
            t.namespace().unwrap_or_default(),
            t.name_any()
        )
    };
    match linked.as_slice() {
        [] => Link::None,
        [t] => {
            let status = t.status.clone().unwrap_or_default();
            let ready = api_types::conditions::find(&status.conditions, conditions::READY);
            match (ready, status.desired_replicas) {
                (Some(c), _) if c.status != "True" => {
                    Link::Unusable(format!("{} is not Ready: {}", id(t), c.message))
                }
                (Some(c), _)
                    if c.observed_generation.is_some()
                        && c.observed_generation != t.metadata.generation =>
                {
                    Link::Unusable(format!("{} has not processed its latest spec yet", id(t)))
                }
                (None, _) => Link::Unusable(format!("{} has no Ready condition yet", id(t))),
                (_, None) => Link::Unusable(format!(
                    "{} has not published status.desiredReplicas yet (no rule has fired)",
                    id(t)
                )),
                (Some(_), Some(d)) => {
                    let rule = status.active_rule.unwrap_or_default();
                    Link::Desired(d, format!("{} rule {rule:?} wants {d}", id(t)))
                }
            }
        }
        many => Link::Unusable(format!(
            "{} Tidals are linked ({}): keep exactly one",
            many.len(),
            many.iter().map(|t| id(t)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// [`find`] over a watch cache.
pub fn lookup(store: &Store<Tidal>, namespace: &str, name: &str) -> Link {
    find(&store.state(), namespace, name)
}

/// The desired count with the Tidal's value as a floor, within `[min, max]`.
pub fn with_floor(desired: i32, floor: i32, min: i32, max: i32) -> i32 {
    desired.max(floor).clamp(min, max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tidal(
        name: &str,
        es: &str,
        ready: &str,
        generation: i64,
        observed: i64,
        desired: Option<i32>,
    ) -> Arc<Tidal> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "tidal.io/v1alpha1", "kind": "Tidal",
                "metadata": {"name": name, "namespace": "ns", "generation": generation,
                    "labels": {"elasticscaler.io/name": es, "elasticscaler.io/namespace": "ns"}},
                "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "ns"},
                    "triggers": {"times": {"rules": [{"name": "day", "cron": "CRON_TZ=UTC 0 9 * * *", "replicas": 4}]}}},
                "status": {"desiredReplicas": desired, "activeRule": "day", "conditions": [{
                    "type": "Ready", "status": ready, "reason": "R", "message": "m", "observedGeneration": observed,
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn only_a_ready_current_single_tidal_counts() {
        let ok = tidal("a", "es", "True", 2, 2, Some(4));
        assert_eq!(
            find(std::slice::from_ref(&ok), "ns", "es"),
            Link::Desired(4, "Tidal ns/a rule \"day\" wants 4".into())
        );
        assert_eq!(find(std::slice::from_ref(&ok), "ns", "other"), Link::None);
        assert!(
            matches!(find(&[tidal("a", "es", "False", 2, 2, Some(4))], "ns", "es"), Link::Unusable(m) if m.contains("not Ready"))
        );
        assert!(
            matches!(find(&[tidal("a", "es", "True", 3, 2, Some(4))], "ns", "es"), Link::Unusable(m) if m.contains("latest spec"))
        );
        assert!(
            matches!(find(&[tidal("a", "es", "True", 1, 1, None)], "ns", "es"), Link::Unusable(m) if m.contains("no rule has fired"))
        );
        let two = [ok, tidal("b", "es", "True", 1, 1, Some(2))];
        assert!(
            matches!(find(&two, "ns", "es"), Link::Unusable(m) if m.contains("2 Tidals are linked"))
        );
    }

    #[test]
    fn the_tidal_is_a_floor_within_bounds() {
        assert_eq!(with_floor(2, 4, 1, 10), 4, "schedule guarantees 4");
        assert_eq!(with_floor(6, 4, 1, 10), 6, "metrics add more");
        assert_eq!(with_floor(2, 20, 1, 10), 10, "maxReplicas wins");
    }
}
