//! The wire messages: CLI ⇄ local daemon (Unix socket) and agent ⇄ manager
//! (mutual TLS). Both are newline-delimited JSON, one request then one reply.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::model::{
    ApiError, AttachRequest, Availability, Endpoint, Network, NetworkSpec, NodeRole,
};

/// Calls that need the cluster's state: answered by the leader, forwarded to it by
/// other managers, refused by workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClusterRequest {
    NodeLs,
    NodeInspect { node: String },
    NodeRm { node: String, force: bool },
    NodeUpdate(NodeUpdate),
    JoinToken { role: NodeRole, rotate: bool },
    NetworkCreate(NetworkSpec),
    NetworkLs,
    NetworkInspect { network: String },
    NetworkRm { network: String },
}

/// `node update`: what to change on one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeUpdate {
    pub node: String,
    pub availability: Option<Availability>,
    /// `key=value` (or `key`, an empty value) pairs to add.
    pub label_add: Vec<String>,
    pub label_rm: Vec<String>,
}

/// What the CLI asks its local daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LocalRequest {
    Info,
    SwarmInit {
        advertise_addr: String,
        listen_addr: Option<String>,
        default_addr_pool: Option<String>,
        default_addr_pool_mask_length: Option<u8>,
    },
    SwarmJoin {
        token: String,
        remote: String,
        advertise_addr: Option<String>,
    },
    SwarmLeave {
        force: bool,
    },
    Cluster(ClusterRequest),
    ContainerRun {
        name: Option<String>,
        cmd: Vec<String>,
        networks: Vec<String>,
        ip: Option<std::net::Ipv4Addr>,
        aliases: Vec<String>,
    },
    ContainerLs {
        all: bool,
    },
    ContainerInspect {
        name: String,
    },
    ContainerRm {
        name: String,
        force: bool,
    },
    /// `container attach --network N PATH`: a namespace made by another tool.
    NamespaceAttach {
        network: String,
        netns: std::path::PathBuf,
        ip: Option<std::net::Ipv4Addr>,
        aliases: Vec<String>,
    },
    NamespaceDetach {
        network: String,
        netns: std::path::PathBuf,
    },
}

/// What an agent (or a joining node) asks the manager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ManagerRequest {
    /// Allowed without a certificate: the CA certificate, to check against the token.
    GetCa,
    /// Allowed without a certificate: join with a token.
    Join(JoinRequest),
    Heartbeat,
    /// Long poll: returns when the revision is past `since`, or after a while.
    Watch {
        since: u64,
    },
    Leave,
    Cluster(ClusterRequest),
    /// Any node, for its own containers: an endpoint on a network.
    Attach(AttachRequest),
    /// Any node, for its own endpoints.
    Detach {
        endpoint_id: String,
    },
}

/// The reply to an attach: the endpoint, and the network it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub endpoint: Endpoint,
    pub network: Network,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token: String,
    pub csr_pem: String,
    pub hostname: String,
    pub addr: std::net::IpAddr,
    pub wg_public_key: String,
    pub wg_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    pub node_id: String,
    pub role: NodeRole,
    pub cert_pem: String,
    pub tunnel_addr: std::net::Ipv4Addr,
    pub mesh_prefix_len: u8,
}

/// `network inspect`: the network and what is attached to it, node by node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDetail {
    pub network: Network,
    pub attached: Vec<AttachedEndpoint>,
}

/// An endpoint with the node it is on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachedEndpoint {
    pub endpoint: Endpoint,
    pub node_hostname: String,
    pub node_addr: std::net::IpAddr,
}

/// A mesh peer as the manager streams it to agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshPeer {
    pub node_id: String,
    pub wg_public_key: String,
    pub endpoint: std::net::SocketAddr,
    pub tunnel_addr: std::net::Ipv4Addr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchResponse {
    pub revision: u64,
    pub peers: Vec<MeshPeer>,
    pub networks: Vec<Network>,
    pub endpoints: Vec<Endpoint>,
}

/// One reply: a JSON value or a user-facing error.
pub type Reply = Result<serde_json::Value, ApiError>;

/// The longest message either side accepts (a peer list of thousands of nodes fits).
const MAX_MESSAGE: u64 = 8 << 20;

/// A value as a successful reply.
pub fn to_reply<T: Serialize>(value: T) -> Reply {
    serde_json::to_value(value).map_err(ApiError::internal)
}

/// Writes one message as a JSON line.
pub async fn write_msg<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// Reads one JSON line; Ok(None) at end of stream.
pub async fn read_msg<R: AsyncBufRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> std::io::Result<Option<T>> {
    let mut line = String::new();
    let read = tokio::io::AsyncReadExt::take(&mut *r, MAX_MESSAGE)
        .read_line(&mut line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && read as u64 >= MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message longer than {MAX_MESSAGE} bytes"),
        ));
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
