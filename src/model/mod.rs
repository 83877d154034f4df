//! The cluster's types (nodes, networks, services, tasks), their validation, and the errors
//! users see. No side effects.

mod constraint;
mod counts;
mod endpoint;
mod error;
mod lookup;
mod names;
mod network;
mod node;
mod service;
mod task;

pub use constraint::{all_match, Constraint, NodeFacts};
pub use counts::RequestCounts;
pub use endpoint::{mac_for, AttachRequest, Endpoint, INGRESS_LEG, INGRESS_SBOX};
pub use error::ApiError;
pub use lookup::find;
pub use names::{check_hostname, escape};
pub use network::{
    check_name, check_special_subnet, CheckedSpec, Network, NetworkSpec, GW_BRIDGE, OVERLAY,
    VXLAN_PORT,
};
pub use node::{
    random_id, Availability, ManagerStatus, Node, NodeRole, NodeState, NodeView, SWARM_PORT,
};
pub use service::is_host_image;
pub use service::{
    health_output, FailureAction, HealthConfig, HealthResult, HealthStatus, PortConfig,
    RestartCondition, RestartPolicy, Service, ServiceMode, ServiceNetwork, ServiceSpec, TaskHealth,
    TaskTemplate, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus, VirtualIp,
    DEFAULT_MONITOR_MS, DEFAULT_STOP_GRACE_MS, HOST_IMAGE, TASK_HISTORY_LIMIT,
};
pub use task::{Task, TaskAttachment, TaskState, TaskStatus};

/// The time now in Unix seconds, as the cluster records times.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The time now in Unix milliseconds, as tasks record their changes.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
