//! Rolling updates: parallelism, stop-first and start-first, the delay,
//! failures (pause, continue, rollback), and completion.

use super::*;
use crate::model::{FailureAction, UpdateOrder};

/// `replicas` running on three nodes, their template about to change.
fn running(replicas: u64, config: UpdateConfig) -> Cluster {
    let mut web = replicated("web", replicas);
    web.spec.update = config;
    web.spec.rollback = config;
    let mut c = Cluster::new(nodes(3), vec![web]);
    c.settle();
    c.advance(60_000);
    c
}

fn new_version(t: &mut TaskTemplate) {
    t.args = vec!["sleep".into(), "2d".into()];
}

/// The slots' current templates: true where the new one runs.
fn rolled(c: &Cluster) -> Vec<bool> {
    c.live("web")
        .iter()
        .map(|t| t.spec.args[1] == "2d")
        .collect()
}

#[test]
fn stop_first_replaces_one_at_a_time_preparing_the_new_task_until_the_old_one_stops() {
    let mut c = running(3, UpdateConfig::default());
    c.update_template("web", new_version);
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t1"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    let new = &plan.create[0];
    assert_eq!((new.slot, new.desired_state), (1, TaskState::Ready));
    assert_eq!(new.node_id.as_deref(), Some("n1"));
    assert_eq!(plan.services[0].last_batch_ms, c.now);

    // The old task stops and the new one is prepared: now it may run.
    c.run();
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t4"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Running);
    assert!(plan.create.is_empty(), "one at a time");

    c.run();
    let plan = c.step();
    assert_eq!(
        plan.create[0].slot, 2,
        "the next slot once the new task runs"
    );
    c.settle();
    assert_eq!(rolled(&c), [true, true, true]);

    // Complete once the last new task has run for the monitoring period.
    let last_started = c.live("web")[2].status.timestamp_ms;
    assert_eq!(c.step().wake_at_ms, Some(last_started + 5_000));
    assert_eq!(c.update_state("web").0, UpdateState::Updating);
    c.now = last_started + 5_000;
    let plan = c.step();
    let status = plan.services[0].update_status.clone().unwrap();
    assert_eq!(status.state, UpdateState::Completed);
    assert_eq!(status.message, "update completed");
    assert_eq!(status.completed_at_ms, Some(c.now));
}

#[test]
fn a_stop_first_task_starts_at_once_when_the_old_one_is_already_gone() {
    let mut c = running(1, UpdateConfig::default());
    c.node_mut("n1").ready = false;
    c.step();
    c.settle();
    c.update_template("web", new_version);
    let plan = c.step();
    assert_eq!(plan.create[0].desired_state, TaskState::Ready);
    c.run();
    // The slot's old task on the down node does not hold the new one back.
    assert_eq!(c.step().update[0].desired_state, TaskState::Running);
}

#[test]
fn start_first_starts_the_new_task_before_stopping_the_old_one() {
    let config = UpdateConfig {
        order: UpdateOrder::StartFirst,
        ..UpdateConfig::default()
    };
    let mut c = running(2, config);
    c.update_template("web", new_version);
    let plan = c.step();
    assert!(plan.update.is_empty(), "the old task keeps running");
    assert_eq!(
        (plan.create[0].slot, plan.create[0].desired_state),
        (1, TaskState::Running)
    );
    assert_eq!(c.live("web").len(), 3);

    c.run();
    let plan = c.step();
    assert_eq!(
        ids(&plan.update),
        ["t1"],
        "the new one runs: the old one stops"
    );
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    assert_eq!(plan.create[0].slot, 2);
    c.settle();
    assert_eq!(rolled(&c), [true, true]);
}

#[test]
fn when_a_start_first_task_loses_its_node_the_old_task_carries_on() {
    let config = UpdateConfig {
        order: UpdateOrder::StartFirst,
        ..UpdateConfig::default()
    };
    let mut c = running(1, config);
    c.update_template("web", new_version);
    let new = c.step().create[0].clone();
    assert_eq!(new.node_id.as_deref(), Some("n2"));

    c.node_mut("n2").ready = false;
    let plan = c.step();
    assert_eq!(ids(&plan.update), [new.id.as_str()]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    assert_eq!(c.task("t1").desired_state, TaskState::Running);
    // The update tries again elsewhere.
    assert_eq!(plan.create[0].node_id.as_deref(), Some("n3"));
}

#[test]
fn the_delay_separates_batches() {
    let config = UpdateConfig {
        delay_ms: 10_000,
        ..UpdateConfig::default()
    };
    let mut c = running(2, config);
    c.update_template("web", new_version);
    let first = c.now;
    assert_eq!(c.step().create.len(), 1, "the first batch does not wait");
    c.settle();
    let plan = c.step();
    assert!(plan.create.is_empty());
    assert_eq!(plan.wake_at_ms, Some(first + 10_000));
    c.now = first + 10_000;
    assert_eq!(c.step().create[0].slot, 2);
}

#[test]
fn parallelism_bounds_the_new_tasks_not_yet_running() {
    for (parallelism, first_batch) in [(2, 2), (0, 5)] {
        let config = UpdateConfig {
            parallelism,
            ..UpdateConfig::default()
        };
        let mut c = running(5, config);
        c.update_template("web", new_version);
        let plan = c.step();
        let slots: Vec<u64> = plan.create.iter().map(|t| t.slot).collect();
        assert_eq!(
            slots,
            (1..=first_batch).collect::<Vec<_>>(),
            "parallelism {parallelism}"
        );
    }
}

/// Runs the first batch and fails its new task early.
fn fail_first_new_task(c: &mut Cluster) -> String {
    c.update_template("web", new_version);
    let new = c.step().create[0].id.clone();
    c.run();
    c.step();
    c.run();
    assert_eq!(c.task(&new).status.state, TaskState::Running);
    c.advance(1_000);
    c.end(&new, TaskState::Failed);
    new
}

#[test]
fn a_new_task_failing_early_pauses_the_update() {
    let mut c = running(3, UpdateConfig::default());
    let failed = fail_first_new_task(&mut c);
    let plan = c.step();
    let status = plan.services[0].update_status.clone().unwrap();
    assert_eq!(status.state, UpdateState::Paused);
    assert_eq!(
        status.message,
        format!("update paused due to failure or early termination of task {failed}")
    );
    c.settle();
    assert_eq!(
        rolled(&c),
        [true, false, false],
        "the other slots keep the old template"
    );
}

#[test]
fn a_failure_after_the_monitoring_period_is_no_update_failure() {
    let mut c = running(2, UpdateConfig::default());
    c.update_template("web", new_version);
    let new = c.step().create[0].id.clone();
    c.settle();
    c.advance(6_000);
    c.end(&new, TaskState::Failed);
    c.settle();
    assert_eq!(c.update_state("web").0, UpdateState::Updating);
}

#[test]
fn continue_ignores_failures_and_completes() {
    let config = UpdateConfig {
        failure_action: FailureAction::Continue,
        ..UpdateConfig::default()
    };
    let mut c = running(2, config);
    fail_first_new_task(&mut c);
    c.settle();
    c.advance(5_000);
    c.step();
    assert_eq!(c.update_state("web").0, UpdateState::Completed);
    assert_eq!(rolled(&c), [true, true]);
}

#[test]
fn the_failure_ratio_is_tolerated_before_the_action() {
    let config = UpdateConfig {
        parallelism: 0,
        max_failure_ratio: 0.5,
        ..UpdateConfig::default()
    };
    let mut c = running(4, config);
    c.update_template("web", new_version);
    c.step();
    c.settle();
    let new: Vec<String> = c.live("web").iter().map(|t| t.id.clone()).collect();
    for (failed, paused) in [(&new[0], false), (&new[1], false), (&new[2], true)] {
        c.end(failed, TaskState::Failed);
        c.step();
        let paused_now = c.update_state("web").0 == UpdateState::Paused;
        assert_eq!(paused_now, paused, "after {failed}");
    }
}

#[test]
fn a_failure_rolls_back_to_the_previous_spec() {
    let config = UpdateConfig {
        failure_action: FailureAction::Rollback,
        ..UpdateConfig::default()
    };
    let mut c = running(3, config);
    let before = c.services[0].spec.clone();
    let failed = fail_first_new_task(&mut c);
    let failed_spec = c.services[0].spec.clone();
    let plan = c.step();
    let web = &plan.services[0];
    assert_eq!(web.spec, before);
    assert_eq!(web.previous_spec.as_ref(), Some(&failed_spec));
    let status = web.update_status.clone().unwrap();
    assert_eq!(status.state, UpdateState::RollbackStarted);
    assert_eq!(status.started_at_ms, c.now);
    assert_eq!(
        status.message,
        format!("update rolled back due to failure or early termination of task {failed}")
    );
    // The failed slot comes back on the old template.
    assert_eq!(plan.create[0].spec, before.task_template());

    c.settle();
    c.advance(5_000);
    let status = c.step().services[0].update_status.clone().unwrap();
    assert_eq!(status.state, UpdateState::RollbackCompleted);
    assert_eq!(status.message, "rollback completed");
    assert_eq!(rolled(&c), [false, false, false]);
}

#[test]
fn a_rollback_that_fails_pauses_instead_of_rolling_back_again() {
    let config = UpdateConfig {
        failure_action: FailureAction::Rollback,
        ..UpdateConfig::default()
    };
    let mut c = running(2, config);
    let failed = fail_first_new_task(&mut c);
    let s = c.service_mut("web");
    s.update_status.as_mut().unwrap().state = UpdateState::RollbackStarted;
    c.step();
    let (state, message) = c.update_state("web");
    assert_eq!(state, UpdateState::RollbackPaused);
    assert_eq!(
        message,
        format!("rollback paused due to failure or early termination of task {failed}")
    );
}

#[test]
fn a_global_update_goes_node_by_node_in_hostname_order() {
    let host = |i, name: &str| NodeInfo {
        hostname: name.into(),
        ..node(i)
    };
    let mut c = Cluster::new(
        vec![host(1, "vm-c"), host(2, "vm-a"), host(3, "vm-b")],
        vec![global("web")],
    );
    c.settle();
    c.update_template("web", new_version);
    let mut order = Vec::new();
    for _ in 0..10 {
        let plan = c.step();
        for t in &plan.create {
            assert_eq!(t.desired_state, TaskState::Ready);
            order.push(t.node_id.clone().unwrap());
        }
        c.run();
    }
    assert_eq!(order, ["n2", "n3", "n1"]);
    c.advance(5_000);
    c.step();
    assert_eq!(c.update_state("web").0, UpdateState::Completed);
}
