//! Clone groups on the cluster: observing them (one labelled list per kind), creating a group (every
//! workload clone, then every Service clone; names checked first so a conflict creates nothing), and
//! removing one (Services, then workloads).

use std::collections::{BTreeMap, BTreeSet};

use api_types::keys::{annotations, labels};
use api_types::rsg::{clone_name, service_clone_name};
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::Value;

use crate::Error;
use crate::clone::{CloneSpec, clone_service, clone_workload, group_labels};
use crate::context::Ctx;
use crate::kinds::Kind;
use crate::plan::Health;
use crate::targets::Workload;

/// What an object of a group is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjKind {
    /// A workload clone of this kind and API version.
    Workload(Kind, String),
    /// A Service clone.
    Service,
}

impl ObjKind {
    fn name(&self) -> &'static str {
        match self {
            ObjKind::Workload(k, _) => k.as_str(),
            ObjKind::Service => "Service",
        }
    }
}

/// One observed object of a clone group.
#[derive(Clone, Debug)]
pub struct Seen {
    /// What it is.
    pub kind: ObjKind,
    /// Its name.
    pub name: String,
    /// Its `autoscaling.rsg.metric.values` annotation.
    pub metric_value: Option<String>,
}

/// Every clone group's objects in the RSG's namespace, by group id.
pub type Observed = BTreeMap<u32, Vec<Seen>>;

fn selector(rsg: &str) -> String {
    format!(
        "{}={rsg},{},{}!=0",
        labels::RSG_NAME,
        labels::RSG_GROUP_ID,
        labels::RSG_GROUP_ID
    )
}

fn group_of(labels: &BTreeMap<String, String>) -> Option<u32> {
    labels
        .get(labels::RSG_GROUP_ID)?
        .parse()
        .ok()
        .filter(|g| *g > 0)
}

/// Lists this RSG's clone objects (workload kinds in use, and Services); objects being deleted are left out.
pub async fn observe(
    rsg: &str,
    ns: &str,
    workloads: &[Workload],
    ctx: &Ctx,
) -> Result<Observed, Error> {
    let lp = ListParams::default().labels(&selector(rsg));
    let mut out: Observed = BTreeMap::new();
    let kinds: BTreeSet<(Kind, String)> = workloads
        .iter()
        .map(|w| (w.kind, w.api_version.clone()))
        .collect();
    for (kind, av) in kinds {
        let list = ctx
            .workload_api(kind, &av, ns)
            .list(&lp)
            .await
            .map_err(|e| ctx.api_error(e, &format!("list {}s in {ns}", kind.as_str())))?;
        for o in list
            .items
            .into_iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            if let Some(g) = group_of(o.labels()) {
                out.entry(g).or_default().push(Seen {
                    kind: ObjKind::Workload(kind, av.clone()),
                    name: o.name_any(),
                    metric_value: o.annotations().get(annotations::RSG_METRIC_VALUES).cloned(),
                });
            }
        }
    }
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let list = svcs
        .list(&lp)
        .await
        .map_err(|e| ctx.api_error(e, &format!("list services in {ns}")))?;
    for s in list
        .items
        .into_iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
    {
        if let Some(g) = group_of(s.labels()) {
            out.entry(g).or_default().push(Seen {
                kind: ObjKind::Service,
                name: s.name_any(),
                metric_value: None,
            });
        }
    }
    Ok(out)
}

/// The layout every group follows: the bases, their snapshots and baselines, and the associated Services.
pub struct Layout<'a> {
    /// RSG name.
    pub rsg: &'a str,
    /// RSG namespace (where clones live).
    pub namespace: &'a str,
    /// The clone-name prefix.
    pub group_name: &'a str,
    /// Resolved targets, in spec order.
    pub workloads: &'a [Workload],
    /// Snapshot payload per target.
    pub snapshots: &'a BTreeMap<String, Value>,
    /// Baseline replicas per target.
    pub baseline: &'a BTreeMap<String, i32>,
    /// Services selecting base pods (deduplicated).
    pub services: &'a [Service],
}

impl Layout<'_> {
    /// The objects group `g` consists of.
    pub fn expected(&self, g: u32) -> Vec<(ObjKind, String)> {
        let mut v: Vec<(ObjKind, String)> = self
            .workloads
            .iter()
            .map(|w| {
                (
                    ObjKind::Workload(w.kind, w.api_version.clone()),
                    clone_name(self.group_name, &w.name, g),
                )
            })
            .collect();
        v.extend(self.services.iter().map(|s| {
            (
                ObjKind::Service,
                service_clone_name(&s.name_any(), self.group_name, g),
            )
        }));
        v
    }

    /// Whether group `g` is complete given what was observed of it.
    pub fn health(&self, g: u32, seen: &[Seen]) -> Health {
        let have: BTreeSet<(&ObjKind, &str)> =
            seen.iter().map(|s| (&s.kind, s.name.as_str())).collect();
        if self
            .expected(g)
            .iter()
            .all(|(k, n)| have.contains(&(k, n.as_str())))
        {
            Health::Complete
        } else {
            Health::Partial
        }
    }

    fn build(&self, g: u32) -> Result<Vec<(ObjKind, String, Value)>, Error> {
        let lws_renames: BTreeMap<String, String> = self
            .workloads
            .iter()
            .filter(|w| w.kind == Kind::LeaderWorkerSet)
            .map(|w| (w.name.clone(), clone_name(self.group_name, &w.name, g)))
            .collect();
        let svc_renames: BTreeMap<String, String> = self
            .services
            .iter()
            .map(|s| {
                (
                    s.name_any(),
                    service_clone_name(&s.name_any(), self.group_name, g),
                )
            })
            .collect();
        let mut out = Vec::new();
        for w in self.workloads {
            let name = clone_name(self.group_name, &w.name, g);
            let snap = self
                .snapshots
                .get(&w.target)
                .cloned()
                .unwrap_or(Value::Null);
            let obj = clone_workload(
                w.kind,
                &w.api_version,
                &snap,
                &CloneSpec {
                    name: &name,
                    namespace: self.namespace,
                    rsg: self.rsg,
                    group_id: g,
                    replicas: self.baseline.get(&w.target).copied().unwrap_or(1),
                    service_renames: &svc_renames,
                },
            );
            out.push((ObjKind::Workload(w.kind, w.api_version.clone()), name, obj));
        }
        for s in self.services {
            let name = service_clone_name(&s.name_any(), self.group_name, g);
            let svc = clone_service(s, &name, self.namespace, self.rsg, g, &lws_renames);
            out.push((
                ObjKind::Service,
                name,
                serde_json::to_value(svc).map_err(Error::Json)?,
            ));
        }
        Ok(out)
    }
}

fn dyn_api(ctx: &Ctx, kind: &ObjKind, ns: &str) -> Api<DynamicObject> {
    match kind {
        ObjKind::Workload(k, av) => ctx.workload_api(*k, av, ns),
        ObjKind::Service => Api::namespaced_with(
            ctx.client.clone(),
            ns,
            &kube::api::ApiResource::erase::<Service>(&()),
        ),
    }
}

/// Result of creating one group.
pub enum Created {
    /// Every object exists now.
    Done,
    /// A name is taken by an object this RSG does not own; nothing of the group was created.
    Conflict(String),
}

/// Creates the missing objects of group `g`. Names not already observed as ours are read first: if any
/// is taken by an object this RSG does not own, the group is left alone and the conflict named.
pub async fn create_group(
    layout: &Layout<'_>,
    g: u32,
    seen: &[Seen],
    ctx: &Ctx,
) -> Result<Created, Error> {
    let have: BTreeSet<(&ObjKind, &str)> =
        seen.iter().map(|s| (&s.kind, s.name.as_str())).collect();
    let ours = group_labels(layout.rsg, g);
    let todo: Vec<(ObjKind, String, Value)> = layout
        .build(g)?
        .into_iter()
        .filter(|(k, n, _)| !have.contains(&(k, n.as_str())))
        .collect();
    let mut exists = BTreeSet::new();
    for (kind, name, _) in &todo {
        let api = dyn_api(ctx, kind, layout.namespace);
        if let Some(o) = api.get_opt(name).await.map_err(|e| {
            ctx.api_error(e, &format!("get {}s in {}", kind.name(), layout.namespace))
        })? {
            let labelled_ours = ours.iter().all(|(k, v)| o.labels().get(k) == Some(v));
            if !labelled_ours {
                return Ok(Created::Conflict(format!(
                    "group {g}: {} {}/{name} already exists and is not managed by this RSG (it lacks labels {}={} and {}={g}): delete or rename it, or change groupName; nothing was created or overwritten",
                    kind.name(),
                    layout.namespace,
                    labels::RSG_NAME,
                    layout.rsg,
                    labels::RSG_GROUP_ID,
                )));
            }
            exists.insert(name.clone());
        }
    }
    for (kind, name, obj) in todo.into_iter().filter(|(_, n, _)| !exists.contains(n)) {
        let api = dyn_api(ctx, &kind, layout.namespace);
        let dynobj: DynamicObject = serde_json::from_value(obj).map_err(Error::Json)?;
        ctx.metrics.write("create", kind.name());
        match api.create(&PostParams::default(), &dynobj).await {
            Ok(_) => {}
            // Created concurrently since the read: the next reconcile re-checks ownership.
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => {
                return Err(ctx.api_error(
                    e,
                    &format!("create {}s in {}", kind.name(), layout.namespace),
                ));
            }
        }
        tracing::debug!(rsg = layout.rsg, group = g, kind = kind.name(), %name, "created");
    }
    Ok(Created::Done)
}

/// Deletes every observed object of group `g`: Services first, so no Service points at a vanishing group.
pub async fn remove_group(
    rsg: &str,
    ns: &str,
    g: u32,
    seen: &[Seen],
    ctx: &Ctx,
) -> Result<(), Error> {
    let mut objs: Vec<&Seen> = seen.iter().collect();
    objs.sort_by_key(|s| s.kind != ObjKind::Service);
    for s in objs {
        ctx.metrics.write("delete", s.kind.name());
        match dyn_api(ctx, &s.kind, ns)
            .delete(&s.name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(st)) if st.is_not_found() => {}
            Err(e) => return Err(ctx.api_error(e, &format!("delete {}s in {ns}", s.kind.name()))),
        }
    }
    tracing::debug!(rsg, group = g, "removed group");
    Ok(())
}
