//! Endpoints: a container's (or a namespace's) place on an overlay network,
//! with the address and MAC the manager gave it.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The owner of a node's leg on the ingress network, as Docker names it: the
/// node's own address there, through which the routing mesh reaches tasks.
pub const INGRESS_SBOX: &str = "ingress-sbox";

/// The host's interface on the ingress network: the node's leg.
pub const INGRESS_LEG: &str = "swarmnet_in";

/// What a node asks when one of its containers joins a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// Network name, ID or unique ID prefix.
    pub network: String,
    /// The container's ID (or, for `container attach`, the namespace's path).
    pub container_id: String,
    /// The container's name, shown by `network inspect`.
    pub container_name: String,
    /// `--network-alias` names.
    pub aliases: Vec<String>,
    /// `--ip`: a fixed address instead of the lowest free one.
    pub ip: Option<Ipv4Addr>,
}

/// An endpoint as the manager stores it and streams it to agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    /// The node the container runs on.
    pub node_id: String,
    pub container_id: String,
    pub container_name: String,
    pub aliases: Vec<String>,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub created_at: u64,
    /// The task it was given to: the manager owns its life, not the node.
    #[serde(default)]
    pub task_id: Option<String>,
    /// The task's service, for service discovery.
    #[serde(default)]
    pub service_id: Option<String>,
}

impl Endpoint {
    /// The MAC as bytes (it is always made by `mac_for`).
    pub fn mac_bytes(&self) -> [u8; 6] {
        parse_mac(&self.mac).unwrap_or_default()
    }
}

/// Docker's MAC for an IPv4 endpoint: 02:42 then the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_dockers_and_round_trip() {
        let mac = mac_for("10.0.1.5".parse().unwrap());
        assert_eq!(mac, "02:42:0a:00:01:05");
        assert_eq!(parse_mac(&mac), Some([2, 0x42, 10, 0, 1, 5]));
        assert_eq!(parse_mac("02:42:0a:00:01"), None);
        assert_eq!(parse_mac("02:42:0a:00:01:05:07"), None);
        assert_eq!(parse_mac("zz:42:0a:00:01:05"), None);
    }
}
