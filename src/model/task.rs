//! Tasks: one run of a service's command in a slot (replicated) or on a node
//! (global), as the manager stores it, and the states it goes through, in
//! Docker's order. A task's state only moves forward.

use serde::{Deserialize, Serialize};

use super::service::TaskTemplate;

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
    /// What it runs: the service's template when the task was made.
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
}
