//! The wire messages between agents and the manager (mutual TLS):
//! newline-delimited JSON, one request then one reply. The CLI speaks the
//! Docker Engine API instead (`crate::api`).

pub mod client;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::model::{
    ApiError, AttachRequest, Availability, Endpoint, Network, NetworkSpec, NodeRole, PortConfig,
    ServiceSpec, Task, TaskStatus,
};

/// Calls that need the cluster's state: answered by the leader, forwarded to it by
/// other managers, refused by workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClusterRequest {
    SwarmInspect,
    /// Token rotation; `version` is the cluster's as the caller read it.
    SwarmUpdate {
        version: u64,
        rotate_worker_token: bool,
        rotate_manager_token: bool,
    },
    NodeLs,
    NodeInspect {
        node: String,
    },
    NodeRm {
        node: String,
        force: bool,
    },
    NodeUpdate(NodeUpdate),
    NetworkCreate(NetworkSpec),
    NetworkLs,
    NetworkInspect {
        network: String,
    },
    NetworkRm {
        network: String,
    },
    /// Replies with the new service.
    ServiceCreate(ServiceSpec),
    /// Replies with every service.
    ServiceLs,
    /// Replies with the service (name, ID or unique ID prefix).
    ServiceInspect {
        service: String,
    },
    /// The whole new spec, at the version the caller read; with `rollback`,
    /// the spec before the last update comes back instead. Replies with the service.
    ServiceUpdate {
        service: String,
        version: u64,
        spec: ServiceSpec,
        rollback: bool,
    },
    ServiceRm {
        service: String,
    },
    /// Replies with every task.
    TaskLs,
    /// Replies with the task (ID or unique ID prefix).
    TaskInspect {
        task: String,
    },
}

/// `node update`: the node's whole spec as the caller wants it, and the
/// version it read (a stale one is refused, as Docker refuses it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeUpdate {
    pub node: String,
    pub version: u64,
    pub role: NodeRole,
    pub availability: Availability,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The swarm as `GET /swarm` and `docker info` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwarmView {
    pub id: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub version: u64,
    pub worker_token: String,
    pub manager_token: String,
    pub default_addr_pool: String,
    pub subnet_size: u8,
    pub nodes: usize,
    pub managers: usize,
    /// Each manager: its node ID and API address.
    pub manager_addrs: Vec<(String, std::net::SocketAddr)>,
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
    Cluster(Box<ClusterRequest>),
    /// Any node, for its own containers: an endpoint on a network.
    Attach(AttachRequest),
    /// Any node, for its own endpoints.
    Detach {
        endpoint_id: String,
    },
    /// Any node, for its own tasks: what happened to them.
    TaskReport(TaskReport),
    /// Any node, at start: its daemon's `--label`s, for constraints.
    EngineLabels(EngineLabels),
}

/// A request to the manager and the type of its reply: the client reads the
/// reply as `Reply`, and the server builds it from a `Reply`, so both sides
/// agree by construction.
pub trait Call: Into<ManagerRequest> {
    type Reply: Serialize + DeserializeOwned;
}

/// `GetCa`: the CA certificate, PEM.
pub struct GetCa;
/// `Heartbeat`: nothing back.
pub struct Heartbeat;
/// `Watch`: the state past revision `since`.
pub struct Watch {
    pub since: u64,
}
/// `Leave`: nothing back.
pub struct Leave;
/// `Detach`: nothing back.
pub struct Detach {
    pub endpoint_id: String,
}

/// A node's news about its tasks, sent together so one store change records them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub updates: Vec<TaskUpdate>,
}

/// A daemon's `--label k=v` pairs (Docker's engine labels).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineLabels {
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One task's new status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUpdate {
    pub task_id: String,
    pub status: TaskStatus,
}

macro_rules! calls {
    ($($call:ty => $reply:ty, |$v:ident| $req:expr;)*) => {$(
        impl From<$call> for ManagerRequest {
            fn from($v: $call) -> ManagerRequest {
                $req
            }
        }
        impl Call for $call {
            type Reply = $reply;
        }
    )*};
}

calls! {
    GetCa => String, |_c| ManagerRequest::GetCa;
    JoinRequest => JoinResponse, |c| ManagerRequest::Join(c);
    Heartbeat => (), |_c| ManagerRequest::Heartbeat;
    Watch => WatchResponse, |c| ManagerRequest::Watch { since: c.since };
    Leave => (), |_c| ManagerRequest::Leave;
    AttachRequest => Attachment, |c| ManagerRequest::Attach(c);
    Detach => (), |c| ManagerRequest::Detach { endpoint_id: c.endpoint_id };
    TaskReport => (), |c| ManagerRequest::TaskReport(c);
    EngineLabels => (), |c| ManagerRequest::EngineLabels(c);
}

/// A call's typed answer as the wire's reply.
pub fn answer<C: Call>(result: Result<C::Reply, ApiError>) -> Reply {
    result.and_then(to_reply)
}

/// A wire reply read as the call's typed answer.
pub fn read_answer<C: Call>(reply: Reply) -> Result<C::Reply, ApiError> {
    serde_json::from_value(reply?).map_err(|e| {
        ApiError::Internal(format!(
            "the manager's reply does not match this swarmnet's: {e}"
        ))
    })
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
    /// The tasks assigned to the node that watches.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// The watching node's role as the store has it (promote and demote change it).
    #[serde(default)]
    pub role: Option<NodeRole>,
    /// Every service, as service discovery names it.
    #[serde(default)]
    pub services: Vec<ServiceName>,
    /// The tasks, on any node, that run and are meant to: the only ones DNS answers with.
    #[serde(default)]
    pub running_tasks: Vec<String>,
}

/// A service as service discovery needs it: its name, how its name answers,
/// and its virtual IPs (one per network, in vip mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceName {
    pub id: String,
    pub name: String,
    /// "vip" or "dnsrr".
    pub endpoint_mode: String,
    #[serde(default)]
    pub vips: Vec<ServiceVip>,
    /// Its published ports (each with its published port set).
    #[serde(default)]
    pub ports: Vec<PortConfig>,
}

/// A service's virtual IP on one network.
pub use crate::model::VirtualIp as ServiceVip;

/// One reply: a JSON value or a user-facing error.
pub type Reply = Result<serde_json::Value, ApiError>;

/// The version of these messages; a node speaking another is refused.
pub const PROTOCOL: u32 = 1;

/// Every message on the wire: the protocol version, the sender's swarmnet
/// version (for the refusal's sentence), and the request or reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(default)]
    pub protocol: u32,
    #[serde(default)]
    pub swarmnet: String,
    pub body: T,
}

impl<T> Envelope<T> {
    pub fn new(body: T) -> Self {
        Envelope {
            protocol: PROTOCOL,
            swarmnet: env!("CARGO_PKG_VERSION").to_string(),
            body,
        }
    }
}

/// The sentence for a peer that speaks another protocol, naming both versions.
pub fn version_mismatch(peer_protocol: u32, peer_swarmnet: &str, peer_is: &str) -> ApiError {
    let peer = if peer_swarmnet.is_empty() {
        "an older swarmnet".to_string()
    } else {
        format!("swarmnet {peer_swarmnet}")
    };
    ApiError::FailedPrecondition(format!(
        "the {peer_is} runs {peer} (protocol {peer_protocol}) and this node runs swarmnet {} (protocol {PROTOCOL}): run the same swarmnet version on every node",
        env!("CARGO_PKG_VERSION")
    ))
}

/// A message whose body is read only once its protocol is known to match.
pub type RawEnvelope = Envelope<serde_json::Value>;

impl RawEnvelope {
    /// The body as `T`, or the refusal when the protocol differs.
    pub fn open<T: DeserializeOwned>(self, peer_is: &str) -> Result<T, ApiError> {
        if self.protocol != PROTOCOL {
            return Err(version_mismatch(self.protocol, &self.swarmnet, peer_is));
        }
        serde_json::from_value(self.body).map_err(|e| {
            ApiError::InvalidArgument(format!("a message from the {peer_is} is malformed: {e}"))
        })
    }
}

/// The longest message either side accepts (a peer list of thousands of nodes fits).
pub const MAX_MESSAGE: usize = 8 << 20;
/// The longest message from a caller without a node certificate: a CA fetch or a join.
pub const MAX_GUEST_MESSAGE: usize = 16 << 10;

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

/// Reads one JSON line of at most `MAX_MESSAGE` bytes; Ok(None) at end of stream.
pub async fn read_msg<R: AsyncBufRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> std::io::Result<Option<T>> {
    read_msg_within(r, MAX_MESSAGE).await
}

/// Reads one JSON line of at most `max` bytes; Ok(None) at end of stream.
/// The line grows with what arrives, and one over `max` is dropped unread.
pub async fn read_msg_within<R: AsyncBufRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<T>> {
    let mut line = String::new();
    let read = tokio::io::AsyncReadExt::take(&mut *r, max as u64)
        .read_line(&mut line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && read >= max {
        return Err(too_long(max));
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The error of a message over `max` bytes.
fn too_long(max: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a message is longer than {max} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_another_protocol_is_refused_naming_both_versions() {
        let ours: RawEnvelope = serde_json::from_value(
            serde_json::to_value(Envelope::new(ManagerRequest::Heartbeat)).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            ours.open::<ManagerRequest>("calling node"),
            Ok(ManagerRequest::Heartbeat)
        ));
        let newer: RawEnvelope = serde_json::from_value(serde_json::json!({
            "protocol": 2, "swarmnet": "0.9.0", "body": {"Something": "new"}
        }))
        .unwrap();
        let err = newer
            .open::<ManagerRequest>("calling node")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "the calling node runs swarmnet 0.9.0 (protocol 2) and this node runs swarmnet"
            ),
            "{err}"
        );
        assert!(
            err.ends_with("(protocol 1): run the same swarmnet version on every node"),
            "{err}"
        );
        let bare: RawEnvelope =
            serde_json::from_value(serde_json::json!({"body": "Heartbeat"})).unwrap();
        let err = bare
            .open::<ManagerRequest>("manager")
            .unwrap_err()
            .to_string();
        assert!(err.contains("an older swarmnet (protocol 0)"), "{err}");
    }

    async fn read_within(bytes: &[u8], max: usize) -> std::io::Result<Option<RawEnvelope>> {
        read_msg_within(&mut tokio::io::BufReader::new(bytes), max).await
    }

    #[tokio::test]
    async fn a_line_over_the_cap_is_refused_and_one_within_it_is_read() {
        let ca = serde_json::to_string(&Envelope::new(ManagerRequest::GetCa)).unwrap() + "\n";
        let msg = read_within(ca.as_bytes(), MAX_GUEST_MESSAGE).await.unwrap();
        assert!(matches!(
            msg.unwrap().open::<ManagerRequest>("calling node"),
            Ok(ManagerRequest::GetCa)
        ));
        let exact = read_within(ca.as_bytes(), ca.len()).await.unwrap();
        assert!(
            exact.is_some(),
            "a line of exactly the cap, newline included, fits"
        );
        let err = read_within(ca.as_bytes(), ca.len() - 1).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("a message is longer than {} bytes", ca.len() - 1)
        );
        let huge = vec![b'x'; MAX_GUEST_MESSAGE * 4];
        let err = read_within(&huge, MAX_GUEST_MESSAGE).await.unwrap_err();
        assert_eq!(err.to_string(), "a message is longer than 16384 bytes");
        assert!(read_within(b"", MAX_GUEST_MESSAGE).await.unwrap().is_none());
    }
}
