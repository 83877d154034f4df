//! Fixtures for the scheduler's tests: nodes and services in a line each, and
//! a small cluster that runs `plan`, applies it as the manager does (checking
//! every time that planning again at the same instant changes nothing), and
//! plays the agents that move tasks forward.

mod converge;
mod endpoint;
mod global;
mod placement;
mod replicated;
mod restart;
mod update;

use std::collections::BTreeMap;

use super::{plan, NodeInfo, Plan, State};
use crate::model::{
    Availability, NodeRole, RestartPolicy, Service, ServiceMode, ServiceSpec, Task, TaskState,
    TaskStatus, TaskTemplate, UpdateConfig, UpdateState, UpdateStatus, HOST_IMAGE,
};

/// The time the tests start at (Unix ms).
pub(super) const T0: u64 = 1_700_000_000_000;

/// Node `n<i>` on host `vm<i>`: a ready, active worker.
pub(super) fn node(i: u32) -> NodeInfo {
    NodeInfo {
        id: format!("n{i}"),
        hostname: format!("vm{i}"),
        role: NodeRole::Worker,
        availability: Availability::Active,
        labels: BTreeMap::new(),
        engine_labels: BTreeMap::new(),
        ready: true,
    }
}

pub(super) fn nodes(count: u32) -> Vec<NodeInfo> {
    (1..=count).map(node).collect()
}

pub(super) fn labelled(mut n: NodeInfo, key: &str, value: &str) -> NodeInfo {
    n.labels.insert(key.into(), value.into());
    n
}

/// A service named `name` (its id too), restarting at once on any exit.
pub(super) fn service(name: &str, mode: ServiceMode) -> Service {
    Service {
        id: name.into(),
        spec: ServiceSpec {
            name: name.into(),
            labels: BTreeMap::new(),
            mode,
            task: TaskTemplate {
                image: HOST_IMAGE.into(),
                args: vec!["sleep".into(), "1d".into()],
                restart: RestartPolicy {
                    delay_ms: 0,
                    ..RestartPolicy::default()
                },
                ..TaskTemplate::default()
            },
            update: UpdateConfig::default(),
            rollback: UpdateConfig::default(),
            endpoint_mode: "vip".into(),
            ports: Vec::new(),
        },
        previous_spec: None,
        version: 1,
        created_at_ms: T0,
        updated_at_ms: T0,
        update_status: None,
        last_batch_ms: 0,
        virtual_ips: Vec::new(),
    }
}

pub(super) fn replicated(name: &str, replicas: u64) -> Service {
    service(name, ServiceMode::Replicated { replicas })
}

pub(super) fn global(name: &str) -> Service {
    service(name, ServiceMode::Global)
}

/// The cluster's state, moved by plans and by make-believe agents.
pub(super) struct Cluster {
    pub nodes: Vec<NodeInfo>,
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
    pub now: u64,
    ids: u32,
}

impl Cluster {
    pub fn new(nodes: Vec<NodeInfo>, services: Vec<Service>) -> Cluster {
        Cluster {
            nodes,
            services,
            tasks: Vec::new(),
            now: T0,
            ids: 0,
        }
    }

    /// The plan for the state as it is (task ids t1, t2, ...).
    pub fn plan(&mut self) -> Plan {
        let state = State {
            nodes: &self.nodes,
            services: &self.services,
            tasks: &self.tasks,
            now_ms: self.now,
        };
        let ids = &mut self.ids;
        plan(&state, &mut || {
            *ids += 1;
            format!("t{ids}")
        })
    }

    /// Does what the manager does with a plan.
    pub fn apply(&mut self, plan: &Plan) {
        self.tasks.retain(|t| !plan.delete.contains(&t.id));
        for changed in &plan.update {
            let t = self.tasks.iter_mut().find(|t| t.id == changed.id);
            *t.expect("an updated task exists") = changed.clone();
        }
        self.tasks.extend(plan.create.iter().cloned());
        for changed in &plan.services {
            let s = self.services.iter_mut().find(|s| s.id == changed.id);
            *s.expect("an updated service exists") = changed.clone();
        }
    }

    /// Plans and applies, then checks that planning again changes nothing.
    pub fn step(&mut self) -> Plan {
        let plan = self.plan();
        self.apply(&plan);
        let again = self.plan();
        assert_eq!(
            (&again.create, &again.update, &again.delete, &again.services),
            (&vec![], &vec![], &vec![], &vec![]),
            "planning again right after applying {plan:#?}"
        );
        assert_eq!(again.wake_at_ms, plan.wake_at_ms, "the same wake-up time");
        plan
    }

    /// The agents: every task on a ready node moves to what it is asked
    /// (prepared, running, or stopped), stamped now.
    pub fn run(&mut self) {
        let now = self.now;
        for t in &mut self.tasks {
            let up = self
                .nodes
                .iter()
                .any(|n| Some(&n.id) == t.node_id.as_ref() && n.ready);
            if !up || t.status.state.is_terminal() {
                continue;
            }
            let next = match t.desired_state {
                TaskState::Ready if t.status.state < TaskState::Ready => TaskState::Ready,
                TaskState::Running if t.status.state < TaskState::Running => TaskState::Running,
                d if d >= TaskState::Shutdown => TaskState::Shutdown,
                _ => continue,
            };
            t.status = TaskStatus::new(next, now, next.as_str());
        }
    }

    /// Steps and runs the agents until the plan is empty.
    pub fn settle(&mut self) {
        for _ in 0..50 {
            self.run();
            let plan = self.step();
            if plan.create.is_empty()
                && plan.update.is_empty()
                && plan.delete.is_empty()
                && plan.services.is_empty()
            {
                return;
            }
        }
        panic!("the cluster does not settle: {:#?}", self.tasks);
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    pub fn task(&self, id: &str) -> &Task {
        self.tasks
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no task {id}"))
    }

    /// Ends a task by itself (its process exits) now.
    pub fn end(&mut self, id: &str, state: TaskState) {
        let now = self.now;
        let t = self
            .tasks
            .iter_mut()
            .find(|t| t.id == id)
            .expect("the task");
        t.status = TaskStatus {
            exit_code: Some(i32::from(state != TaskState::Complete)),
            ..TaskStatus::new(state, now, state.as_str())
        };
    }

    pub fn node_mut(&mut self, id: &str) -> &mut NodeInfo {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("the node")
    }

    pub fn service_mut(&mut self, id: &str) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.id == id)
            .expect("the service")
    }

    /// Changes the service's template as `service update` does: the old spec
    /// kept for rollback, and an update started now.
    pub fn update_template(&mut self, id: &str, change: impl FnOnce(&mut TaskTemplate)) {
        self.update_spec(id, |spec| change(&mut spec.task));
    }

    /// Changes the service's spec (its endpoint, say) as `service update`
    /// does when the tasks must change: as `update_template`.
    pub fn update_spec(&mut self, id: &str, change: impl FnOnce(&mut ServiceSpec)) {
        let now = self.now;
        let s = self.service_mut(id);
        s.previous_spec = Some(s.spec.clone());
        change(&mut s.spec);
        s.version += 1;
        s.update_status = Some(UpdateStatus {
            state: UpdateState::Updating,
            started_at_ms: now,
            completed_at_ms: None,
            message: "update in progress".into(),
        });
    }

    /// The service's live tasks (meant to run, not ended), by slot then node.
    pub fn live(&self, service: &str) -> Vec<&Task> {
        let mut live: Vec<&Task> = self
            .tasks
            .iter()
            .filter(|t| t.service_id == service && t.is_live())
            .collect();
        live.sort_by_key(|t| (t.slot, t.node_id.clone(), t.created_at_ms));
        live
    }

    /// The nodes of the service's live tasks, by slot.
    pub fn placement(&self, service: &str) -> Vec<String> {
        self.live(service)
            .iter()
            .map(|t| t.node_id.clone().unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// The ids of the tasks in a slot (or on a node, for slot 0), oldest first.
    pub fn slot(&self, service: &str, slot: u64, node: Option<&str>) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|t| {
                t.service_id == service
                    && t.slot == slot
                    && (node.is_none() || t.node_id.as_deref() == node)
            })
            .map(|t| t.id.clone())
            .collect()
    }

    pub fn update_state(&self, id: &str) -> (UpdateState, String) {
        let s = self.services.iter().find(|s| s.id == id).expect("service");
        let status = s.update_status.as_ref().expect("an update status");
        (status.state, status.message.clone())
    }
}

/// The ids of the tasks a plan names.
pub(super) fn ids(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}
