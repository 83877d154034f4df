//! Services' virtual IPs: one per network of a vip-mode service, and one on
//! ingress while it publishes a port through the routing mesh (Docker's
//! `Endpoint.VirtualIPs`; the mesh itself leads to the tasks' own addresses).
//! Each is the lowest free address of the network's subnet, kept across
//! updates while the service stays on the network, given back when it leaves
//! it, turns dnsrr or is removed. Endpoints never take a VIP, nor VIPs an
//! endpoint's address.

use std::net::Ipv4Addr;

use super::ipam;
use super::networks::find_network;
use super::store::Txn;
use crate::model::{ApiError, PortConfig, ServiceSpec, VirtualIp};

/// The VIPs `spec` needs, keeping `current` ones where it still needs them.
pub(super) fn assign(
    tx: &Txn<'_>,
    service_id: &str,
    spec: &ServiceSpec,
    current: &[VirtualIp],
) -> Result<Vec<VirtualIp>, ApiError> {
    if spec.endpoint_mode == "dnsrr" {
        return Ok(Vec::new());
    }
    // Ingress first, as swarmkit's allocator gives them to a new service.
    let mut wanted: Vec<String> = Vec::new();
    if spec.ports.iter().any(PortConfig::is_ingress) {
        wanted.extend(tx.networks()?.into_iter().find(|n| n.ingress).map(|n| n.id));
    }
    wanted.extend(spec.task.networks.iter().map(|n| n.target.clone()));
    let mut vips: Vec<VirtualIp> = Vec::new();
    for target in wanted {
        if let Some(kept) = current.iter().find(|v| v.network_id == target) {
            vips.push(kept.clone());
            continue;
        }
        let network = find_network(tx, &target)?;
        let mut used = used_on(tx, &network.id, Some(service_id))?;
        used.extend(
            vips.iter()
                .filter(|v| v.network_id == network.id)
                .map(|v| v.ip),
        );
        let ip = ipam::next_address(&network, &used)?;
        vips.push(VirtualIp {
            prefix_len: network.subnet.prefix(),
            network_id: network.id,
            ip,
        });
    }
    Ok(vips)
}

/// The addresses taken on a network: its endpoints' and the services' VIPs
/// (but `except`'s, being assigned again).
pub(super) fn used_on(
    tx: &Txn<'_>,
    network_id: &str,
    except: Option<&str>,
) -> Result<Vec<Ipv4Addr>, ApiError> {
    let endpoints = tx.endpoints()?;
    let services = tx.services()?;
    let vips = services
        .iter()
        .filter(|s| Some(s.id.as_str()) != except)
        .flat_map(|s| &s.virtual_ips)
        .filter(|v| v.network_id == network_id)
        .map(|v| v.ip);
    Ok(endpoints
        .iter()
        .filter(|e| e.network_id == network_id)
        .map(|e| e.ip)
        .chain(vips)
        .collect())
}
