//! Node admission: the join request's hostname and address, the role a join
//! token grants, the WireGuard key's uniqueness and the lowest free tunnel
//! address, decided in one transaction.

use std::net::{IpAddr, Ipv4Addr};

use super::store::{Cluster, StoreError};
use super::token::JoinToken;
use super::{ca, cluster, nodes, now_secs, Manager};
use crate::model::{check_hostname, escape, ApiError, Availability, Node, NodeRole};
use crate::proto::{JoinRequest, JoinResponse};

/// Why a join was refused, as the audit log and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinFailure {
    /// A malformed, foreign, rotated or never-issued token.
    Token,
    /// A hostname that is not an RFC 1123 name.
    Hostname,
    /// An advertised address other than the one the node connected from.
    Address,
    /// A bad key, certificate request or full mesh.
    Request,
    /// The manager's own fault (the store).
    Internal,
}

impl JoinFailure {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinFailure::Token => "token",
            JoinFailure::Hostname => "hostname",
            JoinFailure::Address => "address",
            JoinFailure::Request => "request",
            JoinFailure::Internal => "internal",
        }
    }
}

/// A refused join: why, for the audit, and the sentence the node sees.
#[derive(Debug)]
pub struct JoinRefusal {
    pub reason: JoinFailure,
    pub error: ApiError,
}

impl From<JoinRefusal> for ApiError {
    fn from(r: JoinRefusal) -> ApiError {
        r.error
    }
}

impl From<StoreError> for JoinRefusal {
    fn from(e: StoreError) -> JoinRefusal {
        refuse(JoinFailure::Internal)(e.into())
    }
}

fn refuse(reason: JoinFailure) -> impl FnOnce(ApiError) -> JoinRefusal {
    move |error| JoinRefusal { reason, error }
}

/// The checks that need no state: the token's form, the hostname, and the
/// advertised address against `source`, the address the node connected from.
pub fn check_request(req: &JoinRequest, source: IpAddr) -> Result<JoinToken, JoinRefusal> {
    let token = JoinToken::parse(&req.token)
        .map_err(ApiError::InvalidArgument)
        .map_err(refuse(JoinFailure::Token))?;
    check_hostname(&req.hostname).map_err(refuse(JoinFailure::Hostname))?;
    let source = source.to_canonical();
    if req.addr.to_canonical() != source {
        return Err(JoinRefusal {
            reason: JoinFailure::Address,
            error: ApiError::InvalidArgument(format!(
                "the node advertises {} but connected from {source}: give --advertise-addr with the address it reaches the manager from ({source})",
                req.addr
            )),
        });
    }
    check_hex_key(&req.wg_public_key).map_err(refuse(JoinFailure::Request))?;
    Ok(token)
}

impl Manager {
    /// Admits a node with a join token; its role comes from the token it used.
    /// `source` is the address it connected from, which it must advertise.
    /// One transaction: the token, the key's uniqueness and the tunnel address
    /// are all checked against the state the node is written into.
    pub fn join(&self, req: JoinRequest, source: IpAddr) -> Result<JoinResponse, JoinRefusal> {
        let token = check_request(&req, source)?;
        let (node, cert_pem, cluster) = self.store.update(|tx| {
            let cluster = cluster(tx).map_err(refuse(JoinFailure::Internal))?;
            let role =
                join_role(&cluster, &req.token, &token).map_err(refuse(JoinFailure::Token))?;
            let existing = tx.nodes()?;
            if existing
                .iter()
                .any(|n| n.wg_public_key == req.wg_public_key)
            {
                return Err(refuse(JoinFailure::Request)(ApiError::InvalidArgument(
                    "another node already uses this WireGuard public key; each node makes its own"
                        .into(),
                )));
            }
            let used: Vec<Ipv4Addr> = existing.iter().map(|n| n.tunnel_addr).collect();
            let tunnel_addr =
                nodes::free_tunnel_addr(cluster.mesh_subnet, &used).ok_or_else(|| {
                    refuse(JoinFailure::Request)(ApiError::FailedPrecondition(format!(
                        "the node mesh subnet {} is full; remove departed nodes with \"swarmnet node rm\"",
                        cluster.mesh_subnet
                    )))
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
                down: false,
                created_at: now_secs(),
                labels: Default::default(),
                engine_labels: Default::default(),
                version: 0,
                updated_at: 0,
            };
            let cert_pem = self
                .ca
                .sign_csr(&req.csr_pem, &node.id, role)
                .map_err(|e| ApiError::InvalidArgument(format!("bad certificate request: {e}")))
                .map_err(refuse(JoinFailure::Request))?;
            tx.put_node(&node)?;
            Ok((node, cert_pem, cluster))
        })?;
        self.heartbeat(&node.id);
        tracing::info!(node = %node.id, hostname = %escape(&node.hostname), role = %node.role, addr = %node.addr, "node joined");
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
