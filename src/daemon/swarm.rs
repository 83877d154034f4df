//! A node's membership in a swarm, running: the manager API (on the leader)
//! and the agent; and the steps of `swarm init`, `swarm join` and `swarm leave`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use boringtun::x25519::{PublicKey, StaticSecret};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::state::{self, NodeConfig, SwarmState};
use crate::agent::membership::{Agent, ManagerLink};
use crate::agent::netagent::{LocalSource, NetAgent, VXLAN_OVERHEAD};
use crate::manager::ipam::overlaps;
use crate::manager::ipam::Pool;
use crate::manager::token::JoinToken;
use crate::manager::{api, ca, tls, InitParams, Manager};
use crate::mesh::DeviceConfig;
use crate::model::GW_BRIDGE;
use crate::model::{ApiError, NodeRole, SWARM_PORT};
use crate::nft::firewall::{self, HostRules};
use crate::overlay::Overlay;
use crate::proto::client::{resolve_manager, ManagerConn};
use crate::proto::{GetCa, JoinRequest};
use ipnetwork::Ipv4Network;

/// The name of the mesh interface.
pub const WG_IFACE: &str = "swarmnet0";
/// The node mesh's subnet (RFC 6598 shared space, kept apart from the overlay pool 10.0.0.0/8).
pub const MESH_SUBNET: &str = "100.64.0.0/16";
/// WireGuard's overhead on IPv4: 20 (IP) + 8 (UDP) + 32 (WireGuard), rounded up as wg-quick does for IPv6 underlays.
const WG_OVERHEAD: u32 = 80;

/// The gateway bridge's subnet: the one the bridge already has (after a
/// restart), else the first of 172.18.0.0/16 … 172.31.0.0/16 that no
/// interface of this host is on, as Docker picks docker_gwbridge's (which
/// usually takes 172.18.0.0/16: on a host with Docker, ours takes the next).
fn pick_gateway_subnet(addresses: &[(String, Ipv4Network)]) -> Ipv4Network {
    if let Some((_, net)) = addresses.iter().find(|(name, _)| name == GW_BRIDGE) {
        return Ipv4Network::new(net.network(), net.prefix()).expect("a valid prefix");
    }
    let candidates = (18..=31).map(|x| Ipv4Network::new([172, x, 0, 0].into(), 16).expect("/16"));
    let mut free = candidates
        .clone()
        .filter(|c| !addresses.iter().any(|(_, net)| overlaps(*c, *net)));
    free.next()
        .unwrap_or_else(|| candidates.into_iter().next().expect("a candidate"))
}

/// This host's IPv4 interface addresses with their subnets.
fn host_addresses() -> Vec<(String, Ipv4Network)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            let mask = a.netmask?.as_sockaddr_in()?.ip();
            let net = Ipv4Network::with_netmask(ip, mask).ok()?;
            Some((a.interface_name, net))
        })
        .collect()
}

/// What the swarm's agent shares with the daemon's containers.
#[derive(Clone)]
pub struct NetDeps {
    pub overlay: Arc<Overlay>,
    pub lock: Arc<tokio::sync::Mutex<()>>,
    pub local: LocalSource,
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
}

/// A running swarm membership.
pub struct Swarm {
    pub state: SwarmState,
    pub manager: Option<Arc<Manager>>,
    api_stop: Option<watch::Sender<bool>>,
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
        let host_mtu = underlay_mtu(cfg.advertise_addr.ip());
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
            gw_subnet: pick_gateway_subnet(&host_addresses()),
        };
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
        let started = match firewall::apply(&rules) {
            Ok(()) => Agent::start(link, wg, net_agent).await,
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
            agent,
            net,
        })
    }

    /// Stops the manager API and the agent (the WireGuard interface goes away).
    pub async fn stop(self) {
        if let Some(stop) = self.api_stop {
            let _ = stop.send(true);
        }
        self.agent.stop().await;
    }
}

/// `swarm init`: makes the cluster and stages this node's state as its leader.
pub fn init(
    state_dir: &Path,
    advertise: &str,
    listen: Option<&str>,
    pool: (Option<&str>, Option<u8>),
    wg_port: u16,
) -> Result<SwarmState, ApiError> {
    let pool = parse_pool(pool)?;
    let advertise_addr = parse_advertise(advertise)?;
    let listen_addr = match listen {
        Some(l) => parse_listen(l)?,
        None => SocketAddr::new([0, 0, 0, 0].into(), advertise_addr.port()),
    };
    let (wg_private_key, wg_public) = wg_keypair();
    let node_id = crate::model::random_id();
    let staging = state::staging_dir(state_dir).map_err(ApiError::internal)?;
    let made = (|| {
        let (manager, cert) = Manager::init(
            &staging,
            InitParams {
                node_id: node_id.clone(),
                hostname: hostname(),
                addr: advertise_addr.ip(),
                wg_public_key: wg_public,
                wg_port,
                mesh_subnet: MESH_SUBNET.parse().expect("constant subnet"),
                pool,
            },
        )?;
        let tunnel_addr = manager
            .views()?
            .into_iter()
            .find(|v| v.node.id == node_id)
            .map(|v| v.node.tunnel_addr)
            .ok_or_else(|| anyhow::anyhow!("the new node is missing from the store"))?;
        let state = SwarmState {
            config: NodeConfig {
                node_id: node_id.clone(),
                role: NodeRole::Manager,
                leader: true,
                manager_addr: advertise_addr,
                advertise_addr,
                listen_addr,
                tunnel_addr,
                mesh_prefix_len: MESH_SUBNET.parse::<ipnetwork::Ipv4Network>()?.prefix(),
                wg_port,
            },
            ca_pem: manager.ca_pem().to_string(),
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
            wg_private_key,
        };
        drop(manager);
        state.write_to(&staging)?;
        state::commit(state_dir, &staging)?;
        anyhow::Ok(state)
    })();
    made.map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        ApiError::Internal(format!("swarm init failed: {e:#}"))
    })
}

/// `swarm join`: checks the manager's CA against the token, then joins with the token.
pub async fn join(
    state_dir: &Path,
    token: &str,
    remote: &str,
    advertise: Option<&str>,
    wg_port: u16,
) -> Result<SwarmState, ApiError> {
    let parsed = JoinToken::parse(token).map_err(ApiError::InvalidArgument)?;
    let manager_addr = resolve_manager(remote).await?;
    let advertise_addr = match advertise {
        Some(a) => parse_advertise(a)?,
        None => SocketAddr::new(route_source(manager_addr)?, SWARM_PORT),
    };
    let mut probe = ManagerConn::connect(manager_addr, tls::ca_fetch_client_config()).await?;
    let ca_pem = probe.ask(GetCa).await?;
    let ca_der = ca::pem_to_der(&ca_pem).ok_or_else(|| {
        ApiError::Internal(format!(
            "the manager at {manager_addr} sent no CA certificate"
        ))
    })?;
    if !parsed.matches_ca(&ca_der) {
        return Err(ApiError::PermissionDenied(format!(
            "the join token is not for the swarm at {manager_addr}: its CA digest does not match that manager's CA certificate; use a token printed by \"swarmnet swarm join-token\" on that manager"
        )));
    }
    let (csr_pem, key_pem) = ca::new_csr().map_err(ApiError::internal)?;
    let (wg_private_key, wg_public) = wg_keypair();
    let joining = tls::joining_client_config(&ca_pem).map_err(ApiError::internal)?;
    let mut conn = ManagerConn::connect(manager_addr, joining).await?;
    let joined = conn
        .ask(JoinRequest {
            token: token.trim().to_string(),
            csr_pem,
            hostname: hostname(),
            addr: advertise_addr.ip(),
            wg_public_key: wg_public,
            wg_port,
        })
        .await?;
    let state = SwarmState {
        config: NodeConfig {
            node_id: joined.node_id,
            role: joined.role,
            leader: false,
            manager_addr,
            advertise_addr,
            listen_addr: SocketAddr::new([0, 0, 0, 0].into(), advertise_addr.port()),
            tunnel_addr: joined.tunnel_addr,
            mesh_prefix_len: joined.mesh_prefix_len,
            wg_port,
        },
        ca_pem,
        cert_pem: joined.cert_pem,
        key_pem,
        wg_private_key,
    };
    let staging = state::staging_dir(state_dir).map_err(ApiError::internal)?;
    if let Err(e) = state
        .write_to(&staging)
        .and_then(|_| state::commit(state_dir, &staging))
    {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(ApiError::Internal(format!(
            "cannot save the swarm state: {e:#}"
        )));
    }
    Ok(state)
}

/// `--default-addr-pool CIDR --default-addr-pool-mask-length N` (10.0.0.0/8 and 24 by default).
fn parse_pool((base, mask_len): (Option<&str>, Option<u8>)) -> Result<Pool, ApiError> {
    let default = Pool::default();
    let base = match base {
        None => default.base,
        Some(b) => {
            let net: ipnetwork::Ipv4Network = b.parse().map_err(|_| {
                ApiError::InvalidArgument(format!(
                    "invalid --default-addr-pool {b:?}: give an IPv4 CIDR such as 10.0.0.0/8"
                ))
            })?;
            if net.network() != net.ip() {
                return Err(ApiError::InvalidArgument(format!(
                    "--default-addr-pool {b} has host bits set: use {}/{}",
                    net.network(),
                    net.prefix()
                )));
            }
            net
        }
    };
    let pool = Pool::new(base, mask_len.unwrap_or(default.mask_len))?;
    let mesh: ipnetwork::Ipv4Network = MESH_SUBNET.parse().expect("constant subnet");
    if crate::manager::ipam::overlaps(pool.base, mesh) {
        return Err(ApiError::InvalidArgument(format!(
            "--default-addr-pool {} overlaps the node mesh subnet {mesh}; choose another pool",
            pool.base
        )));
    }
    Ok(pool)
}

fn wg_keypair() -> ([u8; 32], String) {
    let mut private = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut private);
    let secret = StaticSecret::from(private);
    let public = PublicKey::from(&secret);
    (secret.to_bytes(), hex::encode(public.as_bytes()))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Parses `IP[:PORT]` (port 2377 by default) and checks the IP belongs to this host.
pub fn parse_advertise(s: &str) -> Result<SocketAddr, ApiError> {
    let addr = parse_addr_port(s).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "invalid advertise address {s:?}: give an IP address of this host, optionally with a port, e.g. 192.168.99.100:2377"
        ))
    })?;
    let local = local_ips();
    if addr.ip().is_unspecified() || !local.contains(&addr.ip()) {
        let choices: Vec<String> = local
            .iter()
            .filter(|ip| !ip.is_loopback())
            .map(|ip| ip.to_string())
            .collect();
        return Err(ApiError::InvalidArgument(format!(
            "advertise address {} is not an address of this host; use one of: {}",
            addr.ip(),
            if choices.is_empty() {
                "(none)".to_string()
            } else {
                choices.join(", ")
            }
        )));
    }
    Ok(addr)
}

fn parse_listen(s: &str) -> Result<SocketAddr, ApiError> {
    parse_addr_port(s).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "invalid listen address {s:?}: give IP[:PORT], e.g. 0.0.0.0:2377"
        ))
    })
}

fn parse_addr_port(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, SWARM_PORT))
    })
}

fn local_ips() -> Vec<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .map(|addrs| {
            addrs
                .filter_map(|a| a.address)
                .filter_map(|a| {
                    a.as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The local address the kernel would use to reach `dest` (nothing is sent).
fn route_source(dest: SocketAddr) -> Result<IpAddr, ApiError> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(ApiError::internal)?;
    socket.connect(dest).map_err(|e| {
        ApiError::Unavailable(format!(
            "could not reach the manager at {dest}: {e}; check the address, or give --advertise-addr"
        ))
    })?;
    Ok(socket.local_addr().map_err(ApiError::internal)?.ip())
}

/// The MTU of the interface holding `ip`, or 1500.
fn underlay_mtu(ip: IpAddr) -> u32 {
    let iface = nix::ifaddrs::getifaddrs().ok().and_then(|mut addrs| {
        addrs.find_map(|a| {
            let matches = a
                .address
                .and_then(|s| s.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())))
                == Some(ip);
            matches.then_some(a.interface_name)
        })
    });
    iface
        .and_then(|name| std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok())
        .and_then(|mtu| mtu.trim().parse().ok())
        .unwrap_or(1500)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, cidr: &str) -> (String, Ipv4Network) {
        (name.into(), cidr.parse().unwrap())
    }

    #[test]
    fn the_gateway_subnet_keeps_its_own_or_avoids_the_hosts() {
        let fresh = [net("eth0", "192.168.99.100/24")];
        assert_eq!(pick_gateway_subnet(&fresh).to_string(), "172.18.0.0/16");
        let with_docker = [
            net("docker0", "172.17.0.1/16"),
            net("docker_gwbridge", "172.18.0.1/16"),
        ];
        assert_eq!(
            pick_gateway_subnet(&with_docker).to_string(),
            "172.19.0.0/16"
        );
        let restarted = [
            net("docker_gwbridge", "172.18.0.1/16"),
            net(GW_BRIDGE, "172.20.0.1/16"),
        ];
        assert_eq!(pick_gateway_subnet(&restarted).to_string(), "172.20.0.0/16");
    }
}
