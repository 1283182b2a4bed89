//! How to extend the elastic-scaler: one scaling algorithm and one resource handler, registered in a
//! binary of your own (`src/main.rs`). Both are plain Rust against the traits in
//! [`elastic_scaler::plugin`]; the controller validates the algorithm's `algorithmConfig` when a scaler
//! names it, calls it every period through the same pipeline as the built-ins (missing-data guard,
//! pending guard, behavior, min/max), and writes targets of the handler's kind through it.
//!
//! - [`Step`] (`scalingAlgorithm: step`): the load in replicas, rounded up to a multiple of
//!   `algorithmConfig.step` (default `2`): for servers that are deployed in pairs.
//! - [`WidgetHandler`] (`demo.pd-orchestrator.io/v1`, kind `Widget`): a custom resource whose size is
//!   `spec.size` (not `spec.replicas`, and no `/scale`), ready count `status.readySize`.

use futures::future::BoxFuture;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;

use elastic_scaler::plugin::{
    AlgorithmConfig, AlgorithmError, AlgorithmFactory, ConfigError, Context, HandlerError,
    Recommendation, ResourceHandler, Restore, Scale, ScalingAlgorithm, TargetRef,
};

const STEP_KEYS: &[(&str, &str)] = &[("step", "2")];

/// Factory of [`Step`].
pub struct StepFactory;

impl AlgorithmFactory for StepFactory {
    fn create(
        &self,
        config: &AlgorithmConfig,
        _: &Restore,
    ) -> Result<Box<dyn ScalingAlgorithm>, ConfigError> {
        if let Some(key) = config.keys().find(|k| k.as_str() != "step") {
            return Err(ConfigError {
                key: key.clone(),
                message: "unknown key: the step algorithm reads only `step`".into(),
            });
        }
        let raw = config.get("step").map(String::as_str).unwrap_or("2");
        let step = raw
            .parse::<i32>()
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| ConfigError {
                key: "step".into(),
                message: format!("{raw:?} is not a whole number ≥ 1"),
            })?;
        Ok(Box::new(Step { step }))
    }

    fn keys(&self) -> &'static [(&'static str, &'static str)] {
        STEP_KEYS
    }
}

/// Replicas for the load, rounded up to a multiple of `step`.
pub struct Step {
    step: i32,
}

impl Step {
    /// The decision.
    pub fn decide(&self, ctx: &Context<'_>) -> Result<Recommendation, AlgorithmError> {
        let load = ctx
            .metrics
            .iter()
            .filter_map(|m| m.demand(ctx.ready))
            .fold(None, |acc: Option<f64>, d| {
                Some(acc.map_or(d, |a| a.max(d)))
            })
            .ok_or_else(|| AlgorithmError("no metric has a value".into()))?;
        let needed = load.ceil() as i32;
        let replicas = (needed + self.step - 1) / self.step * self.step;
        Ok(Recommendation {
            replicas,
            reason: format!(
                "step: load {load:.2} replicas, in steps of {} → {replicas}",
                self.step
            ),
            needed: Some(needed),
            panicking: false,
        })
    }
}

impl ScalingAlgorithm for Step {
    fn recommend<'a>(
        &'a mut self,
        ctx: &'a Context<'a>,
    ) -> BoxFuture<'a, Result<Recommendation, AlgorithmError>> {
        Box::pin(async move { self.decide(ctx) })
    }
}

/// The Widget custom resource's group, version and kind.
pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "demo.pd-orchestrator.io",
        "v1",
        "Widget",
    ))
}

/// Reads and writes `spec.size` of Widgets.
pub struct WidgetHandler {
    client: kube::Client,
}

impl WidgetHandler {
    /// A handler over `client`.
    pub fn new(client: kube::Client) -> Self {
        WidgetHandler { client }
    }

    fn api(&self, t: &TargetRef) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &t.namespace, &widget_resource())
    }
}

fn failed(t: &TargetRef, e: kube::Error) -> HandlerError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => HandlerError::NotFound(t.clone()),
        _ => HandlerError::Failed(format!("{t}: {e}")),
    }
}

impl ResourceHandler for WidgetHandler {
    fn get<'a>(&'a self, t: &'a TargetRef) -> BoxFuture<'a, Result<Scale, HandlerError>> {
        Box::pin(async move {
            let w = self.api(t).get(&t.name).await.map_err(|e| failed(t, e))?;
            let size = w.data["spec"]["size"].as_i64().unwrap_or(0) as i32;
            Ok(Scale {
                replicas: size,
                ready: w.data["status"]["readySize"]
                    .as_i64()
                    .map_or(size, |r| r as i32),
                selector: w.data["spec"]["podSelector"].as_str().map(str::to_string),
            })
        })
    }

    fn set_replicas<'a>(
        &'a self,
        t: &'a TargetRef,
        replicas: i32,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let patch = serde_json::json!({"spec": {"size": replicas}});
            let pp = PatchParams {
                field_manager: Some("elastic-scaler".into()),
                ..Default::default()
            };
            self.api(t)
                .patch(&t.name, &pp, &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| failed(t, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elastic_scaler::plugin::{Observation, Reading, Target};

    fn ctx<'a>(metrics: &'a [Observation]) -> Context<'a> {
        Context {
            namespace: "ns",
            name: "s",
            now: 0.0,
            current: 2,
            ready: 2,
            min: 1,
            max: 10,
            metrics,
        }
    }

    #[test]
    fn rounds_the_load_up_to_whole_steps() {
        let m = [Observation {
            name: "ExternalServer/queue".into(),
            target: Target::AverageValue(10.0),
            reading: Reading::Total(45.0),
        }];
        assert!(
            StepFactory
                .create(
                    &[("step".to_string(), "2".to_string())].into(),
                    &Restore::default()
                )
                .is_ok()
        );
        let r = Step { step: 2 }.decide(&ctx(&m)).unwrap();
        assert_eq!(
            (r.replicas, r.needed),
            (6, Some(5)),
            "4.5 → 5 → next multiple of 2"
        );
        let r = Step { step: 3 }.decide(&ctx(&m)).unwrap();
        assert_eq!(r.replicas, 6);
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = StepFactory
            .create(
                &[("step".to_string(), "0".to_string())].into(),
                &Restore::default(),
            )
            .err()
            .unwrap();
        assert_eq!(bad.key, "step");
        let unknown = StepFactory
            .create(
                &[("stp".to_string(), "2".to_string())].into(),
                &Restore::default(),
            )
            .err()
            .unwrap();
        assert!(
            unknown.to_string().contains("algorithmConfig.stp"),
            "{unknown}"
        );
    }

    #[test]
    fn registering_a_taken_name_is_an_error_not_a_panic() {
        let mut algorithms =
            elastic_scaler::builtin::algorithms(elastic_scaler::HttpClient::new()).unwrap();
        algorithms
            .insert("step".into(), std::sync::Arc::new(StepFactory))
            .unwrap();
        let err = algorithms
            .insert("step".into(), std::sync::Arc::new(StepFactory))
            .unwrap_err();
        assert!(err.to_string().contains("already registered"), "{err}");
        assert!(
            algorithms
                .insert("hpa".into(), std::sync::Arc::new(StepFactory))
                .is_err()
        );
    }
}
