//! Per-scaler state kept between reconciles: the [`Decider`] (algorithm instance, stabilization history)
//! and the last status written. A spec change that affects decisions (algorithm, its config, behavior
//! annotations, target) makes a new decider; the first decider after a restart is rebuilt from status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api_types::keys::annotations::ES_BEHAVIOR_PREFIX;
use api_types::{ElasticScaler, ElasticScalerStatus};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::engine::{Decider, behavior};
use crate::plugin::{AlgorithmFactory, Restore};

/// All scalers' states.
pub type States = Mutex<HashMap<ObjectRef<ElasticScaler>, ScalerState>>;

/// One scaler's state.
#[derive(Default)]
pub struct ScalerState {
    uid: Option<String>,
    fingerprint: String,
    /// The decision pipeline (MetricsTrigger only).
    pub decider: Option<Decider>,
    /// The last status written, with the generation it was written for.
    pub written: Option<(Option<i64>, ElasticScalerStatus)>,
    /// When the next reconcile is due, and the hash of the inputs it was scheduled for.
    due: Option<(Instant, u64)>,
}

impl ScalerState {
    /// Schedules the next reconcile `after` from now for `inputs`.
    pub fn due(&mut self, inputs: u64, after: Duration) {
        self.due = Some((Instant::now() + after, inputs));
    }

    /// If the inputs are unchanged and the next reconcile is not due, how long until it is.
    pub fn not_due(&self, inputs: u64) -> Option<Duration> {
        let (at, hash) = self.due?;
        let left = at.checked_duration_since(Instant::now())?;
        (hash == inputs && left > Duration::from_millis(50)).then_some(left)
    }

    /// The status to compare with: the one we wrote last (the watch cache may not have it yet), or the
    /// object's. Once the cache shows what we wrote, our copy is dropped (one status in memory per
    /// scaler, not two: at 5,000 scalers that is megabytes).
    pub fn freshest(&mut self, es: &ElasticScaler) -> ElasticScalerStatus {
        if let Some((_, s)) = &self.written
            && es.status.as_ref() == Some(s)
        {
            self.written = None;
        }
        match &self.written {
            Some((_, s)) => s.clone(),
            None => es.status.clone().unwrap_or_default(),
        }
    }

    /// Makes the decider if the decision inputs changed; errors name the key or annotation.
    pub fn prepare(
        &mut self,
        es: &ElasticScaler,
        algorithm: &str,
        factory: &dyn AlgorithmFactory,
        now: f64,
    ) -> Result<(), Vec<String>> {
        if self.uid != es.uid() {
            *self = ScalerState {
                uid: es.uid(),
                ..ScalerState::default()
            };
        }
        let config = es
            .spec
            .trigger
            .metrics_trigger
            .as_ref()
            .and_then(|m| m.algorithm_config.clone())
            .unwrap_or_default();
        let annotations: BTreeMap<String, String> = es
            .annotations()
            .iter()
            .filter(|(k, _)| k.starts_with(ES_BEHAVIOR_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let fingerprint =
            serde_json::json!([algorithm, config, annotations, es.spec.target_ref]).to_string();
        if self.decider.is_some() && fingerprint == self.fingerprint {
            return Ok(());
        }
        let behavior = behavior::from_annotations(algorithm, &annotations)
            .map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let status = self.freshest(es);
        // Only a decider for the same inputs may resume from status; a changed spec starts fresh.
        let resumed = self.fingerprint.is_empty() && status.desired_replicas.is_some();
        let restore = Restore {
            resumed,
            panicking: status.panicking.unwrap_or(false),
            current: status.current_replicas.unwrap_or(0),
            now,
        };
        let (records, scales) = if resumed {
            (
                status
                    .recommendations
                    .iter()
                    .map(|r| (r.at, r.replicas))
                    .collect(),
                status
                    .history
                    .iter()
                    .map(|h| (h.time.0.as_millisecond() as f64 / 1000.0, h.from, h.to))
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let decider = Decider::new(factory, &config, behavior, &restore, &records, &scales)
            .map_err(|e| vec![format!("spec.trigger.metricsTrigger.{e}")])?;
        if resumed {
            tracing::info!(scaler = %es.name_any(), panicking = restore.panicking, records = records.len(), "decision state rebuilt from status");
        }
        self.decider = Some(decider);
        self.fingerprint = fingerprint;
        Ok(())
    }
}

/// Takes the state of `key` out of the map (a new one if absent).
pub fn take(states: &States, key: &ObjectRef<ElasticScaler>) -> ScalerState {
    states
        .lock()
        .expect("poisoned")
        .remove(key)
        .unwrap_or_default()
}

/// Puts it back.
pub fn put(states: &States, key: ObjectRef<ElasticScaler>, st: ScalerState) {
    states.lock().expect("poisoned").insert(key, st);
}

/// How many scalers have state.
pub fn len(states: &States) -> usize {
    states.lock().expect("poisoned").len()
}

/// Drops the state of scalers that no longer exist.
pub fn retain(states: &States, exists: impl Fn(&ObjectRef<ElasticScaler>) -> bool) {
    states.lock().expect("poisoned").retain(|k, _| exists(k));
}
