//! Overlay networks in the manager: create (IPAM, VNI, overlap rules), list,
//! inspect and remove, and the ingress network made at `swarm init`. The name,
//! subnet and VNI are checked and taken in the transaction that stores them.

use std::collections::BTreeMap;

use super::store::Txn;
use super::{cluster, endpoints, ipam, now_secs, Manager};
use crate::model::{random_id, ApiError, CheckedSpec, Network, NetworkSpec};

/// The routing-mesh network's name, as Docker's.
pub const INGRESS: &str = "ingress";

impl Manager {
    pub fn networks(&self) -> Result<Vec<Network>, ApiError> {
        sorted_networks(&self.store.read()?)
    }

    /// `network create`: checks the spec against the others, then stores it.
    pub fn create_network(&self, spec: NetworkSpec) -> Result<Network, ApiError> {
        let checked = spec.check()?;
        let network = self
            .store
            .update(|tx| make_network(tx, checked.clone(), false))?;
        tracing::info!(network = %network.name, id = %network.id, subnet = %network.subnet, vni = network.vni, "network created");
        Ok(network)
    }

    /// `network rm`.
    pub fn remove_network(&self, name: &str) -> Result<String, ApiError> {
        let network = self.store.update(|tx| {
            let network = find_network(tx, name)?;
            endpoints::check_unused(tx, &network)?;
            tx.remove_network(&network.id);
            Ok::<_, ApiError>(network)
        })?;
        tracing::info!(network = %network.name, id = %network.id, "network removed");
        Ok(network.name)
    }
}

/// The networks of a snapshot, by name.
fn sorted_networks(tx: &Txn<'_>) -> Result<Vec<Network>, ApiError> {
    let mut nets = tx.networks()?;
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

/// Checks a spec against the transaction's networks, takes a subnet and a VNI,
/// and stages the new network.
fn make_network(tx: &mut Txn<'_>, spec: CheckedSpec, ingress: bool) -> Result<Network, ApiError> {
    let others = tx.networks()?;
    if others.iter().any(|n| n.name == spec.name) {
        return Err(ApiError::Conflict(format!(
            "network with name {} already exists",
            spec.name
        )));
    }
    let cluster = cluster(tx)?;
    let pool = cluster.pool;
    let (subnet, from_pool) = match spec.subnet {
        Some(subnet) => {
            if ipam::overlaps(subnet, cluster.mesh_subnet) {
                return Err(ApiError::InvalidArgument(format!(
                    "subnet {subnet} overlaps the node mesh {}; choose another subnet",
                    cluster.mesh_subnet
                )));
            }
            ipam::check_overlap(subnet, spec.allow_overlap, &others)?;
            (subnet, false)
        }
        None => {
            let taken: Vec<_> = others.iter().map(|n| n.subnet).collect();
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
    };
    tx.put_network(&network)?;
    Ok(network)
}

/// Stages the ingress network, made with the swarm as Docker does (10.0.0.0/24
/// from the default pool).
pub(super) fn make_ingress(tx: &mut Txn<'_>) -> Result<Network, ApiError> {
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
        },
        true,
    )
}
