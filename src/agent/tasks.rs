//! The task side of the agent: from the tasks the manager assigned to this
//! node and the task containers this host has (with their health), a pure
//! plan of what to start, stop, unplug and forget, and what to report. The
//! daemon carries it out (`daemon/tasks.rs`) and sends the reports in one call.

use std::collections::{HashMap, HashSet};

use crate::model::{
    HealthStatus, Network, NodeRole, Task, TaskState, TaskStatus, DEFAULT_STOP_GRACE_MS,
};
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
    /// Its health, while it runs with a health check.
    pub health: Option<HealthStatus>,
}

/// What was last sent about a task, kept until the manager's copy shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub state: TaskState,
    pub health: Option<HealthStatus>,
}

impl Sent {
    pub fn of(status: &TaskStatus) -> Sent {
        Sent {
            state: status.state,
            health: status.health,
        }
    }

    /// True while the manager's copy (`status`) does not show it yet.
    pub fn ahead_of(&self, status: &TaskStatus) -> bool {
        status.state < self.state
            || (status.state == self.state
                && self.state == TaskState::Running
                && status.health != self.health)
    }
}

/// One step for the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make the container, plug its addresses, run it; report Running or Rejected.
    Start(Box<Task>),
    /// SIGTERM, SIGKILL after the grace period, then unplug; report
    /// Shutdown, or Failed ([`unhealthy`]) when it is stopped for its health.
    Stop {
        task_id: String,
        container_id: String,
        grace_ms: u64,
        unhealthy: bool,
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

/// What the manager hears of a task stopped because it became unhealthy:
/// Failed, in the words of Docker's executor (the exit, then the cause), so
/// the restart policy replaces it.
pub fn unhealthy(container_id: &str, exit_code: Option<i32>, now_ms: u64) -> TaskStatus {
    const CAUSE: &str = "dockerexec: unhealthy container";
    let err = match exit_code {
        Some(0) => CAUSE.to_string(),
        code => format!("task: non-zero exit ({}): {CAUSE}", code.unwrap_or(-1)),
    };
    TaskStatus {
        err: Some(err),
        exit_code,
        container_id: Some(container_id.to_string()),
        health: Some(HealthStatus::Unhealthy),
        ..TaskStatus::new(TaskState::Failed, now_ms, "started")
    }
}

/// The plan for this node's tasks. `reported` holds what was last sent for
/// each task, so a report the manager has not echoed yet is not sent twice.
/// A running task's health is reported when it changes; once the manager
/// knows a task is unhealthy (so no balancer sends to it), it is stopped.
pub fn plan(
    desired: &[Task],
    local: &[LocalTask],
    reported: &HashMap<String, Sent>,
    now_ms: u64,
) -> Vec<Action> {
    let by_task: HashMap<&str, &LocalTask> =
        local.iter().map(|l| (l.task_id.as_str(), l)).collect();
    let mut actions = Vec::new();
    let known = |task: &Task| {
        reported
            .get(&task.id)
            .copied()
            .unwrap_or(Sent::of(&task.status))
    };
    let report = |task: &Task, status: TaskStatus, actions: &mut Vec<Action>| {
        let known = known(task);
        let advances = status.state > task.status.state && status.state > known.state;
        let health_news = status.state == TaskState::Running
            && known.state == TaskState::Running
            && status.health != known.health;
        if advances || health_news {
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
                        .is_none_or(|s| s.state < TaskState::Running)
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
            Some(l) if l.running && (stop || unhealthy_known(l, known(task))) => {
                actions.push(Action::Stop {
                    task_id: task.id.clone(),
                    container_id: l.container_id.clone(),
                    grace_ms: task.spec.stop_grace_ms.unwrap_or(DEFAULT_STOP_GRACE_MS),
                    unhealthy: !stop,
                })
            }
            Some(l) if l.running => {
                let status = TaskStatus {
                    container_id: Some(l.container_id.clone()),
                    pid: Some(l.pid),
                    health: l.health,
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

/// An unhealthy container whose task the manager knows (or was told) is
/// unhealthy: balancers have let it go, so it can stop.
fn unhealthy_known(l: &LocalTask, known: Sent) -> bool {
    let unhealthy = Some(HealthStatus::Unhealthy);
    l.health == unhealthy && known.state == TaskState::Running && known.health == unhealthy
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
            health: None,
        }
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Start(t) => format!("start {}", t.id),
                Action::Stop {
                    task_id, unhealthy, ..
                } => format!(
                    "stop {task_id}{}",
                    if *unhealthy { " (unhealthy)" } else { "" }
                ),
                Action::Unplug { container_id } => format!("unplug {container_id}"),
                Action::Forget { container_id } => format!("forget {container_id}"),
                Action::Report(u) => format!(
                    "report {} {}{}{}",
                    u.task_id,
                    u.status.state.as_str(),
                    u.status
                        .health
                        .map(|h| format!(" {}", h.as_str()))
                        .unwrap_or_default(),
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
        let sent = Sent {
            state: Running,
            health: None,
        };
        let reported = HashMap::from([("a".to_string(), sent)]);
        assert!(plan(
            std::slice::from_ref(&t),
            std::slice::from_ref(&l),
            &reported,
            5
        )
        .is_empty());
        let started = HashMap::from([("a".to_string(), sent)]);
        assert!(
            plan(&[t], &[], &started, 5).is_empty(),
            "a start already done is not done again before the manager hears of it"
        );
    }

    #[test]
    fn health_changes_are_reported_and_an_unhealthy_task_is_stopped_once_known() {
        use crate::model::HealthStatus::*;
        let none = HashMap::new();
        let with_health = |manager: Option<HealthStatus>, local_health| {
            let mut t = task("a", Running, Running);
            t.status.health = manager;
            let mut l = local("a", true, None, true);
            l.health = local_health;
            kinds(&plan(&[t], &[l], &none, 5))
        };
        assert_eq!(
            with_health(None, Some(Starting)),
            ["report a running starting"]
        );
        assert_eq!(
            with_health(Some(Starting), Some(Starting)),
            Vec::<String>::new()
        );
        assert_eq!(
            with_health(Some(Starting), Some(Healthy)),
            ["report a running healthy"]
        );
        assert_eq!(
            with_health(Some(Healthy), Some(Unhealthy)),
            ["report a running unhealthy"]
        );
        assert_eq!(
            with_health(Some(Unhealthy), Some(Unhealthy)),
            ["stop a (unhealthy)"]
        );
        assert_eq!(
            with_health(Some(Unhealthy), Some(Healthy)),
            ["report a running healthy"]
        );

        let mut first = task("a", Running, Assigned);
        first.status.health = None;
        let mut l = local("a", true, None, true);
        l.health = Some(Starting);
        assert_eq!(
            kinds(&plan(
                std::slice::from_ref(&first),
                std::slice::from_ref(&l),
                &none,
                5
            )),
            ["report a running starting"],
            "the first report carries the health"
        );
        let told = HashMap::from([(
            "a".to_string(),
            Sent {
                state: Running,
                health: Some(Unhealthy),
            },
        )]);
        l.health = Some(Unhealthy);
        assert_eq!(
            kinds(&plan(&[first], &[l], &told, 5)),
            ["stop a (unhealthy)"],
            "sent is as good as echoed"
        );
        let mut leaving = task("a", Shutdown, Running);
        leaving.status.health = Some(Unhealthy);
        let mut l = local("a", true, None, true);
        l.health = Some(Unhealthy);
        assert_eq!(kinds(&plan(&[leaving], &[l], &none, 5)), ["stop a"]);
    }

    #[test]
    fn sent_news_is_kept_until_the_manager_shows_it() {
        use crate::model::HealthStatus::*;
        let sent = Sent {
            state: Running,
            health: Some(Healthy),
        };
        let manager = |state, health| TaskStatus {
            health,
            ..TaskStatus::new(state, 1, "")
        };
        assert!(sent.ahead_of(&manager(Assigned, None)));
        assert!(sent.ahead_of(&manager(Running, Some(Starting))));
        assert!(!sent.ahead_of(&manager(Running, Some(Healthy))));
        assert!(!sent.ahead_of(&manager(Failed, None)));
    }

    #[test]
    fn an_unhealthy_stop_is_a_failure_in_dockers_words() {
        let status = unhealthy("c", Some(143), 9);
        assert_eq!(status.state, Failed);
        assert_eq!(
            status.err.as_deref(),
            Some("task: non-zero exit (143): dockerexec: unhealthy container")
        );
        assert_eq!(status.exit_code, Some(143));
        assert_eq!(
            unhealthy("c", Some(0), 9).err.as_deref(),
            Some("dockerexec: unhealthy container")
        );
    }
}
