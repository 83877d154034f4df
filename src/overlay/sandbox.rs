//! The sandbox of one network: a namespace holding bridge `br0` (with the
//! gateway address) and `vxlan0`, which is made in the host namespace and
//! then moved in, so its UDP socket stays in the host and the encapsulated
//! packets follow the host's routes (the WireGuard mesh).

use std::path::Path;

use anyhow::Context;

use super::{prefix, SandboxSpec, BRIDGE, VXLAN, VXLAN_PORT};
use crate::netlink::netns;
use crate::netlink::{LinkWant, Ns, Vxlan};

/// Makes what is missing and fixes what differs; a sandbox already as
/// specified is left untouched.
pub(super) async fn ensure(spec: &SandboxSpec, path: &Path) -> anyhow::Result<()> {
    if !netns::is_namespace(path) {
        // A plain file here is what a crash between create and mount leaves.
        netns::remove(path)?;
        netns::create(path)?;
        netns::run_in(path, bypass_bridge_netfilter).await?;
    }
    let sandbox = Ns::open(path).await?;
    let bridge = sandbox.ensure_bridge(BRIDGE).await?;
    let want = LinkWant {
        mtu: Some(spec.mtu),
        master: None,
        up: true,
    };
    sandbox.configure(bridge, BRIDGE, want).await?;
    sandbox
        .ensure_address(bridge, BRIDGE, spec.gateway, spec.prefix_len)
        .await?;
    let vxlan = match sandbox.index(VXLAN).await? {
        Some(index) if carries(&sandbox, index, spec).await? => index,
        Some(_) => {
            // Another VNI or source address: made anew. Its FDB entries go
            // with it; the next set_remotes writes them again.
            sandbox.delete(VXLAN).await?;
            make_vxlan(spec, path, &sandbox).await?
        }
        None => make_vxlan(spec, path, &sandbox).await?,
    };
    let want = LinkWant {
        master: Some(bridge),
        ..want
    };
    sandbox.configure(vxlan, VXLAN, want).await
}

/// Frames crossing a sandbox's bridge skip iptables and nftables (when
/// br_netfilter is loaded, as Docker hosts have it): no rule lives there, and
/// conntrack on every frame would only cost.
fn bypass_bridge_netfilter() -> anyhow::Result<()> {
    for family in ["iptables", "ip6tables", "arptables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{family}");
        match std::fs::write(&path, "0") {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot write {path}"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// True when VXLAN device `index` has the spec's VNI and local address.
async fn carries(sandbox: &Ns, index: u32, spec: &SandboxSpec) -> anyhow::Result<bool> {
    let link = sandbox.link(index, VXLAN).await?;
    Ok(link.vxlan
        == Some(Vxlan {
            vni: spec.vni,
            local: Some(spec.local_vtep),
        }))
}

/// Creates the VXLAN device in the host namespace under a temporary name,
/// moves it into the sandbox and names it `vxlan0`; returns its index there.
async fn make_vxlan(spec: &SandboxSpec, path: &Path, sandbox: &Ns) -> anyhow::Result<u32> {
    let host = Ns::here().await?;
    let temp = format!("vx-{}", prefix(&spec.network_id, 10));
    // Left by an attempt that failed before the move.
    host.delete(&temp).await?;
    host.nl
        .link()
        .add()
        .vxlan(temp.clone(), spec.vni)
        .local(spec.local_vtep)
        .port(VXLAN_PORT)
        .learning(false)
        .proxy(true)
        // WireGuard's AEAD already guards every byte; an outer UDP checksum
        // would only cost CPU and keep the TUN from taking VXLAN super-packets.
        .udp_csum(false)
        .execute()
        .await
        .with_context(|| {
            format!(
                "cannot create VXLAN {temp} (VNI {}, local {}) in {}",
                spec.vni,
                spec.local_vtep,
                host.name()
            )
        })?;
    let moved = async {
        let index = host.require(&temp).await?;
        host.move_to(index, &temp, path).await?;
        let index = sandbox.require(&temp).await?;
        sandbox
            .nl
            .link()
            .set(index)
            .name(VXLAN.into())
            .execute()
            .await
            .with_context(|| format!("cannot rename {temp} to {VXLAN} in {}", sandbox.name()))?;
        anyhow::Ok(index)
    }
    .await;
    if moved.is_err() {
        for side in [&host, sandbox] {
            if let Err(e) = side.delete(&temp).await {
                tracing::warn!("undoing a failed sandbox setup: {e:#}");
            }
        }
    }
    moved
}
