//! GroupReplication's decision: from the observed groups and the desired count, what to create, complete,
//! restore and remove. Pure; the reconcile carries the plan out and the next reconcile re-plans from what it
//! then observes, so a crash at any point converges.
//!
//! Rules:
//! - group 0 is the base workloads; it is never a scale-down victim while the RSG wants ≥ 1 group. Desired 0
//!   removes every clone and scales group 0 to 0; desired ≥ 1 restores it to the baseline first.
//! - a clone group is present when any of its objects exists; it is complete when all do. A partial group
//!   inside the desired count is completed; partial groups are the first victims when there are too many
//!   (a crash in the middle of a scale-down leaves exactly such a group).
//! - new groups take the smallest unused ids from 1.

use std::collections::BTreeMap;

/// Whether every object of a clone group exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// All workloads and Services of the group exist.
    Complete,
    /// Some are missing (a crash mid-scale, or a name conflict).
    Partial,
}

/// What the reconcile observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Whether group 0 (the base workloads) is serving: not scaled to 0 by a previous scale to zero.
    pub group0_active: bool,
    /// Clone groups by id (≥ 1).
    pub clones: BTreeMap<u32, Health>,
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Scale group 0 back to the baseline.
    pub restore_group0: bool,
    /// Scale group 0 to 0 (desired is 0).
    pub zero_group0: bool,
    /// Partial groups to complete (create their missing objects).
    pub complete: Vec<u32>,
    /// New groups to create.
    pub create: Vec<u32>,
    /// Groups to remove without choosing (partial groups, or every clone when desired is 0).
    pub remove: Vec<u32>,
    /// How many more groups to remove, chosen among `candidates` by the scale-down order.
    pub remove_count: usize,
    /// Complete groups eligible for the chosen removals.
    pub candidates: Vec<u32>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        *self == Plan::default()
    }
}

/// Plans GroupReplication for `desired` groups.
pub fn plan(desired: u32, observed: &Observed) -> Plan {
    let mut p = Plan::default();
    if desired == 0 {
        p.zero_group0 = observed.group0_active;
        p.remove = observed.clones.keys().copied().collect();
        return p;
    }
    p.restore_group0 = !observed.group0_active;
    let want = (desired - 1) as usize;
    let ids = |health: Health| -> Vec<u32> {
        observed
            .clones
            .iter()
            .filter(|(_, h)| **h == health)
            .map(|(id, _)| *id)
            .collect()
    };
    let (complete, partial) = (ids(Health::Complete), ids(Health::Partial));
    let present = complete.len() + partial.len();
    if present > want {
        let excess = present - want;
        // Partial groups go first, highest id first.
        let drop_partial = excess.min(partial.len());
        p.remove = partial.iter().rev().take(drop_partial).copied().collect();
        p.complete = partial.iter().rev().skip(drop_partial).copied().collect();
        p.complete.sort_unstable();
        p.remove_count = excess - drop_partial;
        if p.remove_count > 0 {
            p.candidates = complete;
        }
    } else {
        p.complete = partial;
        let mut next = 1u32;
        while p.create.len() < want - present {
            if !observed.clones.contains_key(&next) {
                p.create.push(next);
            }
            next += 1;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    fn obs(active: bool, clones: &[(u32, Health)]) -> Observed {
        Observed {
            group0_active: active,
            clones: clones.iter().copied().collect(),
        }
    }

    #[test]
    fn scale_up_fills_lowest_free_ids() {
        let p = plan(4, &obs(true, &[(2, Complete)]));
        assert_eq!(p.create, vec![1, 3]);
        assert!(p.remove.is_empty() && p.remove_count == 0);
    }

    #[test]
    fn steady_state_is_noop() {
        assert!(plan(3, &obs(true, &[(1, Complete), (2, Complete)])).is_noop());
        assert!(plan(1, &obs(true, &[])).is_noop());
        assert!(plan(0, &obs(false, &[])).is_noop());
    }

    #[test]
    fn scale_down_chooses_among_complete_groups() {
        let p = plan(
            2,
            &obs(true, &[(1, Complete), (2, Complete), (3, Complete)]),
        );
        assert_eq!(p.remove_count, 2);
        assert_eq!(p.candidates, vec![1, 2, 3]);
    }

    #[test]
    fn partial_groups_are_removed_first_then_completed() {
        // A crash mid scale-down left group 3 partial; one group too many.
        let p = plan(3, &obs(true, &[(1, Complete), (2, Complete), (3, Partial)]));
        assert_eq!(p.remove, vec![3]);
        assert_eq!(p.remove_count, 0);
        // A crash mid scale-up left group 2 partial; it is wanted, so completed.
        let p = plan(3, &obs(true, &[(1, Complete), (2, Partial)]));
        assert_eq!(p.complete, vec![2]);
        assert!(p.create.is_empty() && p.remove.is_empty());
    }

    #[test]
    fn zero_removes_every_clone_and_zeroes_group0() {
        let p = plan(0, &obs(true, &[(1, Complete), (4, Partial)]));
        assert!(p.zero_group0);
        assert_eq!(p.remove, vec![1, 4]);
        let back = plan(1, &obs(false, &[]));
        assert!(back.restore_group0);
        assert!(back.create.is_empty());
    }

    #[test]
    fn group0_restored_before_new_clones() {
        let p = plan(3, &obs(false, &[]));
        assert!(p.restore_group0);
        assert_eq!(p.create, vec![1, 2]);
    }
}
