//! Replicated services: scaling, drained, paused and down nodes, constraints
//! that stop holding, duplicates, and the tasks of a removed service.

use super::*;

/// Three replicas running on three nodes.
fn running_web() -> Cluster {
    let mut c = Cluster::new(nodes(3), vec![replicated("web", 3)]);
    c.settle();
    assert_eq!(c.placement("web"), ["n1", "n2", "n3"]);
    c
}

#[test]
fn scaling_up_adds_slots_on_the_least_loaded_nodes() {
    let mut c = running_web();
    c.service_mut("web").spec.mode = ServiceMode::Replicated { replicas: 5 };
    let plan = c.step();
    let made: Vec<(u64, &str)> = plan
        .create
        .iter()
        .map(|t| (t.slot, t.node_id.as_deref().unwrap()))
        .collect();
    assert_eq!(made, [(4, "n1"), (5, "n2")]);
    assert!(plan.update.is_empty() && plan.delete.is_empty());
}

#[test]
fn scaling_down_removes_the_highest_slots_then_forgets_them_once_stopped() {
    let mut c = running_web();
    // Slot 3 has history: an ended task before the running one.
    c.end("t3", TaskState::Failed);
    c.settle();
    assert_eq!(c.slot("web", 3, None), ["t3", "t4"]);

    c.service_mut("web").spec.mode = ServiceMode::Replicated { replicas: 1 };
    let plan = c.step();
    assert_eq!(
        plan.delete,
        ["t3"],
        "an ended task of a removed slot goes at once"
    );
    assert_eq!(ids(&plan.update), ["t2", "t4"]);
    assert!(plan
        .update
        .iter()
        .all(|t| t.desired_state == TaskState::Remove));
    assert!(plan.create.is_empty());

    c.run();
    let plan = c.step();
    assert_eq!(plan.delete, ["t2", "t4"]);
    assert_eq!(c.placement("web"), ["n1"]);
    assert_eq!(c.tasks.len(), 1);
}

#[test]
fn a_removed_slot_on_a_down_node_or_never_placed_is_forgotten_at_once() {
    let mut c = Cluster::new(nodes(2), vec![replicated("web", 3)]);
    c.settle();
    assert_eq!(c.placement("web"), ["n1", "n2", "n1"]);
    c.node_mut("n2").ready = false;
    let t3 = c.tasks.iter_mut().find(|t| t.id == "t3").unwrap();
    t3.node_id = None;
    t3.status = TaskStatus::new(TaskState::Pending, T0, "pending task scheduling");
    c.service_mut("web").spec.mode = ServiceMode::Replicated { replicas: 1 };
    let plan = c.step();
    assert_eq!(plan.delete, ["t2", "t3"]);
    assert!(plan.update.is_empty() && plan.create.is_empty());
}

#[test]
fn drain_moves_tasks_off_pause_keeps_them_and_active_takes_new_ones() {
    let mut c = running_web();

    c.node_mut("n2").availability = Availability::Drain;
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t2"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    assert_eq!(
        plan.update[0].status.state,
        TaskState::Running,
        "the node stops it"
    );
    assert_eq!(plan.create.len(), 1);
    assert_eq!(
        (plan.create[0].slot, plan.create[0].node_id.as_deref()),
        (2, Some("n1"))
    );
    c.settle();
    assert_eq!(c.placement("web"), ["n1", "n1", "n3"]);

    c.node_mut("n3").availability = Availability::Pause;
    c.service_mut("web").spec.mode = ServiceMode::Replicated { replicas: 4 };
    let plan = c.step();
    assert!(plan.update.is_empty(), "a paused node keeps its task");
    assert_eq!(
        plan.create[0].node_id.as_deref(),
        Some("n1"),
        "but takes no new one"
    );
    c.settle();

    c.node_mut("n2").availability = Availability::Active;
    c.service_mut("web").spec.mode = ServiceMode::Replicated { replicas: 5 };
    let plan = c.step();
    assert_eq!(plan.create[0].node_id.as_deref(), Some("n2"));
    assert!(plan.update.is_empty(), "running tasks do not move back");
}

#[test]
fn a_down_nodes_tasks_are_replaced_in_the_same_plan() {
    let mut c = running_web();
    c.node_mut("n3").ready = false;
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t3"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    assert_eq!(plan.update[0].status.state, TaskState::Running);
    assert_eq!(plan.create.len(), 1);
    assert_eq!(
        (plan.create[0].slot, plan.create[0].node_id.as_deref()),
        (3, Some("n1"))
    );

    // The node comes back: its agent stops the old task; nothing moves back.
    c.settle();
    c.node_mut("n3").ready = true;
    c.run();
    assert_eq!(c.task("t3").status.state, TaskState::Shutdown);
    assert_eq!(c.step(), Plan::default());
}

#[test]
fn a_node_that_left_has_its_tasks_replaced() {
    let mut c = running_web();
    c.nodes.retain(|n| n.id != "n2");
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t2"]);
    assert_eq!(
        (plan.create[0].slot, plan.create[0].node_id.as_deref()),
        (2, Some("n1"))
    );
}

#[test]
fn a_task_whose_node_no_longer_matches_its_constraints_is_replaced() {
    let mut web = replicated("web", 2);
    web.spec.task.constraints = vec!["node.labels.zone==east".into()];
    let east = |n| labelled(node(n), "zone", "east");
    let mut c = Cluster::new(vec![east(1), east(2), node(3)], vec![web]);
    c.settle();
    assert_eq!(c.placement("web"), ["n1", "n2"]);

    c.node_mut("n2").labels.clear();
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t2"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    assert_eq!(plan.create[0].node_id.as_deref(), Some("n1"));
}

#[test]
fn of_two_tasks_meant_to_run_in_a_slot_the_newest_stays() {
    let mut c = running_web();
    let mut twin = c.task("t1").clone();
    twin.id = "t9".into();
    twin.created_at_ms += 1;
    c.tasks.push(twin);
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t1"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
}

#[test]
fn the_tasks_of_a_removed_service_are_removed_or_forgotten() {
    let mut c = Cluster::new(nodes(2), vec![replicated("web", 4), replicated("db", 1)]);
    c.settle();
    // t1 runs on n1, t2 on n2 (down), t3 ended, t4 never placed.
    c.end("t3", TaskState::Complete);
    c.node_mut("n2").ready = false;
    c.tasks.iter_mut().find(|t| t.id == "t4").unwrap().node_id = None;
    c.services.retain(|s| s.id != "web");
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t1"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Remove);
    assert_eq!(plan.delete, ["t2", "t3", "t4"]);
    c.run();
    assert_eq!(c.step().delete, ["t1"]);
    assert!(c.tasks.iter().all(|t| t.service_id == "db"));
}
