//! The manager: the store, the cluster CA and join tokens, node admission and
//! liveness, and the API agents and other managers call over mutual TLS.

pub mod api;
pub mod ca;
mod endpoints;
pub mod ipam;
mod networks;
mod nodes;
pub mod store;
pub mod tls;
pub mod token;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{ApiError, Availability, Node, NodeRole, NodeView};
use crate::proto::{
    to_reply, ClusterRequest, JoinRequest, JoinResponse, MeshPeer, NodeUpdate, SwarmView,
    WatchResponse,
};
use ca::{Ca, NodeCert};
use store::{Cluster, Store};
use token::JoinToken;

/// A node that has not heartbeaten for this long is Down.
pub const DOWN_AFTER: Duration = Duration::from_secs(5);
/// How long a watch waits for a change before answering with the same revision.
const WATCH_WAIT: Duration = Duration::from_secs(10);
/// The store file under the state directory.
pub const STORE_FILE: &str = "swarm.redb";

/// What `swarm init` needs to know about the first node.
pub struct InitParams {
    pub node_id: String,
    pub hostname: String,
    pub addr: IpAddr,
    pub wg_public_key: String,
    pub wg_port: u16,
    pub mesh_subnet: ipnetwork::Ipv4Network,
    pub pool: ipam::Pool,
}

/// The manager service; shared by the TLS API and the local daemon.
pub struct Manager {
    store: Store,
    ca: Ca,
    self_id: String,
    heartbeats: Mutex<HashMap<String, Instant>>,
    /// Held across check-then-write changes (names, addresses) so two cannot interleave.
    changes: Mutex<()>,
}

pub use crate::model::now_secs;

impl Manager {
    /// Creates the cluster: CA, tokens, and this node as leader. Returns this node's certificate.
    pub fn init(state_dir: &Path, params: InitParams) -> anyhow::Result<(Manager, NodeCert)> {
        let cluster_id = crate::model::random_id();
        let ca = Ca::generate(&cluster_id)?;
        let ca_der = ca::pem_to_der(ca.cert_pem()).expect("fresh CA is valid PEM");
        let cluster = Cluster {
            id: cluster_id,
            created_at: now_secs(),
            ca_cert_pem: ca.cert_pem().to_string(),
            ca_key_pem: ca.key_pem(),
            worker_token: JoinToken::generate(&ca_der).to_string(),
            manager_token: JoinToken::generate(&ca_der).to_string(),
            mesh_subnet: params.mesh_subnet,
            pool: params.pool,
            version: 0,
            updated_at: 0,
        };
        let tunnel_addr = nodes::free_tunnel_addr(params.mesh_subnet, &[]).ok_or_else(|| {
            anyhow::anyhow!("mesh subnet {} has no free address", params.mesh_subnet)
        })?;
        let node = Node {
            id: params.node_id.clone(),
            hostname: params.hostname,
            role: NodeRole::Manager,
            availability: Availability::Active,
            addr: params.addr,
            wg_public_key: params.wg_public_key,
            wg_port: params.wg_port,
            tunnel_addr,
            leader: true,
            left: false,
            created_at: now_secs(),
            labels: Default::default(),
            version: 0,
            updated_at: 0,
        };
        let cert = ca.issue(&node.id, NodeRole::Manager)?;
        let store = Store::open(&state_dir.join(STORE_FILE))?;
        store.put_cluster(&cluster)?;
        store.put_node(&node)?;
        let manager = Manager::with(store, ca, params.node_id);
        manager.heartbeat(&node.id);
        manager.make_ingress()?;
        Ok((manager, cert))
    }

    /// Opens the manager of an existing cluster from its store.
    pub fn open(state_dir: &Path, self_id: &str) -> anyhow::Result<Manager> {
        let store = Store::open(&state_dir.join(STORE_FILE))?;
        let cluster = store.cluster()?.ok_or_else(|| {
            anyhow::anyhow!("the store in {} holds no cluster", state_dir.display())
        })?;
        let ca = Ca::load(&cluster.ca_cert_pem, &cluster.ca_key_pem)?;
        let manager = Manager::with(store, ca, self_id.to_string());
        manager.heartbeat(self_id);
        Ok(manager)
    }

    fn with(store: Store, ca: Ca, self_id: String) -> Manager {
        Manager {
            store,
            ca,
            self_id,
            heartbeats: Mutex::new(HashMap::new()),
            changes: Mutex::new(()),
        }
    }

    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    pub fn self_id(&self) -> &str {
        &self.self_id
    }

    fn cluster(&self) -> Result<Cluster, ApiError> {
        self.store
            .cluster()
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::Internal("the store holds no cluster".into()))
    }

    /// True when the node is in the store (a removed node's certificate stops working).
    pub fn is_member(&self, id: &str) -> Result<bool, ApiError> {
        let node = self.store.node(id).map_err(ApiError::internal)?;
        Ok(node.is_some_and(|n| !n.left))
    }

    /// Admits a node with a join token; its role comes from the token it used.
    pub fn join(&self, req: JoinRequest) -> Result<JoinResponse, ApiError> {
        let token = JoinToken::parse(&req.token).map_err(ApiError::InvalidArgument)?;
        let cluster = self.cluster()?;
        let role = if req.token.trim() == cluster.manager_token {
            NodeRole::Manager
        } else if req.token.trim() == cluster.worker_token {
            NodeRole::Worker
        } else if !token.matches_ca(&ca::pem_to_der(&cluster.ca_cert_pem).unwrap_or_default()) {
            return Err(ApiError::PermissionDenied(
                "the join token is for another swarm: its CA digest does not match this swarm's CA"
                    .into(),
            ));
        } else {
            return Err(ApiError::PermissionDenied(
                "invalid join token: it was rotated or never issued; print the current one with \"swarmnet swarm join-token worker\" on a manager".into(),
            ));
        };
        check_hex_key(&req.wg_public_key)?;
        let _guard = self.changes.lock().expect("changes lock");
        let existing = self.store.nodes().map_err(ApiError::internal)?;
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
        let tunnel_addr = nodes::free_tunnel_addr(cluster.mesh_subnet, &used).ok_or_else(|| {
            ApiError::FailedPrecondition(format!(
                "the node mesh subnet {} is full; remove departed nodes with \"swarmnet node rm\"",
                cluster.mesh_subnet
            ))
        })?;
        let node = Node {
            id: crate::model::random_id(),
            hostname: req.hostname,
            role,
            availability: Availability::Active,
            addr: req.addr,
            wg_public_key: req.wg_public_key,
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
        self.store.put_node(&node).map_err(ApiError::internal)?;
        self.heartbeat(&node.id);
        tracing::info!(node = %node.id, hostname = %node.hostname, %role, "node joined");
        Ok(JoinResponse {
            node_id: node.id,
            role,
            cert_pem,
            tunnel_addr,
            mesh_prefix_len: cluster.mesh_subnet.prefix(),
        })
    }

    pub fn heartbeat(&self, id: &str) {
        self.heartbeats
            .lock()
            .expect("heartbeats lock")
            .insert(id.to_string(), Instant::now());
    }

    /// Waits until the store moves past `since` (or a while passes), then returns the mesh peers.
    pub async fn watch(&self, since: u64) -> Result<WatchResponse, ApiError> {
        let mut rx = self.store.subscribe();
        if *rx.borrow_and_update() <= since {
            let _ = tokio::time::timeout(WATCH_WAIT, rx.changed()).await;
        }
        let revision = self.store.revision();
        let peers = self
            .store
            .nodes()
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|n| !n.left)
            .map(|n| MeshPeer {
                endpoint: std::net::SocketAddr::new(n.addr, n.wg_port),
                node_id: n.id,
                wg_public_key: n.wg_public_key,
                tunnel_addr: n.tunnel_addr,
            })
            .collect();
        Ok(WatchResponse {
            revision,
            peers,
            networks: self.networks()?,
            endpoints: self.endpoints()?,
        })
    }

    /// A node ran `swarm leave`: it stays listed as Down, and leaves the mesh.
    pub fn leave(&self, id: &str) -> Result<(), ApiError> {
        let _guard = self.changes.lock().expect("changes lock");
        if let Some(mut node) = self.store.node(id).map_err(ApiError::internal)? {
            node.left = true;
            self.drop_node_endpoints(id)?;
            self.store.put_node(&node).map_err(ApiError::internal)?;
            self.heartbeats.lock().expect("heartbeats lock").remove(id);
            tracing::info!(node = %id, hostname = %node.hostname, "node left the swarm");
        }
        Ok(())
    }

    /// Every node with its live status.
    pub fn views(&self) -> Result<Vec<NodeView>, ApiError> {
        let beats = self.heartbeats.lock().expect("heartbeats lock").clone();
        let mut views: Vec<NodeView> = self
            .store
            .nodes()
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|n| {
                let last = beats.get(&n.id).copied();
                nodes::view(n, last, Instant::now())
            })
            .collect();
        views.sort_by(|a, b| {
            a.node
                .hostname
                .cmp(&b.node.hostname)
                .then(a.node.id.cmp(&b.node.id))
        });
        Ok(views)
    }

    /// Manager-only calls; `caller` is the node that asked (for the `*` in `node ls`).
    pub fn cluster_call(
        &self,
        req: ClusterRequest,
        caller: &str,
    ) -> Result<serde_json::Value, ApiError> {
        match req {
            ClusterRequest::NodeLs => {
                let views = self.views()?;
                Ok(serde_json::json!({ "self": caller, "nodes": views }))
            }
            ClusterRequest::NodeInspect { node } => {
                let views = self.views()?;
                to_reply(nodes::resolve(&views, &node)?)
            }
            ClusterRequest::NodeRm { node, force } => self.node_rm(&node, force),
            ClusterRequest::NodeUpdate(update) => to_reply(self.node_update(update)?),
            ClusterRequest::SwarmInspect => to_reply(self.swarm_view()?),
            ClusterRequest::SwarmUpdate {
                version,
                rotate_worker_token,
                rotate_manager_token,
            } => {
                to_reply(self.rotate_tokens(version, rotate_worker_token, rotate_manager_token)?)
            }
            ClusterRequest::NetworkCreate(spec) => to_reply(self.create_network(spec)?),
            ClusterRequest::NetworkLs => to_reply(self.networks()?),
            ClusterRequest::NetworkInspect { network } => to_reply(self.network_detail(&network)?),
            ClusterRequest::NetworkRm { network } => to_reply(self.remove_network(&network)?),
        }
    }

    /// `node update`: the node's spec replaced, if the caller read its current version.
    fn node_update(&self, update: NodeUpdate) -> Result<String, ApiError> {
        let _guard = self.changes.lock().expect("changes lock");
        let views = self.views()?;
        let mut node = nodes::resolve(&views, &update.node)?.node.clone();
        nodes::apply_update(&mut node, &update)?;
        node.updated_at = now_secs();
        self.store.put_node(&node).map_err(ApiError::internal)?;
        tracing::info!(node = %node.id, hostname = %node.hostname, availability = %node.availability, "node updated");
        Ok(update.node)
    }

    fn node_rm(&self, name: &str, force: bool) -> Result<serde_json::Value, ApiError> {
        let _guard = self.changes.lock().expect("changes lock");
        let views = self.views()?;
        let view = nodes::resolve(&views, name)?.clone();
        nodes::check_removable(&view, &self.self_id, force)?;
        self.drop_node_endpoints(&view.node.id)?;
        self.store
            .remove_node(&view.node.id)
            .map_err(ApiError::internal)?;
        self.heartbeats
            .lock()
            .expect("heartbeats lock")
            .remove(&view.node.id);
        tracing::info!(node = %view.node.id, hostname = %view.node.hostname, "node removed");
        Ok(serde_json::json!(view.node.id))
    }

    /// The swarm: its identity, tokens, pool and members.
    fn swarm_view(&self) -> Result<SwarmView, ApiError> {
        let cluster = self.cluster()?;
        let views = self.views()?;
        let managers: Vec<_> = views
            .iter()
            .filter(|v| v.node.role == NodeRole::Manager)
            .collect();
        Ok(SwarmView {
            id: cluster.id,
            created_at: cluster.created_at,
            updated_at: cluster.updated_at.max(cluster.created_at),
            version: cluster.version,
            worker_token: cluster.worker_token,
            manager_token: cluster.manager_token,
            default_addr_pool: cluster.pool.base.to_string(),
            subnet_size: cluster.pool.mask_len,
            nodes: views.len(),
            managers: managers.len(),
            manager_addrs: managers
                .iter()
                .map(|v| {
                    (
                        v.node.id.clone(),
                        std::net::SocketAddr::new(v.node.addr, crate::model::SWARM_PORT),
                    )
                })
                .collect(),
        })
    }

    /// `swarm update --rotate...`: fresh tokens, if the caller read the current version.
    fn rotate_tokens(
        &self,
        version: u64,
        worker: bool,
        manager: bool,
    ) -> Result<SwarmView, ApiError> {
        let _guard = self.changes.lock().expect("changes lock");
        let mut cluster = self.cluster()?;
        if version != cluster.version {
            return Err(ApiError::InvalidArgument(format!(
                "update out of sequence: the swarm is at version {}, not {version}; read it again and retry",
                cluster.version
            )));
        }
        if worker || manager {
            let ca_der = ca::pem_to_der(&cluster.ca_cert_pem)
                .ok_or_else(|| ApiError::Internal("stored CA is not PEM".into()))?;
            if worker {
                cluster.worker_token = JoinToken::generate(&ca_der).to_string();
            }
            if manager {
                cluster.manager_token = JoinToken::generate(&ca_der).to_string();
            }
            cluster.updated_at = now_secs();
            self.store
                .put_cluster(&cluster)
                .map_err(ApiError::internal)?;
            tracing::info!(worker, manager, "join tokens rotated");
        }
        drop(_guard);
        self.swarm_view()
    }

    /// Nodes by status, for metrics.
    pub fn status_counts(&self) -> Vec<(String, u64)> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for view in self.views().unwrap_or_default() {
            *counts
                .entry(view.state.to_string().to_lowercase())
                .or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort();
        counts
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
