//! Rolling updates (and rollbacks): which outdated tasks are replaced and
//! when, in which order, what a new task that fails early does to the
//! update, and when the update is complete.

use std::collections::BTreeSet;

use super::instance::{self, ended_by_itself};
use super::placement;
use super::service::{Groups, Key};
use super::work::Work;
use crate::model::{
    FailureAction, Service, Task, TaskState, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};

/// An update in progress.
struct Rollout {
    config: UpdateConfig,
    started: u64,
    rolling_back: bool,
}

/// The update in progress, with the config it follows (`--rollback-*` while rolling back).
fn rollout(service: &Service) -> Option<Rollout> {
    let status = service
        .update_status
        .as_ref()
        .filter(|s| s.state.in_progress())?;
    let rolling_back = status.state == UpdateState::RollbackStarted;
    Some(Rollout {
        config: if rolling_back {
            service.spec.rollback
        } else {
            service.spec.update
        },
        started: status.started_at_ms,
        rolling_back,
    })
}

/// A task of the template (and endpoint) being rolled out, made since the update began.
fn is_fresh(t: &Task, service: &Service, started: u64) -> bool {
    service.spec.is_current(&t.spec) && t.created_at_ms >= started
}

/// A live task (meant to run or being prepared) of an older template or
/// endpoint (published ports, endpoint mode).
fn is_outdated(t: &Task, service: &Service) -> bool {
    t.is_live() && !service.spec.is_current(&t.spec)
}

/// Ended by itself before it had run for the monitoring period: rejected, or
/// ended within `monitor_ms` of being made (the status keeps no start time).
fn failed_early(t: &Task, monitor_ms: u64) -> bool {
    ended_by_itself(t.status.state)
        && (t.status.state == TaskState::Rejected
            || t.status.timestamp_ms <= t.created_at_ms.saturating_add(monitor_ms))
}

/// Applies the failure action when too many new tasks failed early (more
/// than `max_failure_ratio` of the instances the update touches): pause,
/// or roll back to the previous spec. A rollback is never rolled back.
/// Returns true when it changed the update.
pub(super) fn check_failures(work: &Work, service: &mut Service) -> bool {
    let Some(r) = rollout(service) else {
        return false;
    };
    if r.config.failure_action == FailureAction::Continue {
        return false;
    }
    let tasks: Vec<&Task> = work
        .tasks_of(&service.id)
        .into_iter()
        .map(|i| work.task(i))
        .collect();
    let failed: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| is_fresh(t, service, r.started) && failed_early(t, r.config.monitor_ms))
        .collect();
    let Some(culprit) = failed
        .iter()
        .max_by_key(|t| (t.status.timestamp_ms, &t.id))
        .map(|t| t.id.clone())
    else {
        return false;
    };
    let touched: BTreeSet<(u64, Option<&str>)> = tasks
        .iter()
        .filter(|t| is_fresh(t, service, r.started) || is_outdated(t, service))
        .map(|t| (t.slot, t.node_id.as_deref().filter(|_| t.slot == 0)))
        .collect();
    if failed.len() as f64 / touched.len() as f64 <= r.config.max_failure_ratio {
        return false;
    }
    let why = format!("due to failure or early termination of task {culprit}");
    match r.config.failure_action {
        FailureAction::Rollback if r.rolling_back => {
            pause(service, format!("rollback paused {why}"))
        }
        FailureAction::Rollback if service.previous_spec.is_some() => {
            roll_back(service, work.now, format!("update rolled back {why}"))
        }
        _ => pause(service, format!("update paused {why}")),
    }
    true
}

/// Pauses the update, or the rollback, saying why.
fn pause(service: &mut Service, message: String) {
    if let Some(s) = service.update_status.as_mut() {
        s.state = match s.state {
            UpdateState::RollbackStarted => UpdateState::RollbackPaused,
            _ => UpdateState::Paused,
        };
        s.message = message;
    }
}

/// Goes back to the previous spec; the failed one becomes the previous.
fn roll_back(service: &mut Service, now: u64, message: String) {
    let Some(previous) = service.previous_spec.take() else {
        return;
    };
    service.previous_spec = Some(std::mem::replace(&mut service.spec, previous));
    service.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at_ms: now,
        completed_at_ms: None,
        message,
    });
}

/// New tasks of this update that are not running yet.
fn in_flight(work: &Work, service: &Service, started: u64) -> usize {
    work.tasks_of(&service.id)
        .into_iter()
        .map(|i| work.task(i))
        .filter(|t| {
            is_fresh(t, service, started) && t.is_live() && t.status.state < TaskState::Running
        })
        .count()
}

/// The instances whose current task is outdated and may be replaced now, in
/// the order they are replaced: by slot, or by the node's hostname. A global
/// task on a paused or down node waits for it.
fn outdated(work: &Work, service: &Service, groups: &Groups) -> Vec<(Key, usize)> {
    let mut found: Vec<(Key, usize)> = groups
        .iter()
        .filter_map(|(key, tasks)| {
            let cur = instance::current(work, tasks)?;
            let replaceable = match key {
                Key::Slot(_) => true,
                Key::Node(id) => work.node(id).is_some_and(placement::takes_new),
            };
            (replaceable && is_outdated(work.task(cur), service)).then(|| (key.clone(), cur))
        })
        .collect();
    found.sort_by_cached_key(|(key, _)| match key {
        Key::Slot(slot) => (*slot, String::new(), String::new()),
        Key::Node(id) => {
            let hostname = work.node(id).map(|n| n.hostname.clone());
            (0, hostname.unwrap_or_default(), id.clone())
        }
    });
    found
}

/// Replaces the next batch of outdated tasks: up to the parallelism less the
/// new tasks not running yet, once the delay since the last batch of this
/// update has passed.
pub(super) fn roll(work: &mut Work, service: &mut Service, groups: &mut Groups) {
    let Some(r) = rollout(service) else {
        return;
    };
    let outdated = outdated(work, service, groups);
    if outdated.is_empty() {
        return;
    }
    let room = match usize::try_from(r.config.parallelism).unwrap_or(usize::MAX) {
        0 => usize::MAX,
        parallelism => parallelism.saturating_sub(in_flight(work, service, r.started)),
    };
    if room == 0 {
        return;
    }
    if service.last_batch_ms >= r.started {
        let at = service.last_batch_ms.saturating_add(r.config.delay_ms);
        if work.now < at {
            work.wake_at(at);
            return;
        }
    }
    for (key, old) in outdated.into_iter().take(room) {
        replace(work, service, r.config.order, key, old, groups);
    }
    service.last_batch_ms = work.now;
}

/// Replaces the instance's outdated current task `old`. Stop-first stops
/// every task of the instance and prepares the new one (it starts once they
/// have stopped); start-first starts the new one and keeps only `old`, if it
/// is on a node and meant to run, until the new one runs.
fn replace(
    work: &mut Work,
    service: &Service,
    order: UpdateOrder,
    key: Key,
    old: usize,
    groups: &mut Groups,
) {
    let (slot, node) = match &key {
        Key::Slot(slot) => (*slot, None),
        Key::Node(id) => (0, Some(id.as_str())),
    };
    let keep = order == UpdateOrder::StartFirst
        && work.task(old).desired_state == TaskState::Running
        && work.task(old).node_id.is_some();
    let tasks = groups.entry(key.clone()).or_default();
    for &i in tasks.iter() {
        if work.task(i).desired_state <= TaskState::Running && !(keep && i == old) {
            work.shut_down(i);
        }
    }
    let desired = match order {
        UpdateOrder::StopFirst => TaskState::Ready,
        UpdateOrder::StartFirst => TaskState::Running,
    };
    tasks.push(work.create(service, slot, node, desired));
}

/// Completes the update once no outdated task is left, every new task runs,
/// and the newest has run for the monitoring period.
pub(super) fn complete(work: &mut Work, service: &mut Service, groups: &Groups) {
    let Some(r) = rollout(service) else {
        return;
    };
    if !outdated(work, service, groups).is_empty() || in_flight(work, service, r.started) > 0 {
        return;
    }
    let watched_until = work
        .tasks_of(&service.id)
        .into_iter()
        .map(|i| work.task(i))
        .filter(|t| {
            is_fresh(t, service, r.started) && t.is_live() && t.status.state == TaskState::Running
        })
        .map(|t| t.status.timestamp_ms.saturating_add(r.config.monitor_ms))
        .max();
    if let Some(at) = watched_until.filter(|&at| work.now < at) {
        work.wake_at(at);
        return;
    }
    let now = work.now;
    if let Some(s) = service.update_status.as_mut() {
        (s.state, s.message) = if r.rolling_back {
            (
                UpdateState::RollbackCompleted,
                "rollback completed".to_string(),
            )
        } else {
            (UpdateState::Completed, "update completed".to_string())
        };
        s.completed_at_ms = Some(now);
    }
}
