//! The progress `service create|update|scale|rollback` shows until the
//! service converges, as Docker 20.10's `service/progress`: a pure [`Watch`]
//! turns each poll (the service, its up-to-date tasks, the live nodes) into
//! the events to show and whether to go on.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::api::models::{
    Service, ServiceSpec, ServiceUpdateStatusStateEnum as UpdateState, Task, TaskState,
};

/// The states a task goes through in Docker's `numberedStates` order:
/// running is 9 of 9; the terminal ones after it only order.
const STATES: [TaskState; 13] = [
    TaskState::NEW,
    TaskState::ALLOCATED,
    TaskState::PENDING,
    TaskState::ASSIGNED,
    TaskState::ACCEPTED,
    TaskState::PREPARING,
    TaskState::READY,
    TaskState::STARTING,
    TaskState::RUNNING,
    TaskState::COMPLETE,
    TaskState::SHUTDOWN,
    TaskState::FAILED,
    TaskState::REJECTED,
];
const RUNNING: i64 = 9;
/// More tasks than this get only the overall line, as Docker's.
const MAX_PROGRESS_BARS: u64 = 20;
/// The width states are padded to ("preparing").
const LONGEST_STATE: usize = 9;
fn numbered(state: Option<TaskState>) -> i64 {
    state
        .and_then(|s| STATES.iter().position(|x| *x == s))
        .map_or(0, |i| i as i64 + 1)
}

fn terminal(state: Option<TaskState>) -> bool {
    numbered(state) > RUNNING
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

/// One thing to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A line kept under its ID and redrawn in place: an action and, for a
    /// task, how far through its states it is (of 9).
    Progress {
        id: String,
        action: String,
        bar: Option<i64>,
    },
    /// A line printed once, below the progress lines.
    Message { id: String, text: String },
}

fn progress(id: impl Into<String>, action: impl Into<String>, bar: Option<i64>) -> Event {
    Event::Progress {
        id: id.into(),
        action: action.into(),
        bar,
    }
}

fn overall(running: u64, total: u64, rollback: bool) -> Event {
    let action = match rollback {
        true => format!("rolling back update: {running} out of {total} tasks"),
        false => format!("{running} out of {total} tasks"),
    };
    progress("overall progress", action, None)
}

/// A task error on one line of at most 75 characters.
fn trunc_error(err: &str) -> String {
    let err = err.replace('\n', " ");
    match err.char_indices().nth(74) {
        Some((at, _)) if err.chars().count() > 75 => format!("{}…", &err[..at]),
        _ => err,
    }
}

/// A task's line: its error, or its state and bar while it is on its way.
fn task_progress(task: &Task, id: String, rollback: bool) -> Option<Event> {
    let err = task.status.as_ref().and_then(|s| s.err.as_deref());
    if let Some(err) = err.filter(|e| !e.is_empty()) {
        return Some(progress(id, trunc_error(err), None));
    }
    if terminal(task.desired_state) || terminal(state(task)) {
        return None;
    }
    let n = numbered(state(task));
    let name = state(task).map(|s| s.to_string()).unwrap_or_default();
    let bar = if rollback { RUNNING - n } else { n };
    Some(progress(id, format!("{name:<LONGEST_STATE$}"), Some(bar)))
}

/// One task per key: the one with the lowest desired state, then the lowest
/// observed state (a restart or a start-first update has two), as Docker picks.
fn pick<K: Ord>(
    tasks: &[Task],
    key: impl Fn(&Task) -> K,
    keep: impl Fn(&Task) -> bool,
) -> BTreeMap<K, &Task> {
    let mut by: BTreeMap<K, &Task> = BTreeMap::new();
    for task in tasks {
        if numbered(task.desired_state) == 0 || numbered(state(task)) == 0 {
            continue;
        }
        if let Some(existing) = by.get(&key(task)) {
            let (old, new) = (
                numbered(existing.desired_state),
                numbered(task.desired_state),
            );
            if old < new || (old == new && numbered(state(existing)) <= numbered(state(task))) {
                continue;
            }
        }
        if keep(task) {
            by.insert(key(task), task);
        }
    }
    by
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Replicated,
    Global,
}

/// What has been seen of a service's convergence so far.
#[derive(Debug, Default)]
pub struct Watch {
    kind: Option<Kind>,
    /// Task slots mapped to 1..=replicas, in the order they were first seen.
    slots: HashMap<i64, u64>,
    initialized: bool,
    done: bool,
    converged: bool,
    converged_at: Option<u64>,
    rollback: bool,
    message: Option<Event>,
}

/// How a poll left the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Waiting,
    Done,
    Failed(String),
}

impl Watch {
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// One poll, at `now_ms` since the watch began: the events to show and
    /// whether to go on, as one turn of Docker's `ServiceProgress` loop.
    pub fn step(
        &mut self,
        now_ms: u64,
        service: &Service,
        tasks: &[Task],
        active: &HashSet<String>,
    ) -> (Vec<Event>, Outcome) {
        let mut events = Vec::new();
        let default = ServiceSpec::default();
        let spec = service.spec.as_ref().unwrap_or(&default);
        let monitor = spec
            .update_config
            .as_ref()
            .and_then(|u| u.monitor)
            .filter(|m| *m > 0)
            .map_or(crate::model::DEFAULT_MONITOR_MS, |ns| ns as u64 / 1_000_000);
        let mode = spec.mode.clone().unwrap_or_default();
        if self.kind.is_none() {
            self.kind = match (&mode.replicated, &mode.global) {
                (Some(r), _) if r.replicas.is_some() => Some(Kind::Replicated),
                (_, Some(_)) => Some(Kind::Global),
                _ => return (events, Outcome::Failed("unrecognized service mode".into())),
            };
        }
        if let Some(status) = &service.update_status {
            let message = status.message.clone().unwrap_or_default();
            match status.state {
                Some(UpdateState::UPDATING) => self.rollback = false,
                Some(UpdateState::COMPLETED) if !self.converged => return (events, Outcome::Done),
                Some(UpdateState::PAUSED) => {
                    let why = format!("service update paused: {message}");
                    return (events, Outcome::Failed(why));
                }
                Some(UpdateState::ROLLBACK_STARTED) => {
                    if !self.rollback && !message.is_empty() {
                        events.push(progress("rollback", message, None));
                    }
                    self.rollback = true;
                }
                Some(UpdateState::ROLLBACK_PAUSED) => {
                    let why = format!("service rollback paused: {message}");
                    return (events, Outcome::Failed(why));
                }
                Some(UpdateState::ROLLBACK_COMPLETED) => {
                    if !self.converged {
                        let id = "rollback".to_string();
                        self.message = Some(Event::Message { id, text: message });
                    }
                    self.rollback = true;
                }
                _ => {}
            }
        }
        if let Some(at) = self.converged_at.filter(|_| self.converged) {
            if now_ms.saturating_sub(at) >= monitor {
                events.push(progress("verify", "Service converged", None));
                events.extend(self.message.take());
                return (events, Outcome::Done);
            }
        }
        self.converged = match self.kind {
            Some(Kind::Global) => self.global(&mut events, tasks, active),
            _ => match mode.replicated.and_then(|r| r.replicas) {
                Some(n) => self.replicated(&mut events, n.max(0) as u64, tasks, active),
                None => return (events, Outcome::Failed("no replica count".into())),
            },
        };
        if self.converged {
            let at = *self.converged_at.get_or_insert(now_ms);
            let wait = monitor as i64 - now_ms.saturating_sub(at) as i64;
            if wait >= 0 {
                let secs = ((wait + 999) / 1000).max(1);
                let action = format!("Waiting {secs} seconds to verify that tasks are stable...");
                events.push(progress("verify", action, None));
            }
        } else {
            if self.converged_at.is_some() {
                events.push(progress("verify", "Detected task failure", None));
            }
            self.converged_at = None;
        }
        (events, Outcome::Waiting)
    }

    /// Docker's `replicatedProgressUpdater`: a line per slot, `1/3`.
    fn replicated(
        &mut self,
        events: &mut Vec<Event>,
        replicas: u64,
        tasks: &[Task],
        active: &HashSet<String>,
    ) -> bool {
        if !self.initialized {
            events.push(overall(0, replicas, self.rollback));
            if replicas <= MAX_PROGRESS_BARS {
                events
                    .extend((1..=replicas).map(|i| progress(format!("{i}/{replicas}"), " ", None)));
            }
            self.initialized = true;
        }
        let on_live_node = |t: &Task| match t.node_id.as_deref() {
            Some(node) if !node.is_empty() => active.contains(node),
            _ => true,
        };
        let by_slot = pick(tasks, |t| t.slot.unwrap_or(0), on_live_node);
        if self.done
            && by_slot
                .values()
                .any(|t| state(t) != Some(TaskState::RUNNING))
        {
            self.done = false;
        }
        let mut running = 0;
        for (slot, task) in &by_slot {
            let next = self.slots.len() as u64 + 1;
            let mapped = *self.slots.entry(*slot).or_insert(next);
            if !terminal(task.desired_state) && state(task) == Some(TaskState::RUNNING) {
                running += 1;
            }
            if !self.done && replicas <= MAX_PROGRESS_BARS && mapped <= replicas {
                let id = format!("{mapped}/{replicas}");
                events.extend(task_progress(task, id, self.rollback));
            }
        }
        if !self.done {
            events.push(overall(running, replicas, self.rollback));
            self.done = running == replicas;
        }
        running == replicas
    }

    /// Docker's `globalProgressUpdater`: a line per node, by its short ID.
    fn global(
        &mut self,
        events: &mut Vec<Event>,
        tasks: &[Task],
        active: &HashSet<String>,
    ) -> bool {
        let by_node = pick(tasks, |t| t.node_id.clone().unwrap_or_default(), |_| true);
        let count = by_node.len() as u64;
        if !self.initialized {
            if count == 0 {
                events.push(progress("overall progress", "waiting for new tasks", None));
                return false;
            }
            events.push(overall(0, count, self.rollback));
            self.initialized = true;
        }
        if self.done
            && by_node
                .values()
                .any(|t| state(t) != Some(TaskState::RUNNING))
        {
            self.done = false;
        }
        let mut running = 0;
        for (node, task) in by_node.iter().filter(|(node, _)| active.contains(*node)) {
            if !terminal(task.desired_state) && state(task) == Some(TaskState::RUNNING) {
                running += 1;
            }
            if !self.done && count <= MAX_PROGRESS_BARS {
                let id: String = node.chars().take(12).collect();
                events.extend(task_progress(task, id, self.rollback));
            }
        }
        if !self.done {
            events.push(overall(running, count, self.rollback));
            self.done = running == count;
        }
        running == count
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
