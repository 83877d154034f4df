//! Overlay networks in the manager: create (IPAM, VNI, overlap rules), list,
//! inspect and remove, and the ingress network made at `swarm init`. The name,
//! subnet and VNI are checked and taken in the transaction that stores them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::store::Txn;
use super::{cluster, endpoints, ipam, now_secs, Manager};
use crate::model::{random_id, ApiError, CheckedSpec, Network, NetworkSpec, INGRESS_LEG};

/// The routing-mesh network's name, as Docker's.
pub const INGRESS: &str = "ingress";

impl Manager {
    pub fn networks(&self) -> Result<Vec<Network>, ApiError> {
        sorted_networks(&self.store.read()?)
    }

    /// `network create`: checks the spec against the others, then stores it.
    pub fn create_network(&self, spec: NetworkSpec) -> Result<Network, ApiError> {
        let checked = spec.check()?;
        let local = local_ipv4_addrs();
        let network = self
            .store
            .update(|tx| make_network(tx, checked.clone(), &local, false))?;
        tracing::info!(network = %network.name, id = %network.id, subnet = %network.subnet, vni = network.vni, "network created");
        Ok(network)
    }

    /// `network rm`: at once when nothing is on the network; when only
    /// tasks no longer meant to run are (a stack's, just removed), it is gone
    /// for users at once and removed once they have stopped; otherwise refused.
    pub fn remove_network(&self, name: &str) -> Result<String, ApiError> {
        let (network, later) = self.store.update(|tx| {
            let network = find_network(tx, name)?;
            match endpoints::check_unused(tx, &network) {
                Ok(()) => {
                    tx.remove_network(&network.id);
                    Ok((network, false))
                }
                Err(_) if endpoints::only_stopping_tasks(tx, &network)? => {
                    tx.put_network(&Network {
                        removing: true,
                        ..network.clone()
                    })?;
                    Ok((network, true))
                }
                Err(e) => Err(e),
            }
        })?;
        match later {
            true => {
                tracing::info!(network = %network.name, id = %network.id, "network removed; it goes once its stopping tasks are gone")
            }
            false => tracing::info!(network = %network.name, id = %network.id, "network removed"),
        }
        Ok(network.name)
    }
}

/// The IPv4 addresses of this host's interfaces but loopback (the manager's
/// own underlay, and bridges such as the gateway bridge) and its leg on the
/// ingress network (an overlay address, checked as the ingress network's).
fn local_ipv4_addrs() -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.interface_name != INGRESS_LEG)
        .filter_map(|a| Some(a.address?.as_sockaddr_in()?.ip()))
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// Removes the networks removed while tasks were stopping on them, once
/// none is left.
pub(super) fn sweep_removed(tx: &mut Txn<'_>) -> Result<(), ApiError> {
    let endpoints = tx.endpoints()?;
    for network in tx.networks()?.into_iter().filter(|n| n.removing) {
        if endpoints.iter().all(|e| e.network_id != network.id) {
            tracing::info!(network = %network.name, id = %network.id, "network gone: its tasks have stopped");
            tx.remove_network(&network.id);
        }
    }
    Ok(())
}

/// The networks of a snapshot users see, by name (not those being removed).
fn sorted_networks(tx: &Txn<'_>) -> Result<Vec<Network>, ApiError> {
    let mut nets: Vec<Network> = tx.networks()?.into_iter().filter(|n| !n.removing).collect();
    nets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nets)
}

/// Finds a network of a snapshot by full ID, name, or unique ID prefix, as
/// Docker does.
pub(super) fn find_network(tx: &Txn<'_>, name: &str) -> Result<Network, ApiError> {
    let nets = sorted_networks(tx)?;
    crate::model::find(
        &nets,
        name,
        "network",
        |n| &n.id,
        |n| &n.name,
        || ApiError::NotFound(format!("network {name} not found")),
    )
    .cloned()
}

/// Checks a spec against the transaction's networks and nodes and the host's
/// addresses (`local`), takes a subnet and a VNI, and stages the new network.
fn make_network(
    tx: &mut Txn<'_>,
    spec: CheckedSpec,
    local: &[Ipv4Addr],
    ingress: bool,
) -> Result<Network, ApiError> {
    let others = tx.networks()?;
    if others.iter().any(|n| n.name == spec.name) {
        return Err(ApiError::Conflict(format!(
            "network with name {} already exists",
            spec.name
        )));
    }
    if let Some(other) = others.iter().find(|n| n.id == spec.name) {
        return Err(ApiError::InvalidArgument(format!(
            "network name {} is the ID of network {}, and lookups by ID would find that one; choose another name",
            spec.name, other.name
        )));
    }
    let cluster = cluster(tx)?;
    let pool = cluster.pool;
    let nodes = tx.nodes()?;
    let (subnet, from_pool) = match spec.subnet {
        Some(subnet) => {
            if ipam::overlaps(subnet, cluster.mesh_subnet) {
                return Err(ApiError::InvalidArgument(format!(
                    "subnet {subnet} overlaps the node mesh {}, which carries the traffic between nodes; choose another subnet",
                    cluster.mesh_subnet
                )));
            }
            ipam::check_underlay(subnet, &nodes, local)?;
            ipam::check_overlap(subnet, spec.allow_overlap, &others)?;
            (subnet, false)
        }
        None => {
            let taken: Vec<_> = others
                .iter()
                .map(|n| n.subnet)
                .chain(ipam::reserved_for_pool(cluster.mesh_subnet, &nodes))
                .chain(local.iter().copied().map(Ipv4Network::from))
                .collect();
            let subnet = pool.next_subnet(&taken).ok_or_else(|| {
                ApiError::FailedPrecondition(format!(
                    "the default address pool {} has no free /{} subnet left; give --subnet, or remove unused networks",
                    pool.base, pool.mask_len
                ))
            })?;
            (subnet, true)
        }
    };
    let vni = ipam::next_vni(&others).ok_or_else(|| {
        ApiError::FailedPrecondition("no VXLAN network identifier is free".into())
    })?;
    let network = Network {
        id: random_id(),
        name: spec.name,
        attachable: spec.attachable,
        ingress,
        subnet,
        gateway: spec
            .gateway
            .unwrap_or_else(|| ipam::default_gateway(subnet)),
        vni,
        mtu: spec.mtu,
        allow_overlap: spec.allow_overlap,
        from_pool,
        options: spec.options,
        created_at: now_secs(),
        labels: spec.labels,
        removing: false,
    };
    tx.put_network(&network)?;
    Ok(network)
}

/// Stages the ingress network, made with the swarm as Docker does (10.0.0.0/24
/// from the default pool, unless a node or this host holds an address there).
pub(super) fn make_ingress(tx: &mut Txn<'_>) -> Result<Network, ApiError> {
    let local = local_ipv4_addrs();
    make_network(
        tx,
        CheckedSpec {
            name: INGRESS.into(),
            attachable: false,
            subnet: None,
            gateway: None,
            mtu: None,
            allow_overlap: false,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        },
        &local,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::fixture_test::manager_in;

    fn manager(dir: &tempfile::TempDir) -> Manager {
        manager_in(dir, "vm1", "192.168.99.100")
    }

    fn spec(name: &str, subnet: Option<&str>) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            driver: "overlay".into(),
            subnet: subnet.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_name_may_not_be_another_networks_id() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(&dir);
        let blue = m.create_network(spec("blue", None)).unwrap();
        let err = m.create_network(spec(&blue.id, None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("network name {} is the ID of network blue, and lookups by ID would find that one; choose another name", blue.id)
        );
        assert_eq!(m.networks().unwrap().len(), 2, "ingress and blue only");
    }

    #[test]
    fn the_underlay_and_the_mesh_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(&dir);
        let err = m
            .create_network(spec("under", Some("192.168.99.0/24")))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("subnet 192.168.99.0/24 holds the address 192.168.99.100 of node vm1"),
            "{err}"
        );
        let err = m
            .create_network(spec("mesh", Some("100.64.0.0/24")))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("subnet 100.64.0.0/24 overlaps the node mesh 100.64.0.0/16"),
            "{err}"
        );
        let err = m
            .create_network(spec("lo", Some("127.0.0.0/8")))
            .unwrap_err();
        assert!(err.to_string().contains("loopback range"), "{err}");
        assert_eq!(m.networks().unwrap().len(), 1, "ingress only");
    }
}
