//! What `swarm init` and `swarm join` ask of this host: its addresses, the
//! source address toward the manager, the underlay's MTU.

use std::net::{IpAddr, SocketAddr};

use ipnetwork::Ipv4Network;

use crate::model::ApiError;

/// This host's IPv4 interface addresses with their subnets.
pub fn host_addresses() -> Vec<(String, Ipv4Network)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            let mask = a.netmask?.as_sockaddr_in()?.ip();
            let net = Ipv4Network::with_netmask(ip, mask).ok()?;
            Some((a.interface_name, net))
        })
        .collect()
}

pub fn local_ips() -> Vec<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .map(|addrs| {
            addrs
                .filter_map(|a| a.address)
                .filter_map(|a| {
                    a.as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The local address the kernel would use to reach `dest` (nothing is sent).
pub fn route_source(dest: SocketAddr) -> Result<IpAddr, ApiError> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(ApiError::internal)?;
    socket.connect(dest).map_err(|e| {
        ApiError::Unavailable(format!(
            "could not reach the manager at {dest}: {e}; check the address, or give --advertise-addr"
        ))
    })?;
    Ok(socket.local_addr().map_err(ApiError::internal)?.ip())
}

/// The MTU of the interface holding `ip`, or 1500.
pub fn underlay_mtu(ip: IpAddr) -> u32 {
    let iface = nix::ifaddrs::getifaddrs().ok().and_then(|mut addrs| {
        addrs.find_map(|a| {
            let matches = a
                .address
                .and_then(|s| s.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())))
                == Some(ip);
            matches.then_some(a.interface_name)
        })
    });
    iface
        .and_then(|name| std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok())
        .and_then(|mtu| mtu.trim().parse().ok())
        .unwrap_or(1500)
}
