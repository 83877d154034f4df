//! Services and tasks in Docker's shapes: the `ServiceSpec` a client sends,
//! read into swarmnet's spec (`spec.rs`), and services and tasks written as
//! dockerd 20.10 writes them, with the two fields Docker's schema lacks
//! (`PreviousSpec`, `NetworksAttachments`). No I/O.

mod spec;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use spec::service_spec;

use super::models;
use crate::model::{
    FailureAction, HealthConfig, PortConfig, RestartCondition, Service, ServiceMode, ServiceSpec,
    Task, TaskState, TaskTemplate, UpdateConfig, UpdateOrder, UpdateState,
};

/// Unix milliseconds as RFC 3339, the fraction written as Go writes it
/// (trailing zeros dropped, none for a whole second). A time out of range
/// is the epoch: an empty string would break the docker client's decoding.
pub fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| super::rfc3339(0))
}

/// A service as `GET /services` gives it: Docker's shape and the spec
/// before the last update (dockerd sends it; the swagger leaves it out).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceDoc {
    #[serde(flatten)]
    pub service: models::Service,
    #[serde(
        rename = "PreviousSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_spec: Option<models::ServiceSpec>,
}

/// A task as `GET /tasks` gives it: Docker's shape and its addresses
/// (dockerd sends them; the swagger leaves them out).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskDoc {
    #[serde(flatten)]
    pub task: models::Task,
    #[serde(
        rename = "NetworksAttachments",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks_attachments: Vec<NetworkAttachment>,
}

/// A task's addresses on one network (`10.0.1.5/24`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachment {
    pub network: AttachedNetwork,
    pub addresses: Vec<String>,
}

/// The network of a [`NetworkAttachment`], by ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedNetwork {
    #[serde(rename = "ID")]
    pub id: String,
}

/// A service in Docker's shape; `status` is `ServiceStatus`, given for `?status=true`.
pub fn service_doc(s: &Service, status: Option<models::ServiceServiceStatus>) -> ServiceDoc {
    ServiceDoc {
        service: models::Service {
            id: Some(s.id.clone()),
            version: Some(models::ObjectVersion {
                index: Some(s.version),
            }),
            created_at: Some(rfc3339_ms(s.created_at_ms)),
            updated_at: Some(rfc3339_ms(s.updated_at_ms.max(s.created_at_ms))),
            spec: Some(docker_spec(&s.spec)),
            endpoint: Some(models::ServiceEndpoint {
                spec: Some(models::EndpointSpec {
                    mode: Some(endpoint_mode(&s.spec.endpoint_mode)),
                    ports: docker_ports(&s.spec.ports),
                }),
                ports: docker_ports(&s.spec.ports),
                virtual_ips: (!s.virtual_ips.is_empty()).then(|| {
                    s.virtual_ips
                        .iter()
                        .map(|v| models::ServiceEndpointVirtualIps {
                            network_id: Some(v.network_id.clone()),
                            addr: Some(format!("{}/{}", v.ip, v.prefix_len)),
                        })
                        .collect()
                }),
            }),
            update_status: s
                .update_status
                .as_ref()
                .map(|u| models::ServiceUpdateStatus {
                    state: Some(update_state(u.state)),
                    started_at: (u.started_at_ms > 0).then(|| rfc3339_ms(u.started_at_ms)),
                    completed_at: u.completed_at_ms.filter(|&ms| ms > 0).map(rfc3339_ms),
                    message: Some(u.message.clone()).filter(|m| !m.is_empty()),
                }),
            service_status: status,
            job_status: None,
        },
        previous_spec: s.previous_spec.as_ref().map(docker_spec),
    }
}

/// `ServiceStatus`: running tasks (meant to run and running), and the tasks
/// wanted (the replicas, or a global service's tasks meant to run).
pub fn service_status(s: &Service, tasks: &[Task]) -> models::ServiceServiceStatus {
    let mine = || tasks.iter().filter(|t| t.service_id == s.id);
    let meant_to_run = || mine().filter(|t| t.desired_state == TaskState::Running);
    let running = meant_to_run()
        .filter(|t| t.status.state == TaskState::Running)
        .count() as u64;
    models::ServiceServiceStatus {
        running_tasks: Some(running),
        desired_tasks: Some(
            s.spec
                .replicas()
                .unwrap_or_else(|| meant_to_run().count() as u64),
        ),
        completed_tasks: Some(0),
    }
}

/// A task in Docker's shape, with the host-mode ports of its service
/// (`service`) in `Status.PortStatus` once it has run, as `service ps`
/// shows them. A host-mode port without a published port (the node's
/// choice) is not known here, so not shown.
pub fn task_doc_in(t: &Task, service: Option<&Service>) -> TaskDoc {
    let mut doc = task_doc(t);
    let ran = matches!(
        t.status.state,
        TaskState::Running | TaskState::Complete | TaskState::Shutdown | TaskState::Failed
    );
    let host: Vec<PortConfig> = service
        .filter(|s| s.id == t.service_id && ran)
        .into_iter()
        .flat_map(|s| &s.spec.ports)
        .filter(|p| !p.is_ingress() && p.published.is_some())
        .cloned()
        .collect();
    if let (Some(status), Some(ports)) = (doc.task.status.as_mut(), docker_ports(&host)) {
        status.port_status = Some(models::PortStatus { ports: Some(ports) });
    }
    doc
}

/// A task in Docker's shape.
pub fn task_doc(t: &Task) -> TaskDoc {
    let s = &t.status;
    let container_status = (s.container_id.is_some() || s.pid.is_some() || s.exit_code.is_some())
        .then(|| models::ContainerStatus {
            container_id: Some(s.container_id.clone().unwrap_or_default()),
            pid: Some(s.pid.unwrap_or(0).into()),
            exit_code: Some(s.exit_code.unwrap_or(0).into()),
        });
    TaskDoc {
        task: models::Task {
            id: Some(t.id.clone()),
            version: Some(models::ObjectVersion {
                index: Some(t.version),
            }),
            created_at: Some(rfc3339_ms(t.created_at_ms)),
            updated_at: Some(rfc3339_ms(t.updated_at_ms.max(t.created_at_ms))),
            labels: Some(HashMap::new()),
            spec: Some(task_spec(&t.spec)),
            service_id: Some(t.service_id.clone()),
            slot: (t.slot > 0).then(|| i64::try_from(t.slot).unwrap_or(i64::MAX)),
            node_id: t.node_id.clone(),
            status: Some(models::TaskStatus {
                timestamp: Some(rfc3339_ms(s.timestamp_ms)),
                state: Some(task_state(s.state)),
                message: Some(s.message.clone()).filter(|m| !m.is_empty()),
                err: s.err.clone().filter(|e| !e.is_empty()),
                container_status,
                port_status: None,
            }),
            desired_state: Some(task_state(t.desired_state)),
            ..Default::default()
        },
        networks_attachments: t
            .networks
            .iter()
            .map(|a| NetworkAttachment {
                network: AttachedNetwork {
                    id: a.network_id.clone(),
                },
                addresses: vec![format!("{}/{}", a.ip, a.prefix_len)],
            })
            .collect(),
    }
}

/// Our spec in Docker's shape, as `service inspect` shows it (and as
/// `service update` sends it back, so it reads back as the same spec).
pub fn docker_spec(spec: &ServiceSpec) -> models::ServiceSpec {
    let mode = match spec.mode {
        ServiceMode::Replicated { replicas } => models::ServiceSpecMode {
            replicated: Some(models::ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        },
        ServiceMode::Global => models::ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        },
    };
    models::ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        task_template: Some(task_spec(&spec.task)),
        mode: Some(mode),
        update_config: Some(update_config(&spec.update)),
        rollback_config: Some(rollback_config(&spec.rollback)),
        networks: None,
        endpoint_spec: Some(models::EndpointSpec {
            mode: Some(endpoint_mode(&spec.endpoint_mode)),
            ports: docker_ports(&spec.ports),
        }),
    }
}

/// Published ports as Docker's `EndpointPortConfig`s (`Name` is never
/// set); none when there are none, as Go's `omitempty`.
fn docker_ports(ports: &[PortConfig]) -> Option<Vec<models::EndpointPortConfig>> {
    let ports: Vec<_> = ports
        .iter()
        .map(|p| models::EndpointPortConfig {
            name: None,
            protocol: p.protocol.parse().ok(),
            target_port: Some(p.target.into()),
            published_port: p.published.map(i64::from),
            publish_mode: p.mode.parse().ok(),
        })
        .collect();
    Some(ports).filter(|p| !p.is_empty())
}

/// What a task runs, in Docker's shape.
fn task_spec(t: &TaskTemplate) -> models::TaskSpec {
    let list = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    let networks: Vec<_> = t
        .networks
        .iter()
        .map(|n| models::NetworkAttachmentConfig {
            target: Some(n.target.clone()),
            aliases: list(&n.aliases),
            driver_opts: None,
        })
        .collect();
    let r = &t.restart;
    models::TaskSpec {
        container_spec: Some(models::TaskSpecContainerSpec {
            image: Some(t.image.clone()),
            command: list(&t.command),
            args: list(&t.args),
            env: list(&t.env),
            stop_grace_period: t.stop_grace_ms.map(nanos),
            health_check: t.health.as_ref().map(docker_health),
            hostname: (!t.hostname.is_empty()).then(|| t.hostname.clone()),
            labels: (!t.container_labels.is_empty())
                .then(|| t.container_labels.clone().into_iter().collect()),
            ..Default::default()
        }),
        restart_policy: Some(models::TaskSpecRestartPolicy {
            condition: Some(match r.condition {
                RestartCondition::Any => models::TaskSpecRestartPolicyConditionEnum::ANY,
                RestartCondition::OnFailure => {
                    models::TaskSpecRestartPolicyConditionEnum::ON_FAILURE
                }
                RestartCondition::None => models::TaskSpecRestartPolicyConditionEnum::NONE,
            }),
            delay: Some(nanos(r.delay_ms)),
            max_attempts: Some(i64::try_from(r.max_attempts).unwrap_or(i64::MAX)),
            window: (r.window_ms > 0).then(|| nanos(r.window_ms)),
        }),
        placement: Some(models::TaskSpecPlacement {
            constraints: list(&t.constraints),
            max_replicas: (t.max_replicas > 0)
                .then(|| i64::try_from(t.max_replicas).unwrap_or(i64::MAX)),
            ..Default::default()
        }),
        force_update: Some(t.force_update),
        networks: Some(networks).filter(|n| !n.is_empty()),
        ..Default::default()
    }
}

/// A health check in Docker's shape, what is 0 left out (Go's `omitempty`).
fn docker_health(h: &HealthConfig) -> models::HealthConfig {
    let duration = |ns: u64| (ns > 0).then(|| i64::try_from(ns).unwrap_or(i64::MAX));
    models::HealthConfig {
        test: Some(h.test.clone()).filter(|t| !t.is_empty()),
        interval: duration(h.interval_ns),
        timeout: duration(h.timeout_ns),
        retries: duration(h.retries),
        start_period: duration(h.start_period_ns),
        start_interval: None,
    }
}

fn update_config(u: &UpdateConfig) -> models::ServiceSpecUpdateConfig {
    use models::ServiceSpecUpdateConfigFailureActionEnum as Action;
    use models::ServiceSpecUpdateConfigOrderEnum as Order;
    models::ServiceSpecUpdateConfig {
        parallelism: Some(i64::try_from(u.parallelism).unwrap_or(i64::MAX)),
        delay: (u.delay_ms > 0).then(|| nanos(u.delay_ms)),
        failure_action: Some(match u.failure_action {
            FailureAction::Pause => Action::PAUSE,
            FailureAction::Continue => Action::CONTINUE,
            FailureAction::Rollback => Action::ROLLBACK,
        }),
        monitor: (u.monitor_ms > 0).then(|| nanos(u.monitor_ms)),
        max_failure_ratio: Some(u.max_failure_ratio),
        order: Some(match u.order {
            UpdateOrder::StopFirst => Order::STOP_FIRST,
            UpdateOrder::StartFirst => Order::START_FIRST,
        }),
    }
}

/// The rollback settings; a rollback has no rollback of its own, so a
/// `rollback` failure action (which Docker's schema cannot show here) reads as pause.
fn rollback_config(u: &UpdateConfig) -> models::ServiceSpecRollbackConfig {
    use models::ServiceSpecRollbackConfigFailureActionEnum as Action;
    use models::ServiceSpecRollbackConfigOrderEnum as Order;
    models::ServiceSpecRollbackConfig {
        parallelism: Some(i64::try_from(u.parallelism).unwrap_or(i64::MAX)),
        delay: (u.delay_ms > 0).then(|| nanos(u.delay_ms)),
        failure_action: Some(match u.failure_action {
            FailureAction::Continue => Action::CONTINUE,
            FailureAction::Pause | FailureAction::Rollback => Action::PAUSE,
        }),
        monitor: (u.monitor_ms > 0).then(|| nanos(u.monitor_ms)),
        max_failure_ratio: Some(u.max_failure_ratio),
        order: Some(match u.order {
            UpdateOrder::StopFirst => Order::STOP_FIRST,
            UpdateOrder::StartFirst => Order::START_FIRST,
        }),
    }
}

/// Milliseconds as the nanoseconds Docker's durations are.
fn nanos(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

fn endpoint_mode(mode: &str) -> models::EndpointSpecModeEnum {
    match mode {
        "dnsrr" => models::EndpointSpecModeEnum::DNSRR,
        _ => models::EndpointSpecModeEnum::VIP,
    }
}

fn update_state(s: UpdateState) -> models::ServiceUpdateStatusStateEnum {
    use models::ServiceUpdateStatusStateEnum as S;
    match s {
        UpdateState::Updating => S::UPDATING,
        UpdateState::Paused => S::PAUSED,
        UpdateState::Completed => S::COMPLETED,
        UpdateState::RollbackStarted => S::ROLLBACK_STARTED,
        UpdateState::RollbackPaused => S::ROLLBACK_PAUSED,
        UpdateState::RollbackCompleted => S::ROLLBACK_COMPLETED,
    }
}

fn task_state(s: TaskState) -> models::TaskState {
    use models::TaskState as D;
    match s {
        TaskState::New => D::NEW,
        TaskState::Pending => D::PENDING,
        TaskState::Assigned => D::ASSIGNED,
        TaskState::Accepted => D::ACCEPTED,
        TaskState::Preparing => D::PREPARING,
        TaskState::Ready => D::READY,
        TaskState::Starting => D::STARTING,
        TaskState::Running => D::RUNNING,
        TaskState::Complete => D::COMPLETE,
        TaskState::Shutdown => D::SHUTDOWN,
        TaskState::Failed => D::FAILED,
        TaskState::Rejected => D::REJECTED,
        TaskState::Remove => D::REMOVE,
        TaskState::Orphaned => D::ORPHANED,
    }
}
