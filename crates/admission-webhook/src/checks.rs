//! Checks that need the cluster: other objects (from watch caches) and the requester's RBAC
//! (SubjectAccessReviews).
//!
//! - **Conflicts.** Another RSG of the same strategy type managing one of this RSG's workloads; a second
//!   autoscaler (ElasticScaler or native HorizontalPodAutoscaler) on an ElasticScaler's target (denied unless
//!   `--allow-multiple-scalers`). The other objects come from reflector caches, so a check costs no API call.
//! - **No way around RBAC.** For each referenced target the requesting user must be able to `get` it and
//!   `update` its scale subresource (or the object); for GroupReplication also `create` that kind in the RSG's
//!   namespace, since the controller clones it there. Answers are cached for `--sar-cache-ttl`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api_types::validation::{
    FieldError, WorkloadKey, elastic_scaler_target, hpa_target, rsg_conflicts, rsg_workloads,
    scaler_conflicts,
};
use api_types::{ElasticScaler, ResourceScalingGroup, rsg::StrategyType};
use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::PostParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::admit::Typed;
use crate::review::UserInfo;

/// Watch caches of the objects the conflict rules compare against.
#[derive(Clone)]
pub struct Caches {
    rsgs: Store<ResourceScalingGroup>,
    scalers: Store<ElasticScaler>,
    hpas: Store<HorizontalPodAutoscaler>,
}

fn cache<K>(api: Api<K>, shutdown: CancellationToken) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = stream.next() => match next {
                    None => return,
                    Some(Err(e)) => tracing::warn!(error = %e, kind = K::kind(&()).as_ref(), "watch failed; retrying"),
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    store
}

impl Caches {
    /// Starts watching RSGs, ElasticScalers and HPAs in all namespaces.
    pub fn start(client: &Client, shutdown: &CancellationToken) -> Self {
        Self {
            rsgs: cache(Api::all(client.clone()), shutdown.clone()),
            scalers: cache(Api::all(client.clone()), shutdown.clone()),
            hpas: cache(Api::all(client.clone()), shutdown.clone()),
        }
    }

    /// Waits until every cache has its first full list.
    pub async fn wait_ready(&self) {
        let _ = self.rsgs.wait_until_ready().await;
        let _ = self.scalers.wait_until_ready().await;
        let _ = self.hpas.wait_until_ready().await;
    }

    /// Conflict errors for `typed` named `name` in `namespace`.
    pub fn conflicts(
        &self,
        namespace: &str,
        name: &str,
        typed: &Typed,
        allow_multiple_scalers: bool,
    ) -> Vec<FieldError> {
        match typed {
            Typed::ResourceScalingGroup(r) => {
                let all = self.rsgs.state();
                rsg_conflicts(namespace, name, &r.spec, all.iter().map(AsRef::as_ref))
            }
            Typed::ElasticScaler(es) if !allow_multiple_scalers => {
                let target = elastic_scaler_target(namespace, &es.spec);
                let mut existing = Vec::new();
                for o in self.scalers.state() {
                    let (ns, n) = ns_name(&o.metadata);
                    if (ns == namespace && n == name)
                        || o.spec.target_ref.name.as_deref() != Some(&target.name)
                    {
                        continue;
                    }
                    existing.push((
                        format!("ElasticScaler {ns}/{n}"),
                        elastic_scaler_target(ns, &o.spec),
                    ));
                }
                for h in self.hpas.state() {
                    if h.spec.scale_target_ref.name != target.name {
                        continue;
                    }
                    let (ns, n) = ns_name(&h.metadata);
                    existing.push((format!("HorizontalPodAutoscaler {ns}/{n}"), hpa_target(&h)));
                }
                scaler_conflicts(&target, &existing)
            }
            _ => Vec::new(),
        }
    }
}

fn ns_name(m: &kube::api::ObjectMeta) -> (&str, &str) {
    (
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

/// A referenced target the requester must be allowed to read and scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The field holding the reference, for the denial message.
    pub field: String,
    /// `apiVersion` of the target (`apps/v1`).
    pub api_version: String,
    /// The target.
    pub target: WorkloadKey,
    /// Namespace where clones of the target are created (GroupReplication), if any.
    pub create_in: Option<String>,
}

/// The targets `typed` (in `namespace`) references, in spec order.
pub fn references(namespace: &str, typed: &Typed) -> Vec<Reference> {
    match typed {
        Typed::ResourceScalingGroup(r) => {
            let clones = r.spec.scaling_strategy.type_ == StrategyType::GroupReplication;
            rsg_workloads(namespace, &r.spec)
                .into_iter()
                .zip(&r.spec.target_resources)
                .enumerate()
                .map(|(i, (target, t))| Reference {
                    field: format!("spec.targetResources[{i}].resourceRef"),
                    api_version: t.resource_ref.api_version.clone(),
                    target,
                    create_in: clones.then(|| namespace.to_string()),
                })
                .collect()
        }
        Typed::ElasticScaler(es) => vec![Reference {
            field: "spec.targetRef".into(),
            api_version: es.spec.target_ref.api_version.clone().unwrap_or_default(),
            target: elastic_scaler_target(namespace, &es.spec),
            create_in: None,
        }],
        Typed::Tidal(t) => {
            let r = &t.spec.target_ref;
            vec![Reference {
                field: "spec.targetRef".into(),
                api_version: r.api_version.clone(),
                target: WorkloadKey::new(&r.namespace, &r.api_version, &r.kind, &r.name),
                create_in: None,
            }]
        }
    }
}

/// Resources of the kinds most targets are, so the common case needs no discovery call.
const KNOWN: &[(&str, &str, &str)] = &[
    ("apps", "Deployment", "deployments"),
    ("apps", "StatefulSet", "statefulsets"),
    ("apps", "ReplicaSet", "replicasets"),
    (
        "leaderworkerset.x-k8s.io",
        "LeaderWorkerSet",
        "leaderworkersets",
    ),
    ("workloads.x-k8s.io", "RoleBasedGroup", "rolebasedgroups"),
    (
        "autoscaling.openfuyao.com",
        "ResourceScalingGroup",
        "resourcescalinggroups",
    ),
];

type CacheKey = (String, String, String, String, String, String, String);

/// Asks the API server whether a user may do something, with a small TTL cache.
pub struct Sar {
    client: Client,
    ttl: Duration,
    answers: Mutex<HashMap<CacheKey, (bool, Instant)>>,
    resources: Mutex<HashMap<(String, String), String>>,
}

impl Sar {
    /// A checker answering from cache for `ttl`.
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            answers: Mutex::default(),
            resources: Mutex::default(),
        }
    }

    /// The resource plural of `kind` in `api_version`: a built-in table, then discovery, then the
    /// lowercase-plus-s guess (which fails closed: RBAC rules name real resources).
    async fn resource(&self, api_version: &str, kind: &str) -> String {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        if let Some((_, _, r)) = KNOWN.iter().find(|(g, k, _)| *g == group && *k == kind) {
            return (*r).to_string();
        }
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.resources.lock().expect("lock").get(&key) {
            return r.clone();
        }
        let (g, v) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(g, v, kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, _)) => {
                self.resources
                    .lock()
                    .expect("lock")
                    .insert(key, ar.plural.clone());
                ar.plural
            }
            Err(e) => {
                tracing::debug!(%api_version, kind, error = %e, "discovery failed; guessing the resource");
                format!("{}s", kind.to_ascii_lowercase())
            }
        }
    }

    async fn allowed(
        &self,
        user: &UserInfo,
        attrs: ResourceAttributes,
    ) -> Result<bool, kube::Error> {
        let key: CacheKey = (
            format!(
                "{}|{}|{:?}",
                user.username,
                user.groups.join(","),
                user.extra
            ),
            attrs.verb.clone().unwrap_or_default(),
            attrs.group.clone().unwrap_or_default(),
            attrs.resource.clone().unwrap_or_default(),
            attrs.subresource.clone().unwrap_or_default(),
            attrs.namespace.clone().unwrap_or_default(),
            attrs.name.clone().unwrap_or_default(),
        );
        if let Some((ok, at)) = self.answers.lock().expect("lock").get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(*ok);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                groups: Some(user.groups.clone()),
                uid: user.uid.clone(),
                extra: Some(user.extra.clone()),
                resource_attributes: Some(attrs),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let out = api.create(&PostParams::default(), &review).await?;
        let ok = out.status.is_some_and(|s| s.allowed);
        let mut answers = self.answers.lock().expect("lock");
        if answers.len() > 50_000 {
            let ttl = self.ttl;
            answers.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        answers.insert(key, (ok, Instant::now()));
        Ok(ok)
    }

    /// The first permission `user` lacks for `refs`, as a field error naming it; `Ok(None)` when all are held.
    pub async fn missing(
        &self,
        user: &UserInfo,
        kind: &str,
        refs: &[Reference],
    ) -> Result<Option<FieldError>, kube::Error> {
        for r in refs {
            let t = &r.target;
            let resource = self.resource(&r.api_version, &t.kind).await;
            let shown = if t.group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{}", t.group)
            };
            let attrs =
                |verb: &str, sub: Option<&str>, ns: &str, name: Option<&str>| ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(t.group.clone()),
                    resource: Some(resource.clone()),
                    subresource: sub.map(Into::into),
                    namespace: Some(ns.into()),
                    name: name.map(Into::into),
                    ..Default::default()
                };
            let who = &user.username;
            let deny = |what: String| {
                Some(FieldError::new(
                    &r.field,
                    format!(
                        "user {who:?} cannot {what}: a {kind} may only reference workloads its author may read and scale (the controllers would otherwise act with their own permissions); get that permission granted or reference another workload"
                    ),
                ))
            };
            if !self
                .allowed(user, attrs("get", None, &t.namespace, Some(&t.name)))
                .await?
            {
                return Ok(deny(format!(
                    "get {shown} {:?} in namespace {:?}",
                    t.name, t.namespace
                )));
            }
            if !self
                .allowed(
                    user,
                    attrs("update", Some("scale"), &t.namespace, Some(&t.name)),
                )
                .await?
                && !self
                    .allowed(user, attrs("update", None, &t.namespace, Some(&t.name)))
                    .await?
            {
                return Ok(deny(format!(
                    "update {shown}/scale (nor update {shown}) {:?} in namespace {:?}",
                    t.name, t.namespace
                )));
            }
            if let Some(ns) = &r.create_in
                && !self.allowed(user, attrs("create", None, ns, None)).await?
            {
                return Ok(deny(format!(
                    "create {shown} in namespace {ns:?}, where GroupReplication creates the clones of {t}"
                )));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admit::{Kind, decode};

    #[test]
    fn references_carry_fields_namespaces_and_clone_namespace() {
        let obj = serde_json::json!({
            "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
            "metadata": {"name": "pd"},
            "spec": {"targetResources": [
                {"name": "p", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill"}},
                {"name": "d", "resourceRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "decode", "namespace": "other"}}],
              "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"replicas": 1}}}
        });
        let typed = decode(Kind::ResourceScalingGroup, &obj).unwrap();
        let refs = references("ns", &typed);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[1].field, "spec.targetResources[1].resourceRef");
        assert_eq!(
            refs[1].target,
            WorkloadKey::new("other", "apps/v1", "StatefulSet", "decode")
        );
        assert_eq!(refs[1].create_in.as_deref(), Some("ns"));
        assert_eq!(refs[0].target.namespace, "ns");
    }
}
