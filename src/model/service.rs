//! Services: what `service create` and `update` ask for (the spec), checked
//! before anything is stored, and the service as the manager keeps it, with
//! the spec it had before (for `service rollback`) and how its update goes.

mod health;
mod ports;

pub use health::{health_output, HealthConfig, HealthResult, HealthStatus, TaskHealth};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiError, Constraint};

/// The one image swarmnet runs: the host's own filesystem.
pub const HOST_IMAGE: &str = "host";

/// True for the built-in image, in the forms a client may name it (the
/// docker client pins the digest it resolved: `host:latest@sha256:...`).
pub fn is_host_image(image: &str) -> bool {
    let named = match image.split_once('@') {
        Some((named, digest)) if digest.starts_with("sha256:") => named,
        Some(_) => return false,
        None => image,
    };
    matches!(named, HOST_IMAGE | "host:latest")
}
/// Docker's default restart delay (5 s).
pub const DEFAULT_RESTART_DELAY_MS: u64 = 5_000;
/// Docker's default time a new task is watched for failure during an update (5 s).
pub const DEFAULT_MONITOR_MS: u64 = 5_000;
/// Docker's default stop grace period (10 s).
pub const DEFAULT_STOP_GRACE_MS: u64 = 10_000;
/// Docker's default task history per slot (`TaskHistoryRetentionLimit`).
pub const TASK_HISTORY_LIMIT: usize = 5;

/// Replicated (a number of slots) or global (one task per eligible node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    Replicated { replicas: u64 },
    Global,
}

/// When a task whose process ended is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    #[default]
    Any,
    OnFailure,
    None,
}

/// `--restart-*`: Docker's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub condition: RestartCondition,
    pub delay_ms: u64,
    /// 0: no limit.
    pub max_attempts: u64,
    /// The window the attempts are counted in; 0: since the service began.
    pub window_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            condition: RestartCondition::Any,
            delay_ms: DEFAULT_RESTART_DELAY_MS,
            max_attempts: 0,
            window_ms: 0,
        }
    }
}

/// What an update does when a new task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    #[default]
    Pause,
    Continue,
    Rollback,
}

impl FailureAction {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "pause" => Ok(FailureAction::Pause),
            "continue" => Ok(FailureAction::Continue),
            "rollback" => Ok(FailureAction::Rollback),
            other => Err(ApiError::InvalidArgument(format!(
                "invalid failure action {other:?}: use pause, continue or rollback"
            ))),
        }
    }
}

/// Whether an update stops the old task before starting the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

impl UpdateOrder {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "stop-first" => Ok(UpdateOrder::StopFirst),
            "start-first" => Ok(UpdateOrder::StartFirst),
            other => Err(ApiError::InvalidArgument(format!(
                "invalid update order {other:?}: use stop-first or start-first"
            ))),
        }
    }
}

/// `--update-*` (and `--rollback-*`): how tasks are replaced when the spec changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks replaced at once; 0: all at once.
    pub parallelism: u64,
    pub delay_ms: u64,
    pub failure_action: FailureAction,
    /// How long a new task is watched for failure.
    pub monitor_ms: u64,
    /// The share of failed new tasks tolerated (0 to 1).
    pub max_failure_ratio: f64,
    pub order: UpdateOrder,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay_ms: 0,
            failure_action: FailureAction::Pause,
            monitor_ms: DEFAULT_MONITOR_MS,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

/// A network a service's tasks join, with their aliases on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    /// The network's ID (names are resolved when the spec is stored).
    pub target: String,
    pub aliases: Vec<String>,
}

/// What a task runs: the part of the spec an update rolls out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskTemplate {
    /// Always `host`.
    pub image: String,
    /// `--entrypoint`: Docker's `ContainerSpec.Command`.
    pub command: Vec<String>,
    /// The command after the image: Docker's `ContainerSpec.Args`.
    pub args: Vec<String>,
    /// `K=V` pairs.
    pub env: Vec<String>,
    pub stop_grace_ms: Option<u64>,
    pub networks: Vec<ServiceNetwork>,
    /// `--constraint` expressions as given (checked when stored).
    pub constraints: Vec<String>,
    pub restart: RestartPolicy,
    /// `--force`: bumped to roll the tasks out again with the same spec.
    pub force_update: u64,
    /// `--health-*`, as given (`--no-healthcheck` is a `NONE` test).
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// `--hostname` (Docker's `ContainerSpec.Hostname`), which may hold
    /// Docker's placeholders (`{{.Node.Hostname}}`, `{{.Task.Slot}}`, ...);
    /// empty: the task's container name.
    #[serde(default)]
    pub hostname: String,
    /// `--container-label` (Docker's `ContainerSpec.Labels`; a stack's
    /// services carry its namespace there), kept and shown with the spec.
    #[serde(default)]
    pub container_labels: BTreeMap<String, String>,
    /// `--replicas-max-per-node` (Docker's `Placement.MaxReplicas`): at most
    /// this many of the service's tasks on one node; 0 is no limit.
    #[serde(default)]
    pub max_replicas: u64,
    /// On a task: its service's endpoint when the task was made (Docker's
    /// `Task.Endpoint.Spec`), so that a change of the published ports or of
    /// the endpoint mode rolls the tasks out as a change of the template
    /// does. None in a service's own template: a service's endpoint is its
    /// spec's `endpoint_mode` and `ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointSpec>,
}

impl TaskTemplate {
    /// The process: the entrypoint, then the arguments.
    pub fn argv(&self) -> Vec<String> {
        self.command.iter().chain(&self.args).cloned().collect()
    }

    /// The health check the tasks run, if they have one.
    pub fn health_check(&self) -> Option<&HealthConfig> {
        self.health.as_ref().filter(|h| h.probe().is_some())
    }

    /// The parsed constraints (they were checked when the spec was stored).
    pub fn parsed_constraints(&self) -> Vec<Constraint> {
        self.constraints
            .iter()
            .filter_map(|c| Constraint::parse(c).ok())
            .collect()
    }
}

/// A published port (`-p 8080:3000`, or `--publish
/// published=5353,target=53,protocol=udp,mode=host`); checked in `service/ports.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConfig {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port the task listens on.
    pub target: u16,
    /// The port on the nodes. Always set once stored for `ingress` (the
    /// manager assigns one from [`PortConfig::DYNAMIC`]); none for `host`
    /// leaves the choice to the node.
    pub published: Option<u16>,
    /// `ingress` (the routing mesh, on every node) or `host` (only where a task runs).
    pub mode: String,
}

/// How a service is reached, Docker's `EndpointSpec`: the endpoint mode and
/// the published ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// `vip` or `dnsrr`.
    pub mode: String,
    pub ports: Vec<PortConfig>,
}

/// What the user asked for: `service create`'s flags, and what `update` changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub mode: ServiceMode,
    pub task: TaskTemplate,
    pub update: UpdateConfig,
    pub rollback: UpdateConfig,
    /// `vip` (the default) or `dnsrr`.
    pub endpoint_mode: String,
    pub ports: Vec<PortConfig>,
}

/// Where a rolling update is, as Docker's `UpdateStatus.State` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    /// True while tasks are being replaced.
    pub fn in_progress(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }
}

/// Docker's `UpdateStatus`: the last update's state and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub state: UpdateState,
    pub started_at_ms: u64,
    pub completed_at_ms: Option<u64>,
    pub message: String,
}

/// A service as the manager stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub spec: ServiceSpec,
    /// The spec before the last update, for `service rollback`.
    pub previous_spec: Option<ServiceSpec>,
    /// The store revision of the last change, Docker's `Version.Index`.
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub update_status: Option<UpdateStatus>,
    /// When the last batch of an update started, for `--update-delay`.
    #[serde(default)]
    pub last_batch_ms: u64,
    /// Its virtual IPs in vip mode, one per network and one on ingress while
    /// it publishes a port through the routing mesh (Docker's `Endpoint.VirtualIPs`).
    #[serde(default)]
    pub virtual_ips: Vec<VirtualIp>,
}

/// A service's virtual IP on one network: connections to it are spread over
/// the service's running tasks there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualIp {
    pub network_id: String,
    pub ip: std::net::Ipv4Addr,
    /// The network's prefix length, for Docker's `Addr` (`10.0.1.2/24`).
    #[serde(default)]
    pub prefix_len: u8,
}

impl ServiceSpec {
    /// Checks what a user may get wrong, in Docker's words where Docker has them.
    /// Network names are resolved by the manager, which knows them.
    pub fn check(&self) -> Result<(), ApiError> {
        super::check_name("service", &self.name)?;
        if !is_host_image(&self.task.image) {
            return Err(ApiError::InvalidArgument(format!(
                "image {:?} is not available: swarmnet runs commands from the host's filesystem, so the only image is {HOST_IMAGE:?} (for example: service create --name web host swarmnet whoami)",
                self.task.image
            )));
        }
        if self.task.argv().is_empty() {
            return Err(ApiError::InvalidArgument(
                "no command given: the image \"host\" runs the command after it, e.g. \"host swarmnet whoami --port 3000\"".into(),
            ));
        }
        for c in &self.task.constraints {
            Constraint::parse(c)?;
        }
        for alias in self.task.networks.iter().flat_map(|n| &n.aliases) {
            super::check_name("network alias", alias)?;
        }
        for kv in &self.task.env {
            if kv.is_empty() || kv.starts_with('=') {
                return Err(ApiError::InvalidArgument(format!(
                    "invalid environment variable {kv:?}: use KEY=VALUE"
                )));
            }
        }
        if !matches!(self.endpoint_mode.as_str(), "" | "vip" | "dnsrr") {
            return Err(ApiError::InvalidArgument(format!(
                "invalid endpoint mode {:?}: use vip or dnsrr",
                self.endpoint_mode
            )));
        }
        ports::check_ports(self)?;
        if let Some(health) = &self.task.health {
            health.check()?;
        }
        for u in [&self.update, &self.rollback] {
            if !(0.0..=1.0).contains(&u.max_failure_ratio) {
                return Err(ApiError::InvalidArgument(
                    "the maximum failure ratio must be between 0 and 1".into(),
                ));
            }
        }
        Ok(())
    }

    /// The endpoint its tasks are made with.
    pub fn endpoint(&self) -> EndpointSpec {
        EndpointSpec {
            mode: self.endpoint_mode.clone(),
            ports: self.ports.clone(),
        }
    }

    /// What a task made now runs: the template, with the endpoint.
    pub fn task_template(&self) -> TaskTemplate {
        TaskTemplate {
            endpoint: Some(self.endpoint()),
            ..self.task.clone()
        }
    }

    /// True when a task made from `task` is up to date with this spec (not
    /// dirty, in swarmkit's `IsTaskDirty` words): the same template and, if
    /// the task kept its endpoint (tasks made before they kept one did not),
    /// the same endpoint.
    pub fn is_current(&self, task: &TaskTemplate) -> bool {
        let same_endpoint = task
            .endpoint
            .as_ref()
            .is_none_or(|e| e.mode == self.endpoint_mode && e.ports == self.ports);
        let template = TaskTemplate {
            endpoint: None,
            ..task.clone()
        };
        same_endpoint && template == self.task
    }

    /// The replicas of a replicated service; none for a global one.
    pub fn replicas(&self) -> Option<u64> {
        match self.mode {
            ServiceMode::Replicated { replicas } => Some(replicas),
            ServiceMode::Global => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_image_is_known_by_its_names_and_a_pinned_digest() {
        for name in [
            "host",
            "host:latest",
            "host:latest@sha256:ab12",
            "host@sha256:ab12",
        ] {
            assert!(is_host_image(name), "{name}");
        }
        for name in ["nginx", "host:1.0", "host@md5:ab", "hosts", "library/host"] {
            assert!(!is_host_image(name), "{name}");
        }
    }
}
