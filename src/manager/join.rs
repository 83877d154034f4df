//! Node admission: the role a join token grants, the WireGuard key's
//! uniqueness and the lowest free tunnel address, decided in one transaction.

use std::net::Ipv4Addr;

use super::store::Cluster;
use super::token::JoinToken;
use super::{ca, cluster, nodes, now_secs, Manager};
use crate::model::{ApiError, Availability, Node, NodeRole};
use crate::proto::{JoinRequest, JoinResponse};

impl Manager {
    /// Admits a node with a join token; its role comes from the token it used.
    /// One transaction: the token, the key's uniqueness and the tunnel address
    /// are all checked against the state the node is written into.
    pub fn join(&self, req: JoinRequest) -> Result<JoinResponse, ApiError> {
        let token = JoinToken::parse(&req.token).map_err(ApiError::InvalidArgument)?;
        let (node, cert_pem, cluster) = self.store.update(|tx| {
            let cluster = cluster(tx)?;
            let role = join_role(&cluster, &req.token, &token)?;
            check_hex_key(&req.wg_public_key)?;
            let existing = tx.nodes()?;
            if existing
                .iter()
                .any(|n| n.wg_public_key == req.wg_public_key)
            {
                return Err(ApiError::InvalidArgument(
                    "another node already uses this WireGuard public key; each node makes its own"
                        .into(),
                ));
            }
            let used: Vec<Ipv4Addr> = existing.iter().map(|n| n.tunnel_addr).collect();
            let tunnel_addr =
                nodes::free_tunnel_addr(cluster.mesh_subnet, &used).ok_or_else(|| {
                    ApiError::FailedPrecondition(format!(
                        "the node mesh subnet {} is full; remove departed nodes with \"swarmnet node rm\"",
                        cluster.mesh_subnet
                    ))
                })?;
            let node = Node {
                id: crate::model::random_id(),
                hostname: req.hostname.clone(),
                role,
                availability: Availability::Active,
                addr: req.addr,
                wg_public_key: req.wg_public_key.clone(),
                wg_port: req.wg_port,
                tunnel_addr,
                leader: false,
                left: false,
                created_at: now_secs(),
                labels: Default::default(),
                version: 0,
                updated_at: 0,
            };
            let cert_pem = self
                .ca
                .sign_csr(&req.csr_pem, &node.id, role)
                .map_err(|e| ApiError::InvalidArgument(format!("bad certificate request: {e}")))?;
            tx.put_node(&node)?;
            Ok((node, cert_pem, cluster))
        })?;
        self.heartbeat(&node.id);
        tracing::info!(node = %node.id, hostname = %node.hostname, role = %node.role, "node joined");
        Ok(JoinResponse {
            node_id: node.id,
            role: node.role,
            cert_pem,
            tunnel_addr: node.tunnel_addr,
            mesh_prefix_len: cluster.mesh_subnet.prefix(),
        })
    }
}

/// The role a join token grants, or why it grants none.
fn join_role(cluster: &Cluster, text: &str, token: &JoinToken) -> Result<NodeRole, ApiError> {
    if text.trim() == cluster.manager_token {
        Ok(NodeRole::Manager)
    } else if text.trim() == cluster.worker_token {
        Ok(NodeRole::Worker)
    } else if !token.matches_ca(&ca::pem_to_der(&cluster.ca_cert_pem).unwrap_or_default()) {
        Err(ApiError::PermissionDenied(
            "the join token is for another swarm: its CA digest does not match this swarm's CA"
                .into(),
        ))
    } else {
        Err(ApiError::PermissionDenied(
            "invalid join token: it was rotated or never issued; print the current one with \"swarmnet swarm join-token worker\" on a manager".into(),
        ))
    }
}

/// A WireGuard public key must be 32 bytes in hex.
fn check_hex_key(key: &str) -> Result<(), ApiError> {
    match hex::decode(key) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(ApiError::InvalidArgument(
            "WireGuard public key must be 32 bytes in hex".into(),
        )),
    }
}
