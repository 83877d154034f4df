//! The agent: follows the manager's desired state and makes this host match it.

pub mod firewall;
pub mod mesh;
pub mod netagent;
pub mod netns;
pub mod overlay;
pub mod runtime;
pub mod wireguard;
