//! The daemon's side of swarm membership: `swarm init`, `join` and `leave`,
//! starting the membership from its state, and calls that need the leader
//! (answered here on the leader, forwarded to it by other managers, refused
//! on workers).

use super::state::{self, SwarmState};
use super::swarm::Swarm;
use super::{enroll, Daemon, LEAVE_NOTICE_TIMEOUT};
use crate::manager::tls;
use crate::model::{ApiError, NodeRole};
use crate::proto::client::ManagerConn;
use crate::proto::{ClusterRequest, ManagerRequest, Reply};

/// What `swarm init` asks for.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub advertise_addr: String,
    pub listen_addr: Option<String>,
    pub default_addr_pool: Option<String>,
    pub default_addr_pool_mask_length: Option<u8>,
}

/// What `swarm join` asks for.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    pub token: String,
    pub remote: String,
    pub advertise_addr: Option<String>,
}

/// This node's place in its swarm, as `docker info` shows it.
#[derive(Debug, Clone)]
pub struct Membership {
    pub node_id: String,
    pub role: NodeRole,
    pub advertise_addr: std::net::SocketAddr,
    pub manager_addr: std::net::SocketAddr,
    pub tunnel_addr: std::net::Ipv4Addr,
}

impl Daemon {
    /// `swarm init`: returns the new node's ID.
    pub(super) async fn swarm_init(&self, opts: InitOptions) -> Result<String, ApiError> {
        let mut slot = self.swarm.lock().await;
        if slot.is_some() {
            return Err(ApiError::already_in_swarm());
        }
        let state = enroll::init(
            &self.state_dir,
            &opts.advertise_addr,
            opts.listen_addr.as_deref(),
            (
                opts.default_addr_pool.as_deref(),
                opts.default_addr_pool_mask_length,
            ),
            self.wg_port,
        )?;
        let started = self.start(state).await?;
        let node_id = started.state.config.node_id.clone();
        *slot = Some(started);
        Ok(node_id)
    }

    /// `swarm join`: returns the role the token gave.
    pub(super) async fn swarm_join(&self, opts: JoinOptions) -> Result<NodeRole, ApiError> {
        let mut slot = self.swarm.lock().await;
        if slot.is_some() {
            return Err(ApiError::already_in_swarm());
        }
        let state = enroll::join(
            &self.state_dir,
            &opts.token,
            &opts.remote,
            opts.advertise_addr.as_deref(),
            self.wg_port,
        )
        .await?;
        let role = state.config.role;
        *slot = Some(self.start(state).await?);
        Ok(role)
    }

    /// This node's membership, or None outside a swarm.
    pub(super) async fn membership(&self) -> Option<Membership> {
        let slot = self.swarm.lock().await;
        slot.as_ref().map(|s| Membership {
            node_id: s.state.config.node_id.clone(),
            role: s.state.config.role,
            advertise_addr: s.state.config.advertise_addr,
            manager_addr: s.state.config.manager_addr,
            tunnel_addr: s.state.config.tunnel_addr,
        })
    }

    pub(super) async fn start(&self, state: SwarmState) -> Result<Swarm, ApiError> {
        let started = Swarm::start(
            &self.state_dir,
            state,
            self.metrics.clone(),
            self.net.clone(),
        );
        match started.await {
            Ok(swarm) => Ok(swarm),
            Err(e) => {
                let _ = state::remove(&self.state_dir);
                Err(ApiError::Internal(format!("{e:#}")))
            }
        }
    }

    pub(super) async fn leave(&self, force: bool) -> Reply {
        let mut slot = self.swarm.lock().await;
        let Some(swarm) = slot.as_ref() else {
            return Err(ApiError::FailedPrecondition(
                "This node is not part of a swarm".into(),
            ));
        };
        if swarm.state.config.role == NodeRole::Manager && !force {
            return Err(ApiError::FailedPrecondition(
                "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.".into(),
            ));
        }
        // Its tasks stop first; the manager places them elsewhere.
        self.stop_all_tasks(Some(&swarm.net)).await;
        if swarm.manager.is_none() {
            let tls = tls::client_config(
                &swarm.state.ca_pem,
                &swarm.state.cert_pem,
                &swarm.state.key_pem,
            )
            .map_err(ApiError::internal)?;
            let told = async {
                ManagerConn::connect(swarm.state.config.manager_addr, tls)
                    .await?
                    .ask(crate::proto::Leave)
                    .await
            };
            // Docker leaves even when the manager is gone; do not wait long for it.
            match tokio::time::timeout(LEAVE_NOTICE_TIMEOUT, told).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not tell the manager this node is leaving")
                }
                Err(_) => tracing::warn!("the manager did not answer the leave notice in time"),
            }
        }
        let swarm = slot.take().expect("checked above");
        swarm.stop().await;
        // A watch answer may have fed the runner between the first stop and
        // the agent's end: whatever it started goes too.
        self.stop_all_tasks(None).await;
        // While a sandbox is left (containers still on its network), its VXLAN
        // socket listens: the rule that keeps the underlay out must stay.
        if self.net.overlay.sandboxes().is_empty() {
            if let Err(e) = crate::nft::firewall::remove() {
                tracing::warn!("{e:#}");
            }
        }
        state::remove(&self.state_dir).map_err(ApiError::internal)?;
        Ok(serde_json::Value::Null)
    }

    pub(super) async fn cluster(&self, call: ClusterRequest) -> Reply {
        let (state, manager) = {
            let slot = self.swarm.lock().await;
            let Some(swarm) = slot.as_ref() else {
                return Err(ApiError::not_in_swarm());
            };
            (swarm.state.clone(), swarm.manager.clone())
        };
        if state.config.role != NodeRole::Manager {
            return Err(ApiError::not_a_manager());
        }
        if let Some(manager) = manager {
            return manager.cluster_call(call, manager.self_id());
        }
        let tls = tls::client_config(&state.ca_pem, &state.cert_pem, &state.key_pem)
            .map_err(ApiError::internal)?;
        ManagerConn::connect(state.config.manager_addr, tls)
            .await?
            .call(&ManagerRequest::Cluster(Box::new(call)))
            .await
    }

    /// A manager-only call, its answer read as `T`.
    pub(super) async fn cluster_as<T: serde::de::DeserializeOwned>(
        &self,
        call: ClusterRequest,
    ) -> Result<T, ApiError> {
        let value = self.cluster(call).await?;
        serde_json::from_value(value).map_err(ApiError::internal)
    }
}

impl Daemon {
    /// This node's ID and how it calls other nodes, or the error outside a swarm.
    pub(super) async fn node_identity(
        &self,
    ) -> Result<(String, std::sync::Arc<rustls::ClientConfig>), ApiError> {
        let slot = self.swarm.lock().await;
        let swarm = slot.as_ref().ok_or_else(ApiError::not_in_swarm)?;
        Ok((
            swarm.state.config.node_id.clone(),
            swarm.net.peer_tls.clone(),
        ))
    }
}
