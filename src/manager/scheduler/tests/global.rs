//! Global services: one task per eligible node, as nodes come, go down, are
//! drained, paused or relabelled.

use super::*;

#[test]
fn a_global_service_runs_one_task_per_node_and_on_nodes_that_join() {
    let mut c = Cluster::new(nodes(3), vec![global("agent")]);
    let plan = c.step();
    let made: Vec<(u64, &str, TaskState)> = plan
        .create
        .iter()
        .map(|t| (t.slot, t.node_id.as_deref().unwrap(), t.status.state))
        .collect();
    assert_eq!(
        made,
        [
            (0, "n1", TaskState::Assigned),
            (0, "n2", TaskState::Assigned),
            (0, "n3", TaskState::Assigned)
        ]
    );
    c.settle();

    c.nodes.push(node(4));
    let plan = c.step();
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].node_id.as_deref(), Some("n4"));
    assert!(plan.update.is_empty());
}

#[test]
fn a_down_node_keeps_its_task_and_gets_no_duplicate() {
    let mut c = Cluster::new(nodes(3), vec![global("agent")]);
    c.settle();
    c.node_mut("n2").ready = false;
    assert_eq!(c.step(), Plan::default());
    // Even when its task ended before the node went down.
    c.end("t2", TaskState::Failed);
    assert_eq!(c.step(), Plan::default());
    c.node_mut("n2").ready = true;
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t2"], "restarted once the node is back");
    assert_eq!(plan.create[0].node_id.as_deref(), Some("n2"));
}

#[test]
fn availability_and_labels_decide_which_nodes_run_it() {
    let mut agent = global("agent");
    agent.spec.task.constraints = vec!["node.labels.gpu==yes".into()];
    let gpu = |n| labelled(node(n), "gpu", "yes");
    let mut c = Cluster::new(vec![gpu(1), gpu(2), node(3)], vec![agent]);
    c.settle();
    assert_eq!(c.placement("agent"), ["n1", "n2"]);

    // A label added: the node gets one.
    c.node_mut("n3").labels.insert("gpu".into(), "yes".into());
    assert_eq!(c.step().create[0].node_id.as_deref(), Some("n3"));
    c.settle();

    // Drained: its task stops and is not replaced.
    c.node_mut("n1").availability = Availability::Drain;
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t1"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    assert!(plan.create.is_empty());
    c.settle();

    // Label removed: the same.
    c.node_mut("n2").labels.clear();
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t2"]);
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    c.settle();
    assert_eq!(c.placement("agent"), ["n3"]);

    // Paused: keeps its task; active again: the drained node gets a new one.
    c.node_mut("n3").availability = Availability::Pause;
    assert_eq!(c.step(), Plan::default());
    c.node_mut("n1").availability = Availability::Active;
    let plan = c.step();
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].node_id.as_deref(), Some("n1"));
}

#[test]
fn a_global_task_restarts_on_its_own_node_and_a_paused_node_waits() {
    let mut c = Cluster::new(nodes(2), vec![global("agent")]);
    c.settle();
    c.end("t1", TaskState::Failed);
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t1"]);
    assert_eq!(plan.create[0].node_id.as_deref(), Some("n1"));
    assert_eq!(c.slot("agent", 0, Some("n1")), ["t1", "t3"]);

    c.node_mut("n2").availability = Availability::Pause;
    c.end("t2", TaskState::Failed);
    assert_eq!(c.step(), Plan::default());
}

#[test]
fn a_node_that_left_has_its_global_task_forgotten() {
    let mut c = Cluster::new(nodes(2), vec![global("agent")]);
    c.settle();
    c.nodes.retain(|n| n.id != "n2");
    let plan = c.step();
    assert_eq!(plan.delete, ["t2"]);
    assert!(plan.create.is_empty() && plan.update.is_empty());
}
