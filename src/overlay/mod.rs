//! The kernel side of the overlay driver: per network, a sandbox namespace
//! holding bridge `br0` and VXLAN `vxlan0`; veths from containers into it;
//! static FDB and neighbour entries for the remote endpoints; and the gateway
//! bridge that gives containers a way out through the host.

mod fdb;
mod gateway;
mod sandbox;
mod veth;

#[cfg(test)]
mod lab;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::netlink::{mac_text, Ns};

pub use crate::model::{GW_BRIDGE, VXLAN_PORT};
/// The sandbox's bridge.
const BRIDGE: &str = "br0";
/// The sandbox's VXLAN device.
const VXLAN: &str = "vxlan0";

/// One overlay network's sandbox on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub network_id: String,
    pub vni: u32,
    /// The address of `br0`.
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// The source address of the encapsulated packets (the host's tunnel address).
    pub local_vtep: Ipv4Addr,
}

impl SandboxSpec {
    /// The sandbox of `network` on this host: `mtu` inside the overlay (the
    /// network's own if it sets one), `vtep` this host's tunnel address.
    pub fn of(network: &crate::model::Network, mtu: u32, vtep: Ipv4Addr) -> SandboxSpec {
        SandboxSpec {
            network_id: network.id.clone(),
            vni: network.vni,
            gateway: network.gateway,
            prefix_len: network.subnet.prefix(),
            mtu: network.mtu.unwrap_or(mtu),
            local_vtep: vtep,
        }
    }
}

/// A container on another host, reached through the VXLAN tunnel endpoint of
/// that host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Ord, PartialOrd)]
pub struct RemoteEndpoint {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub vtep: Ipv4Addr,
}

/// A container interface on an overlay network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plug {
    pub network_id: String,
    pub endpoint_id: String,
    /// The container's network namespace (a pinned file or /proc/PID/ns/net).
    pub netns: PathBuf,
    pub ifname: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
}

/// A container interface on the gateway bridge, with the default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPlug {
    pub endpoint_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
}

/// Drives the kernel for every overlay network on this host. The methods
/// run in the caller's network namespace (the host's) and are serialized, so
/// a reconcile loop and a `container run` cannot interleave.
pub struct Overlay {
    sandbox_dir: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl Overlay {
    /// `sandbox_dir` holds the sandboxes' namespace files (/run/swarmnet/netns).
    pub fn new(sandbox_dir: PathBuf) -> Overlay {
        Overlay {
            sandbox_dir,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// `<sandbox_dir>/1-<first 10 characters of the network id>`, Docker's name.
    pub fn sandbox_path(&self, network_id: &str) -> PathBuf {
        self.sandbox_dir
            .join(format!("1-{}", prefix(network_id, 10)))
    }

    /// Makes (or repairs) the sandbox of `spec.network_id`; changes nothing
    /// when it is already as specified.
    pub async fn ensure_sandbox(&self, spec: &SandboxSpec) -> anyhow::Result<()> {
        check_id("network id", &spec.network_id)?;
        check_prefix(spec.prefix_len)?;
        check_mtu(spec.mtu)?;
        if !(1..=0xff_ffff).contains(&spec.vni) {
            bail!("VNI {} is out of range (1 to 16777215)", spec.vni);
        }
        let _serial = self.lock.lock().await;
        sandbox::ensure(spec, &self.sandbox_path(&spec.network_id))
            .await
            .with_context(|| format!("cannot set up network {}", spec.network_id))
    }

    /// Makes the static forwarding of the network's `vxlan0` equal to
    /// `remotes`. Returns (entries added or replaced, entries deleted).
    pub async fn set_remotes(
        &self,
        network_id: &str,
        remotes: &[RemoteEndpoint],
    ) -> anyhow::Result<(usize, usize)> {
        check_id("network id", network_id)?;
        let _serial = self.lock.lock().await;
        fdb::set_remotes(&self.sandbox_path(network_id), remotes)
            .await
            .with_context(|| format!("cannot program the remotes of network {network_id}"))
    }

    /// Connects a container to the network's bridge by a veth pair.
    pub async fn plug(&self, plug: &Plug) -> anyhow::Result<()> {
        check_id("network id", &plug.network_id)?;
        check_id("endpoint id", &plug.endpoint_id)?;
        check_ifname(&plug.ifname)?;
        check_prefix(plug.prefix_len)?;
        check_mtu(plug.mtu)?;
        if plug.mac[0] & 1 == 1 || plug.mac == [0; 6] {
            bail!("{} is not a unicast MAC address", mac_text(&plug.mac));
        }
        let _serial = self.lock.lock().await;
        veth::plug(&self.sandbox_path(&plug.network_id), plug)
            .await
            .with_context(|| {
                format!(
                    "cannot plug endpoint {} into network {}",
                    plug.endpoint_id, plug.network_id
                )
            })
    }

    /// Deletes the sandbox end of the endpoint's veth (the pair goes with
    /// it). Ok if absent.
    pub async fn unplug(&self, network_id: &str, endpoint_id: &str) -> anyhow::Result<()> {
        check_id("network id", network_id)?;
        check_id("endpoint id", endpoint_id)?;
        let _serial = self.lock.lock().await;
        veth::unplug(&self.sandbox_path(network_id), endpoint_id)
            .await
            .with_context(|| format!("cannot unplug endpoint {endpoint_id}"))
    }

    /// Unmounts and deletes the sandbox; its devices go with the namespace.
    /// Ok if absent.
    pub async fn remove_sandbox(&self, network_id: &str) -> anyhow::Result<()> {
        check_id("network id", network_id)?;
        let _serial = self.lock.lock().await;
        let path = self.sandbox_path(network_id);
        // The kernel tears a namespace down later, and until then its VXLAN
        // device keeps the VNI (and its socket in the host namespace): a
        // sandbox made again at once would find it taken. Delete it first.
        if crate::netlink::netns::is_namespace(&path) {
            Ns::open(&path).await?.delete(VXLAN).await?;
        }
        crate::netlink::netns::remove(&path)
    }

    /// The network-id prefixes (after "1-") of the sandboxes present.
    pub fn sandboxes(&self) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(&self.sandbox_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_prefix("1-").map(str::to_string)
            })
            .collect();
        found.sort();
        found
    }

    /// Makes bridge GW_BRIDGE in the host namespace with `gateway/prefix_len`
    /// as its only address, up.
    pub async fn ensure_gateway_bridge(
        &self,
        gateway: Ipv4Addr,
        prefix_len: u8,
    ) -> anyhow::Result<()> {
        check_prefix(prefix_len)?;
        let _serial = self.lock.lock().await;
        gateway::ensure_bridge(gateway, prefix_len).await
    }

    /// Connects a container to GW_BRIDGE and routes its default traffic
    /// through `plug.gateway`.
    pub async fn plug_gateway(&self, plug: &GatewayPlug) -> anyhow::Result<()> {
        check_id("endpoint id", &plug.endpoint_id)?;
        check_ifname(&plug.ifname)?;
        check_prefix(plug.prefix_len)?;
        check_mtu(plug.mtu)?;
        let _serial = self.lock.lock().await;
        gateway::plug(plug)
            .await
            .with_context(|| format!("cannot plug endpoint {} into {GW_BRIDGE}", plug.endpoint_id))
    }

    /// Deletes the host end of the endpoint's gateway veth. Ok if absent.
    pub async fn unplug_gateway(&self, endpoint_id: &str) -> anyhow::Result<()> {
        check_id("endpoint id", endpoint_id)?;
        let _serial = self.lock.lock().await;
        gateway::unplug(endpoint_id).await
    }
}

/// The first `len` characters of an id (ids are checked to be ASCII).
fn prefix(id: &str, len: usize) -> &str {
    &id[..id.len().min(len)]
}

/// Ids become parts of file and interface names.
fn check_id(what: &str, id: &str) -> anyhow::Result<()> {
    let fits = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if id.is_empty() || !id.bytes().all(fits) {
        bail!("{what} {id:?} must be ASCII letters, digits, '-' and '_'");
    }
    Ok(())
}

fn check_ifname(name: &str) -> anyhow::Result<()> {
    let bad = |b: u8| b == b'/' || b == b':' || b.is_ascii_whitespace() || !b.is_ascii_graphic();
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || name.bytes().any(bad) {
        bail!("{name:?} is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)");
    }
    Ok(())
}

fn check_prefix(prefix_len: u8) -> anyhow::Result<()> {
    if !(1..=32).contains(&prefix_len) {
        bail!("prefix length {prefix_len} is out of range (1 to 32)");
    }
    Ok(())
}

fn check_mtu(mtu: u32) -> anyhow::Result<()> {
    if !(68..=65535).contains(&mtu) {
        bail!("MTU {mtu} is out of range (68 to 65535)");
    }
    Ok(())
}
