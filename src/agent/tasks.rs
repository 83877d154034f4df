//! The task side of the agent: from the tasks the manager assigned to this
//! node and the task containers this host has, a pure plan of what to start,
//! stop, unplug and forget, and what to report. The daemon carries it out
//! (`daemon/tasks.rs`) and sends the reports in one call.

use std::collections::{HashMap, HashSet};

use crate::model::{Network, NodeRole, Task, TaskState, TaskStatus, DEFAULT_STOP_GRACE_MS};
use crate::proto::TaskUpdate;

/// What the watch says about this node's tasks: the tasks, and the networks
/// their addresses are on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFeed {
    pub tasks: Vec<Task>,
    pub networks: Vec<Network>,
    /// This node's role in the store: a promoted node serves cluster calls.
    pub role: Option<NodeRole>,
}

/// Where the agent publishes each watch answer's tasks for the daemon's runner.
pub type TaskSink = std::sync::Arc<tokio::sync::watch::Sender<Option<TaskFeed>>>;

/// A task container of this host, as its registry and its process show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTask {
    pub task_id: String,
    pub container_id: String,
    pub running: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
    /// Still holds its namespace and endpoints.
    pub plugged: bool,
}

/// One step for the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make the container, plug its addresses, run it; report Running or Rejected.
    Start(Box<Task>),
    /// SIGTERM, SIGKILL after the grace period, then unplug; report Shutdown.
    Stop {
        task_id: String,
        container_id: String,
        grace_ms: u64,
    },
    /// Its process ended: give its addresses back (the files stay for `logs`).
    Unplug { container_id: String },
    /// Its task is gone from the manager: stop it if it runs, unplug, remove its files.
    Forget { container_id: String },
    /// Tell the manager.
    Report(TaskUpdate),
}

/// What the manager should hear about a container whose process ended.
pub fn ended(task: &Task, local: &LocalTask, now_ms: u64) -> TaskStatus {
    let code = local.exit_code.unwrap_or(-1);
    let (state, message, err) = match code {
        0 => (TaskState::Complete, "finished", None),
        code => (
            TaskState::Failed,
            "started",
            Some(format!("task: non-zero exit ({code})")),
        ),
    };
    let state = if task.desired_state >= TaskState::Shutdown && code != 0 {
        TaskState::Shutdown
    } else {
        state
    };
    TaskStatus {
        err: if state == TaskState::Shutdown {
            None
        } else {
            err
        },
        exit_code: Some(code),
        container_id: Some(local.container_id.clone()),
        pid: Some(local.pid),
        ..TaskStatus::new(
            state,
            now_ms,
            if state == TaskState::Shutdown {
                "shutdown"
            } else {
                message
            },
        )
    }
}

/// The plan for this node's tasks. `reported` holds the state last sent
/// for each task, so a report the manager has not echoed yet is not sent twice.
pub fn plan(
    desired: &[Task],
    local: &[LocalTask],
    reported: &HashMap<String, TaskState>,
    now_ms: u64,
) -> Vec<Action> {
    let by_task: HashMap<&str, &LocalTask> =
        local.iter().map(|l| (l.task_id.as_str(), l)).collect();
    let mut actions = Vec::new();
    let report = |task: &Task, status: TaskStatus, actions: &mut Vec<Action>| {
        let known = reported.get(&task.id).copied().unwrap_or(task.status.state);
        if status.state > task.status.state && status.state > known {
            actions.push(Action::Report(TaskUpdate {
                task_id: task.id.clone(),
                status,
            }));
        }
    };
    for task in desired {
        let here = by_task.get(task.id.as_str());
        let stop = task.desired_state >= TaskState::Shutdown;
        match here {
            None if stop || task.status.state.is_terminal() => {
                let status = TaskStatus::new(TaskState::Shutdown, now_ms, "shutdown");
                report(task, status, &mut actions);
            }
            None if task.desired_state == TaskState::Running => {
                if task.status.state < TaskState::Running
                    && reported
                        .get(&task.id)
                        .is_none_or(|s| *s < TaskState::Running)
                {
                    actions.push(Action::Start(Box::new(task.clone())));
                } else if task.status.state == TaskState::Running {
                    let status = TaskStatus {
                        err: Some("the task's container is gone from its node".into()),
                        ..TaskStatus::new(TaskState::Failed, now_ms, "started")
                    };
                    report(task, status, &mut actions);
                }
            }
            None => {}
            Some(l) if l.running && stop => actions.push(Action::Stop {
                task_id: task.id.clone(),
                container_id: l.container_id.clone(),
                grace_ms: task.spec.stop_grace_ms.unwrap_or(DEFAULT_STOP_GRACE_MS),
            }),
            Some(l) if l.running => {
                let status = TaskStatus {
                    container_id: Some(l.container_id.clone()),
                    pid: Some(l.pid),
                    ..TaskStatus::new(TaskState::Running, now_ms, "started")
                };
                report(task, status, &mut actions);
            }
            Some(l) => {
                if l.plugged {
                    actions.push(Action::Unplug {
                        container_id: l.container_id.clone(),
                    });
                }
                report(task, ended(task, l, now_ms), &mut actions);
            }
        }
    }
    let wanted: HashSet<&str> = desired.iter().map(|t| t.id.as_str()).collect();
    for l in local {
        if !wanted.contains(l.task_id.as_str()) {
            actions.push(Action::Forget {
                container_id: l.container_id.clone(),
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskTemplate;

    fn task(id: &str, desired: TaskState, state: TaskState) -> Task {
        Task {
            id: id.into(),
            service_id: "svc".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: Some("n1".into()),
            spec: TaskTemplate::default(),
            spec_version: 1,
            desired_state: desired,
            status: TaskStatus::new(state, 1, ""),
            networks: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
            version: 1,
        }
    }

    fn local(id: &str, running: bool, exit_code: Option<i32>, plugged: bool) -> LocalTask {
        LocalTask {
            task_id: id.into(),
            container_id: format!("c-{id}"),
            running,
            pid: 42,
            exit_code,
            plugged,
        }
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Start(t) => format!("start {}", t.id),
                Action::Stop { task_id, .. } => format!("stop {task_id}"),
                Action::Unplug { container_id } => format!("unplug {container_id}"),
                Action::Forget { container_id } => format!("forget {container_id}"),
                Action::Report(u) => format!(
                    "report {} {}{}",
                    u.task_id,
                    u.status.state.as_str(),
                    u.status
                        .err
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            })
            .collect()
    }

    use TaskState::*;

    #[test]
    fn each_case_gets_its_step() {
        let none = HashMap::new();
        let cases: Vec<(Task, Option<LocalTask>, Vec<&str>)> = vec![
            (task("a", Running, Assigned), None, vec!["start a"]),
            (task("a", Ready, Assigned), None, vec![]),
            (
                task("a", Running, Assigned),
                Some(local("a", true, None, true)),
                vec!["report a running"],
            ),
            (
                task("a", Running, Running),
                Some(local("a", true, None, true)),
                vec![],
            ),
            (
                task("a", Running, Running),
                Some(local("a", false, Some(137), true)),
                vec!["unplug c-a", "report a failed (task: non-zero exit (137))"],
            ),
            (
                task("a", Running, Running),
                Some(local("a", false, Some(0), false)),
                vec!["report a complete"],
            ),
            (
                task("a", Running, Failed),
                Some(local("a", false, Some(1), false)),
                vec![],
            ),
            (
                task("a", Shutdown, Running),
                Some(local("a", true, None, true)),
                vec!["stop a"],
            ),
            (
                task("a", Shutdown, Running),
                Some(local("a", false, Some(143), true)),
                vec!["unplug c-a", "report a shutdown"],
            ),
            (task("a", Remove, Assigned), None, vec!["report a shutdown"]),
            (task("a", Shutdown, Shutdown), None, vec![]),
            (
                task("a", Running, Running),
                None,
                vec!["report a failed (the task's container is gone from its node)"],
            ),
        ];
        for (t, l, want) in cases {
            let locals: Vec<LocalTask> = l.into_iter().collect();
            let got = kinds(&plan(std::slice::from_ref(&t), &locals, &none, 5));
            assert_eq!(
                got, want,
                "{:?}/{:?} with {locals:?}",
                t.desired_state, t.status.state
            );
        }
    }

    #[test]
    fn a_container_whose_task_is_gone_is_forgotten() {
        let got = kinds(&plan(
            &[],
            &[local("old", true, None, true)],
            &HashMap::new(),
            5,
        ));
        assert_eq!(got, ["forget c-old"]);
    }

    #[test]
    fn a_report_not_echoed_yet_is_not_sent_again() {
        let t = task("a", Running, Assigned);
        let l = local("a", true, None, true);
        let reported = HashMap::from([("a".to_string(), Running)]);
        assert!(plan(
            std::slice::from_ref(&t),
            std::slice::from_ref(&l),
            &reported,
            5
        )
        .is_empty());
        let started = HashMap::from([("a".to_string(), Running)]);
        assert!(
            plan(&[t], &[], &started, 5).is_empty(),
            "a start already done is not done again before the manager hears of it"
        );
    }
}
