//! One instance of a service (a replicated slot, or a global service's node)
//! and its tasks, oldest first: which task is current, when an ended one is
//! restarted, when a prepared one may start, and how much history is kept.

use super::work::Work;
use crate::model::{RestartCondition, Service, TaskState, TASK_HISTORY_LIMIT};

/// What the restart policy says about an instance whose current task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Restart {
    Now,
    /// Not before this time (the delay, or a window letting go of old attempts).
    At(u64),
    Never,
}

/// True for a task that ended by itself, not because it was asked to stop.
pub(super) fn ended_by_itself(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

/// The task the instance runs: the newest one meant to run that has not
/// ended, or else the newest one meant to run.
pub(super) fn current(work: &Work, tasks: &[usize]) -> Option<usize> {
    let mut meant = tasks
        .iter()
        .rev()
        .copied()
        .filter(|&i| !work.is_gone(i) && work.task(i).desired_state <= TaskState::Running);
    let newest = meant.clone().next();
    meant
        .find(|&i| !work.task(i).status.state.is_terminal())
        .or(newest)
}

/// Picks the current task and stops the others meant to run, but keeps the
/// old task (on a node, meant to run) that a start-first replacement (meant
/// to run, not running yet) has not taken over from: it stops once the new
/// one runs. Returns the current task and that old one.
pub(super) fn settle(work: &mut Work, tasks: &[usize]) -> (Option<usize>, Option<usize>) {
    let Some(cur) = current(work, tasks) else {
        return (None, None);
    };
    let c = work.task(cur);
    let handing_over = c.desired_state == TaskState::Running && c.status.state < TaskState::Running;
    let mut kept = None;
    for &i in tasks.iter().rev() {
        let t = work.task(i);
        if i == cur || work.is_gone(i) || t.desired_state > TaskState::Running {
            continue;
        }
        let old_of_pair = handing_over
            && kept.is_none()
            && t.is_live()
            && t.desired_state == TaskState::Running
            && t.node_id.is_some()
            && t.spec != work.task(cur).spec;
        if old_of_pair {
            kept = Some(i);
        } else {
            work.shut_down(i);
        }
    }
    (Some(cur), kept)
}

/// Whether the ended task `cur` is replaced, by the service's restart policy.
pub(super) fn restart(work: &Work, service: &Service, tasks: &[usize], cur: usize) -> Restart {
    let policy = &service.spec.task.restart;
    let t = work.task(cur);
    match policy.condition {
        RestartCondition::None => return Restart::Never,
        RestartCondition::OnFailure if t.status.state == TaskState::Complete => {
            return Restart::Never
        }
        _ => {}
    }
    let mut at = t.status.timestamp_ms.saturating_add(policy.delay_ms);
    let mut attempts: Vec<u64> = tasks
        .iter()
        .copied()
        .filter(|&i| i != cur && !work.is_gone(i) && is_attempt(work, service, i))
        .map(|i| work.task(i).created_at_ms)
        .collect();
    let allowed = usize::try_from(policy.max_attempts).unwrap_or(usize::MAX);
    if policy.max_attempts > 0 && attempts.len() >= allowed {
        if policy.window_ms == 0 {
            return Restart::Never;
        }
        attempts.sort_unstable();
        let last_to_leave = attempts[attempts.len() - allowed];
        at = at.max(last_to_leave.saturating_add(policy.window_ms + 1));
    }
    if work.now >= at {
        Restart::Now
    } else {
        Restart::At(at)
    }
}

/// True for an earlier attempt a restart limit counts: a task of the
/// service's template that ended by itself (made within the window, if any).
/// Docker starts counting again when the template changes.
fn is_attempt(work: &Work, service: &Service, i: usize) -> bool {
    let policy = &service.spec.task.restart;
    let t = work.task(i);
    let since = match policy.window_ms {
        0 => 0,
        window => work.now.saturating_sub(window),
    };
    policy.max_attempts > 0
        && ended_by_itself(t.status.state)
        && service.spec.is_current(&t.spec)
        && t.created_at_ms >= since
}

/// Starts a task prepared by a stop-first update (desired Ready) once no
/// other task of the instance may still be running.
pub(super) fn promote(work: &mut Work, tasks: &[usize]) {
    let Some(cur) = current(work, tasks) else {
        return;
    };
    let t = work.task(cur);
    if t.desired_state != TaskState::Ready || !t.is_live() {
        return;
    }
    let others_stopped = tasks
        .iter()
        .all(|&i| i == cur || work.is_gone(i) || !work.may_run(i));
    if others_stopped {
        work.set_desired(cur, TaskState::Running);
    }
}

/// Forgets the oldest finished tasks beyond the history limit, but not the
/// attempts a restart limit still counts.
pub(super) fn prune(work: &mut Work, service: &Service, tasks: &[usize]) {
    let kept: Vec<usize> = tasks
        .iter()
        .copied()
        .filter(|&i| !work.is_gone(i))
        .collect();
    let mut excess = kept.len().saturating_sub(TASK_HISTORY_LIMIT);
    for i in kept {
        if excess == 0 {
            break;
        }
        if finished(work, i) && !is_attempt(work, service, i) {
            work.delete(i);
            excess -= 1;
        }
    }
}

/// True for a task asked to stop that has ended, or whose node left the cluster.
fn finished(work: &Work, i: usize) -> bool {
    let t = work.task(i);
    let node_left = t.node_id.is_some() && work.node_of(i).is_none();
    t.desired_state >= TaskState::Shutdown && (t.status.state.is_terminal() || node_left)
}
