//! The node mesh: one userspace WireGuard interface per daemon, boringtun's
//! sans-IO `noise::Tunn` per peer inside our own packet loop, with the
//! WireGuard UAPI served so `wg show` reads it.

mod dataplane;
mod io;
mod offload;
mod peers;
mod tun;
mod uapi;
mod udp;

#[cfg(test)]
mod netns_test;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use anyhow::Context;
use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};

use dataplane::Shared;
use peers::diff_peers;

/// What the interface is made with.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Interface name, e.g. `swarmnet0`.
    pub name: String,
    /// This node's private key (never leaves the node).
    pub private_key: [u8; 32],
    /// UDP listen port (51820 by default).
    pub listen_port: u16,
    /// The node's tunnel address.
    pub address: Ipv4Addr,
    /// Prefix length of the mesh subnet (routes every node through the interface).
    pub prefix_len: u8,
    /// Interface MTU.
    pub mtu: u32,
}

/// One peer of the mesh, as the manager describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: [u8; 32],
    pub endpoint: SocketAddr,
    /// The peer's tunnel address; the allowed IP is this /32.
    pub tunnel_addr: Ipv4Addr,
    pub persistent_keepalive: Option<u16>,
}

/// Counters of one peer.
#[derive(Debug, Clone)]
pub struct PeerStats {
    pub public_key: [u8; 32],
    pub endpoint: Option<SocketAddr>,
    pub tunnel_addr: Ipv4Addr,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub last_handshake: Option<SystemTime>,
}

/// Counters of the interface.
#[derive(Debug, Clone, Default)]
pub struct DeviceStats {
    pub peers: Vec<PeerStats>,
    /// Packets dropped, by reason.
    pub dropped: Vec<(&'static str, u64)>,
}

/// A running WireGuard interface. Dropping it stops it, as `shutdown` does.
pub struct Device {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DeviceConfig {
    /// Checks the configuration before anything is created.
    fn validate(&self) -> anyhow::Result<()> {
        let name_ok = (1..16).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !self.name.starts_with('.');
        if !name_ok {
            anyhow::bail!(
                "interface name {:?} is invalid: use 1 to 15 letters, digits, '-', '_' or '.'",
                self.name
            );
        }
        if !(1..=32).contains(&self.prefix_len) {
            anyhow::bail!("prefix length /{} is invalid: use 1 to 32", self.prefix_len);
        }
        if !(576..=65535).contains(&self.mtu) {
            anyhow::bail!("MTU {} is invalid: use 576 to 65535", self.mtu);
        }
        Ok(())
    }
}

impl Device {
    /// Creates the TUN interface, configures it, and starts the packet loop and the UAPI socket.
    ///
    /// The interface, socket and netlink socket are made in the network
    /// namespace of the calling thread.
    pub async fn start(cfg: DeviceConfig) -> anyhow::Result<Device> {
        cfg.validate()?;
        let tun =
            tun::open(&cfg.name).with_context(|| format!("creating TUN interface {}", cfg.name))?;
        tun::configure(&cfg.name, cfg.address, cfg.prefix_len, cfg.mtu).await?;
        let udp = io::bind_udp(cfg.listen_port)
            .with_context(|| format!("binding UDP port {}", cfg.listen_port))?;
        let private = StaticSecret::from(cfg.private_key);
        let shared = Arc::new(Shared::new(private, cfg.mtu as usize, tun, udp)?);
        let socket = uapi::SocketFile::bind(&cfg.name)?;
        let mut device = Device {
            shared,
            threads: Vec::new(),
        };
        device.spawn("tun", dataplane::tun_to_udp)?;
        device.spawn("udp", dataplane::udp_to_tun)?;
        device.spawn("timers", dataplane::timers)?;
        device.spawn("uapi", move |sh| uapi::serve(sh, socket))?;
        Ok(device)
    }

    fn spawn(
        &mut self,
        role: &str,
        run: impl FnOnce(&Shared) + Send + 'static,
    ) -> anyhow::Result<()> {
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name(format!("wg-{role}"))
            .spawn(move || run(&shared))
            .with_context(|| format!("starting the WireGuard {role} thread"))?;
        self.threads.push(thread);
        Ok(())
    }

    /// Makes the peer set equal to `peers`, keeping the sessions of unchanged peers.
    pub fn set_peers(&self, peers: Vec<PeerConfig>) {
        let sh = &self.shared;
        let peers: Vec<PeerConfig> = peers
            .into_iter()
            .filter(|p| {
                let is_self = p.public_key == *sh.public.as_bytes();
                if is_self {
                    tracing::warn!("ignoring a WireGuard peer with this node's own public key");
                }
                !is_self
            })
            .collect();
        sh.update_table(|table| {
            let diff = diff_peers(table.configs(), &peers);
            if diff.is_empty() {
                return None;
            }
            tracing::info!(
                added = diff.added.len(),
                changed = diff.changed.len(),
                removed = diff.removed.len(),
                "updating WireGuard peers"
            );
            Some(table.apply(&diff, |cfg, index| {
                let key = PublicKey::from(cfg.public_key);
                Tunn::new(sh.private.clone(), key, None, None, index, None)
                    .map_err(|e| tracing::warn!(error = e, "refusing a WireGuard peer"))
                    .ok()
            }))
        });
    }

    /// Current counters.
    pub fn stats(&self) -> DeviceStats {
        DeviceStats {
            peers: self
                .shared
                .peer_stats()
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
            dropped: self.shared.drops.snapshot(),
        }
    }

    /// Stops the loop and removes the interface and its UAPI socket.
    pub async fn shutdown(self) {
        // Joining the threads blocks briefly; keep it off the runtime.
        if let Err(e) = tokio::task::spawn_blocking(move || drop(self)).await {
            tracing::warn!(error = %e, "stopping the WireGuard device");
        }
    }
}

impl Drop for Device {
    /// Wakes every loop, waits for them, then the last `Shared` reference
    /// closes the TUN fd (which deletes the interface); the UAPI thread has
    /// removed its socket file on exit.
    fn drop(&mut self) {
        self.shared.stop.fire();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::warn!("a WireGuard thread panicked");
            }
        }
    }
}
