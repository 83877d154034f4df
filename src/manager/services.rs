//! Services and tasks in the manager: create, update, roll back and remove
//! services (each one store transaction, checked first, published ports
//! against the other services' in `services/ports.rs`), list tasks, and
//! record what nodes report about their own tasks. Placing and replacing
//! tasks is the scheduler's (`orchestrator.rs`).

mod ports;
#[cfg(test)]
mod ports_test;
#[cfg(test)]
mod publish_test;

use super::endpoints::drop_task_endpoints;
use super::networks::find_network;
use super::store::Txn;
use super::vips;
use super::Manager;
use crate::model::{
    find, now_millis, random_id, ApiError, Service, ServiceMode, ServiceSpec, Task, UpdateState,
    UpdateStatus,
};
use crate::proto::{to_reply, ClusterRequest, TaskReport};

impl Manager {
    /// The service and task calls of `cluster_call`.
    pub(super) fn service_call(&self, call: ClusterRequest) -> Result<serde_json::Value, ApiError> {
        match call {
            ClusterRequest::ServiceCreate(spec) => to_reply(self.create_service(spec)?),
            ClusterRequest::ServiceLs => to_reply(self.store.read()?.services()?),
            ClusterRequest::ServiceInspect { service } => {
                to_reply(find_service(&self.store.read()?, &service)?)
            }
            ClusterRequest::ServiceUpdate {
                service,
                version,
                spec,
                rollback,
            } => to_reply(self.update_service(&service, version, spec, rollback)?),
            ClusterRequest::ServiceRm { service } => to_reply(self.remove_service(&service)?),
            ClusterRequest::TaskLs => to_reply(self.store.read()?.tasks()?),
            ClusterRequest::TaskInspect { task } => {
                let tasks = self.store.read()?.tasks()?;
                let found = find(
                    &tasks,
                    &task,
                    "task",
                    |t| &t.id,
                    |t| &t.id,
                    || ApiError::NotFound(format!("no such task: {task}")),
                )?;
                to_reply(found)
            }
            other => Err(ApiError::Internal(format!(
                "{other:?} reached the service calls"
            ))),
        }
    }

    fn create_service(&self, mut spec: ServiceSpec) -> Result<Service, ApiError> {
        spec.check()?;
        let service = self.store.update(|tx| {
            let others = tx.services()?;
            if others.iter().any(|s| s.spec.name == spec.name) {
                return Err(ApiError::Conflict(format!(
                    "name conflicts with an existing object: service {} already exists; choose another name or remove it first",
                    spec.name
                )));
            }
            resolve_networks(tx, &mut spec)?;
            publish_ports(tx, &mut spec, None, &others)?;
            let now = now_millis();
            let id = random_id();
            let service = Service {
                virtual_ips: vips::assign(tx, &id, &spec, &[])?,
                id,
                spec: spec.clone(),
                previous_spec: None,
                version: tx.revision(),
                created_at_ms: now,
                updated_at_ms: now,
                update_status: None,
                last_batch_ms: 0,
            };
            tx.put_service(&service)?;
            Ok(service)
        })?;
        tracing::info!(service = %service.spec.name, id = %service.id, mode = ?service.spec.mode, "service created");
        Ok(service)
    }

    /// `service update` (the whole new spec, at the version the caller read)
    /// or `service rollback` (the spec before the last update).
    fn update_service(
        &self,
        name: &str,
        version: u64,
        spec: ServiceSpec,
        rollback: bool,
    ) -> Result<Service, ApiError> {
        if !rollback {
            spec.check()?;
        }
        let service = self.store.update(|tx| {
            let mut service = find_service(tx, name)?;
            if version != service.version {
                return Err(ApiError::InvalidArgument(format!(
                    "update out of sequence: service {} is at version {}, not {version}; read it again and retry",
                    service.spec.name, service.version
                )));
            }
            let (mut next, state, message) = if rollback {
                let previous = service.previous_spec.clone().ok_or_else(|| {
                    ApiError::FailedPrecondition(format!(
                        "service {} does not have a previous spec",
                        service.spec.name
                    ))
                })?;
                (previous, UpdateState::RollbackStarted, "manually requested rollback")
            } else {
                let mut next = spec.clone();
                resolve_networks(tx, &mut next)?;
                check_change(&service.spec, &next)?;
                (next, UpdateState::Updating, "update in progress")
            };
            let others: Vec<Service> = tx
                .services()?
                .into_iter()
                .filter(|s| s.id != service.id)
                .collect();
            publish_ports(tx, &mut next, Some(&service.spec), &others)?;
            // The spec it has (a stack deployed again, an update that
            // changes nothing): nothing is written, and the version stays,
            // where Docker counts a new version anyway.
            if !rollback && next == service.spec {
                return Ok(service.clone());
            }
            let now = now_millis();
            // A new template or endpoint (published ports, endpoint mode)
            // rolls the tasks out, as swarmkit's `IsTaskDirty` has it.
            if next.task_template() != service.spec.task_template() {
                service.update_status = Some(UpdateStatus {
                    state,
                    started_at_ms: now,
                    completed_at_ms: None,
                    message: message.into(),
                });
                service.last_batch_ms = 0;
            }
            service.virtual_ips = vips::assign(tx, &service.id, &next, &service.virtual_ips)?;
            service.previous_spec = Some(std::mem::replace(&mut service.spec, next));
            service.updated_at_ms = now;
            tx.put_service(&service)?;
            Ok(Service {
                version: tx.revision(),
                ..service
            })
        })?;
        tracing::info!(service = %service.spec.name, version = service.version, rollback, "service updated");
        Ok(service)
    }

    /// `service rm`: the service goes; the scheduler stops and forgets its tasks.
    fn remove_service(&self, name: &str) -> Result<String, ApiError> {
        let service = self.store.update(|tx| {
            let service = find_service(tx, name)?;
            tx.remove_service(&service.id);
            Ok::<_, ApiError>(service)
        })?;
        tracing::info!(service = %service.spec.name, id = %service.id, "service removed");
        Ok(service.id)
    }

    /// A node's news about its own tasks, recorded in one transaction. A
    /// state only moves forward (a running task's health may change at the
    /// same state); news of another node's task is refused; a task that
    /// ended gives its addresses back.
    pub fn task_report(&self, node: &str, report: TaskReport) -> Result<(), ApiError> {
        let changed = self.store.update(|tx| {
            let mut tasks: std::collections::HashMap<String, Task> =
                tx.tasks()?.into_iter().map(|t| (t.id.clone(), t)).collect();
            let mut changed = 0;
            for update in &report.updates {
                let Some(task) = tasks.get_mut(&update.task_id) else {
                    continue;
                };
                if task.node_id.as_deref() != Some(node) {
                    return Err(ApiError::PermissionDenied(format!(
                        "task {} is not assigned to node {node}",
                        task.id
                    )));
                }
                if !task.take_report(&update.status) {
                    continue;
                }
                task.updated_at_ms = now_millis();
                if task.status.state.is_terminal() {
                    drop_task_endpoints(tx, &task.id)?;
                }
                tx.put_task(task)?;
                changed += 1;
            }
            Ok::<_, ApiError>(changed)
        })?;
        if changed > 0 {
            tracing::debug!(node, changed, "task states recorded");
        }
        Ok(())
    }
}

/// The service a name, ID or unique ID prefix names.
pub(super) fn find_service(tx: &Txn<'_>, name: &str) -> Result<Service, ApiError> {
    let services = tx.services()?;
    find(
        &services,
        name,
        "service",
        |s| &s.id,
        |s| &s.spec.name,
        || ApiError::NotFound(format!("service {name} not found")),
    )
    .cloned()
}

/// Network names in a spec become IDs; the ingress network is for published ports only.
fn resolve_networks(tx: &Txn<'_>, spec: &mut ServiceSpec) -> Result<(), ApiError> {
    let mut seen = Vec::new();
    for wanted in &mut spec.task.networks {
        let network = find_network(tx, &wanted.target)?;
        if network.ingress {
            return Err(ApiError::InvalidArgument(format!(
                "service {} cannot join network {}: the ingress network carries published ports only; create an overlay network for it",
                spec.name, network.name
            )));
        }
        if seen.contains(&network.id) {
            return Err(ApiError::InvalidArgument(format!(
                "service {} names network {} twice",
                spec.name, network.name
            )));
        }
        seen.push(network.id.clone());
        wanted.target = network.id;
    }
    Ok(())
}

/// The spec's published ports checked against `others` and the missing
/// ingress ones assigned (`ports::publish`); the routing mesh needs the
/// ingress network (Docker's words when it was removed).
fn publish_ports(
    tx: &Txn<'_>,
    spec: &mut ServiceSpec,
    previous: Option<&ServiceSpec>,
    others: &[Service],
) -> Result<(), ApiError> {
    ports::publish(spec, previous, others)?;
    if spec.ports.iter().any(|p| p.is_ingress()) && !tx.networks()?.iter().any(|n| n.ingress) {
        return Err(ApiError::FailedPrecondition(
            "service needs ingress network, but no ingress network is present; publish its ports with mode=host instead".into(),
        ));
    }
    Ok(())
}

/// What an update may not change: the name and the mode.
fn check_change(now: &ServiceSpec, next: &ServiceSpec) -> Result<(), ApiError> {
    if now.name != next.name {
        return Err(ApiError::InvalidArgument(format!(
            "service {} cannot be renamed to {}: renaming services is not supported",
            now.name, next.name
        )));
    }
    let global = |m: &ServiceMode| matches!(m, ServiceMode::Global);
    if global(&now.mode) != global(&next.mode) {
        return Err(ApiError::InvalidArgument(format!(
            "service {}: service mode change is not allowed",
            now.name
        )));
    }
    Ok(())
}
