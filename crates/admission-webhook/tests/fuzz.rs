//! A bounded, deterministic fuzz run: arbitrary JSON, mutated valid reviews and corrupted bytes go through
//! AdmissionReview decoding, typed decoding, validation, defaulting and encoding, and nothing panics.
//! (A seeded generator instead of a fuzzing engine: it runs in CI in about a second and reproduces exactly;
//! `FUZZ_ITERATIONS` and `FUZZ_SEED` widen a local run.)

use admission_webhook::admit::{self, Kind};
use admission_webhook::checks::references;
use admission_webhook::review;
use serde_json::{Map, Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Strings that matter to the rules: enum values and near-misses, names, crons, durations, odd bytes.
const WORDS: &[&str] = &[
    "",
    "GroupReplication",
    "InplaceScaling",
    "Counter",
    "Gauge",
    "guage",
    "Histogram",
    "sum",
    "avg",
    "ascending",
    "Deployment",
    "StatefulSet",
    "RoleBasedGroup",
    "apps/v1",
    "MetricsTrigger",
    "StateTrigger",
    "SignalTrigger",
    "Resource",
    "External",
    "ExternalServer",
    "Custom",
    "cpu",
    "AverageValueValue",
    "Utilization",
    "HPA",
    "hpa",
    "https",
    "CRON_TZ=UTC 0 9 * * *",
    "CRON_TZ=",
    "2m",
    "1h30m",
    "Prefill-Decode",
    "a",
    "-",
    "é\u{0}\u{ffff}",
    "9223372036854775808",
];

fn value(r: &mut Rng, depth: u32) -> Value {
    match r.below(if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(r.below(2) == 1),
        2 => json!(r.next() as i64 >> r.below(64)),
        3 => json!(f64::from(r.below(1000) as u32) / 7.0),
        4 => Value::from(WORDS[r.below(WORDS.len())]),
        5 | 6 => {
            let mut m = Map::new();
            for _ in 0..r.below(5) {
                let k = FIELDS[r.below(FIELDS.len())];
                m.insert(k.to_string(), value(r, depth - 1));
            }
            Value::Object(m)
        }
        _ => Value::Array((0..r.below(4)).map(|_| value(r, depth - 1)).collect()),
    }
}

/// Field names of our kinds, so random objects hit real decoding paths.
const FIELDS: &[&str] = &[
    "spec",
    "metadata",
    "name",
    "namespace",
    "type",
    "scalingStrategy",
    "groupConfig",
    "groupName",
    "replicas",
    "scaleDown",
    "metric",
    "expr",
    "window",
    "aggregator",
    "order",
    "leaderFollowerConfig",
    "leader",
    "follower",
    "resourceName",
    "followRatio",
    "targetResources",
    "resourceRef",
    "apiVersion",
    "kind",
    "subresource",
    "roleName",
    "targetRef",
    "minReplicas",
    "maxReplicas",
    "trigger",
    "metricsTrigger",
    "scalingAlgorithm",
    "metrics",
    "resource",
    "external",
    "externalServer",
    "custom",
    "metricsName",
    "target",
    "averageValue",
    "averageUtilization",
    "value",
    "triggers",
    "times",
    "rules",
    "cron",
    "signalTrigger",
    "endpoint",
    "protocol",
];

fn fixtures() -> Vec<(Kind, Value)> {
    vec![
        (
            Kind::ResourceScalingGroup,
            json!({"apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
            "metadata": {"name": "pd", "namespace": "ns"},
            "spec": {"targetResources": [{"name": "p", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill"}},
                {"name": "d", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "decode"}}],
              "scalingStrategy": {"type": "InplaceScaling", "leaderFollowerConfig": {"leader": {"resourceName": "p", "replicas": 1},
                "follower": [{"resourceName": "d", "followRatio": 2}]}, "groupConfig": {"replicas": 2, "groupName": "pd",
                "scaleDown": {"metric": {"expr": "q", "type": "Counter", "window": "2m"}, "order": "ascending"}}}}}),
        ),
        (
            Kind::ElasticScaler,
            json!({"apiVersion": "elasticscaler.io/v1alpha1", "kind": "ElasticScaler",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 4,
              "trigger": {"type": "MetricsTrigger", "signalTrigger": {"endpoint": "x"}, "metricsTrigger": {"scalingAlgorithm": "HPA", "metrics": [
                {"type": "Resource", "resource": {"metricsName": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "External", "external": {"metricsName": "q", "target": {"type": "AverageValue", "averageValue": "5"}}},
                {"type": "ExternalServer", "externalServer": {"endpoint": "e", "metricsName": "m", "target": "1"}}]}}}}),
        ),
        (
            Kind::Tidal,
            json!({"apiVersion": "tidal.io/v1alpha1", "kind": "Tidal", "metadata": {"name": "t"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "ns"},
              "triggers": {"times": {"rules": [{"name": "a", "cron": "CRON_TZ=UTC 0 9 * * *", "replicas": 1}]}}}}),
        ),
    ]
}

/// Replaces, deletes or inserts at a random place in `v`.
fn mutate(r: &mut Rng, v: &mut Value, depth: u32) {
    match v {
        Value::Object(m) if !m.is_empty() && depth < 8 && r.below(4) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[r.below(keys.len())];
            match r.below(6) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), value(r, 3));
                }
                _ => mutate(r, m.get_mut(k).expect("key"), depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 8 && r.below(4) != 0 => {
            let i = r.below(a.len());
            match r.below(5) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let dup = a[i].clone();
                    a.push(dup);
                }
                _ => mutate(r, &mut a[i], depth + 1),
            }
        }
        _ => *v = value(r, 3),
    }
}

fn exercise(body: &[u8]) {
    let Ok(req) = review::decode(body) else {
        return;
    };
    for kind in Kind::ALL {
        let d = admit::mutate(kind, &req);
        let _ = review::encode(&req.uid, &d);
        if let Ok((typed, _)) = admit::validate_pure(kind, &req) {
            let _ = references(&req.object_namespace(), &typed);
        }
        if let Some(o) = &req.object
            && let Ok(t) = admit::decode(kind, o)
        {
            let _ = admit::rules(&req.object_name(), &t);
        }
    }
}

#[test]
fn arbitrary_json_never_panics() {
    let iterations: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut r = Rng(seed | 1);
    let fixtures = fixtures();
    for i in 0..iterations {
        let (_, base) = &fixtures[i % fixtures.len()];
        let mut object = base.clone();
        for _ in 0..=r.below(4) {
            mutate(&mut r, &mut object, 0);
        }
        let op = ["CREATE", "UPDATE", "DELETE", ""][r.below(4)];
        let mut request = json!({"uid": format!("u{i}"), "operation": op,
            "namespace": "ns", "userInfo": {"username": "fuzz"}, "object": object});
        if r.below(3) == 0 {
            request["oldObject"] = base.clone();
        }
        if r.below(8) == 0 {
            mutate(&mut r, &mut request, 0);
        }
        let mut bytes = serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})).unwrap();
        exercise(&bytes);
        // Corrupted bytes: truncation and flipped bytes.
        if !bytes.is_empty() {
            let n = r.below(bytes.len());
            exercise(&bytes[..n]);
            for _ in 0..3 {
                let j = r.below(bytes.len());
                bytes[j] = r.next() as u8;
            }
            exercise(&bytes);
        }
        // Entirely random JSON.
        exercise(&serde_json::to_vec(&value(&mut r, 5)).unwrap());
    }
}
