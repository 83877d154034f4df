//! A node's membership in a swarm, running: the manager API (on the leader)
//! and the agent, started from the state on disk and stopped on leave or
//! shutdown. The steps of init and join are in `enroll`.

use std::path::Path;
use std::sync::Arc;

use ipnetwork::Ipv4Network;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::addrs::pick_gateway_subnet;
use super::containers::Containers;
use super::host;
use super::metrics::Metrics;
use super::peers;
use super::state::{self, SwarmState};
use crate::agent::membership::{Agent, ManagerLink, Views};
use crate::agent::netagent::{LocalSource, NetAgent, VXLAN_OVERHEAD};
use crate::agent::tasks::TaskSink;
use crate::dns::Resolver;
use crate::manager::{api, tls, Manager};
use crate::mesh::DeviceConfig;
use crate::model::GW_BRIDGE;
use crate::nft::balancer::Balancer;
use crate::nft::firewall::{self, HostRules};
use crate::overlay::Overlay;

/// The name of the mesh interface.
pub const WG_IFACE: &str = "swarmnet0";
/// WireGuard's overhead on IPv4: 20 (IP) + 8 (UDP) + 32 (WireGuard), rounded up as wg-quick does for IPv6 underlays.
const WG_OVERHEAD: u32 = 80;

/// What the swarm's agent shares with the daemon's containers.
#[derive(Clone)]
pub struct NetDeps {
    pub overlay: Arc<Overlay>,
    pub lock: Arc<tokio::sync::Mutex<()>>,
    pub local: LocalSource,
    /// Where the agent hands this node's tasks to the daemon's runner.
    pub tasks: TaskSink,
    /// Whose task logs other nodes may read.
    pub containers: Arc<Containers>,
    /// The daemon's `--label`s, told to the manager at start.
    pub engine_labels: std::collections::BTreeMap<String, String>,
    /// The containers' resolver and VIP rules, whose views the agent keeps current.
    pub resolver: Arc<Resolver>,
    pub balancer: Arc<Balancer>,
}

/// What attaching a container to a network needs from the swarm.
#[derive(Clone)]
pub struct NetCtx {
    pub link: ManagerLink,
    /// The MTU inside the overlay unless a network sets its own.
    pub mtu: u32,
    /// This node's VXLAN endpoint: its tunnel address.
    pub vtep: std::net::Ipv4Addr,
    /// The underlay's MTU, for the gateway bridge.
    pub underlay_mtu: u32,
    /// The gateway bridge's subnet; the bridge has its first address.
    pub gw_subnet: Ipv4Network,
    /// How this node calls other nodes (task logs).
    pub peer_tls: Arc<rustls::ClientConfig>,
}

/// A running swarm membership.
pub struct Swarm {
    pub state: SwarmState,
    pub manager: Option<Arc<Manager>>,
    api_stop: Option<watch::Sender<bool>>,
    peer_stop: watch::Sender<bool>,
    pub agent: Agent,
    pub net: NetCtx,
}

impl Swarm {
    /// Starts the manager API (leader) and the agent from the state on disk.
    pub async fn start(
        state_dir: &Path,
        state: SwarmState,
        metrics: Arc<Metrics>,
        deps: NetDeps,
    ) -> anyhow::Result<Swarm> {
        let cfg = &state.config;
        let mut manager = None;
        let mut api_stop = None;
        if cfg.leader {
            let m = Arc::new(Manager::open(&state::swarm_dir(state_dir), &cfg.node_id)?);
            let listener = TcpListener::bind(cfg.listen_addr).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen for the manager API on {}: {e}",
                    cfg.listen_addr
                )
            })?;
            let server = tls::server_config(&state.ca_pem, &state.cert_pem, &state.key_pem)?;
            let (stop_tx, stop_rx) = watch::channel(false);
            tokio::spawn(m.clone().run_scheduler(stop_rx.clone()));
            tokio::spawn(api::serve(
                listener,
                server.into(),
                m.clone(),
                metrics.manager.clone(),
                stop_rx,
            ));
            tracing::info!(addr = %cfg.listen_addr, "manager API listening");
            manager = Some(m);
            api_stop = Some(stop_tx);
        }
        let link = ManagerLink {
            node_id: cfg.node_id.clone(),
            addr: cfg.manager_addr,
            tls: tls::client_config(&state.ca_pem, &state.cert_pem, &state.key_pem)?,
        };
        let host_mtu = host::underlay_mtu(cfg.advertise_addr.ip());
        let mesh_mtu = host_mtu.saturating_sub(WG_OVERHEAD);
        let wg = DeviceConfig {
            name: WG_IFACE.to_string(),
            private_key: state.wg_private_key,
            listen_port: cfg.wg_port,
            address: cfg.tunnel_addr,
            prefix_len: cfg.mesh_prefix_len,
            mtu: mesh_mtu,
        };
        let net = NetCtx {
            link: link.clone(),
            mtu: mesh_mtu.saturating_sub(VXLAN_OVERHEAD),
            vtep: cfg.tunnel_addr,
            underlay_mtu: host_mtu,
            gw_subnet: pick_gateway_subnet(&host::host_addresses()),
            peer_tls: tls::peer_client_config(&state.ca_pem, &state.cert_pem, &state.key_pem)?,
        };
        let peer_tls = tls::peer_server_config(&state.ca_pem, &state.cert_pem, &state.key_pem)?;
        let net_agent = Arc::new(NetAgent {
            overlay: deps.overlay,
            lock: deps.lock,
            local: deps.local,
            vtep: cfg.tunnel_addr,
            mtu: net.mtu,
        });
        let rules = HostRules {
            mesh_iface: WG_IFACE.to_string(),
            gw_bridge: GW_BRIDGE.to_string(),
            gw_subnet: net.gw_subnet,
        };
        let (peer_stop, peer_stop_rx) = watch::channel(false);
        let started = match firewall::apply(&rules) {
            Ok(()) => match Agent::start(
                link,
                wg,
                net_agent,
                deps.tasks,
                Views {
                    dns: deps.resolver,
                    lb: deps.balancer,
                },
                deps.engine_labels,
            )
            .await
            {
                Ok(agent) => {
                    serve_peers(cfg.tunnel_addr, peer_tls, deps.containers, peer_stop_rx).await;
                    Ok(agent)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let agent = match started {
            Ok(agent) => agent,
            Err(e) => {
                if let Some(stop) = api_stop {
                    let _ = stop.send(true);
                }
                return Err(e);
            }
        };
        tracing::info!(node = %cfg.node_id, role = %cfg.role, tunnel = %cfg.tunnel_addr, "swarm membership running");
        Ok(Swarm {
            state,
            manager,
            api_stop,
            peer_stop,
            agent,
            net,
        })
    }

    /// Stops the manager API and the agent (the WireGuard interface goes away).
    pub async fn stop(self) {
        if let Some(stop) = self.api_stop {
            let _ = stop.send(true);
        }
        let _ = self.peer_stop.send(true);
        self.agent.stop().await;
    }
}

/// Serves node-to-node calls on the mesh address; without them `service
/// logs` misses this node's tasks, which is logged, not fatal.
async fn serve_peers(
    addr: std::net::Ipv4Addr,
    tls: Arc<rustls::ServerConfig>,
    containers: Arc<Containers>,
    stop: watch::Receiver<bool>,
) {
    match TcpListener::bind((addr, peers::PEER_PORT)).await {
        Ok(listener) => {
            tokio::spawn(peers::serve(listener, tls.into(), containers, stop));
        }
        Err(e) => tracing::warn!(
            "cannot serve node-to-node calls on {addr}:{}: {e}; service logs will miss this node's tasks",
            peers::PEER_PORT
        ),
    }
}
