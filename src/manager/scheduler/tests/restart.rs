//! Restart policies: the condition, the delay, the attempts and their
//! window, and the history kept per slot.

use super::*;
use crate::model::{RestartCondition, TASK_HISTORY_LIMIT};

fn web_with(policy: RestartPolicy) -> Cluster {
    let mut web = replicated("web", 1);
    web.spec.task.restart = policy;
    let mut c = Cluster::new(nodes(2), vec![web]);
    c.settle();
    c
}

fn policy(condition: RestartCondition) -> RestartPolicy {
    RestartPolicy {
        condition,
        delay_ms: 0,
        max_attempts: 0,
        window_ms: 0,
    }
}

#[test]
fn the_condition_decides_which_ends_are_restarted() {
    use RestartCondition as R;
    let cases = [
        (R::Any, TaskState::Complete, true),
        (R::Any, TaskState::Failed, true),
        (R::Any, TaskState::Rejected, true),
        (R::OnFailure, TaskState::Complete, false),
        (R::OnFailure, TaskState::Failed, true),
        (R::OnFailure, TaskState::Rejected, true),
        (R::None, TaskState::Complete, false),
        (R::None, TaskState::Failed, false),
    ];
    for (condition, ended, restarted) in cases {
        let mut c = web_with(policy(condition));
        c.end("t1", ended);
        let plan = c.step();
        let what = format!("{condition:?} after {ended:?}");
        if restarted {
            assert_eq!(ids(&plan.update), ["t1"], "{what}");
            assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
            assert_eq!(plan.update[0].status.state, ended, "the node's word stays");
            assert_eq!(plan.create[0].slot, 1, "{what}");
            assert_eq!(plan.create[0].desired_state, TaskState::Running);
        } else {
            assert_eq!(plan, Plan::default(), "{what}");
            assert!(c.live("web").is_empty(), "the slot stays empty: {what}");
        }
    }
}

#[test]
fn a_restart_waits_for_the_delay() {
    let mut c = web_with(RestartPolicy {
        delay_ms: 5_000,
        ..policy(RestartCondition::Any)
    });
    c.end("t1", TaskState::Failed);
    let plan = c.step();
    assert_eq!(
        plan,
        Plan {
            wake_at_ms: Some(T0 + 5_000),
            ..Plan::default()
        }
    );
    c.advance(4_999);
    assert_eq!(c.step().wake_at_ms, Some(T0 + 5_000));
    c.advance(1);
    let plan = c.step();
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.wake_at_ms, None);
}

#[test]
fn max_attempts_stops_restarting_for_good_without_a_window() {
    let mut c = web_with(RestartPolicy {
        max_attempts: 2,
        ..policy(RestartCondition::Any)
    });
    for (ends, next) in [("t1", Some("t2")), ("t2", Some("t3")), ("t3", None)] {
        c.advance(1_000);
        c.end(ends, TaskState::Failed);
        let plan = c.step();
        assert_eq!(
            plan.create.first().map(|t| t.id.as_str()),
            next,
            "after {ends}"
        );
        assert_eq!(plan.wake_at_ms, None);
        c.settle();
    }
    c.advance(3_600_000);
    assert_eq!(c.step(), Plan::default(), "never again");
}

#[test]
fn max_attempts_counts_only_the_attempts_within_the_window() {
    let mut c = web_with(RestartPolicy {
        max_attempts: 1,
        window_ms: 10_000,
        ..policy(RestartCondition::Any)
    });
    // t1, made at T0, fails: the first restart.
    c.advance(1_000);
    c.end("t1", TaskState::Failed);
    assert_eq!(ids(&c.step().create), ["t2"]);
    c.settle();
    // t2 fails while t1 is in the window: no restart until t1 leaves it.
    c.advance(1_000);
    c.end("t2", TaskState::Failed);
    let plan = c.step();
    assert!(plan.create.is_empty());
    assert_eq!(plan.wake_at_ms, Some(T0 + 10_001));
    c.now = T0 + 10_001;
    assert_eq!(ids(&c.step().create), ["t3"]);
}

#[test]
fn tasks_stopped_by_the_scheduler_are_not_attempts() {
    let mut c = web_with(RestartPolicy {
        max_attempts: 1,
        ..policy(RestartCondition::Any)
    });
    // t1 is moved off a drained node: stopped, not failed.
    c.node_mut("n1").availability = Availability::Drain;
    c.settle();
    c.end("t2", TaskState::Failed);
    assert_eq!(ids(&c.step().create), ["t3"]);
}

#[test]
fn each_slot_keeps_at_most_five_tasks() {
    let mut c = web_with(policy(RestartCondition::Any));
    for round in 1..=8 {
        c.advance(1_000);
        let current = c.live("web")[0].id.clone();
        c.end(&current, TaskState::Failed);
        c.settle();
        let slot = c.slot("web", 1, None);
        assert_eq!(
            slot.len(),
            (round + 1).min(TASK_HISTORY_LIMIT),
            "round {round}"
        );
    }
    assert_eq!(c.slot("web", 1, None), ["t5", "t6", "t7", "t8", "t9"]);
}

#[test]
fn history_grows_to_hold_the_attempts_a_limit_counts() {
    let mut c = web_with(RestartPolicy {
        max_attempts: 7,
        ..policy(RestartCondition::Any)
    });
    for _ in 0..7 {
        c.advance(1_000);
        let current = c.live("web")[0].id.clone();
        c.end(&current, TaskState::Failed);
        c.settle();
    }
    assert_eq!(c.slot("web", 1, None).len(), 8);
    c.end("t8", TaskState::Failed);
    assert_eq!(c.step(), Plan::default(), "seven restarts, then no more");
}
