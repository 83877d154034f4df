//! The working copy of the tasks one decision changes: every change is made
//! here, and the plan is the difference from the state it started from.

use std::collections::{HashMap, HashSet};

use super::{placement, NodeInfo, Plan, State};
use crate::model::{Service, Task, TaskState, TaskStatus};

/// Docker's status message for a task the scheduler gave a node.
pub(super) const ASSIGNED: &str = "scheduler assigned task to node";
/// Docker's status message for a task no node can take yet.
pub(super) const PENDING: &str = "pending task scheduling";
/// The status of a task stopped before any node took it.
const SHUT_DOWN_UNPLACED: &str = "shutdown";

/// The tasks as this decision has left them so far.
pub(super) struct Work<'a> {
    pub now: u64,
    pub nodes: &'a [NodeInfo],
    original: &'a [Task],
    /// The original tasks by index, then the ones created.
    tasks: Vec<Task>,
    gone: Vec<bool>,
    by_service: HashMap<String, Vec<usize>>,
    new_id: &'a mut dyn FnMut() -> String,
    wake: Option<u64>,
}

impl<'a> Work<'a> {
    pub fn new(state: &State<'a>, new_id: &'a mut dyn FnMut() -> String) -> Work<'a> {
        let mut by_service: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in state.tasks.iter().enumerate() {
            by_service.entry(t.service_id.clone()).or_default().push(i);
        }
        Work {
            now: state.now_ms,
            nodes: state.nodes,
            original: state.tasks,
            tasks: state.tasks.to_vec(),
            gone: vec![false; state.tasks.len()],
            by_service,
            new_id,
            wake: None,
        }
    }

    pub fn task(&self, i: usize) -> &Task {
        &self.tasks[i]
    }

    pub fn is_gone(&self, i: usize) -> bool {
        self.gone[i]
    }

    /// A service's tasks still kept.
    pub fn tasks_of(&self, service_id: &str) -> Vec<usize> {
        self.by_service
            .get(service_id)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| !self.gone[i])
            .collect()
    }

    /// The tasks of services that no longer exist.
    pub fn orphans(&self, services: &HashSet<&str>) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&i| !services.contains(self.tasks[i].service_id.as_str()))
            .collect()
    }

    pub fn node(&self, id: &str) -> Option<&'a NodeInfo> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The node a task is assigned to, if the cluster still has it.
    pub fn node_of(&self, i: usize) -> Option<&'a NodeInfo> {
        self.tasks[i]
            .node_id
            .as_deref()
            .and_then(|id| self.node(id))
    }

    /// True when the task may still be running: it has not ended and its node is up.
    pub fn may_run(&self, i: usize) -> bool {
        !self.tasks[i].status.state.is_terminal() && self.node_of(i).is_some_and(|n| n.ready)
    }

    /// The wake-up time asked for so far.
    pub fn wake(&self) -> Option<u64> {
        self.wake
    }

    /// Forgets the wake-up times asked for since `wake` (a pass that runs again asks anew).
    pub fn rewind_wake(&mut self, wake: Option<u64>) {
        self.wake = wake;
    }

    /// Asks the caller to run the scheduler again at `at` (if that is still to come).
    pub fn wake_at(&mut self, at: u64) {
        if at > self.now {
            self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
        }
    }

    pub fn set_desired(&mut self, i: usize, desired: TaskState) {
        self.tasks[i].desired_state = desired;
    }

    /// Asks a task to stop and stay in the history; one no node took ends now.
    pub fn shut_down(&mut self, i: usize) {
        let now = self.now;
        let t = &mut self.tasks[i];
        if t.desired_state < TaskState::Shutdown {
            t.desired_state = TaskState::Shutdown;
        }
        if t.node_id.is_none() && !t.status.state.is_terminal() {
            t.status = TaskStatus::new(TaskState::Shutdown, now, SHUT_DOWN_UNPLACED);
        }
    }

    /// Asks a task to stop and be forgotten; forgets it at once if nothing runs it.
    pub fn remove(&mut self, i: usize) {
        if self.may_run(i) {
            self.tasks[i].desired_state = TaskState::Remove;
        } else {
            self.gone[i] = true;
        }
    }

    pub fn delete(&mut self, i: usize) {
        self.gone[i] = true;
    }

    /// A new task of the service's template in `slot`: on `node` (a global
    /// task), or placed on the best node now.
    pub fn create(
        &mut self,
        service: &Service,
        slot: u64,
        node: Option<&str>,
        desired: TaskState,
    ) -> usize {
        let now = self.now;
        let status = match node {
            Some(_) => TaskStatus::new(TaskState::Assigned, now, ASSIGNED),
            None => TaskStatus::new(TaskState::New, now, ""),
        };
        let task = Task {
            id: (self.new_id)(),
            service_id: service.id.clone(),
            service_name: service.spec.name.clone(),
            slot,
            node_id: node.map(str::to_string),
            spec: service.spec.task_template(),
            spec_version: service.version,
            desired_state: desired,
            status,
            networks: Vec::new(),
            created_at_ms: now,
            updated_at_ms: now,
            version: 0,
        };
        let i = self.tasks.len();
        self.by_service
            .entry(task.service_id.clone())
            .or_default()
            .push(i);
        self.tasks.push(task);
        self.gone.push(false);
        if node.is_none() {
            self.place(i);
        }
        i
    }

    /// Puts a task no node has yet on the best node that takes it, or records
    /// Docker's reason that none does (rewritten only when it changes).
    pub fn place(&mut self, i: usize) {
        let t = &self.tasks[i];
        let constraints = t.spec.parsed_constraints();
        let live = self
            .tasks
            .iter()
            .zip(&self.gone)
            .filter(|(t, gone)| !**gone && t.is_live())
            .map(|(t, _)| t);
        let choice = placement::choose(self.nodes, live, t, &constraints);
        let now = self.now;
        let t = &mut self.tasks[i];
        match choice {
            Ok(node) => {
                t.node_id = Some(node.id.clone());
                t.status = TaskStatus::new(TaskState::Assigned, now, ASSIGNED);
            }
            Err(reason) => {
                let same = t.status.state == TaskState::Pending
                    && t.status.message == PENDING
                    && t.status.err.as_deref() == Some(reason.as_str());
                if !same {
                    t.status = TaskStatus {
                        err: Some(reason),
                        ..TaskStatus::new(TaskState::Pending, now, PENDING)
                    };
                }
            }
        }
    }

    /// The plan: tasks made, tasks changed (stamped now), tasks forgotten, in
    /// the order of the state they came from.
    pub fn into_plan(self, services: Vec<Service>) -> Plan {
        let mut plan = Plan {
            services,
            wake_at_ms: self.wake,
            ..Plan::default()
        };
        for (i, (mut task, gone)) in self.tasks.into_iter().zip(self.gone).enumerate() {
            match self.original.get(i) {
                Some(_) if gone => plan.delete.push(task.id),
                Some(before) if task != *before => {
                    task.updated_at_ms = self.now;
                    plan.update.push(task);
                }
                Some(_) => {}
                None if !gone => plan.create.push(task),
                None => {}
            }
        }
        plan
    }
}
