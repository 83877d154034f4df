//! The scheduler and orchestrator as one pure function: from the cluster's
//! state (nodes, services, tasks) and the time, the changes that bring the
//! tasks to what the services ask for. No I/O: the manager runs it inside a
//! store transaction and applies the plan there, so `plan` on the state after
//! its own plan is empty until time passes.
//!
//! `service` runs one service's pass, `instance` decides for one slot (or one
//! global node), `placement` picks nodes, `update` drives rolling updates, and
//! `work` holds the changes made so far.

mod instance;
mod placement;
mod service;
mod update;
mod work;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use crate::model::{Availability, NodeRole, Service, Task};
use work::Work;

/// A node as the scheduler sees it (nodes that left are not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    pub role: NodeRole,
    pub availability: Availability,
    pub labels: BTreeMap<String, String>,
    pub engine_labels: BTreeMap<String, String>,
    /// Heartbeating (Ready); a Down node runs nothing new, and its tasks are replaced.
    pub ready: bool,
}

/// Everything a decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct State<'a> {
    pub nodes: &'a [NodeInfo],
    pub services: &'a [Service],
    pub tasks: &'a [Task],
    /// Unix milliseconds.
    pub now_ms: u64,
}

/// The changes one decision makes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// New tasks, assigned to a node or Pending with the reason.
    pub create: Vec<Task>,
    /// Tasks changed (desired state, assignment, status), whole.
    pub update: Vec<Task>,
    /// Tasks to forget (history past the limit, removed slots, removed services).
    pub delete: Vec<String>,
    /// Services changed (update status, a rollback's spec), whole.
    pub services: Vec<Service>,
    /// The earliest time something waits for (a restart delay, an update
    /// delay), so the caller runs the scheduler again then.
    pub wake_at_ms: Option<u64>,
}

/// Decides the changes; `new_id` names each new task.
pub fn plan(state: &State<'_>, new_id: &mut dyn FnMut() -> String) -> Plan {
    let mut work = Work::new(state, new_id);
    let known: HashSet<&str> = state.services.iter().map(|s| s.id.as_str()).collect();
    for i in work.orphans(&known) {
        work.remove(i);
    }
    let services = state
        .services
        .iter()
        .filter_map(|s| service::reconcile(&mut work, s))
        .collect();
    work.into_plan(services)
}
