//! Pure parsing and choices for `swarm init` and `swarm join`: advertise and
//! listen addresses, the default address pool, the gateway bridge's subnet.
//! What they need of the host (its addresses) is passed in.

use std::net::{IpAddr, SocketAddr};

use ipnetwork::Ipv4Network;

use crate::manager::ipam::{overlaps, Pool};
use crate::model::{ApiError, GW_BRIDGE, SWARM_PORT};

/// The node mesh's subnet (RFC 6598 shared space, kept apart from the overlay pool 10.0.0.0/8).
pub const MESH_SUBNET: &str = "100.64.0.0/16";

/// The gateway bridge's subnet: the one the bridge already has (after a
/// restart), else the first of 172.18.0.0/16 … 172.31.0.0/16 that no
/// interface of this host is on, as Docker picks docker_gwbridge's (which
/// usually takes 172.18.0.0/16: on a host with Docker, ours takes the next).
pub fn pick_gateway_subnet(addresses: &[(String, Ipv4Network)]) -> Ipv4Network {
    if let Some((_, net)) = addresses.iter().find(|(name, _)| name == GW_BRIDGE) {
        return Ipv4Network::new(net.network(), net.prefix()).expect("a valid prefix");
    }
    let candidates = (18..=31).map(|x| Ipv4Network::new([172, x, 0, 0].into(), 16).expect("/16"));
    let mut free = candidates
        .clone()
        .filter(|c| !addresses.iter().any(|(_, net)| overlaps(*c, *net)));
    free.next()
        .unwrap_or_else(|| candidates.into_iter().next().expect("a candidate"))
}

/// `--default-addr-pool CIDR --default-addr-pool-mask-length N` (10.0.0.0/8 and 24 by default).
pub fn parse_pool((base, mask_len): (Option<&str>, Option<u8>)) -> Result<Pool, ApiError> {
    let default = Pool::default();
    let base = match base {
        None => default.base,
        Some(b) => {
            let net: ipnetwork::Ipv4Network = b.parse().map_err(|_| {
                ApiError::InvalidArgument(format!(
                    "invalid --default-addr-pool {b:?}: give an IPv4 CIDR such as 10.0.0.0/8"
                ))
            })?;
            if net.network() != net.ip() {
                return Err(ApiError::InvalidArgument(format!(
                    "--default-addr-pool {b} has host bits set: use {}/{}",
                    net.network(),
                    net.prefix()
                )));
            }
            net
        }
    };
    let pool = Pool::new(base, mask_len.unwrap_or(default.mask_len))?;
    let mesh: ipnetwork::Ipv4Network = MESH_SUBNET.parse().expect("constant subnet");
    if overlaps(pool.base, mesh) {
        return Err(ApiError::InvalidArgument(format!(
            "--default-addr-pool {} overlaps the node mesh subnet {mesh}; choose another pool",
            pool.base
        )));
    }
    Ok(pool)
}

/// Parses `IP[:PORT]` (port 2377 by default) and checks the IP is one of
/// `local`, this host's addresses.
pub fn parse_advertise(s: &str, local: &[IpAddr]) -> Result<SocketAddr, ApiError> {
    let addr = parse_addr_port(s).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "invalid advertise address {s:?}: give an IP address of this host, optionally with a port, e.g. 192.168.99.100:2377"
        ))
    })?;
    if addr.ip().is_unspecified() || !local.contains(&addr.ip()) {
        let choices: Vec<String> = local
            .iter()
            .filter(|ip| !ip.is_loopback())
            .map(|ip| ip.to_string())
            .collect();
        return Err(ApiError::InvalidArgument(format!(
            "advertise address {} is not an address of this host; use one of: {}",
            addr.ip(),
            if choices.is_empty() {
                "(none)".to_string()
            } else {
                choices.join(", ")
            }
        )));
    }
    Ok(addr)
}

pub fn parse_listen(s: &str) -> Result<SocketAddr, ApiError> {
    parse_addr_port(s).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "invalid listen address {s:?}: give IP[:PORT], e.g. 0.0.0.0:2377"
        ))
    })
}

fn parse_addr_port(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, SWARM_PORT))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, cidr: &str) -> (String, Ipv4Network) {
        (name.into(), cidr.parse().unwrap())
    }

    #[test]
    fn the_gateway_subnet_keeps_its_own_or_avoids_the_hosts() {
        let fresh = [net("eth0", "192.168.99.100/24")];
        assert_eq!(pick_gateway_subnet(&fresh).to_string(), "172.18.0.0/16");
        let with_docker = [
            net("docker0", "172.17.0.1/16"),
            net("docker_gwbridge", "172.18.0.1/16"),
        ];
        assert_eq!(
            pick_gateway_subnet(&with_docker).to_string(),
            "172.19.0.0/16"
        );
        let restarted = [
            net("docker_gwbridge", "172.18.0.1/16"),
            net(GW_BRIDGE, "172.20.0.1/16"),
        ];
        assert_eq!(pick_gateway_subnet(&restarted).to_string(), "172.20.0.0/16");
    }

    #[test]
    fn advertise_addresses_are_this_hosts() {
        let local: Vec<IpAddr> = vec![
            "127.0.0.1".parse().unwrap(),
            "192.168.99.100".parse().unwrap(),
        ];
        assert_eq!(
            parse_advertise("192.168.99.100", &local)
                .unwrap()
                .to_string(),
            "192.168.99.100:2377"
        );
        assert_eq!(
            parse_advertise("192.168.99.100:4000", &local)
                .unwrap()
                .port(),
            4000
        );
        let err = parse_advertise("10.9.9.9", &local).unwrap_err().to_string();
        assert_eq!(
            err,
            "advertise address 10.9.9.9 is not an address of this host; use one of: 192.168.99.100"
        );
        assert!(parse_advertise("0.0.0.0", &local).is_err());
        let err = parse_advertise("not-an-ip", &local)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid advertise address \"not-an-ip\""),
            "{err}"
        );
        assert!(parse_advertise("10.9.9.9", &[])
            .unwrap_err()
            .to_string()
            .ends_with("(none)"));
    }

    #[test]
    fn pools_default_to_dockers_and_are_checked() {
        let p = parse_pool((None, None)).unwrap();
        assert_eq!((p.base.to_string(), p.mask_len), ("10.0.0.0/8".into(), 24));
        let p = parse_pool((Some("10.10.0.0/16"), Some(26))).unwrap();
        assert_eq!(
            (p.base.to_string(), p.mask_len),
            ("10.10.0.0/16".into(), 26)
        );
        for (bad, needle) in [
            (
                (Some("10.0.0.1/8"), None),
                "has host bits set: use 10.0.0.0/8",
            ),
            ((Some("banana"), None), "invalid --default-addr-pool"),
            (
                (Some("100.64.0.0/10"), None),
                "overlaps the node mesh subnet",
            ),
        ] {
            let err = parse_pool(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn listen_addresses_take_the_swarm_port_by_default() {
        assert_eq!(parse_listen("0.0.0.0").unwrap().to_string(), "0.0.0.0:2377");
        assert_eq!(parse_listen("0.0.0.0:4000").unwrap().port(), 4000);
        assert!(parse_listen("eth0").is_err());
    }
}
