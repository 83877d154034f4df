//! Endpoints in the manager: a node attaches its containers to networks (an
//! address and a MAC each) and detaches them; `network rm` and `node rm` see
//! them. The name and the address are checked and taken in the transaction
//! that stores the endpoint.

use std::net::Ipv4Addr;

use super::networks::find_network;
use super::store::Txn;
use super::vips;
use super::{ipam, now_secs, Manager};
use crate::model::{
    check_name, mac_for, random_id, ApiError, AttachRequest, Endpoint, Network, Task,
    TaskAttachment, INGRESS_SBOX,
};
use crate::proto::{AttachedEndpoint, Attachment, NetworkDetail};

impl Manager {
    /// Every endpoint, for tests that look at the table.
    #[cfg(test)]
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, ApiError> {
        Ok(self.store.read()?.endpoints()?)
    }

    /// Gives `node`'s container an endpoint on a network. Asking again for the
    /// same container returns the endpoint it already has (an agent retrying).
    pub fn attach(&self, node: &str, req: AttachRequest) -> Result<Attachment, ApiError> {
        for alias in &req.aliases {
            check_name("network alias", alias)?;
        }
        let (attachment, new) = self.store.update(|tx| attach_in(tx, node, &req))?;
        if new {
            let (network, endpoint) = (&attachment.network, &attachment.endpoint);
            tracing::info!(network = %network.name, container = %endpoint.container_name, node, ip = %endpoint.ip, "endpoint attached");
        }
        Ok(attachment)
    }

    /// Removes one of `node`'s endpoints; nothing to do if it is gone already.
    pub fn detach(&self, node: &str, endpoint_id: &str) -> Result<(), ApiError> {
        let detached = self.store.update(|tx| {
            let Some(endpoint) = tx.endpoints()?.into_iter().find(|e| e.id == endpoint_id) else {
                return Ok(None);
            };
            if endpoint.node_id != node {
                return Err(ApiError::PermissionDenied(format!(
                    "endpoint {endpoint_id} belongs to another node"
                )));
            }
            tx.remove_endpoint(endpoint_id);
            Ok(Some(endpoint))
        })?;
        if let Some(endpoint) = detached {
            tracing::info!(network = %endpoint.network_id, container = %endpoint.container_name, node, "endpoint detached");
        }
        Ok(())
    }

    /// `network inspect`: the network with its endpoints and their nodes.
    pub fn network_detail(&self, name: &str) -> Result<NetworkDetail, ApiError> {
        let view = self.store.read()?;
        let network = find_network(&view, name)?;
        let nodes = view.nodes()?;
        let mut attached: Vec<AttachedEndpoint> = view
            .endpoints()?
            .into_iter()
            .filter(|e| e.network_id == network.id)
            .filter_map(|endpoint| {
                let node = nodes.iter().find(|n| n.id == endpoint.node_id)?;
                Some(AttachedEndpoint {
                    node_hostname: node.hostname.clone(),
                    node_addr: node.addr,
                    endpoint,
                })
            })
            .collect();
        attached.sort_by(|a, b| {
            (&a.node_hostname, a.endpoint.ip).cmp(&(&b.node_hostname, b.endpoint.ip))
        });
        Ok(NetworkDetail { network, attached })
    }
}

/// The attach decision: the container's endpoint if it has one (false), or a
/// new one with a free address and a unique name, staged (true).
fn attach_in(
    tx: &mut Txn<'_>,
    node: &str,
    req: &AttachRequest,
) -> Result<(Attachment, bool), ApiError> {
    let network = find_network(tx, &req.network)?;
    if !network.attachable {
        return Err(ApiError::FailedPrecondition(format!(
            "network {} not manually attachable",
            req.network
        )));
    }
    let on_network: Vec<Endpoint> = tx
        .endpoints()?
        .into_iter()
        .filter(|e| e.network_id == network.id)
        .collect();
    if let Some(same) = on_network
        .iter()
        .find(|e| e.node_id == node && e.container_id == req.container_id)
    {
        let endpoint = same.clone();
        return Ok((Attachment { endpoint, network }, false));
    }
    if on_network
        .iter()
        .any(|e| e.container_name == req.container_name)
    {
        return Err(ApiError::FailedPrecondition(format!(
            "endpoint with name {} already exists in network {}",
            req.container_name, network.name
        )));
    }
    let used = vips::used_on(tx, &network.id, None)?;
    let ip = match req.ip {
        Some(ip) => {
            ipam::check_address(&network, ip, &used)?;
            ip
        }
        None => ipam::next_address(&network, &used)?,
    };
    let endpoint = Endpoint {
        id: random_id(),
        network_id: network.id.clone(),
        node_id: node.to_string(),
        container_id: req.container_id.clone(),
        container_name: req.container_name.clone(),
        aliases: req.aliases.clone(),
        ip,
        mac: mac_for(ip),
        created_at: now_secs(),
        task_id: None,
        service_id: None,
    };
    tx.put_endpoint(&endpoint)?;
    Ok((Attachment { endpoint, network }, true))
}

/// Gives an assigned task an address on each of its service's networks (the
/// lowest free one), staged with the task's endpoints.
pub(super) fn attach_task(tx: &mut Txn<'_>, task: &mut Task) -> Result<(), ApiError> {
    let Some(node) = task.node_id.clone() else {
        return Ok(());
    };
    if !task.networks.is_empty() {
        return Ok(());
    }
    let mut wanted: Vec<(String, Vec<String>)> = task
        .spec
        .networks
        .iter()
        .map(|n| (n.target.clone(), n.aliases.clone()))
        .collect();
    // A service that publishes a port: its tasks are on ingress too, where
    // the node's leg reaches them (through the mesh, or on their own node in
    // host mode).
    let service = tx.services()?.into_iter().find(|s| s.id == task.service_id);
    if service.is_some_and(|s| !s.spec.ports.is_empty()) {
        if let Some(ingress) = tx.networks()?.into_iter().find(|n| n.ingress) {
            wanted.push((ingress.id, Vec::new()));
        }
    }
    let mut attachments = Vec::new();
    for (target, aliases) in wanted {
        let network = find_network(tx, &target)?;
        let used: Vec<Ipv4Addr> = vips::used_on(tx, &network.id, None)?
            .into_iter()
            .chain(
                attachments
                    .iter()
                    .filter(|a: &&TaskAttachment| a.network_id == network.id)
                    .map(|a| a.ip),
            )
            .collect();
        let ip = ipam::next_address(&network, &used)?;
        let endpoint = Endpoint {
            id: random_id(),
            network_id: network.id.clone(),
            node_id: node.clone(),
            container_id: task.id.clone(),
            container_name: task.name(),
            aliases,
            ip,
            mac: mac_for(ip),
            created_at: now_secs(),
            task_id: Some(task.id.clone()),
            service_id: Some(task.service_id.clone()),
        };
        tx.put_endpoint(&endpoint)?;
        attachments.push(TaskAttachment {
            network_id: network.id.clone(),
            endpoint_id: endpoint.id,
            ip,
            prefix_len: network.subnet.prefix(),
        });
    }
    task.networks = attachments;
    Ok(())
}

/// Gives every node in `nodes` its leg on the ingress network (the lowest
/// free address) while some service publishes a port, and takes back the
/// legs of nodes no longer there (all of them when none publishes).
pub(super) fn ensure_ingress_legs(tx: &mut Txn<'_>, nodes: &[String]) -> Result<(), ApiError> {
    let Some(ingress) = tx.networks()?.into_iter().find(|n| n.ingress) else {
        return Ok(());
    };
    // Only while some service publishes a port: a swarm without one keeps
    // no ingress sandbox or leg on its nodes.
    let publishing = tx.services()?.iter().any(|s| !s.spec.ports.is_empty());
    let nodes = if publishing { nodes } else { &[] };
    let legs: Vec<Endpoint> = tx
        .endpoints()?
        .into_iter()
        .filter(|e| e.network_id == ingress.id && e.container_id == INGRESS_SBOX)
        .collect();
    for leg in legs.iter().filter(|e| !nodes.contains(&e.node_id)) {
        tx.remove_endpoint(&leg.id);
    }
    for node in nodes {
        if legs.iter().any(|e| &e.node_id == node) {
            continue;
        }
        let ip = ipam::next_address(&ingress, &vips::used_on(tx, &ingress.id, None)?)?;
        tx.put_endpoint(&Endpoint {
            id: random_id(),
            network_id: ingress.id.clone(),
            node_id: node.clone(),
            container_id: INGRESS_SBOX.into(),
            container_name: "ingress-endpoint".into(),
            aliases: Vec::new(),
            ip,
            mac: mac_for(ip),
            created_at: now_secs(),
            task_id: None,
            service_id: None,
        })?;
    }
    Ok(())
}

/// Stages the removal of a task's endpoints: its container is gone, or it is.
pub(super) fn drop_task_endpoints(tx: &mut Txn<'_>, task_id: &str) -> Result<(), ApiError> {
    for endpoint in tx.endpoints()? {
        if endpoint.task_id.as_deref() == Some(task_id) {
            tx.remove_endpoint(&endpoint.id);
        }
    }
    Ok(())
}

/// Stages the removal of every endpoint of a node that left or was removed.
pub(super) fn drop_node_endpoints(tx: &mut Txn<'_>, node: &str) -> Result<(), ApiError> {
    for endpoint in tx.endpoints()? {
        if endpoint.node_id == node {
            tx.remove_endpoint(&endpoint.id);
        }
    }
    Ok(())
}

/// True when every endpoint on `network` is a task's that is no longer
/// meant to run (its service is gone, or it is to stop, or it is gone
/// itself): the network may go once they have stopped.
pub(super) fn only_stopping_tasks(tx: &Txn<'_>, network: &Network) -> Result<bool, ApiError> {
    let tasks = tx.tasks()?;
    let services: std::collections::HashSet<String> =
        tx.services()?.into_iter().map(|s| s.id).collect();
    Ok(tx
        .endpoints()?
        .iter()
        .filter(|e| e.network_id == network.id)
        .all(|e| match &e.task_id {
            Some(id) => tasks.iter().find(|t| &t.id == id).is_none_or(|t| {
                !services.contains(&t.service_id)
                    || t.desired_state > crate::model::TaskState::Running
            }),
            None => false,
        }))
}

/// Refuses `network rm` while containers are attached, naming them.
pub(super) fn check_unused(tx: &Txn<'_>, network: &Network) -> Result<(), ApiError> {
    let attached: Vec<Endpoint> = tx
        .endpoints()?
        .into_iter()
        .filter(|e| e.network_id == network.id)
        .collect();
    if attached.is_empty() {
        return Ok(());
    }
    let nodes = tx.nodes()?;
    let names: Vec<String> = attached
        .iter()
        .map(|e| {
            let host = nodes
                .iter()
                .find(|n| n.id == e.node_id)
                .map_or(e.node_id.as_str(), |n| n.hostname.as_str());
            format!("{} on {host}", e.container_name)
        })
        .collect();
    Err(ApiError::FailedPrecondition(format!(
        "error while removing network: network {} id {} has active endpoints ({}); remove or detach them first",
        network.name,
        network.id,
        names.join(", ")
    )))
}
