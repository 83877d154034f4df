//! Where a task goes: which nodes take new tasks, which match a task's
//! constraints, the least loaded of those, and Docker's sentence when none fits.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::NodeInfo;
use crate::model::{all_match, Availability, Constraint, NodeFacts, Task};

/// The facts constraints are matched against.
fn facts(node: &NodeInfo) -> NodeFacts<'_> {
    NodeFacts {
        id: &node.id,
        hostname: &node.hostname,
        role: node.role,
        labels: &node.labels,
        engine_labels: &node.engine_labels,
    }
}

/// True when the node holds every constraint.
pub(super) fn matches(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    all_match(constraints, &facts(node))
}

/// True when the node is up and active: paused, drained and down nodes take nothing new.
pub(super) fn takes_new(node: &NodeInfo) -> bool {
    node.ready && node.availability == Availability::Active
}

/// The host-mode ports (published number and protocol) a task's endpoint holds on its node.
fn host_ports(t: &Task) -> impl Iterator<Item = (u16, &str)> {
    t.spec
        .endpoint
        .iter()
        .flat_map(|e| &e.ports)
        .filter(|p| !p.is_ingress())
        .filter_map(|p| Some((p.published?, p.protocol.as_str())))
}

/// The node for new task `task`: among those that take it (ready and
/// active, its constraints held, none of its host-mode ports taken there
/// by a live task, fewer of its service's tasks than `--replicas-max-per-node`),
/// the one with the fewest live tasks of the service, then the fewest live
/// tasks, then the first hostname and id. `live` are the live tasks as
/// placed so far. Without one, Docker's reason.
pub(super) fn choose<'n, 't>(
    nodes: &'n [NodeInfo],
    live: impl Iterator<Item = &'t Task>,
    task: &Task,
    constraints: &[Constraint],
) -> Result<&'n NodeInfo, String> {
    let mut load: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut ports: HashMap<&str, Vec<(u16, &str)>> = HashMap::new();
    for t in live {
        if let Some(node) = t.node_id.as_deref() {
            let (mine, all) = load.entry(node).or_default();
            *all += 1;
            if t.service_id == task.service_id {
                *mine += 1;
            }
            ports.entry(node).or_default().extend(host_ports(t));
        }
    }
    let mine = |n: &NodeInfo| load.get(n.id.as_str()).copied().unwrap_or_default().0;
    let mut out = Ruled::default();
    let mut eligible = Vec::new();
    for node in nodes {
        if !takes_new(node) {
            out.unavailable += 1;
        } else if !matches(node, constraints) {
            out.unfit += 1;
        } else if host_ports(task).any(|p| {
            ports
                .get(node.id.as_str())
                .is_some_and(|held| held.contains(&p))
        }) {
            out.ports_taken += 1;
        } else if task.spec.max_replicas > 0 && mine(node) as u64 >= task.spec.max_replicas {
            out.at_max += 1;
        } else {
            eligible.push(node);
        }
    }
    eligible
        .into_iter()
        .min_by_key(|n| {
            let (mine, all) = load.get(n.id.as_str()).copied().unwrap_or_default();
            (mine, all, &n.hostname, &n.id)
        })
        .ok_or_else(|| no_suitable_node(&out))
}

/// How many nodes each of Docker's filters ruled out.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Ruled {
    pub unavailable: usize,
    pub unfit: usize,
    pub ports_taken: usize,
    pub at_max: usize,
}

/// Docker's "no suitable node (...)": the filter that ruled out the most nodes
/// first; on a tie, the filters' own order (readiness, constraints, host
/// ports, replicas per node).
pub(super) fn no_suitable_node(out: &Ruled) -> String {
    let mut reasons = [
        (
            out.unavailable,
            format!("{} not available for new tasks", nodes(out.unavailable)),
        ),
        (
            out.unfit,
            format!(
                "scheduling constraints not satisfied on {}",
                nodes(out.unfit)
            ),
        ),
        (
            out.ports_taken,
            format!(
                "host-mode port already in use on {}",
                nodes(out.ports_taken)
            ),
        ),
        (out.at_max, "max replicas per node limit exceed".to_string()),
    ];
    reasons.sort_by_key(|(count, _)| Reverse(*count));
    let said: Vec<&str> = reasons
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(_, why)| why.as_str())
        .collect();
    if said.is_empty() {
        "no suitable node".to_string()
    } else {
        format!("no suitable node ({})", said.join("; "))
    }
}

fn nodes(count: usize) -> String {
    if count == 1 {
        "1 node".to_string()
    } else {
        format!("{count} nodes")
    }
}
