//! InplaceScaling: followers at leader × followRatio.
//!
//! `leader.replicas` is forced on the leader when it differs from the value last applied
//! (`status.lastDesiredReplicas`), i.e. when the RSG is created or its `leader.replicas` edited. Otherwise
//! the leader's own replicas rule, so when something else scales the leader (an HPA, `kubectl scale`), the
//! followers follow within one reconcile (the leader's watch event triggers it). Nothing is created.

use api_types::keys::reasons;
use api_types::rsg::ResourceScalingGroup;
use kube::ResourceExt;

use crate::Error;
use crate::context::Ctx;
use crate::kinds::replicas;
use crate::status::Outcome;
use crate::targets::Workload;

/// The leader's effective replicas: forced to `spec_leader` when that differs from the last applied value.
pub fn effective_leader(spec_leader: i32, last_applied: Option<i32>, observed: i32) -> (i32, bool) {
    if last_applied != Some(spec_leader) {
        (spec_leader, true)
    } else {
        (observed, false)
    }
}

/// follower replicas = leader × ratio (saturating).
pub fn follower_replicas(leader: i32, ratio: i32) -> i32 {
    leader.saturating_mul(ratio)
}

/// Reconciles an InplaceScaling RSG whose targets resolved to `workloads`; `last_applied` is the leader
/// count last forced (`status.lastDesiredReplicas`, from the freshest known status).
pub async fn reconcile(
    rsg: &ResourceScalingGroup,
    last_applied: Option<i32>,
    workloads: &[Workload],
    ctx: &Ctx,
) -> Result<Outcome, Error> {
    let name = rsg.name_any();
    let Some(lf) = rsg.spec.scaling_strategy.leader_follower_config.as_ref() else {
        return Err(ctx.blocked(
            reasons::INVALID_SPEC,
            "spec.scalingStrategy.leaderFollowerConfig is required for InplaceScaling".into(),
        ));
    };
    let find = |target: &str| -> Result<&Workload, Error> {
        workloads
            .iter()
            .find(|w| w.target == target)
            .ok_or_else(|| {
                ctx.blocked(
                    reasons::INVALID_SPEC,
                    format!("{target:?} is not a targetResources[].name: fix leaderFollowerConfig"),
                )
            })
    };
    let leader = find(&lf.leader.resource_name)?;
    let leader_obj = ctx.get_workload(leader).await?;
    let observed = replicas(&leader_obj).unwrap_or(1);
    let (effective, forced) = effective_leader(lf.leader.replicas, last_applied, observed);
    let mut changes = Vec::new();
    if forced && observed != effective {
        ctx.set_replicas(leader, effective).await?;
        changes.push(format!("leader {} {observed} → {effective}", leader.name));
    }
    let mut summary = Vec::new();
    for f in lf.follower.iter().flatten() {
        let w = find(&f.resource_name)?;
        // Seed 002's FAQ tells users to look for these words.
        let obj = ctx
            .get_workload(w)
            .await
            .map_err(|e| prefixed(e, "follower resource not found"))?;
        let want = follower_replicas(effective, f.follow_ratio);
        let have = replicas(&obj).unwrap_or(1);
        if have != want {
            ctx.set_replicas(w, want)
                .await
                .map_err(|e| prefixed(e, "patch follower replicas failed"))?;
            changes.push(format!("follower {} {have} → {want}", w.name));
        }
        summary.push(format!("{} {want} (×{})", w.name, f.follow_ratio));
    }
    if !changes.is_empty() {
        tracing::info!(rsg = %name, changes = ?changes, "replicas set");
        ctx.event(rsg, false, reasons::REPLICAS_SET, changes.join("; "))
            .await;
    }
    let mut o = Outcome::ready(format!(
        "leader {} at {effective}; followers: {}",
        leader.name,
        if summary.is_empty() {
            "none".to_string()
        } else {
            summary.join(", ")
        }
    ));
    o.current = Some(effective);
    o.last_desired = Some(lf.leader.replicas);
    Ok(o)
}

/// Puts `what` in front of a blocked outcome's message (and logs it), leaving other errors alone.
fn prefixed(e: Error, what: &str) -> Error {
    match e {
        Error::Blocked(mut o) => {
            tracing::warn!(message = %o.message, "{what}");
            o.message = format!("{what}: {}", o.message);
            Error::Blocked(o)
        }
        other => {
            tracing::warn!(error = %other, "{what}");
            other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_three_six_three() {
        let (leader, forced) = effective_leader(3, None, 1);
        assert_eq!((leader, forced), (3, true));
        assert_eq!(follower_replicas(leader, 2), 6);
        assert_eq!(follower_replicas(leader, 1), 3);
    }

    #[test]
    fn an_hpa_on_the_leader_is_followed_not_reverted() {
        // leader.replicas 3 already applied; an HPA moved the leader to 5.
        assert_eq!(effective_leader(3, Some(3), 5), (5, false));
        // The user edits leader.replicas to 4: forced once.
        assert_eq!(effective_leader(4, Some(3), 5), (4, true));
    }

    #[test]
    fn ratios_saturate() {
        assert_eq!(follower_replicas(i32::MAX, 2), i32::MAX);
    }
}
