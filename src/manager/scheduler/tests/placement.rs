//! Placement: spreading replicas, constraints, and Docker's reasons for a
//! task no node takes.

use super::*;
use crate::manager::scheduler::placement::{no_suitable_node, Ruled};
use crate::manager::scheduler::work::{ASSIGNED, PENDING};

#[test]
fn replicas_spread_over_the_nodes_with_the_fewest_tasks() {
    // (replicas, nodes, another service's replicas placed first, nodes by slot)
    let cases: &[(u64, u32, u64, &[&str])] = &[
        (3, 3, 0, &["n1", "n2", "n3"]),
        (5, 3, 0, &["n1", "n2", "n3", "n1", "n2"]),
        (2, 1, 0, &["n1", "n1"]),
        // The fewest tasks of this service first, then the fewest overall.
        (3, 3, 1, &["n2", "n3", "n1"]),
        (4, 3, 2, &["n3", "n1", "n2", "n3"]),
    ];
    for &(replicas, count, others, expect) in cases {
        let mut services = vec![replicated("web", replicas)];
        if others > 0 {
            services.insert(0, replicated("db", others));
        }
        let mut c = Cluster::new(nodes(count), services);
        let plan = c.step();
        let web: Vec<&Task> = plan
            .create
            .iter()
            .filter(|t| t.service_id == "web")
            .collect();
        let slots: Vec<u64> = web.iter().map(|t| t.slot).collect();
        assert_eq!(slots, (1..=replicas).collect::<Vec<_>>());
        let placed: Vec<&str> = web.iter().map(|t| t.node_id.as_deref().unwrap()).collect();
        assert_eq!(
            placed, expect,
            "{replicas} replicas on {count} nodes, {others} others"
        );
        for t in web {
            assert_eq!(t.desired_state, TaskState::Running);
            assert_eq!(t.status.state, TaskState::Assigned);
            assert_eq!(t.status.message, ASSIGNED);
            assert_eq!((t.created_at_ms, t.updated_at_ms), (T0, T0));
            assert_eq!(t.spec_version, 1);
            assert_eq!(t.service_name, "web");
        }
    }
}

#[test]
fn constraints_choose_the_nodes() {
    let manager = NodeInfo {
        role: NodeRole::Manager,
        ..node(1)
    };
    let east = |n| labelled(node(n), "zone", "east");
    let cases: Vec<(&str, Vec<NodeInfo>, &[&str])> = vec![
        (
            "node.role==worker",
            vec![manager, node(2), node(3)],
            &["n2", "n3", "n2"],
        ),
        ("node.hostname!=vm2", nodes(3), &["n1", "n3", "n1"]),
        (
            "node.labels.zone==east",
            vec![east(1), node(2), east(3)],
            &["n1", "n3", "n1"],
        ),
        (
            "node.labels.zone!=east",
            vec![east(1), node(2), east(3)],
            &["n2", "n2", "n2"],
        ),
    ];
    for (constraint, nodes, expect) in cases {
        let mut web = replicated("web", 3);
        web.spec.task.constraints = vec![constraint.into()];
        let mut c = Cluster::new(nodes, vec![web]);
        c.step();
        assert_eq!(c.placement("web"), expect, "{constraint}");
    }
}

#[test]
fn a_task_no_node_takes_is_pending_with_dockers_reason() {
    let down = NodeInfo {
        ready: false,
        ..node(1)
    };
    let drained = NodeInfo {
        availability: Availability::Drain,
        ..node(2)
    };
    let paused = NodeInfo {
        availability: Availability::Pause,
        ..node(3)
    };
    // (nodes, constraint, the reason)
    let cases: Vec<(Vec<NodeInfo>, &str, &str)> = vec![
        (vec![], "node.role==worker", "no suitable node"),
        (
            nodes(1),
            "node.role==manager",
            "no suitable node (scheduling constraints not satisfied on 1 node)",
        ),
        (
            nodes(3),
            "node.labels.zone==east",
            "no suitable node (scheduling constraints not satisfied on 3 nodes)",
        ),
        (
            vec![drained.clone(), paused.clone()],
            "node.role==worker",
            "no suitable node (2 nodes not available for new tasks)",
        ),
        (
            vec![down.clone(), node(2)],
            "node.hostname==vm9",
            "no suitable node (1 node not available for new tasks; scheduling constraints not satisfied on 1 node)",
        ),
        // Docker names the filter that ruled out the most nodes first.
        (
            vec![down.clone(), node(2), node(3)],
            "node.hostname==vm9",
            "no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)",
        ),
        (
            vec![down, drained, paused, node(4)],
            "node.hostname==vm9",
            "no suitable node (3 nodes not available for new tasks; scheduling constraints not satisfied on 1 node)",
        ),
    ];
    for (nodes, constraint, reason) in cases {
        let mut web = replicated("web", 1);
        web.spec.task.constraints = vec![constraint.into()];
        let mut c = Cluster::new(nodes, vec![web]);
        let plan = c.step();
        let t = &plan.create[0];
        assert_eq!(t.node_id, None);
        assert_eq!(t.status.state, TaskState::Pending);
        assert_eq!(t.status.message, PENDING);
        assert_eq!(t.status.err.as_deref(), Some(reason), "{constraint}");
    }
}

#[test]
fn the_reason_counts_nodes_in_dockers_words() {
    let cases = [
        (0, 0, "no suitable node"),
        (1, 0, "no suitable node (1 node not available for new tasks)"),
        (0, 2, "no suitable node (scheduling constraints not satisfied on 2 nodes)"),
        (2, 2, "no suitable node (2 nodes not available for new tasks; scheduling constraints not satisfied on 2 nodes)"),
    ];
    for (unavailable, unfit, reason) in cases {
        let out = Ruled {
            unavailable,
            unfit,
            ..Ruled::default()
        };
        assert_eq!(no_suitable_node(&out), reason);
    }
    let out = Ruled {
        ports_taken: 1,
        at_max: 2,
        ..Ruled::default()
    };
    assert_eq!(
        no_suitable_node(&out),
        "no suitable node (max replicas per node limit exceed; host-mode port already in use on 1 node)"
    );
}

/// The pending tasks' reasons after planning `services` on 2 nodes, and how
/// many tasks each node got.
fn placed_on_two(services: Vec<Service>) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut c = Cluster::new(nodes(2), services);
    let plan = c.step();
    let mut per_node = BTreeMap::new();
    let mut pending = Vec::new();
    for t in &plan.create {
        match &t.node_id {
            Some(n) => *per_node.entry(n.clone()).or_insert(0) += 1,
            None => pending.push(t.status.err.clone().unwrap_or_default()),
        }
    }
    (per_node, pending)
}

#[test]
fn replicas_per_node_and_host_mode_ports_limit_where_tasks_go() {
    let mut web = replicated("web", 5);
    web.spec.task.max_replicas = 2;
    let (per_node, pending) = placed_on_two(vec![web]);
    assert_eq!(
        per_node,
        BTreeMap::from([("n1".into(), 2), ("n2".into(), 2)])
    );
    assert_eq!(
        pending,
        ["no suitable node (max replicas per node limit exceed)"]
    );

    let host_port = |name: &str, replicas| {
        let mut s = replicated(name, replicas);
        s.spec.ports = vec![crate::model::PortConfig {
            protocol: "tcp".into(),
            target: 3000,
            published: Some(8081),
            mode: "host".into(),
        }];
        s
    };
    let (per_node, pending) = placed_on_two(vec![host_port("web", 3)]);
    assert_eq!(
        per_node,
        BTreeMap::from([("n1".into(), 1), ("n2".into(), 1)])
    );
    assert_eq!(
        pending,
        ["no suitable node (host-mode port already in use on 2 nodes)"]
    );
    // Another service's host-mode port on the same number counts too.
    let (per_node, pending) = placed_on_two(vec![host_port("api", 1), host_port("web", 2)]);
    assert_eq!(per_node.values().sum::<usize>(), 2, "{per_node:?}");
    assert_eq!(pending.len(), 1);
}

#[test]
fn a_pending_task_is_rewritten_only_when_its_reason_changes_and_placed_when_it_can() {
    let mut web = replicated("web", 1);
    web.spec.task.constraints = vec!["node.labels.zone==east".into()];
    let mut c = Cluster::new(nodes(1), vec![web]);
    c.step();
    assert_eq!(
        c.task("t1").status.err.as_deref(),
        Some("no suitable node (scheduling constraints not satisfied on 1 node)")
    );
    c.advance(1_000);
    assert_eq!(
        c.step(),
        Plan::default(),
        "the same reason is not written again"
    );

    c.nodes.push(node(2));
    c.advance(1_000);
    let plan = c.step();
    assert_eq!(plan.update.len(), 1);
    assert_eq!(
        plan.update[0].status.err.as_deref(),
        Some("no suitable node (scheduling constraints not satisfied on 2 nodes)")
    );
    assert_eq!(plan.update[0].updated_at_ms, T0 + 2_000);

    c.nodes.push(labelled(node(3), "zone", "east"));
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t1"]);
    let t = c.task("t1");
    assert_eq!(t.node_id.as_deref(), Some("n3"));
    assert_eq!(t.status.state, TaskState::Assigned);
    assert_eq!(t.status.err, None);
}
