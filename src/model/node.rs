//! Nodes of the swarm: identity, role, availability, and the view `node ls` shows.

use std::net::{IpAddr, Ipv4Addr};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The swarm port, as Docker's.
pub const SWARM_PORT: u16 = 2377;

/// A node's role, taken from its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Manager,
    Worker,
}

impl NodeRole {
    /// The organizational unit written in the node's certificate, as Docker names it.
    pub fn cert_ou(self) -> &'static str {
        match self {
            NodeRole::Manager => "swarm-manager",
            NodeRole::Worker => "swarm-worker",
        }
    }

    pub fn from_cert_ou(ou: &str) -> Option<Self> {
        match ou {
            "swarm-manager" => Some(NodeRole::Manager),
            "swarm-worker" => Some(NodeRole::Worker),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "manager" => Ok(NodeRole::Manager),
            "worker" => Ok(NodeRole::Worker),
            other => Err(format!(
                "unknown role {other:?}: use \"worker\" or \"manager\""
            )),
        }
    }
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeRole::Manager => "manager",
            NodeRole::Worker => "worker",
        })
    }
}

/// Whether the scheduler may place work on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Availability::Active),
            "pause" => Ok(Availability::Pause),
            "drain" => Ok(Availability::Drain),
            other => Err(format!(
                "invalid availability {other:?}: use active, pause or drain"
            )),
        }
    }
}

impl std::fmt::Display for Availability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Availability::Active => "Active",
            Availability::Pause => "Pause",
            Availability::Drain => "Drain",
        })
    }
}

/// Ready while the node heartbeats, Down when it stops or has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Ready,
    Down,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Ready => "Ready",
            NodeState::Down => "Down",
        })
    }
}

/// The MANAGER STATUS column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerStatus {
    Leader,
    Reachable,
    Unreachable,
}

impl std::fmt::Display for ManagerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ManagerStatus::Leader => "Leader",
            ManagerStatus::Reachable => "Reachable",
            ManagerStatus::Unreachable => "Unreachable",
        })
    }
}

/// A node as the manager stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    pub role: NodeRole,
    pub availability: Availability,
    /// The address other nodes reach this one at (underlay).
    pub addr: IpAddr,
    /// WireGuard public key, hex.
    pub wg_public_key: String,
    pub wg_port: u16,
    /// Address on the node mesh.
    pub tunnel_addr: Ipv4Addr,
    /// True when this node is the manager that holds the store.
    pub leader: bool,
    /// Set when the node ran `swarm leave`; it stays listed as Down until `node rm`.
    pub left: bool,
    /// The scheduler's last verdict that the node is Down, kept in the store
    /// so every watch hears of it (DNS and the balancers leave out its
    /// tasks): going Down is the clock's doing, not a change of the store.
    #[serde(default)]
    pub down: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// `node update --label-add`; constraints will match on them.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The daemon's own `--label k=v` (Docker's engine labels), as it last said.
    #[serde(default)]
    pub engine_labels: std::collections::BTreeMap<String, String>,
    /// The store revision of the node's last change, Docker's `Version.Index`:
    /// an update must name it, so two updates never overwrite each other.
    #[serde(default)]
    pub version: u64,
    /// Unix seconds of the last change.
    #[serde(default)]
    pub updated_at: u64,
}

/// A node with its live status, as `node ls` and `node inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: Node,
    pub state: NodeState,
    pub manager_status: Option<ManagerStatus>,
    /// Unix seconds of the last heartbeat the manager saw, if any since it started.
    pub last_heartbeat: Option<u64>,
}

/// A random identifier in Docker's form: 25 characters of base 36.
pub fn random_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..25)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_25_base36_chars() {
        let id = random_id();
        assert_eq!(id.len(), 25);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(id, random_id());
    }

    #[test]
    fn role_round_trips_through_the_certificate_ou() {
        for role in [NodeRole::Manager, NodeRole::Worker] {
            assert_eq!(NodeRole::from_cert_ou(role.cert_ou()), Some(role));
        }
        assert_eq!(NodeRole::from_cert_ou("admin"), None);
        assert!(NodeRole::parse("boss").is_err());
    }
}
