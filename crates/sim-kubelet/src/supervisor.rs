//! The pod watch and the per-pod tasks.
//!
//! A `kube::runtime::watcher` over the pods with `spec.nodeName=<node>` feeds one [`PodWorker`] per pod UID.
//! Each (re)list is buffered from `Init` to `InitDone` and then applied as a whole: pods in the list are
//! started or updated, tracked pods missing from it are told they are gone (their deletion was missed while
//! the watch was down). Before the first list is applied, the IP allocator is rebuilt from the listed pods'
//! `status.podIP`, so a restarted sim-kubelet keeps every pod's address, and addresses no pod holds are removed
//! from the namespace ([`leftovers`]). Watch errors are logged and the
//! watcher's own backoff retries them; nothing here ends the process.
//!
//! The bookkeeping of which UIDs exist ([`Tracker`]) is pure and unit-tested; the IO part only forwards.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use pdo_runtime::Readiness;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Context;
use crate::ipam::IpAllocator;
use crate::leftovers;
use crate::podspec::reported_pod_ip;
use crate::worker::{PodUpdate, PodWorker};

/// What to do after a watch event.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Start a task for a pod not tracked yet.
    Start(Arc<Pod>),
    /// Hand a new version to the pod's task.
    Update(Arc<Pod>),
    /// Tell the task of this UID that its pod is gone.
    Gone(String),
}

/// Which pod UIDs are tracked, and the buffer of a list in progress.
#[derive(Debug, Default)]
pub struct Tracker {
    known: HashSet<String>,
    listing: Option<Vec<Arc<Pod>>>,
    synced: bool,
}

fn uid(p: &Pod) -> Option<&str> {
    p.metadata.uid.as_deref()
}

impl Tracker {
    /// Whether a complete list has been applied at least once.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Folds one watch event into the actions to take. `InitDone` yields the whole list's actions.
    pub fn handle(&mut self, event: Event<Pod>) -> Vec<Action> {
        match event {
            Event::Init => {
                self.listing = Some(Vec::new());
                Vec::new()
            }
            Event::InitApply(p) => {
                self.listing.get_or_insert_with(Vec::new).push(Arc::new(p));
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let present: HashSet<&str> = listed.iter().filter_map(|p| uid(p)).collect();
                let mut gone: Vec<String> = self
                    .known
                    .iter()
                    .filter(|u| !present.contains(u.as_str()))
                    .cloned()
                    .collect();
                gone.sort();
                let mut actions: Vec<Action> = gone.into_iter().map(Action::Gone).collect();
                for u in &actions {
                    if let Action::Gone(u) = u {
                        self.known.remove(u);
                    }
                }
                actions.extend(listed.into_iter().filter_map(|p| self.apply(p)));
                self.synced = true;
                actions
            }
            Event::Apply(p) => self.apply(Arc::new(p)).into_iter().collect(),
            Event::Delete(p) => match uid(&p) {
                Some(u) if self.known.remove(u) => vec![Action::Gone(u.to_owned())],
                _ => Vec::new(),
            },
        }
    }

    fn apply(&mut self, p: Arc<Pod>) -> Option<Action> {
        let u = uid(&p)?.to_owned();
        Some(if self.known.insert(u) {
            Action::Start(p)
        } else {
            Action::Update(p)
        })
    }
}

/// The `(uid, podIP)` pairs an allocator is rebuilt from.
pub fn reported_ips(pods: &[Action]) -> Vec<(&str, Ipv4Addr)> {
    pods.iter()
        .filter_map(|a| match a {
            Action::Start(p) | Action::Update(p) => Some((uid(p)?, reported_pod_ip(p)?)),
            Action::Gone(_) => None,
        })
        .collect()
}

/// Watches this node's pods and runs their tasks until shutdown, then waits for every task to stop its
/// process. `ready` is set once the first list has been applied.
pub async fn run(ctx: Arc<Context>, ready: Readiness) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut events = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut tracker = Tracker::default();
    let mut senders: HashMap<String, watch::Sender<PodUpdate>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let event = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            e = events.next() => e,
        };
        let event = match event {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
            None => {
                tracing::error!("pod watch ended");
                break;
            }
        };
        let first_list = !tracker.synced() && matches!(event, Event::InitDone);
        let actions = tracker.handle(event);
        if first_list {
            let (ipam, rejected) = IpAllocator::rebuild(ctx.pod_cidr, reported_ips(&actions));
            for (uid, e) in rejected {
                tracing::warn!(%uid, error = %e, "existing pod IP not kept");
            }
            if let Err(e) = leftovers::remove_stale_addresses(&ctx.net, &ipam).await {
                tracing::warn!(error = %e, "could not clear stale pod addresses");
            }
            tracing::info!(
                pods = actions.len(),
                ips = ipam.len(),
                "initial pod list applied"
            );
            *ctx.ipam.lock().expect("ipam lock") = ipam;
        }
        for action in actions {
            match action {
                Action::Start(p) => {
                    let uid = uid(&p).unwrap_or_default().to_owned();
                    let (tx, rx) = watch::channel(PodUpdate::Present(p.clone()));
                    tasks.spawn(PodWorker::new(ctx.clone(), p, rx).run());
                    senders.insert(uid, tx);
                }
                Action::Update(p) => {
                    if let Some(tx) = uid(&p).and_then(|u| senders.get(u)) {
                        tx.send_replace(PodUpdate::Present(p));
                    }
                }
                Action::Gone(u) => {
                    if let Some(tx) = senders.remove(&u) {
                        tx.send_replace(PodUpdate::Gone);
                    }
                }
            }
        }
        if first_list {
            ready.set(true);
        }
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "pod task failed");
            }
        }
    }
    ready.set(false);
    tracing::info!(tasks = tasks.len(), "stopping pod tasks");
    while tasks.join_next().await.is_some() {}
    drop(senders);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podspec::tests::pod;

    fn p(uid: &str, ip: Option<&str>) -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": format!("p-{uid}"), "namespace": "ns", "uid": uid},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"podIP": ip}
        }))
    }

    fn kinds(a: &[Action]) -> Vec<String> {
        a.iter()
            .map(|a| match a {
                Action::Start(p) => format!("start {}", uid(p).unwrap()),
                Action::Update(p) => format!("update {}", uid(p).unwrap()),
                Action::Gone(u) => format!("gone {u}"),
            })
            .collect()
    }

    #[test]
    fn list_then_watch_then_relist() {
        let mut t = Tracker::default();
        assert!(t.handle(Event::Init).is_empty());
        assert!(
            t.handle(Event::InitApply(p("a", Some("10.244.1.1"))))
                .is_empty()
        );
        assert!(t.handle(Event::InitApply(p("b", None))).is_empty());
        assert!(!t.synced());
        let a = t.handle(Event::InitDone);
        assert!(t.synced());
        assert_eq!(kinds(&a), ["start a", "start b"]);
        assert_eq!(reported_ips(&a), [("a", "10.244.1.1".parse().unwrap())]);

        assert_eq!(kinds(&t.handle(Event::Apply(p("b", None)))), ["update b"]);
        assert_eq!(kinds(&t.handle(Event::Apply(p("c", None)))), ["start c"]);
        assert_eq!(kinds(&t.handle(Event::Delete(p("a", None)))), ["gone a"]);
        assert!(
            t.handle(Event::Delete(p("a", None))).is_empty(),
            "a second delete is ignored"
        );

        // The watch restarts; `b` was deleted meanwhile, `d` created.
        t.handle(Event::Init);
        t.handle(Event::InitApply(p("c", None)));
        t.handle(Event::InitApply(p("d", None)));
        assert_eq!(
            kinds(&t.handle(Event::InitDone)),
            ["gone b", "update c", "start d"]
        );
    }

    #[test]
    fn pods_without_uid_are_ignored() {
        let mut t = Tracker::default();
        let no_uid = pod(serde_json::json!({"metadata": {"name": "x"}}));
        assert!(t.handle(Event::Apply(no_uid.clone())).is_empty());
        assert!(t.handle(Event::Delete(no_uid)).is_empty());
        assert_eq!(kinds(&t.handle(Event::InitDone)), Vec::<String>::new());
    }
}
