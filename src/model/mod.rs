//! The cluster's types (nodes, networks), their validation, and the errors
//! users see. No side effects.

mod counts;
mod endpoint;
mod error;
mod lookup;
mod names;
mod network;
mod node;

pub use counts::RequestCounts;
pub use endpoint::{mac_for, AttachRequest, Endpoint};
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

/// The time now in Unix seconds, as the cluster records times.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
