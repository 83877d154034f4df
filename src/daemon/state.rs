//! What a node keeps on disk about its swarm, under `<state dir>/swarm/`:
//! its identity and role, the cluster CA, its certificate and key, and its
//! WireGuard private key (which never leaves the node). Written to a temporary
//! directory and renamed into place, so a failed init or join leaves nothing.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::NodeRole;

const CONFIG: &str = "node.json";
const CA: &str = "ca.pem";
const CERT: &str = "node.pem";
const KEY: &str = "node-key.pem";
const WG_KEY: &str = "wg.key";

/// The node's place in its swarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    pub node_id: String,
    pub role: NodeRole,
    /// True on the manager that holds the store.
    pub leader: bool,
    /// The manager's API address agents call.
    pub manager_addr: SocketAddr,
    /// This node's underlay address other nodes reach it at.
    pub advertise_addr: SocketAddr,
    /// Where the manager API listens (leader only).
    pub listen_addr: SocketAddr,
    pub tunnel_addr: Ipv4Addr,
    pub mesh_prefix_len: u8,
    pub wg_port: u16,
}

/// Everything the node keeps about its swarm.
#[derive(Clone)]
pub struct SwarmState {
    pub config: NodeConfig,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub wg_private_key: [u8; 32],
}

/// Shows the node's place, never its keys.
impl std::fmt::Debug for SwarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The swarm directory under the state directory.
pub fn swarm_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("swarm")
}

impl SwarmState {
    /// Loads the state, or None when the node is not in a swarm.
    pub fn load(state_dir: &Path) -> anyhow::Result<Option<SwarmState>> {
        let dir = swarm_dir(state_dir);
        if !dir.join(CONFIG).exists() {
            return Ok(None);
        }
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.join(name).display()))
        };
        let config: NodeConfig = serde_json::from_str(&read(CONFIG)?)?;
        let wg = hex::decode(read(WG_KEY)?.trim())?;
        let wg_private_key: [u8; 32] = wg
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", dir.join(WG_KEY).display()))?;
        Ok(Some(SwarmState {
            config,
            ca_pem: read(CA)?,
            cert_pem: read(CERT)?,
            key_pem: read(KEY)?,
            wg_private_key,
        }))
    }

    /// Writes the state into `staging` (a fresh directory), to be committed with [`commit`].
    pub fn write_to(&self, staging: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(staging)?;
        let files = [
            (CONFIG, serde_json::to_string_pretty(&self.config)?),
            (CA, self.ca_pem.clone()),
            (CERT, self.cert_pem.clone()),
            (KEY, self.key_pem.clone()),
            (WG_KEY, hex::encode(self.wg_private_key)),
        ];
        for (name, content) in files {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(staging.join(name))?;
            std::io::Write::write_all(&mut file, content.as_bytes())?;
            file.sync_all()?;
        }
        Ok(())
    }
}

impl SwarmState {
    /// Rewrites the node's config in place (its role changed).
    pub fn save_config(&self, state_dir: &Path) -> anyhow::Result<()> {
        let path = swarm_dir(state_dir).join(CONFIG);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.config)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

/// A fresh staging directory for a new swarm state.
pub fn staging_dir(state_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = state_dir.join("swarm.new");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Moves a staged state into place.
pub fn commit(state_dir: &Path, staging: &Path) -> anyhow::Result<()> {
    std::fs::rename(staging, swarm_dir(state_dir))?;
    Ok(())
}

/// Forgets the swarm (on leave).
pub fn remove(state_dir: &Path) -> anyhow::Result<()> {
    let dir = swarm_dir(state_dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(SwarmState::load(dir.path()).unwrap().is_none());
        let state = SwarmState {
            config: NodeConfig {
                node_id: "n1".into(),
                role: NodeRole::Worker,
                leader: false,
                manager_addr: "192.168.99.100:2377".parse().unwrap(),
                advertise_addr: "192.168.99.101:2377".parse().unwrap(),
                listen_addr: "0.0.0.0:2377".parse().unwrap(),
                tunnel_addr: "100.64.0.2".parse().unwrap(),
                mesh_prefix_len: 16,
                wg_port: 51820,
            },
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "key".into(),
            wg_private_key: [7; 32],
        };
        let staging = staging_dir(dir.path()).unwrap();
        state.write_to(&staging).unwrap();
        commit(dir.path(), &staging).unwrap();
        let loaded = SwarmState::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.config.node_id, "n1");
        assert_eq!(loaded.wg_private_key, [7; 32]);
        let mode = std::fs::metadata(swarm_dir(dir.path()).join(WG_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        remove(dir.path()).unwrap();
        assert!(SwarmState::load(dir.path()).unwrap().is_none());
    }
}
