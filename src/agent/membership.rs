//! Keeps this node in the swarm: heartbeats to the manager, and follows the
//! manager's watch stream to keep the WireGuard peers equal to the other nodes
//! and the overlay sandboxes equal to the endpoint table (`netagent`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::netagent::NetAgent;
use super::tasks::{TaskFeed, TaskSink};
use crate::dns::{Resolver, View};
use crate::mesh::{Device, DeviceConfig, DeviceStats, PeerConfig};
use crate::model::ApiError;
use crate::nft::balancer::Balancer;
use crate::nft::lb::LbView;
use crate::proto::client::ManagerConn;
use crate::proto::{Call, EngineLabels, Heartbeat, MeshPeer, Watch, WatchResponse};

const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// After the manager refused this node (removed from the swarm), ask again rarely.
const REFUSED_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Keeps NAT and conntrack state alive between nodes, as `wg` users set it.
const KEEPALIVE_SECS: u16 = 25;

/// How the agent reaches its manager.
#[derive(Clone)]
pub struct ManagerLink {
    pub node_id: String,
    pub addr: SocketAddr,
    pub tls: Arc<ClientConfig>,
}

impl ManagerLink {
    /// One typed call on a fresh connection (the leader's own daemon goes
    /// through its API too: one path for every node).
    pub async fn ask<C: Call>(&self, call: C) -> Result<C::Reply, ApiError> {
        ManagerConn::connect(self.addr, self.tls.clone())
            .await?
            .ask(call)
            .await
    }
}

/// What follows the watch besides the mesh and the sandboxes: the
/// containers' resolver and their VIP rules.
#[derive(Clone)]
pub struct Views {
    pub dns: Arc<Resolver>,
    pub lb: Arc<Balancer>,
}

impl Views {
    /// Until the manager is heard, a swarm name cannot be told from another.
    fn pending(&self) {
        self.dns.set_view(View::pending());
    }

    fn update(&self, update: &WatchResponse, node: &str) {
        self.dns.set_view(View::from_watch(update));
        self.lb.set_view(LbView::from_watch(update, node));
    }

    /// Out of the swarm: no swarm names, no VIPs.
    fn clear(&self) {
        self.dns.set_view(View::empty());
        self.lb.set_view(LbView::default());
    }
}

/// The running agent.
pub struct Agent {
    device: Arc<Device>,
    views: Views,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    pub async fn start(
        link: ManagerLink,
        wg: DeviceConfig,
        net: Arc<NetAgent>,
        tasks: TaskSink,
        views: Views,
        engine_labels: BTreeMap<String, String>,
    ) -> anyhow::Result<Agent> {
        let name = wg.name.clone();
        let device = Arc::new(
            Device::start(wg)
                .await
                .map_err(|e| anyhow::anyhow!("cannot start WireGuard interface {name}: {e:#}"))?,
        );
        views.pending();
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(heartbeat_loop(link.clone(), stop_rx.clone())),
            tokio::spawn(announce_labels(
                link.clone(),
                engine_labels,
                stop_rx.clone(),
            )),
            tokio::spawn(watch_loop(
                link,
                device.clone(),
                net,
                tasks,
                views.clone(),
                stop_rx,
            )),
        ];
        Ok(Agent {
            device,
            views,
            stop,
            tasks,
        })
    }

    pub fn stats(&self) -> DeviceStats {
        self.device.stats()
    }

    /// Stops the loops and removes the WireGuard interface; the swarm's
    /// names are no longer answered.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.views.clear();
        match Arc::try_unwrap(self.device) {
            Ok(device) => device.shutdown().await,
            Err(_) => tracing::warn!("WireGuard device still in use at shutdown"),
        }
    }
}

async fn connect(link: &ManagerLink, stop: &mut watch::Receiver<bool>) -> Option<ManagerConn> {
    loop {
        match ManagerConn::connect(link.addr, link.tls.clone()).await {
            Ok(conn) => return Some(conn),
            Err(e) => {
                tracing::debug!(manager = %link.addr, error = %e, "manager not reachable yet")
            }
        }
        tokio::select! {
            _ = stop.changed() => return None,
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

/// Tells the manager this daemon's engine labels, until it has heard them.
async fn announce_labels(
    link: ManagerLink,
    labels: BTreeMap<String, String>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let told = tokio::select! {
            _ = stop.changed() => return,
            told = link.ask(EngineLabels { labels: labels.clone() }) => told,
        };
        match told {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(manager = %link.addr, error = %e, "engine labels not told yet")
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

async fn heartbeat_loop(link: ManagerLink, mut stop: watch::Receiver<bool>) {
    while let Some(mut conn) = connect(&link, &mut stop).await {
        let mut pause = RETRY_AFTER;
        loop {
            let beat = tokio::select! {
                _ = stop.changed() => return,
                beat = conn.ask(Heartbeat) => beat,
            };
            if let Err(e) = beat {
                tracing::warn!(manager = %link.addr, error = %e, "heartbeat failed");
                if matches!(e, ApiError::PermissionDenied(_)) {
                    pause = REFUSED_RETRY_AFTER;
                }
                break;
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

async fn watch_loop(
    link: ManagerLink,
    device: Arc<Device>,
    net: Arc<NetAgent>,
    tasks: TaskSink,
    views: Views,
    mut stop: watch::Receiver<bool>,
) {
    let mut since = 0;
    while let Some(mut conn) = connect(&link, &mut stop).await {
        let mut pause = RETRY_AFTER;
        loop {
            let reply = tokio::select! {
                _ = stop.changed() => return,
                reply = conn.ask(Watch { since }) => reply,
            };
            match reply {
                Ok(update) => {
                    if update.revision != since {
                        let peers = peer_configs(&link.node_id, &update.peers);
                        tracing::info!(
                            revision = update.revision,
                            peers = peers.len(),
                            "mesh peers updated"
                        );
                        device.set_peers(peers);
                    }
                    since = update.revision;
                    // Names and VIPs first: a task leaves them before its node stops it.
                    views.update(&update, &link.node_id);
                    // Every answer, changed or not: repairs what was changed behind our back.
                    net.reconcile(&link, &update).await;
                    tasks.send_replace(Some(TaskFeed {
                        tasks: update.tasks,
                        networks: update.networks,
                        role: update.role,
                    }));
                }
                Err(ApiError::PermissionDenied(msg)) => {
                    tracing::warn!(manager = %link.addr, "{msg}");
                    device.set_peers(Vec::new());
                    since = 0;
                    pause = REFUSED_RETRY_AFTER;
                    break;
                }
                Err(e) => {
                    tracing::warn!(manager = %link.addr, error = %e, "watch failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// The WireGuard peers for the mesh as the manager sees it: every node but this one.
pub fn peer_configs(self_id: &str, peers: &[MeshPeer]) -> Vec<PeerConfig> {
    peers
        .iter()
        .filter(|p| p.node_id != self_id)
        .filter_map(|p| {
            let key: [u8; 32] = hex::decode(&p.wg_public_key).ok()?.try_into().ok()?;
            Some(PeerConfig {
                public_key: key,
                endpoint: p.endpoint,
                tunnel_addr: p.tunnel_addr,
                persistent_keepalive: Some(KEEPALIVE_SECS),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_every_other_node_with_a_valid_key() {
        let peer = |id: &str, key: String| MeshPeer {
            node_id: id.into(),
            wg_public_key: key,
            endpoint: "192.168.99.100:51820".parse().unwrap(),
            tunnel_addr: "100.64.0.1".parse().unwrap(),
        };
        let peers = vec![
            peer("me", "11".repeat(32)),
            peer("a", "22".repeat(32)),
            peer("bad", "zz".into()),
        ];
        let configs = peer_configs("me", &peers);
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].public_key, [0x22; 32]);
        assert_eq!(configs[0].persistent_keepalive, Some(KEEPALIVE_SECS));
    }
}
