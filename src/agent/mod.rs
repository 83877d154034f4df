//! The agent, this node's reconciler: it follows the manager's desired state
//! (membership: heartbeats and the watch stream) and makes this host match it
//! through the drivers (the mesh's peers, the overlay's sandboxes).

pub mod membership;
pub mod netagent;
pub mod tasks;
