//! IP address management, as pure functions: subnets cut from the default
//! pool, user subnets checked against the others, and VNIs.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use std::net::IpAddr;

use crate::model::{check_special_subnet, ApiError, Network, Node};

/// Docker's first overlay VNI; ingress takes it.
pub const FIRST_VNI: u32 = 4096;
/// The largest VXLAN network identifier.
const MAX_VNI: u32 = (1 << 24) - 1;

/// The default address pool and the size of the subnets cut from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pool {
    pub base: Ipv4Network,
    pub mask_len: u8,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            base: "10.0.0.0/8".parse().expect("constant pool"),
            mask_len: 24,
        }
    }
}

impl Pool {
    /// Checks `swarm init --default-addr-pool CIDR --default-addr-pool-mask-length N`.
    pub fn new(base: Ipv4Network, mask_len: u8) -> Result<Pool, ApiError> {
        if mask_len < base.prefix() || mask_len > 30 {
            return Err(ApiError::InvalidArgument(format!(
                "invalid --default-addr-pool-mask-length {mask_len}: it must be between the pool's prefix /{} and /30",
                base.prefix()
            )));
        }
        check_special_subnet("--default-addr-pool", base)?;
        Ok(Pool { base, mask_len })
    }

    /// The first subnet of the pool that overlaps none of `taken`.
    pub fn next_subnet(&self, taken: &[Ipv4Network]) -> Option<Ipv4Network> {
        let step = 1u64 << (32 - u32::from(self.mask_len));
        let count = 1u64 << (u32::from(self.mask_len) - u32::from(self.base.prefix()));
        let start = u64::from(u32::from(self.base.network()));
        (0..count)
            .map(|i| {
                Ipv4Network::new(Ipv4Addr::from((start + i * step) as u32), self.mask_len)
                    .expect("valid prefix")
            })
            .find(|candidate| !taken.iter().any(|t| overlaps(*t, *candidate)))
    }
}

pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// Refuses a user subnet that overlaps another network's, unless overlap was asked for.
pub fn check_overlap(
    subnet: Ipv4Network,
    allow_overlap: bool,
    others: &[Network],
) -> Result<(), ApiError> {
    if allow_overlap {
        return Ok(());
    }
    match others.iter().find(|n| overlaps(n.subnet, subnet)) {
        None => Ok(()),
        Some(other) => Err(ApiError::InvalidArgument(format!(
            "subnet {subnet} overlaps network {} ({}); choose another subnet, or pass --opt allow-overlap to make an isolated network with the same addresses",
            other.name, other.subnet
        ))),
    }
}

/// Refuses a subnet that holds a node's advertised address or one of the
/// manager's own interface addresses (`local`): the underlay would be routed
/// into the overlay.
pub fn check_underlay(
    subnet: Ipv4Network,
    nodes: &[Node],
    local: &[Ipv4Addr],
) -> Result<(), ApiError> {
    let holds = |ip: &IpAddr| matches!(ip, IpAddr::V4(v4) if subnet.contains(*v4));
    if let Some(node) = nodes.iter().find(|n| !n.left && holds(&n.addr)) {
        return Err(ApiError::InvalidArgument(format!(
            "subnet {subnet} holds the address {} of node {}, which the nodes reach each other on; choose a subnet outside the underlay",
            node.addr, node.hostname
        )));
    }
    if let Some(ip) = local.iter().find(|ip| subnet.contains(**ip)) {
        return Err(ApiError::InvalidArgument(format!(
            "subnet {subnet} holds the address {ip} of an interface of the manager's host; choose a subnet outside the host's own networks"
        )));
    }
    Ok(())
}

/// What the pool must skip besides other networks: the mesh's subnet and
/// every node's advertised address (as a /32).
pub fn reserved_for_pool(mesh: Ipv4Network, nodes: &[Node]) -> Vec<Ipv4Network> {
    let addrs = nodes.iter().filter_map(|n| match n.addr {
        IpAddr::V4(v4) => Some(Ipv4Network::from(v4)),
        IpAddr::V6(_) => None,
    });
    std::iter::once(mesh).chain(addrs).collect()
}

/// The subnet's first host address, Docker's default gateway.
pub fn default_gateway(subnet: Ipv4Network) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The lowest host address of `network`'s subnet that is not its gateway and not in `used`.
pub fn next_address(network: &Network, used: &[Ipv4Addr]) -> Result<Ipv4Addr, ApiError> {
    lowest_free(network.subnet, network.gateway, used).ok_or_else(|| {
        ApiError::FailedPrecondition(format!(
            "no available IPv4 addresses on this network's address pools: {} ({}); its subnet {} is full",
            network.name, network.id, network.subnet
        ))
    })
}

/// The lowest host address of `subnet` that is not `gateway` and not in `used`.
pub fn lowest_free(subnet: Ipv4Network, gateway: Ipv4Addr, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.network()) + 1;
    let last = u32::from(subnet.broadcast());
    (first..last)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
}

/// Checks an address asked for with `--ip`, with Docker's words.
pub fn check_address(network: &Network, ip: Ipv4Addr, used: &[Ipv4Addr]) -> Result<(), ApiError> {
    if network.from_pool {
        return Err(ApiError::InvalidArgument(format!(
            "user specified IP address is supported only when connecting to networks with user configured subnets; network {} took its subnet from the pool",
            network.name
        )));
    }
    let subnet = network.subnet;
    if !subnet.contains(ip) || ip == subnet.network() || ip == subnet.broadcast() {
        return Err(ApiError::InvalidArgument(format!(
            "Invalid address {ip}: It does not belong to any of this network's subnets ({} has {subnet})",
            network.name
        )));
    }
    if ip == network.gateway || used.contains(&ip) {
        return Err(ApiError::FailedPrecondition(format!(
            "Address already in use: {ip} on network {}",
            network.name
        )));
    }
    Ok(())
}

/// The lowest VNI from Docker's first that no network uses.
pub fn next_vni(networks: &[Network]) -> Option<u32> {
    (FIRST_VNI..=MAX_VNI).find(|v| !networks.iter().any(|n| n.vni == *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, subnet: &str, vni: u32) -> Network {
        let subnet: Ipv4Network = subnet.parse().unwrap();
        Network {
            id: name.into(),
            name: name.into(),
            attachable: true,
            ingress: false,
            subnet,
            gateway: default_gateway(subnet),
            vni,
            mtu: None,
            allow_overlap: false,
            from_pool: false,
            options: Default::default(),
            created_at: 0,
            labels: Default::default(),
            removing: false,
        }
    }

    #[test]
    fn the_pool_is_cut_in_order_around_taken_subnets() {
        let pool = Pool::default();
        assert_eq!(pool.next_subnet(&[]), Some("10.0.0.0/24".parse().unwrap()));
        let taken = [
            "10.0.0.0/24".parse().unwrap(),
            "10.0.2.0/23".parse().unwrap(),
        ];
        assert_eq!(
            pool.next_subnet(&taken),
            Some("10.0.1.0/24".parse().unwrap())
        );
        let taken = ["10.0.0.0/23".parse().unwrap()];
        assert_eq!(
            pool.next_subnet(&taken),
            Some("10.0.2.0/24".parse().unwrap())
        );
        let small = Pool::new("10.9.0.0/23".parse().unwrap(), 24).unwrap();
        let full = [
            "10.9.0.0/24".parse().unwrap(),
            "10.9.1.0/24".parse().unwrap(),
        ];
        assert_eq!(small.next_subnet(&full), None);
        assert!(Pool::new("10.9.0.0/16".parse().unwrap(), 8).is_err());
    }

    #[test]
    fn special_purpose_pools_are_refused() {
        for (base, needle) in [
            ("127.0.0.0/8", "loopback range"),
            ("169.254.0.0/16", "link-local range"),
            ("224.0.0.0/4", "multicast range"),
            ("0.0.0.0/8", "\"this network\" range"),
        ] {
            let err = Pool::new(base.parse().unwrap(), 24)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("--default-addr-pool {base} overlaps the {needle}")),
                "{err}"
            );
        }
    }

    fn node(hostname: &str, addr: &str) -> Node {
        Node {
            id: hostname.into(),
            hostname: hostname.into(),
            role: crate::model::NodeRole::Worker,
            availability: crate::model::Availability::Active,
            addr: addr.parse().unwrap(),
            wg_public_key: String::new(),
            wg_port: 51820,
            tunnel_addr: "100.64.0.2".parse().unwrap(),
            leader: false,
            left: false,
            down: false,
            created_at: 0,
            labels: Default::default(),
            engine_labels: Default::default(),
            version: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_subnet_holding_the_underlay_is_refused() {
        let nodes = [node("vm1", "192.168.99.100"), node("vm2", "192.168.99.101")];
        let err = check_underlay("192.168.99.0/24".parse().unwrap(), &nodes, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 192.168.99.0/24 holds the address 192.168.99.100 of node vm1, which the nodes reach each other on; choose a subnet outside the underlay"
        );
        let err = check_underlay("192.168.99.101/32".parse().unwrap(), &nodes, &[]).unwrap_err();
        assert!(err.to_string().contains("of node vm2"), "{err}");
        let local = ["172.18.0.1".parse().unwrap()];
        let err = check_underlay("172.18.0.0/16".parse().unwrap(), &nodes, &local).unwrap_err();
        assert!(
            err.to_string()
                .contains("holds the address 172.18.0.1 of an interface"),
            "{err}"
        );
        assert!(check_underlay("10.20.0.0/24".parse().unwrap(), &nodes, &local).is_ok());
    }

    #[test]
    fn the_pool_skips_the_mesh_and_node_addresses() {
        let nodes = [node("vm1", "10.0.0.7")];
        let taken = reserved_for_pool("100.64.0.0/16".parse().unwrap(), &nodes);
        assert_eq!(
            Pool::default().next_subnet(&taken),
            Some("10.0.1.0/24".parse().unwrap())
        );
        let wide = Pool::new("100.0.0.0/8".parse().unwrap(), 10).unwrap();
        let taken = reserved_for_pool("100.64.0.0/16".parse().unwrap(), &[]);
        assert_eq!(
            wide.next_subnet(&taken),
            Some("100.0.0.0/10".parse().unwrap())
        );
        let narrow = Pool::new("100.64.0.0/15".parse().unwrap(), 16).unwrap();
        assert_eq!(
            narrow.next_subnet(&taken),
            Some("100.65.0.0/16".parse().unwrap())
        );
    }

    #[test]
    fn overlap_is_refused_unless_asked_for() {
        let others = [net("blue", "10.20.0.0/16", 4097)];
        let err = check_overlap("10.20.5.0/24".parse().unwrap(), false, &others).unwrap_err();
        assert!(
            err.to_string()
                .contains("overlaps network blue (10.20.0.0/16)"),
            "{err}"
        );
        assert!(check_overlap("10.20.5.0/24".parse().unwrap(), true, &others).is_ok());
        assert!(check_overlap("10.21.0.0/24".parse().unwrap(), false, &others).is_ok());
    }

    #[test]
    fn addresses_are_the_lowest_free_hosts_and_run_out() {
        let mut n = net("blue", "10.20.0.0/29", 4097);
        let used = ["10.20.0.2".parse().unwrap()];
        assert_eq!(next_address(&n, &used).unwrap().to_string(), "10.20.0.3");
        n.gateway = "10.20.0.6".parse().unwrap();
        let used: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(10, 20, 0, i)).collect();
        let err = next_address(&n, &used).unwrap_err().to_string();
        assert!(err.contains("no available IPv4 addresses"), "{err}");
        assert!(err.contains("blue"), "{err}");
    }

    #[test]
    fn requested_addresses_are_checked() {
        let n = net("blue", "10.20.0.0/24", 4097);
        let used = ["10.20.0.50".parse().unwrap()];
        let check = |ip: &str| check_address(&n, ip.parse().unwrap(), &used);
        assert!(check("10.20.0.51").is_ok());
        for (ip, needle) in [
            ("10.30.0.5", "does not belong"),
            ("10.20.0.255", "does not belong"),
            ("10.20.0.50", "Address already in use"),
            ("10.20.0.1", "Address already in use"),
        ] {
            let err = check(ip).unwrap_err().to_string();
            assert!(err.contains(needle), "{ip}: {err}");
        }
        let mut pooled = n.clone();
        pooled.from_pool = true;
        let err = check_address(&pooled, "10.20.0.9".parse().unwrap(), &[]).unwrap_err();
        assert!(err.to_string().contains("user configured subnets"), "{err}");
    }

    #[test]
    fn vnis_fill_gaps_from_4096() {
        assert_eq!(next_vni(&[]), Some(4096));
        let nets = [net("a", "10.0.0.0/24", 4096), net("b", "10.0.1.0/24", 4098)];
        assert_eq!(next_vni(&nets), Some(4097));
    }
}
