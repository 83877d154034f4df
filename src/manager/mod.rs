//! The manager: the store, the cluster CA and join tokens, node admission and
//! liveness, and the API agents and other managers call over mutual TLS.

pub mod api;
pub mod ca;
mod endpoints;
#[cfg(test)]
pub mod fixture_test;
#[cfg(test)]
mod fuzz_test;
mod guard;
#[cfg(test)]
mod guest_test;
pub mod ipam;
pub mod join;
mod networks;
mod nodes;
mod orchestrator;
#[cfg(test)]
mod race_test;
pub mod scheduler;
mod services;
#[cfg(test)]
mod services_test;
pub mod store;
pub mod tls;
pub mod token;
mod vips;
mod watch;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{ApiError, Availability, Node, NodeRole, NodeView};
use crate::proto::{to_reply, ClusterRequest, NodeUpdate, SwarmView};
use ca::{Ca, NodeCert};
use store::{Cluster, RedbStore, Store, StoreHealth, Txn};
use token::JoinToken;

/// A node that has not heartbeaten for this long is Down.
pub const DOWN_AFTER: Duration = Duration::from_secs(5);
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

/// The manager service; shared by the TLS API and the local daemon. Each
/// decision is one store transaction (`Store::update`), never a process lock,
/// so the same code can run on several managers sharing a store.
pub struct Manager {
    store: Box<dyn Store>,
    ca: Ca,
    self_id: String,
    /// Liveness only, kept in memory: no decision is made under this lock.
    heartbeats: Mutex<HashMap<String, Instant>>,
    /// When this manager started: nodes get `DOWN_AFTER` to heartbeat first.
    started: Instant,
}

pub use crate::model::now_secs;

impl Manager {
    /// Creates the cluster (CA, tokens, this node as leader, the ingress
    /// network) in one transaction. Returns this node's certificate.
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
            down: false,
            created_at: now_secs(),
            labels: Default::default(),
            engine_labels: Default::default(),
            version: 0,
            updated_at: 0,
        };
        let cert = ca.issue(&node.id, NodeRole::Manager)?;
        let store: Box<dyn Store> = Box::new(RedbStore::open(&state_dir.join(STORE_FILE))?);
        let ingress = store.update(|tx| {
            tx.put_cluster(&cluster)?;
            tx.put_node(&node)?;
            networks::make_ingress(tx)
        })?;
        tracing::info!(network = %ingress.name, id = %ingress.id, subnet = %ingress.subnet, vni = ingress.vni, "network created");
        let manager = Manager::with(store, ca, params.node_id);
        manager.heartbeat(&node.id);
        Ok((manager, cert))
    }

    /// Opens the manager of an existing cluster from its store.
    pub fn open(state_dir: &Path, self_id: &str) -> anyhow::Result<Manager> {
        let store: Box<dyn Store> = Box::new(RedbStore::open(&state_dir.join(STORE_FILE))?);
        let cluster = store.read()?.cluster()?.ok_or_else(|| {
            anyhow::anyhow!("the store in {} holds no cluster", state_dir.display())
        })?;
        let ca = Ca::load(&cluster.ca_cert_pem, &cluster.ca_key_pem)?;
        let manager = Manager::with(store, ca, self_id.to_string());
        manager.heartbeat(self_id);
        Ok(manager)
    }

    fn with(store: Box<dyn Store>, ca: Ca, self_id: String) -> Manager {
        Manager {
            store,
            ca,
            self_id,
            heartbeats: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    pub fn self_id(&self) -> &str {
        &self.self_id
    }

    /// The node's role as the store has it (promote and demote change it;
    /// the certificate's stays as issued), or None when it is not a member.
    pub fn role_of(&self, id: &str) -> Result<Option<NodeRole>, ApiError> {
        let node = self.store.read()?.node(id)?;
        Ok(node.filter(|n| !n.left).map(|n| n.role))
    }

    /// Records a node's engine labels when they changed (its daemon restarted with other ones).
    pub fn set_engine_labels(
        &self,
        id: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let changed = self.store.update(|tx| {
            let Some(mut node) = tx.node(id)? else {
                return Ok(false);
            };
            if node.engine_labels == labels {
                return Ok(false);
            }
            node.engine_labels = labels.clone();
            tx.put_node(&node)?;
            Ok::<_, ApiError>(true)
        })?;
        if changed {
            tracing::info!(node = %id, ?labels, "engine labels recorded");
        }
        Ok(())
    }

    pub fn heartbeat(&self, id: &str) {
        self.heartbeats
            .lock()
            .expect("heartbeats lock")
            .insert(id.to_string(), Instant::now());
    }

    /// A node ran `swarm leave`: it stays listed as Down, and leaves the mesh.
    pub fn leave(&self, id: &str) -> Result<(), ApiError> {
        let left = self.store.update(|tx| {
            let Some(mut node) = tx.node(id)? else {
                return Ok(None);
            };
            node.left = true;
            endpoints::drop_node_endpoints(tx, id)?;
            tx.put_node(&node)?;
            Ok::<_, ApiError>(Some(node.hostname))
        })?;
        if let Some(hostname) = left {
            self.heartbeats.lock().expect("heartbeats lock").remove(id);
            tracing::info!(node = %id, hostname = %crate::model::escape(&hostname), "node left the swarm");
        }
        Ok(())
    }

    /// Every node with its live status.
    pub fn views(&self) -> Result<Vec<NodeView>, ApiError> {
        self.views_in(&self.store.read()?)
    }

    /// Every node of a transaction's snapshot with its live status, by hostname.
    pub(super) fn views_in(&self, tx: &Txn<'_>) -> Result<Vec<NodeView>, ApiError> {
        let beats = self.heartbeats.lock().expect("heartbeats lock").clone();
        let now = Instant::now();
        let mut views: Vec<NodeView> = tx
            .nodes()?
            .into_iter()
            .map(|n| {
                let last = beats.get(&n.id).copied();
                nodes::view(n, last, now)
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
            call => self.service_call(call),
        }
    }

    /// `node update`: the node's spec replaced, if the caller read its current version.
    fn node_update(&self, update: NodeUpdate) -> Result<String, ApiError> {
        let node = self.store.update(|tx| {
            let views = self.views_in(tx)?;
            let mut node = nodes::resolve(&views, &update.node)?.node.clone();
            let managers = views
                .iter()
                .filter(|v| v.node.role == NodeRole::Manager && !v.node.left)
                .count();
            nodes::apply_update(&mut node, &update, managers)?;
            node.updated_at = now_secs();
            tx.put_node(&node)?;
            Ok::<_, ApiError>(node)
        })?;
        tracing::info!(node = %node.id, hostname = %crate::model::escape(&node.hostname), availability = %node.availability, "node updated");
        Ok(update.node)
    }

    fn node_rm(&self, name: &str, force: bool) -> Result<serde_json::Value, ApiError> {
        let node = self.store.update(|tx| {
            let views = self.views_in(tx)?;
            let view = nodes::resolve(&views, name)?;
            nodes::check_removable(view, &self.self_id, force)?;
            endpoints::drop_node_endpoints(tx, &view.node.id)?;
            tx.remove_node(&view.node.id);
            Ok::<_, ApiError>(view.node.clone())
        })?;
        self.heartbeats
            .lock()
            .expect("heartbeats lock")
            .remove(&node.id);
        tracing::info!(node = %node.id, hostname = %crate::model::escape(&node.hostname), "node removed");
        Ok(serde_json::json!(node.id))
    }

    /// The swarm: its identity, tokens, pool and members, at one revision.
    fn swarm_view(&self) -> Result<SwarmView, ApiError> {
        let view = self.store.read()?;
        let cluster = cluster(&view)?;
        let views = self.views_in(&view)?;
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
        self.store.update(|tx| {
            let mut cluster = cluster(tx)?;
            if version != cluster.version {
                return Err(ApiError::InvalidArgument(format!(
                    "update out of sequence: the swarm is at version {}, not {version}; read it again and retry",
                    cluster.version
                )));
            }
            if !(worker || manager) {
                return Ok(());
            }
            let ca_der = ca::pem_to_der(&cluster.ca_cert_pem)
                .ok_or_else(|| ApiError::Internal("stored CA is not PEM".into()))?;
            if worker {
                cluster.worker_token = JoinToken::generate(&ca_der).to_string();
            }
            if manager {
                cluster.manager_token = JoinToken::generate(&ca_der).to_string();
            }
            cluster.updated_at = now_secs();
            tx.put_cluster(&cluster)?;
            Ok(())
        })?;
        if worker || manager {
            tracing::info!(worker, manager, "join tokens rotated");
        }
        self.swarm_view()
    }

    /// The store's I/O faults, for `info`, the metrics and the daemon (which
    /// exits when the store is fatal).
    pub fn store_health(&self) -> StoreHealth {
        self.store.health()
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

/// The cluster record of a transaction's snapshot.
fn cluster(tx: &Txn<'_>) -> Result<Cluster, ApiError> {
    tx.cluster()?
        .ok_or_else(|| ApiError::Internal("the store holds no cluster".into()))
}
