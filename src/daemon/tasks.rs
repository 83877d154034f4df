//! Runs this node's service tasks as containers: the agent's watch feeds the
//! tasks the manager assigned here, `agent::tasks::plan` says what to do,
//! and this carries it out (a task container is an ordinary container named
//! `web.1.<task>` on the addresses the manager gave, so `container ls`,
//! `inspect`, `exec` and `logs` work on it) and reports back: what the plan
//! knows at once (an ended task), then what it did, each in one call.
//! A task container whose service has a health check gets a monitor
//! (`containers/health.rs`) while it runs; its health goes into the plan.
//! The runner wakes on a new feed, the moment a task container ends
//! (`task_exits.rs`), and every `POLL`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::containers::{Container, HealthMonitors, NetAttachment, RunState};
use super::networking::{Step, NETNS_DIR};
use super::swarm::NetCtx;
use super::task_exits::{Running, TaskExits};
use super::{blocking, Daemon};
use crate::agent::tasks::{plan, unhealthy, Action, LocalTask, Sent, TaskFeed};
use crate::model::{
    mac_for, now_millis, ApiError, Endpoint, HealthConfig, NodeRole, Task, TaskState, TaskStatus,
};
use crate::netlink::netns;
use crate::proto::{to_reply, TaskReport, TaskUpdate};
use crate::runtime;

/// How often the runner looks again without being woken: for health changes
/// (the monitors record them, the runner reads them), to retry a report the
/// manager did not take, and for an end no waiter saw (one that could not
/// open its pidfds). A task's end wakes it at once.
const POLL: Duration = Duration::from_millis(250);

impl Daemon {
    /// Follows the feed until the daemon stops; `None` means "not in a swarm".
    pub(super) async fn run_tasks(self: Arc<Self>, mut feed: watch::Receiver<Option<TaskFeed>>) {
        let mut reported: HashMap<String, Sent> = HashMap::new();
        let mut monitors = HealthMonitors::default();
        let mut exits = TaskExits::default();
        loop {
            tokio::select! {
                changed = feed.changed() => if changed.is_err() { return },
                () = exits.ended() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            let Some(current) = feed.borrow_and_update().clone() else {
                reported.clear();
                monitors.clear();
                exits.follow(Vec::new());
                continue;
            };
            if let Some(role) = current.role {
                self.follow_role(role).await;
            }
            reported.retain(|id, sent| {
                current
                    .tasks
                    .iter()
                    .any(|t| t.id == *id && sent.ahead_of(&t.status))
            });
            let (local, running) = self.local_tasks();
            exits.follow(running);
            monitors.follow(&self.containers, health_checks(&current.tasks, &local));
            let actions = plan(&current.tasks, &local, &reported, now_millis());
            if actions.is_empty() {
                continue;
            }
            let updates = self.carry_out(&current, actions, &mut reported).await;
            self.tell(&mut reported, updates).await;
        }
    }

    /// Reports task states to the manager, and notes them as sent; a report
    /// that fails is planned again on the next round.
    async fn tell(&self, reported: &mut HashMap<String, Sent>, updates: Vec<TaskUpdate>) {
        if updates.is_empty() {
            return;
        }
        match self.report(updates.clone()).await {
            Ok(()) => reported.extend(
                updates
                    .into_iter()
                    .map(|u| (u.task_id, Sent::of(&u.status))),
            ),
            Err(e) => tracing::warn!("cannot report task states to the manager; trying again: {e}"),
        }
    }

    /// Takes the role the store gives this node (after a promote or a
    /// demote), so cluster calls are served or refused as it says.
    async fn follow_role(&self, role: NodeRole) {
        let mut slot = self.swarm.lock().await;
        let Some(swarm) = slot.as_mut() else {
            return;
        };
        if swarm.state.config.role == role {
            return;
        }
        swarm.state.config.role = role;
        tracing::info!(%role, "this node's role changed");
        if let Err(e) = swarm.state.save_config(&self.state_dir) {
            tracing::warn!("cannot record the node's new role: {e:#}");
        }
    }

    /// This host's task containers, as the plan reads them, and the running
    /// ones to wait on. One whose process has exited runs until its shim
    /// has recorded the exit code (`runtime::has_ended`).
    fn local_tasks(&self) -> (Vec<LocalTask>, Vec<Running>) {
        let mut waits = Vec::new();
        let local = self
            .containers
            .all()
            .into_iter()
            .filter_map(|c| {
                let task_id = c.task_id.clone()?;
                let dir = self.containers.dir_of(&c.id);
                let running = c.process.pid != 0 && !runtime::has_ended(&dir, &c.process);
                let exit_code = match running {
                    true => None,
                    false => runtime::exit_code(&dir),
                };
                if running {
                    waits.push((c.id.clone(), dir, c.process));
                }
                let health = match running {
                    true => self.containers.health(&c.id).map(|h| h.status),
                    false => None,
                };
                Some(LocalTask {
                    task_id,
                    running,
                    pid: c.process.pid,
                    exit_code,
                    plugged: !c.netns.as_os_str().is_empty(),
                    health,
                    container_id: c.id,
                })
            })
            .collect();
        (local, waits)
    }

    /// Does the plan's steps: first tells the manager what is known already
    /// (a task that ended, a change of health), so an ended task leaves the
    /// balancers without waiting for its addresses to be given back; then
    /// starts one by one (they share the network lock), stops all at once
    /// (each lets the balancers go first, then may wait its grace period).
    /// Returns what to tell the manager next.
    async fn carry_out(
        &self,
        feed: &TaskFeed,
        actions: Vec<Action>,
        reported: &mut HashMap<String, Sent>,
    ) -> Vec<TaskUpdate> {
        let known = actions
            .iter()
            .filter_map(|a| match a {
                Action::Report(update) => Some(update.clone()),
                _ => None,
            })
            .collect();
        self.tell(reported, known).await;
        let ctx = self.net_ctx("").await.ok();
        let ctx = ctx.as_ref();
        let mut updates = Vec::new();
        let mut stops = Vec::new();
        let starts: Vec<&Task> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Start(t) => Some(&**t),
                _ => None,
            })
            .collect();
        if !starts.is_empty() {
            let preparing = starts
                .iter()
                .map(|t| TaskUpdate {
                    task_id: t.id.clone(),
                    status: TaskStatus::new(TaskState::Preparing, now_millis(), "preparing"),
                })
                .collect();
            if let Err(e) = self.report(preparing).await {
                tracing::debug!("cannot report tasks as preparing: {e}");
            }
        }
        for action in actions {
            match action {
                Action::Report(_) => {} // told first, above
                Action::Start(task) => updates.push(self.start_task(feed, &task).await),
                Action::Stop {
                    task_id,
                    container_id,
                    grace_ms,
                    unhealthy,
                } => stops.push(async move {
                    if unhealthy {
                        tracing::warn!(task = %task_id, "stopping the unhealthy task");
                    }
                    if self.may_be_balanced(&container_id) {
                        tokio::time::sleep(LEAVE_BALANCERS).await;
                    }
                    let grace = Duration::from_millis(grace_ms);
                    self.stop_task(ctx, &container_id, grace, false).await;
                    (task_id, container_id, unhealthy)
                }),
                Action::Unplug { container_id } => self.unplug_task(ctx, &container_id).await,
                Action::Forget { container_id } => {
                    self.stop_task(ctx, &container_id, Duration::ZERO, true)
                        .await
                }
            }
        }
        for (task_id, container_id, failed) in futures::future::join_all(stops).await {
            let exit_code = runtime::exit_code(&self.containers.dir_of(&container_id));
            let status = match failed {
                true => unhealthy(&container_id, exit_code, now_millis()),
                false => TaskStatus {
                    exit_code,
                    container_id: Some(container_id),
                    ..TaskStatus::new(TaskState::Shutdown, now_millis(), "shutdown")
                },
            };
            updates.push(TaskUpdate { task_id, status });
        }
        updates
    }

    async fn report(&self, updates: Vec<TaskUpdate>) -> Result<(), ApiError> {
        let link = {
            let slot = self.swarm.lock().await;
            let swarm = slot.as_ref().ok_or_else(ApiError::not_in_swarm)?;
            swarm.net.link.clone()
        };
        link.ask(TaskReport { updates }).await
    }

    /// Makes and runs a task's container on its addresses: Running, or
    /// Rejected with why (and nothing left behind).
    async fn start_task(&self, feed: &TaskFeed, task: &Task) -> TaskUpdate {
        let name = task.name();
        let status = match self.launch_task(feed, task, &name).await {
            Ok((container_id, pid)) => {
                tracing::info!(task = %name, container = %container_id, "task started");
                TaskStatus {
                    container_id: Some(container_id),
                    pid: Some(pid),
                    ..TaskStatus::new(TaskState::Running, now_millis(), "started")
                }
            }
            Err(e) => {
                tracing::warn!(task = %name, "task rejected: {e}");
                TaskStatus {
                    err: Some(e.to_string()),
                    ..TaskStatus::new(TaskState::Rejected, now_millis(), "rejected")
                }
            }
        };
        TaskUpdate {
            task_id: task.id.clone(),
            status,
        }
    }

    async fn launch_task(
        &self,
        feed: &TaskFeed,
        task: &Task,
        name: &str,
    ) -> Result<(String, i32), ApiError> {
        let ctx = match task.networks.is_empty() {
            true => None,
            false => Some(self.net_ctx(name).await?),
        };
        let _guard = self.net.lock.lock().await;
        let mut prepared =
            self.containers
                .prepare(Some(name.to_string()), task.spec.argv(), Vec::new())?;
        prepared.env = task.spec.env.clone();
        prepared.hostname = task.hostname(&crate::daemon::enroll::hostname());
        prepared.task_id = Some(task.id.clone());
        let netns = PathBuf::from(NETNS_DIR).join(&prepared.id[..12]);
        let mut done = Vec::new();
        let result = async {
            netns::create(&netns).map_err(|e| ApiError::Internal(format!("{e:#}")))?;
            done.push(Step::Netns(netns.clone()));
            self.serve_dns(&netns, &task.id).await?;
            let mut plugged: Vec<NetAttachment> = Vec::new();
            for (i, attachment) in task.networks.iter().enumerate() {
                let ctx = ctx.as_ref().expect("a task with networks has a swarm");
                let network = feed
                    .networks
                    .iter()
                    .find(|n| n.id == attachment.network_id)
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "network {} of task {name} is gone",
                            attachment.network_id
                        ))
                    })?;
                let aliases = task
                    .spec
                    .networks
                    .iter()
                    .find(|n| n.target == network.id)
                    .map(|n| n.aliases.clone())
                    .unwrap_or_default();
                let endpoint = Endpoint {
                    id: attachment.endpoint_id.clone(),
                    network_id: network.id.clone(),
                    node_id: task.node_id.clone().unwrap_or_default(),
                    container_id: task.id.clone(),
                    container_name: name.to_string(),
                    aliases,
                    ip: attachment.ip,
                    mac: mac_for(attachment.ip),
                    created_at: 0,
                    task_id: Some(task.id.clone()),
                    service_id: Some(task.service_id.clone()),
                };
                let a = self
                    .plug_endpoint(ctx, &netns, format!("eth{i}"), &endpoint, network, name)
                    .await?;
                done.push(Step::Endpoint(a.clone()));
                plugged.push(a);
            }
            let egress = match ctx.as_ref() {
                Some(ctx) => {
                    let ifname = format!("eth{}", plugged.len());
                    let e = self.plug_egress(ctx, &prepared.id, &netns, ifname).await?;
                    done.push(Step::Egress(prepared.id.clone()));
                    Some(e)
                }
                None => None,
            };
            self.serve_vips(&netns, &task.id).await?;
            let containers = self.containers.clone();
            let (p, ns) = (prepared.clone(), netns.clone());
            let started = blocking(move || {
                containers
                    .start(&p, ns, plugged, egress)
                    .and_then(|v| to_reply(v.container.process.pid))
            })
            .await?;
            serde_json::from_value::<i32>(started).map_err(ApiError::internal)
        }
        .await;
        match result {
            Ok(pid) => Ok((prepared.id, pid)),
            Err(e) => {
                self.undo(ctx.as_ref(), done).await;
                self.containers.discard(&prepared.id);
                Err(e)
            }
        }
    }

    /// True when the container has addresses on networks, where balancers
    /// (VIPs, the routing mesh) and DNS may still send to it.
    fn may_be_balanced(&self, container_id: &str) -> bool {
        self.containers
            .find(container_id)
            .is_ok_and(|view| !view.container.networks.is_empty())
    }

    /// Stops a task's container (SIGTERM, SIGKILL after `grace`) and unplugs
    /// it; with `forget`, its files go too.
    async fn stop_task(
        &self,
        ctx: Option<&NetCtx>,
        container_id: &str,
        grace: Duration,
        forget: bool,
    ) {
        let Ok(view) = self.containers.find(container_id) else {
            return;
        };
        if view.state == RunState::Running {
            let process = view.container.process;
            let stopped = tokio::task::spawn_blocking(move || process.stop(grace)).await;
            if let Ok(Err(e)) = stopped {
                tracing::warn!(container = %view.container.name, "cannot stop the task: {e:#}");
            }
        }
        self.unplug_task(ctx, container_id).await;
        if forget {
            if let Ok(view) = self.containers.find(container_id) {
                if let Err(e) = self.containers.forget(&view.container) {
                    tracing::warn!("{e}");
                }
            }
        }
    }

    /// Gives back an ended task's namespace and addresses; its record and
    /// log stay (for `service logs` and `service ps`) until the task is forgotten.
    async fn unplug_task(&self, ctx: Option<&NetCtx>, container_id: &str) {
        let _guard = self.net.lock.lock().await;
        let Ok(view) = self.containers.find(container_id) else {
            return;
        };
        let c: Container = view.container;
        if c.netns.as_os_str().is_empty() {
            return;
        }
        let mut steps = vec![Step::Netns(c.netns.clone())];
        steps.extend(c.networks.iter().cloned().map(Step::Endpoint));
        if c.egress.is_some() {
            steps.push(Step::Egress(c.id.clone()));
        }
        self.undo(ctx, steps).await;
        let unplugged = Container {
            netns: PathBuf::new(),
            networks: Vec::new(),
            egress: None,
            ..c
        };
        if let Err(e) = self.containers.record(&unplugged) {
            tracing::warn!("{e}");
        }
    }

    /// Every task container of this host stopped and forgotten (a leave, a
    /// shutdown); `ctx` is the swarm's, whose lock the caller may hold.
    pub(super) async fn stop_all_tasks(&self, ctx: Option<&NetCtx>) {
        self.net.tasks.send_replace(None);
        let stops = self.local_tasks().0.into_iter().map(|l| async move {
            self.stop_task(ctx, &l.container_id, STOP_ALL_GRACE, true)
                .await
        });
        futures::future::join_all(stops).await;
    }
}

/// The health checks each running task container meant to run gets, when
/// its service has one.
fn health_checks<'a>(
    tasks: &'a [Task],
    local: &'a [LocalTask],
) -> Vec<(&'a str, &'a HealthConfig)> {
    local
        .iter()
        .filter(|l| l.running)
        .filter_map(|l| {
            let task = tasks.iter().find(|t| t.id == l.task_id)?;
            if task.desired_state != TaskState::Running {
                return None;
            }
            Some((l.container_id.as_str(), task.spec.health_check()?))
        })
        .collect()
}

/// How long a task told to stop keeps running, when it has addresses on
/// networks, before its SIGTERM: the manager's watch drops it from every
/// node's balancers at once, but they apply that on their own time (tens to
/// hundreds of ms after the stopping node, measured), and it takes no new
/// connection once it stops listening. One second is the time balancers are
/// meant to follow a change in; Docker waits 2 s here
/// (`defaultGossipConvergeDelay`).
const LEAVE_BALANCERS: Duration = Duration::from_secs(1);

/// How long a leave or shutdown gives each task to stop.
const STOP_ALL_GRACE: Duration = Duration::from_secs(10);

/// The feed's sender side, shared with the agent.
pub(super) fn feed() -> (
    Arc<watch::Sender<Option<TaskFeed>>>,
    watch::Receiver<Option<TaskFeed>>,
) {
    let (tx, rx) = watch::channel(None);
    (Arc::new(tx), rx)
}
