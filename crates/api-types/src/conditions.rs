//! Building `metav1.Condition` lists: a condition's `lastTransitionTime` changes only when its status
//! does, so a reconcile that finds nothing new writes nothing new.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition with `status` True or False, stamped `now`.
pub fn make(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.clone(),
        observed_generation: generation,
    }
}

/// `new`, with the `lastTransitionTime` of every condition whose status is unchanged from `old`.
pub fn keep_transition_times(old: &[Condition], mut new: Vec<Condition>) -> Vec<Condition> {
    for c in new.iter_mut() {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_)
            && o.status == c.status
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
    new
}

/// The condition of `type_` in `list`, if any.
pub fn find<'a>(list: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    list.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let old = vec![
            make("A", true, "R", "m", None, &t(1)),
            make("B", true, "R", "m", None, &t(1)),
        ];
        let new = keep_transition_times(
            &old,
            vec![
                make("A", true, "R2", "m2", None, &t(5)),
                make("B", false, "R", "m", None, &t(5)),
            ],
        );
        assert_eq!(new[0].last_transition_time, t(1));
        assert_eq!(new[0].reason, "R2");
        assert_eq!(new[1].last_transition_time, t(5));
        assert_eq!(find(&new, "B").unwrap().status, "False");
    }
}
