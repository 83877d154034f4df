//! Endpoints in the manager: a node attaches its containers to networks (an
//! address and a MAC each) and detaches them; `network rm` and `node rm` see them.

use std::net::Ipv4Addr;

use super::{ipam, now_secs, Manager};
use crate::model::{check_name, mac_for, random_id, ApiError, AttachRequest, Endpoint, Network};
use crate::proto::{AttachedEndpoint, Attachment, NetworkDetail};

impl Manager {
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, ApiError> {
        self.store.endpoints().map_err(ApiError::internal)
    }

    /// Gives `node`'s container an endpoint on a network. Asking again for the
    /// same container returns the endpoint it already has (an agent retrying).
    pub fn attach(&self, node: &str, req: AttachRequest) -> Result<Attachment, ApiError> {
        for alias in &req.aliases {
            check_name("network alias", alias)?;
        }
        let _guard = self.changes.lock().expect("changes lock");
        let network = self.network(&req.network)?;
        if !network.attachable {
            return Err(ApiError::FailedPrecondition(format!(
                "network {} not manually attachable",
                req.network
            )));
        }
        let on_network: Vec<Endpoint> = self
            .endpoints()?
            .into_iter()
            .filter(|e| e.network_id == network.id)
            .collect();
        if let Some(same) = on_network
            .iter()
            .find(|e| e.node_id == node && e.container_id == req.container_id)
        {
            return Ok(Attachment {
                endpoint: same.clone(),
                network,
            });
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
        let used: Vec<Ipv4Addr> = on_network.iter().map(|e| e.ip).collect();
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
            container_id: req.container_id,
            container_name: req.container_name,
            aliases: req.aliases,
            ip,
            mac: mac_for(ip),
            created_at: now_secs(),
        };
        self.store
            .put_endpoint(&endpoint)
            .map_err(ApiError::internal)?;
        tracing::info!(network = %network.name, container = %endpoint.container_name, node, %ip, "endpoint attached");
        Ok(Attachment { endpoint, network })
    }

    /// Removes one of `node`'s endpoints; nothing to do if it is gone already.
    pub fn detach(&self, node: &str, endpoint_id: &str) -> Result<(), ApiError> {
        let _guard = self.changes.lock().expect("changes lock");
        let Some(endpoint) = self.endpoints()?.into_iter().find(|e| e.id == endpoint_id) else {
            return Ok(());
        };
        if endpoint.node_id != node {
            return Err(ApiError::PermissionDenied(format!(
                "endpoint {endpoint_id} belongs to another node"
            )));
        }
        self.store
            .remove_endpoints(&[endpoint_id])
            .map_err(ApiError::internal)?;
        tracing::info!(network = %endpoint.network_id, container = %endpoint.container_name, node, "endpoint detached");
        Ok(())
    }

    /// Removes every endpoint of a node that left or was removed. The caller holds `changes`.
    pub(super) fn drop_node_endpoints(&self, node: &str) -> Result<(), ApiError> {
        let ids: Vec<String> = self
            .endpoints()?
            .into_iter()
            .filter(|e| e.node_id == node)
            .map(|e| e.id)
            .collect();
        if !ids.is_empty() {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            self.store
                .remove_endpoints(&ids)
                .map_err(ApiError::internal)?;
        }
        Ok(())
    }

    /// `network inspect`: the network with its endpoints and their nodes.
    pub fn network_detail(&self, name: &str) -> Result<NetworkDetail, ApiError> {
        let network = self.network(name)?;
        let nodes = self.store.nodes().map_err(ApiError::internal)?;
        let mut attached: Vec<AttachedEndpoint> = self
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

    /// Refuses `network rm` while containers are attached, naming them.
    pub(super) fn check_unused(&self, network: &Network) -> Result<(), ApiError> {
        let attached: Vec<Endpoint> = self
            .endpoints()?
            .into_iter()
            .filter(|e| e.network_id == network.id)
            .collect();
        if attached.is_empty() {
            return Ok(());
        }
        let nodes = self.store.nodes().map_err(ApiError::internal)?;
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
}
