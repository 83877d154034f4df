//! The steps of `swarm init` (make the cluster and stage this node's state as
//! its leader) and `swarm join` (check the manager's CA against the token,
//! then join with it).

use std::path::Path;

use boringtun::x25519::{PublicKey, StaticSecret};

use super::addrs::{parse_advertise, parse_listen, parse_pool, MESH_SUBNET};
use super::host::{local_ips, route_source};
use super::state::{self, NodeConfig, SwarmState};
use crate::manager::token::JoinToken;
use crate::manager::{ca, tls, InitParams, Manager};
use crate::model::{ApiError, NodeRole, SWARM_PORT};
use crate::proto::client::{resolve_manager, ManagerConn};
use crate::proto::{GetCa, JoinRequest};
use std::net::SocketAddr;

/// `swarm init`: makes the cluster and stages this node's state as its leader.
pub fn init(
    state_dir: &Path,
    advertise: &str,
    listen: Option<&str>,
    pool: (Option<&str>, Option<u8>),
    wg_port: u16,
) -> Result<SwarmState, ApiError> {
    let pool = parse_pool(pool)?;
    let advertise_addr = parse_advertise(advertise, &local_ips())?;
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
        Some(a) => parse_advertise(a, &local_ips())?,
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

fn wg_keypair() -> ([u8; 32], String) {
    let mut private = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut private);
    let secret = StaticSecret::from(private);
    let public = PublicKey::from(&secret);
    (secret.to_bytes(), hex::encode(public.as_bytes()))
}

/// This host's name, as the node calls itself.
pub(super) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
