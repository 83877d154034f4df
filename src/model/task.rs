//! Tasks: one run of a service's command in a slot (replicated) or on a node
//! (global), as the manager stores it, and the states it goes through, in
//! Docker's order. A task's state only moves forward.

use serde::{Deserialize, Serialize};

use super::service::{HealthStatus, TaskTemplate};

/// Docker's task states, in the order a task goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    New,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        ALL_STATES.iter().copied().find(|t| t.as_str() == s)
    }

    /// The process has ended (or never will run): nothing more happens to the task.
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }
}

const ALL_STATES: [TaskState; 14] = [
    TaskState::New,
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Ready,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Complete,
    TaskState::Shutdown,
    TaskState::Failed,
    TaskState::Rejected,
    TaskState::Remove,
    TaskState::Orphaned,
];

/// What happened to a task last, as its node (or the scheduler) reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub state: TaskState,
    /// Unix milliseconds of the change.
    pub timestamp_ms: u64,
    /// Docker's short word for the step ("started", "scheduler assigned task to node").
    pub message: String,
    /// Why it failed or cannot be placed.
    pub err: Option<String>,
    pub exit_code: Option<i32>,
    /// The container that runs it, once there is one.
    pub container_id: Option<String>,
    pub pid: Option<i32>,
    /// A running task's health, when its service has a health check (its
    /// node reports each change; older nodes send none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
}

impl TaskStatus {
    pub fn new(state: TaskState, now_ms: u64, message: &str) -> TaskStatus {
        TaskStatus {
            state,
            timestamp_ms: now_ms,
            message: message.into(),
            err: None,
            exit_code: None,
            container_id: None,
            pid: None,
            health: None,
        }
    }
}

/// A task's address on one of its service's networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAttachment {
    pub network_id: String,
    pub endpoint_id: String,
    pub ip: std::net::Ipv4Addr,
    pub prefix_len: u8,
}

/// A task as the manager stores it and streams it to its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub service_id: String,
    pub service_name: String,
    /// 1..=replicas for a replicated service; 0 for a global one.
    pub slot: u64,
    /// The node it runs on, once assigned (a global task's from the start).
    pub node_id: Option<String>,
    /// What it runs: the service's template when the task was made, with the
    /// service's endpoint then (`ServiceSpec::task_template`).
    pub spec: TaskTemplate,
    /// The service version that template came from.
    pub spec_version: u64,
    pub desired_state: TaskState,
    pub status: TaskStatus,
    /// Its addresses, given when it is assigned to a node.
    pub networks: Vec<TaskAttachment>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// The store revision of its last change, Docker's `Version.Index`.
    pub version: u64,
}

impl Task {
    /// Docker's task (and container) name: `web.1.<id>`, or `web.<node>.<id>` for a global task.
    pub fn name(&self) -> String {
        match (self.slot, &self.node_id) {
            (0, Some(node)) => format!("{}.{}.{}", self.service_name, node, self.id),
            (slot, _) => format!("{}.{}.{}", self.service_name, slot, self.id),
        }
    }

    /// The hostname of the task's container: its `--hostname` with Docker's
    /// placeholders filled in (`{{.Service.ID}}`, `{{.Service.Name}}`,
    /// `{{.Node.ID}}`, `{{.Node.Hostname}}`, `{{.Task.ID}}`, `{{.Task.Name}}`,
    /// `{{.Task.Slot}}`), or none when it has none (its name is used).
    pub fn hostname(&self, node_hostname: &str) -> Option<String> {
        if self.spec.hostname.is_empty() {
            return None;
        }
        let node = self.node_id.clone().unwrap_or_default();
        let slot = match self.slot {
            0 => node.clone(),
            n => n.to_string(),
        };
        let values = [
            ("Service.ID", self.service_id.clone()),
            ("Service.Name", self.service_name.clone()),
            ("Node.ID", node),
            ("Node.Hostname", node_hostname.to_string()),
            ("Task.ID", self.id.clone()),
            ("Task.Name", self.name()),
            ("Task.Slot", slot),
        ];
        let mut out = String::new();
        let mut rest = self.spec.hostname.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find("}}") else {
                break;
            };
            let field = rest[start + 2..start + end].trim().trim_start_matches('.');
            match values.iter().find(|(k, _)| *k == field) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[start..start + end + 2]),
            }
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// True while the task should take traffic (DNS answers, load balancers):
    /// meant to run and running, and healthy when its service has a health check.
    pub fn takes_traffic(&self) -> bool {
        self.desired_state == TaskState::Running
            && self.status.state == TaskState::Running
            && (self.spec.health_check().is_none()
                || self.status.health == Some(HealthStatus::Healthy))
    }

    /// Takes its node's news: a later state replaces the status; at the same
    /// running state, only a change of health is taken (the time of the
    /// state stays, as `service ps` counts from it). False when nothing changed.
    pub fn take_report(&mut self, status: &TaskStatus) -> bool {
        if status.state > self.status.state {
            self.status = status.clone();
            return true;
        }
        let health_news = status.state == TaskState::Running
            && self.status.state == TaskState::Running
            && status.health != self.status.health;
        if health_news {
            self.status.health = status.health;
        }
        health_news
    }

    /// True while the task is meant to run and has not ended.
    pub fn is_live(&self) -> bool {
        self.desired_state <= TaskState::Running && !self.status.state.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_and_named_as_docker_names_them() {
        assert!(TaskState::Pending < TaskState::Running);
        assert!(TaskState::Running < TaskState::Complete);
        assert!(!TaskState::Running.is_terminal());
        assert!(TaskState::Failed.is_terminal());
        assert!(TaskState::Shutdown.is_terminal());
        for s in ALL_STATES {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(TaskState::parse("running "), None);
    }

    #[test]
    fn a_hostname_fills_in_dockers_placeholders() {
        let mut task = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 2,
            node_id: Some("n1".into()),
            spec: crate::model::TaskTemplate::default(),
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Running, 1, "started"),
            networks: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
            version: 1,
        };
        assert_eq!(task.hostname("vm1"), None, "none given: the name is used");
        task.spec.hostname = "{{.Service.Name}}-{{ .Task.Slot }}.{{.Node.Hostname}}".into();
        assert_eq!(task.hostname("vm1").as_deref(), Some("web-2.vm1"));
        task.spec.hostname = "{{.Task.Name}}/{{.Node.ID}}/{{.Unknown}}{{".into();
        assert_eq!(
            task.hostname("vm1").as_deref(),
            Some("web.2.t1/n1/{{.Unknown}}{{"),
            "what is not a placeholder stays as written"
        );
    }

    #[test]
    fn a_status_without_health_reads_as_before() {
        let old = serde_json::json!({
            "state": "running", "timestamp_ms": 5, "message": "started",
            "err": null, "exit_code": null, "container_id": "c", "pid": 42
        });
        let status: TaskStatus = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(status.health, None);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            old,
            "and writes as before"
        );
        let healthy = TaskStatus {
            health: Some(HealthStatus::Healthy),
            ..status
        };
        let json = serde_json::to_value(&healthy).unwrap();
        assert_eq!(json["health"], "healthy");
        assert_eq!(serde_json::from_value::<TaskStatus>(json).unwrap(), healthy);
    }

    #[test]
    fn a_report_moves_the_state_forward_or_changes_a_running_tasks_health() {
        let mut task = Task {
            id: "t".into(),
            service_id: "s".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: Some("n".into()),
            spec: TaskTemplate::default(),
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Assigned, 1, "assigned"),
            networks: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
            version: 1,
        };
        let with = |state, at, health| TaskStatus {
            health,
            ..TaskStatus::new(state, at, "started")
        };
        assert!(task.take_report(&with(TaskState::Running, 10, Some(HealthStatus::Starting))));
        assert!(!task.take_report(&with(TaskState::Running, 20, Some(HealthStatus::Starting))));
        assert!(task.take_report(&with(TaskState::Running, 30, Some(HealthStatus::Healthy))));
        assert_eq!(task.status.health, Some(HealthStatus::Healthy));
        assert_eq!(task.status.timestamp_ms, 10, "the state's time stays");
        assert!(!task.take_report(&with(TaskState::Preparing, 40, None)));
        assert!(task.take_report(&with(TaskState::Failed, 50, None)));
        assert!(
            !task.take_report(&with(TaskState::Failed, 60, Some(HealthStatus::Unhealthy))),
            "an ended task's health is no news"
        );
        assert_eq!(task.status.timestamp_ms, 50);
    }
}
