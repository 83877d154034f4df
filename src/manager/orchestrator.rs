//! Runs the scheduler: on every store change and at the times it waits for
//! (restart delays, update delays, nodes going Down), one transaction reads
//! the nodes, services and tasks, asks `scheduler::plan` what to change, and
//! stages it, giving assigned tasks their addresses and taking back the
//! addresses of forgotten ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::endpoints::{attach_task, drop_task_endpoints, ensure_ingress_legs};
use super::scheduler::{self, NodeInfo, Plan, State};
use super::Manager;
use crate::model::{now_millis, random_id, ApiError, NodeState, TaskState, TaskStatus};

/// How often the scheduler runs without a change: nodes go Down by the
/// clock, not by a store change.
const TICK: Duration = Duration::from_millis(500);

/// What one pass changed, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub wake_at_ms: Option<u64>,
}

impl Manager {
    /// One scheduling pass, as one store transaction.
    pub fn schedule(&self) -> Result<Pass, ApiError> {
        self.store.update(|tx| {
            let now_ms = now_millis();
            // Heartbeats live in memory: just after a start, a node not heard
            // from yet is not taken for Down.
            let fresh = self.started.elapsed() < super::DOWN_AFTER;
            let nodes: Vec<NodeInfo> = self
                .views_in(tx)?
                .into_iter()
                .filter(|v| !v.node.left)
                .map(|v| NodeInfo {
                    ready: v.state == NodeState::Ready || (fresh && v.last_heartbeat.is_none()),
                    id: v.node.id,
                    hostname: v.node.hostname,
                    role: v.node.role,
                    availability: v.node.availability,
                    labels: v.node.labels,
                    engine_labels: v.node.engine_labels,
                })
                .collect();
            let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
            ensure_ingress_legs(tx, &ids)?;
            record_down(tx, &nodes)?;
            super::networks::sweep_removed(tx)?;
            let services = tx.services()?;
            let tasks = tx.tasks()?;
            let state = State {
                nodes: &nodes,
                services: &services,
                tasks: &tasks,
                now_ms,
            };
            let plan = scheduler::plan(&state, &mut random_id);
            apply(tx, plan)
        })
    }

    /// Runs the scheduler until `shutdown` turns true.
    pub async fn run_scheduler(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut changes = self.store.subscribe();
        loop {
            let manager = self.clone();
            let pass = tokio::task::spawn_blocking(move || manager.schedule()).await;
            let wait = match pass {
                Ok(Ok(pass)) => {
                    if pass.created + pass.updated + pass.deleted > 0 {
                        tracing::info!(
                            created = pass.created,
                            updated = pass.updated,
                            deleted = pass.deleted,
                            "tasks scheduled"
                        );
                    }
                    pass.wake_at_ms
                        .map(|at| Duration::from_millis(at.saturating_sub(now_millis())))
                        .map_or(TICK, |d| d.min(TICK))
                }
                Ok(Err(e)) => {
                    tracing::warn!("scheduling failed; trying again: {e}");
                    TICK
                }
                Err(e) => {
                    tracing::error!("the scheduler panicked: {e}");
                    TICK
                }
            };
            let deadline = Instant::now() + wait;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }
}

/// Keeps each node's `down` in the store in step with its heartbeats, so
/// the watch wakes and leaves a Down node's tasks out of DNS and every
/// balancer (a global service's task stays on a Down node, as Docker's does).
fn record_down(tx: &mut super::store::Txn<'_>, nodes: &[NodeInfo]) -> Result<(), ApiError> {
    for info in nodes {
        let Some(mut node) = tx.node(&info.id)? else {
            continue;
        };
        if node.down == info.ready {
            node.down = !info.ready;
            tracing::info!(node = %node.hostname, down = node.down, "node {}", if node.down { "went Down" } else { "is Ready again" });
            tx.put_node(&node)?;
        }
    }
    Ok(())
}

/// Stages a plan: new and changed tasks (an assigned one gets its
/// addresses), forgotten tasks (their addresses go back), changed services.
fn apply(tx: &mut super::store::Txn<'_>, plan: Plan) -> Result<Pass, ApiError> {
    let pass = Pass {
        created: plan.create.len(),
        updated: plan.update.len(),
        deleted: plan.delete.len(),
        wake_at_ms: plan.wake_at_ms,
    };
    for mut task in plan.create.into_iter().chain(plan.update) {
        if task.status.state.is_terminal() {
            drop_task_endpoints(tx, &task.id)?;
        } else if let Err(e) = attach_task(tx, &mut task) {
            // The restart policy tries again later (a full subnet may free up).
            tracing::warn!(task = %task.id, service = %task.service_name, "cannot give the task its addresses: {e}");
            drop_task_endpoints(tx, &task.id)?;
            task.networks.clear();
            task.status = TaskStatus {
                err: Some(e.to_string()),
                ..TaskStatus::new(
                    TaskState::Rejected,
                    now_millis(),
                    "failed to allocate network addresses",
                )
            };
        }
        tx.put_task(&task)?;
    }
    for id in &plan.delete {
        drop_task_endpoints(tx, id)?;
        tx.remove_task(id);
    }
    for service in &plan.services {
        tx.put_service(service)?;
    }
    Ok(pass)
}
