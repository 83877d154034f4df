//! The agent: follows the manager's desired state and makes this host match it.

pub mod mesh;
pub mod runtime;
pub mod wireguard;
