//! One service's pass: its tasks grouped by slot (replicated) or node
//! (global), each group brought to one current task (made, placed, moved off
//! a node that no longer runs it, restarted), then the rolling update, the
//! start of prepared tasks, and the history trimmed.

use std::collections::BTreeMap;

use super::instance::{self, Restart};
use super::work::Work;
use super::{placement, update, NodeInfo};
use crate::model::{Availability, Service, ServiceMode, TaskState};

/// An instance of a service: a replicated slot, or the node of a global task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    Slot(u64),
    Node(String),
}

/// Each instance's tasks, oldest first.
pub(super) type Groups = BTreeMap<Key, Vec<usize>>;

/// Brings one service's tasks to what it asks for; returns the service if it
/// changed. Failures are checked before the pass (no batch starts after one)
/// and on the state it leaves; if that pauses or rolls back the update, the
/// pass runs again, so the next plan finds nothing more to do.
pub(super) fn reconcile(work: &mut Work, original: &Service) -> Option<Service> {
    let mut service = original.clone();
    update::check_failures(work, &mut service);
    let wake = work.wake();
    loop {
        pass(work, &mut service);
        if !update::check_failures(work, &mut service) {
            break;
        }
        work.rewind_wake(wake);
    }
    (service != *original).then_some(service)
}

/// One pass over the service's instances, its update, and its history.
fn pass(work: &mut Work, service: &mut Service) {
    let mut groups = group(work, service);
    let nodes = work.nodes;
    match service.spec.mode {
        ServiceMode::Replicated { replicas } => {
            for slot in 1..=replicas {
                let tasks = groups.entry(Key::Slot(slot)).or_default();
                replicated_slot(work, service, slot, tasks);
            }
        }
        ServiceMode::Global => {
            for node in nodes {
                let tasks = groups.entry(Key::Node(node.id.clone())).or_default();
                global_node(work, service, node, tasks);
            }
        }
    }
    update::roll(work, service, &mut groups);
    for tasks in groups.values() {
        instance::promote(work, tasks);
    }
    update::complete(work, service, &groups);
    for tasks in groups.values() {
        instance::prune(work, service, tasks);
    }
}

/// Groups the service's tasks by instance, oldest first; removes the tasks
/// that belong to none (slots above the replicas, nodes gone) and the ones
/// asked to go. Of tasks made in the same millisecond, one of the service's
/// template counts as the newer (it replaced the other).
fn group(work: &mut Work, service: &Service) -> Groups {
    let mut tasks = work.tasks_of(&service.id);
    tasks.sort_by_cached_key(|&i| {
        let t = work.task(i);
        (
            t.created_at_ms,
            service.spec.is_current(&t.spec),
            t.id.clone(),
        )
    });
    let mut groups = Groups::new();
    for i in tasks {
        let t = work.task(i);
        let key = match service.spec.mode {
            ServiceMode::Replicated { replicas } => (1..=replicas)
                .contains(&t.slot)
                .then_some(Key::Slot(t.slot)),
            ServiceMode::Global => t
                .node_id
                .as_deref()
                .filter(|n| t.slot == 0 && work.node(n).is_some())
                .map(|n| Key::Node(n.to_string())),
        };
        match key {
            Some(key) if t.desired_state != TaskState::Remove => {
                groups.entry(key).or_default().push(i)
            }
            _ => work.remove(i),
        }
    }
    groups
}

/// A slot: one task meant to run, placed, off nodes that no longer run it,
/// restarted when it ends if the policy says so. When the new task of a
/// start-first replacement must leave its node, the old one carries on.
fn replicated_slot(work: &mut Work, service: &Service, slot: u64, tasks: &mut Vec<usize>) {
    let (current, old) = instance::settle(work, tasks);
    let old = match old {
        Some(o) if must_leave(work, o) => {
            work.shut_down(o);
            None
        }
        kept => kept,
    };
    let Some(cur) = current else {
        tasks.push(work.create(service, slot, None, TaskState::Running));
        return;
    };
    let t = work.task(cur);
    if t.status.state.is_terminal() {
        restart(work, service, tasks, cur, (slot, None));
    } else if t.node_id.is_none() {
        work.place(cur);
    } else if must_leave(work, cur) {
        let desired = t.desired_state;
        work.shut_down(cur);
        if old.is_none() {
            tasks.push(work.create(service, slot, None, desired));
        }
    }
}

/// True when a replicated task's node no longer runs it: the node left, is
/// down or drained, or no longer holds the task's constraints.
fn must_leave(work: &Work, i: usize) -> bool {
    let t = work.task(i);
    if t.node_id.is_none() {
        return false;
    }
    match work.node_of(i) {
        None => true,
        Some(n) => {
            !n.ready
                || n.availability == Availability::Drain
                || !placement::matches(n, &t.spec.parsed_constraints())
        }
    }
}

/// A global service on one node: a task while the node is active and matches
/// the service's constraints, none once it is drained or no longer matches;
/// a paused or down node keeps what it has and gets nothing new.
fn global_node(work: &mut Work, service: &Service, node: &NodeInfo, tasks: &mut Vec<usize>) {
    let (current, _) = instance::settle(work, tasks);
    let wanted = node.availability != Availability::Drain
        && placement::matches(node, &service.spec.task.parsed_constraints());
    if !wanted {
        for &i in tasks.iter() {
            if work.task(i).desired_state <= TaskState::Running {
                work.shut_down(i);
            }
        }
        return;
    }
    if !placement::takes_new(node) {
        return;
    }
    let Some(cur) = current else {
        tasks.push(work.create(service, 0, Some(&node.id), TaskState::Running));
        return;
    };
    if work.task(cur).status.state.is_terminal() {
        restart(work, service, tasks, cur, (0, Some(&node.id)));
    }
}

/// Replaces the ended task `cur` (in the slot, or on the node) when the restart
/// policy says so, or wakes the scheduler when it may.
fn restart(
    work: &mut Work,
    service: &Service,
    tasks: &mut Vec<usize>,
    cur: usize,
    (slot, node): (u64, Option<&str>),
) {
    match instance::restart(work, service, tasks, cur) {
        Restart::Now => {
            work.shut_down(cur);
            tasks.push(work.create(service, slot, node, TaskState::Running));
        }
        Restart::At(at) => work.wake_at(at),
        Restart::Never => {}
    }
}
