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

/// The node for a new task of `service_id`: among those that take it, the one
/// with the fewest live tasks of the service, then the fewest live tasks, then
/// the first hostname and id. `live` are the live tasks as placed so far.
/// Without one, Docker's reason.
pub(super) fn choose<'n, 't>(
    nodes: &'n [NodeInfo],
    live: impl Iterator<Item = &'t Task>,
    service_id: &str,
    constraints: &[Constraint],
) -> Result<&'n NodeInfo, String> {
    let (mut unavailable, mut unfit) = (0, 0);
    let mut eligible = Vec::new();
    for node in nodes {
        if !takes_new(node) {
            unavailable += 1;
        } else if !matches(node, constraints) {
            unfit += 1;
        } else {
            eligible.push(node);
        }
    }
    let mut load: HashMap<&str, (usize, usize)> = HashMap::new();
    for t in live {
        if let Some(node) = t.node_id.as_deref() {
            let (mine, all) = load.entry(node).or_default();
            *all += 1;
            if t.service_id == service_id {
                *mine += 1;
            }
        }
    }
    eligible
        .into_iter()
        .min_by_key(|n| {
            let (mine, all) = load.get(n.id.as_str()).copied().unwrap_or_default();
            (mine, all, &n.hostname, &n.id)
        })
        .ok_or_else(|| no_suitable_node(unavailable, unfit))
}

/// Docker's "no suitable node (...)": the filter that ruled out the most nodes
/// first; on a tie, readiness before constraints (the filters' own order).
pub(super) fn no_suitable_node(unavailable: usize, unfit: usize) -> String {
    let mut reasons = [
        (
            unavailable,
            format!("{} not available for new tasks", nodes(unavailable)),
        ),
        (
            unfit,
            format!("scheduling constraints not satisfied on {}", nodes(unfit)),
        ),
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
