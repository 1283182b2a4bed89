//! The pending-replica guard: LLM pods take minutes to load, and while the replicas of the last scale-up
//! are not ready the load on the ready ones stays high. An algorithm that multiplies the *requested* count
//! by the load ratio of the *ready* pods then scales up again and again (2 → 4 → 8 → 16) for one burst.
//! The guard counts requested-but-not-ready replicas as capacity to come: while any are pending, a
//! scale-up goes only as far as the load needs in total (`ceil(total load / target per pod)`), never past
//! the algorithm's own recommendation, and never below what is already requested.

/// The recommendation after the guard. `needed` is `ceil(total load / target per pod)`.
pub fn guard(desired: i32, current: i32, ready: i32, needed: i32) -> i32 {
    let pending = current - ready;
    if pending <= 0 || desired <= current {
        return desired;
    }
    desired.min(needed.max(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cascade_while_pods_are_coming() {
        // 4 requested, 2 ready and overloaded; the load needs 4 in total: hold at 4 instead of 8.
        assert_eq!(guard(8, 4, 2, 4), 4);
        // The load needs 6: go to 6, not 8.
        assert_eq!(guard(8, 4, 2, 6), 6);
    }

    #[test]
    fn untouched_without_pending_pods_or_for_scale_down() {
        assert_eq!(
            guard(8, 4, 4, 4),
            8,
            "nothing pending: the algorithm decides"
        );
        assert_eq!(
            guard(2, 4, 2, 1),
            2,
            "scale-down is not the guard's business"
        );
    }
}
