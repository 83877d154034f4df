//! Overlay networks: what `network create` asks for, checked before anything
//! is stored, and the network as the manager keeps it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::ApiError;

/// The VXLAN UDP port (IANA's, as Docker's overlay driver uses): the overlay
/// sends on it, the host's rules and the mesh's offloads know it.
pub const VXLAN_PORT: u16 = 4789;

/// The host bridge that gives containers a way out (Docker's
/// `docker_gwbridge`; an interface name has at most 15 bytes).
pub const GW_BRIDGE: &str = "swarmnet_gwbr";

/// The only driver swarmnet networks have.
pub const OVERLAY: &str = "overlay";

/// What the user asked `network create` for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    pub driver: String,
    pub attachable: bool,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// `--opt key=value` pairs.
    pub options: BTreeMap<String, String>,
    /// `--label key=value` pairs (a stack's networks carry its namespace).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A network as the manager stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub attachable: bool,
    /// The routing-mesh network made at `swarm init`.
    pub ingress: bool,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    pub vni: u32,
    /// `--opt mtu=N`; otherwise the agent computes it from the underlay.
    pub mtu: Option<u32>,
    pub allow_overlap: bool,
    /// Subnet picked by us from the pool, rather than given by the user.
    pub from_pool: bool,
    pub options: BTreeMap<String, String>,
    pub created_at: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Removed by the user while tasks that no longer run were still
    /// stopping on it: gone for users, kept for its nodes until those tasks'
    /// endpoints are gone (swarmkit lets such a network go at once).
    #[serde(default)]
    pub removing: bool,
}

/// A checked spec: the parsed subnet, gateway and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSpec {
    pub name: String,
    pub attachable: bool,
    pub subnet: Option<Ipv4Network>,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: Option<u32>,
    pub allow_overlap: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// Address ranges no overlay may use (from RFC 6890's special-purpose
/// registry): the range, its name, and why. The limited broadcast comes before
/// the reserved block that holds it, so a subnet touching both names it.
const SPECIAL_RANGES: [(&str, &str, &str); 6] = [
    (
        "0.0.0.0/8",
        "\"this network\" range",
        "which hosts use only as a source before they have an address",
    ),
    (
        "127.0.0.0/8",
        "loopback range",
        "which every host answers itself and never sends on a network",
    ),
    (
        "169.254.0.0/16",
        "link-local range",
        "which routers never forward",
    ),
    (
        "224.0.0.0/4",
        "multicast range",
        "whose addresses name groups, not interfaces",
    ),
    (
        "255.255.255.255/32",
        "limited broadcast address",
        "which reaches every host on a link and belongs to no interface",
    ),
    ("240.0.0.0/4", "reserved range", "which hosts drop"),
];

/// Refuses a subnet (of a network, or a pool: `what`) that overlaps a
/// special-purpose range, in one sentence naming the range and why.
pub fn check_special_subnet(what: &str, subnet: Ipv4Network) -> Result<(), ApiError> {
    for (range, name, why) in SPECIAL_RANGES {
        let range: Ipv4Network = range.parse().expect("constant range");
        if range.contains(subnet.network()) || subnet.contains(range.network()) {
            return Err(ApiError::InvalidArgument(format!(
                "{what} {subnet} overlaps the {name} {range}, {why}; choose a private subnet such as 10.20.0.0/24"
            )));
        }
    }
    Ok(())
}

/// Docker's rule against names that look like IDs: 64 hex digits.
fn check_not_an_id(kind: &str, name: &str) -> Result<(), ApiError> {
    if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::InvalidArgument(format!(
            "invalid {kind} name {name:?}: 64 hex digits look like an ID; choose a name that is not an ID"
        )));
    }
    Ok(())
}

/// Docker's rule for object names.
pub fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(ApiError::InvalidArgument(format!(
            "invalid {kind} name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 63)"
        )))
    }
}

fn truthy(value: &str) -> Option<bool> {
    match value {
        "" | "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

impl NetworkSpec {
    /// Checks everything that can be checked without the cluster's state.
    pub fn check(&self) -> Result<CheckedSpec, ApiError> {
        check_not_an_id("network", &self.name)?;
        check_name("network", &self.name)?;
        let bad = |msg: String| Err(ApiError::InvalidArgument(msg));
        if !self.driver.is_empty() && self.driver != OVERLAY {
            return bad(format!(
                "network driver {:?} is not supported: swarmnet networks span hosts; use -d overlay",
                self.driver
            ));
        }
        let subnet = match &self.subnet {
            None => None,
            Some(s) => {
                let subnet = parse_subnet(s)?;
                check_special_subnet("subnet", subnet)?;
                Some(subnet)
            }
        };
        let gateway = match &self.gateway {
            None => None,
            Some(g) => {
                let Some(subnet) = subnet else {
                    return bad(format!("gateway {g} needs a --subnet to belong to"));
                };
                let gw: Ipv4Addr = g.parse().map_err(|_| {
                    ApiError::InvalidArgument(format!(
                        "invalid gateway {g:?}: give an IPv4 address"
                    ))
                })?;
                if !subnet.contains(gw) || gw == subnet.network() || gw == subnet.broadcast() {
                    return bad(format!(
                        "gateway {gw} is not a host address of subnet {subnet}"
                    ));
                }
                Some(gw)
            }
        };
        let mut mtu = None;
        let mut allow_overlap = false;
        for (key, value) in &self.options {
            match key.as_str() {
                "mtu" | "com.docker.network.driver.mtu" => {
                    let n: u32 = value.parse().ok().filter(|n| (576..=9000).contains(n)).ok_or_else(|| {
                        ApiError::InvalidArgument(format!("invalid --opt mtu={value}: give a number from 576 to 9000"))
                    })?;
                    mtu = Some(n);
                }
                "allow-overlap" => {
                    allow_overlap = truthy(value).ok_or_else(|| {
                        ApiError::InvalidArgument(format!("invalid --opt allow-overlap={value}: use true or false"))
                    })?;
                }
                "encrypted" => {}
                other => return bad(format!("unknown network option {other:?}: swarmnet knows mtu, allow-overlap and encrypted")),
            }
        }
        Ok(CheckedSpec {
            name: self.name.clone(),
            attachable: self.attachable,
            subnet,
            gateway,
            mtu,
            allow_overlap,
            options: self.options.clone(),
            labels: self.labels.clone(),
        })
    }
}

/// An IPv4 CIDR with no host bits set, between /8 and /30.
pub fn parse_subnet(s: &str) -> Result<Ipv4Network, ApiError> {
    let net: Ipv4Network = s.parse().map_err(|_| {
        ApiError::InvalidArgument(format!(
            "invalid subnet {s:?}: give an IPv4 CIDR such as 10.20.0.0/24"
        ))
    })?;
    if !(8..=30).contains(&net.prefix()) {
        return Err(ApiError::InvalidArgument(format!(
            "subnet {s} is too {}: use a prefix from /8 to /30",
            if net.prefix() < 8 { "large" } else { "small" }
        )));
    }
    if net.network() != net.ip() {
        return Err(ApiError::InvalidArgument(format!(
            "subnet {s} has host bits set: use {}/{}",
            net.network(),
            net.prefix()
        )));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(subnet: Option<&str>, gateway: Option<&str>) -> NetworkSpec {
        NetworkSpec {
            name: "blue".into(),
            driver: OVERLAY.into(),
            subnet: subnet.map(Into::into),
            gateway: gateway.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_spec_is_parsed() {
        let mut s = spec(Some("10.20.0.0/24"), Some("10.20.0.254"));
        s.options.insert("mtu".into(), "1300".into());
        s.options.insert("allow-overlap".into(), "".into());
        let c = s.check().unwrap();
        assert_eq!(c.subnet, Some("10.20.0.0/24".parse().unwrap()));
        assert_eq!(c.gateway, Some("10.20.0.254".parse().unwrap()));
        assert_eq!(c.mtu, Some(1300));
        assert!(c.allow_overlap);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            (spec(Some("10.20.0.0/33"), None), "invalid subnet"),
            (
                spec(Some("10.20.0.5/24"), None),
                "has host bits set: use 10.20.0.0/24",
            ),
            (spec(Some("10.0.0.0/4"), None), "too large"),
            (
                spec(Some("10.20.0.0/24"), Some("10.30.0.1")),
                "is not a host address of subnet",
            ),
            (
                spec(Some("10.20.0.0/24"), Some("10.20.0.0")),
                "is not a host address",
            ),
            (spec(None, Some("10.20.0.1")), "needs a --subnet"),
        ];
        for (s, needle) in cases {
            let err = s.check().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let mut s = spec(None, None);
        s.driver = "bridge".into();
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("use -d overlay"));
        let mut s = spec(None, None);
        s.options.insert("mtu".into(), "12".into());
        assert!(s.check().is_err());
        let mut s = spec(None, None);
        s.name = "-bad".into();
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("invalid network name"));
    }

    #[test]
    fn special_purpose_subnets_are_refused_with_their_reason() {
        let cases = [
            ("0.0.0.0/8", "overlaps the \"this network\" range 0.0.0.0/8"),
            ("127.0.0.0/8", "overlaps the loopback range 127.0.0.0/8"),
            ("127.0.0.0/24", "overlaps the loopback range 127.0.0.0/8"),
            (
                "169.254.0.0/16",
                "overlaps the link-local range 169.254.0.0/16",
            ),
            ("169.254.3.0/24", "overlaps the link-local range"),
            ("224.0.0.0/8", "overlaps the multicast range 224.0.0.0/4"),
            ("239.1.0.0/16", "overlaps the multicast range 224.0.0.0/4"),
            ("240.0.0.0/8", "overlaps the reserved range 240.0.0.0/4"),
            (
                "255.255.255.0/30",
                "overlaps the reserved range 240.0.0.0/4",
            ),
            (
                "255.255.255.252/30",
                "overlaps the limited broadcast address 255.255.255.255/32",
            ),
        ];
        for (subnet, needle) in cases {
            let err = spec(Some(subnet), None).check().unwrap_err().to_string();
            assert!(err.starts_with(&format!("subnet {subnet} ")), "{err}");
            assert!(err.contains(needle), "{subnet}: {err}");
            assert!(err.contains("choose a private subnet"), "{err}");
            assert_eq!(err.matches(". ").count(), 0, "one sentence: {err}");
        }
        for ok in [
            "10.20.0.0/24",
            "172.16.0.0/12",
            "192.168.50.0/24",
            "223.255.0.0/16",
        ] {
            assert!(spec(Some(ok), None).check().is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_that_look_like_ids_are_refused() {
        let mut s = spec(None, None);
        s.name = "ab".repeat(32);
        let err = s.check().unwrap_err().to_string();
        assert!(err.contains("64 hex digits look like an ID"), "{err}");
        s.name = "0123456789abcdef".repeat(4).to_uppercase();
        assert!(s.check().is_err());
        s.name = "a".repeat(63);
        assert!(s.check().is_ok());
    }
}
