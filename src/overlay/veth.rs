//! Veth pairs from a bridge to a container: made in the bridge's namespace,
//! one end enslaved to the bridge there, the other moved into the
//! container's namespace, renamed and configured. Serves the sandboxes'
//! `br0` (ends `ve-<endpoint>`) and the gateway bridge (`gw-<endpoint>`).

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{bail, Context};

use super::{prefix, Plug, BRIDGE};
use crate::netlink::netns;
use crate::netlink::{LinkWant, Ns};

/// The container end, as it should end up.
pub(super) struct Inner<'a> {
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// None leaves the kernel's random address.
    pub mac: Option<[u8; 6]>,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// A default route via this address.
    pub gateway: Option<Ipv4Addr>,
}

/// The names of the bridge end and, until it is renamed in the container,
/// of the container end.
pub(super) fn names(kind: &str, endpoint_id: &str) -> (String, String) {
    let id = prefix(endpoint_id, 8);
    (format!("{kind}-{id}"), format!("{}t-{id}", &kind[..1]))
}

pub(super) async fn plug(sandbox: &Path, plug: &Plug) -> anyhow::Result<()> {
    if !netns::is_namespace(sandbox) {
        bail!("network {} has no sandbox on this host", plug.network_id);
    }
    let side = Ns::open(sandbox).await?;
    let inner = Inner {
        netns: &plug.netns,
        ifname: &plug.ifname,
        mac: Some(plug.mac),
        ip: plug.ip,
        prefix_len: plug.prefix_len,
        mtu: plug.mtu,
        gateway: None,
    };
    connect(&side, BRIDGE, &names("ve", &plug.endpoint_id), &inner).await
}

pub(super) async fn unplug(sandbox: &Path, endpoint_id: &str) -> anyhow::Result<()> {
    if !netns::is_namespace(sandbox) {
        return Ok(());
    }
    let side = Ns::open(sandbox).await?;
    side.delete(&names("ve", endpoint_id).0).await.map(drop)
}

/// Makes the pair `(outer, temp)` in `side`, which holds `bridge`. Refuses
/// before touching anything if the container already has `inner.ifname`;
/// on a failure part-way, deletes the pair.
pub(super) async fn connect(
    side: &Ns,
    bridge: &str,
    (outer, temp): &(String, String),
    inner: &Inner<'_>,
) -> anyhow::Result<()> {
    let container = Ns::open(inner.netns).await?;
    for name in [inner.ifname, temp] {
        if container.index(name).await?.is_some() {
            bail!("{name} already exists in {}", container.name());
        }
    }
    if side.index(outer).await?.is_some() {
        bail!(
            "{outer} already exists in {}: the endpoint is plugged",
            side.name()
        );
    }
    let bridge = side.require(bridge).await?;
    side.add_veth(outer, temp, None, None).await?;
    let made = finish(side, bridge, (outer, temp), &container, inner).await;
    if made.is_err() {
        if let Err(e) = side.delete(outer).await {
            tracing::warn!("undoing a failed plug: {e:#}");
        }
    }
    made
}

async fn finish(
    side: &Ns,
    bridge: u32,
    (outer, temp): (&str, &str),
    container: &Ns,
    inner: &Inner<'_>,
) -> anyhow::Result<()> {
    let mtu = Some(inner.mtu);
    let index = side.require(outer).await?;
    let want = LinkWant {
        mtu,
        master: Some(bridge),
        up: true,
    };
    side.configure(index, outer, want).await?;

    let index = side.require(temp).await?;
    let want = LinkWant {
        mtu,
        master: None,
        up: false,
    };
    side.configure(index, temp, want).await?;
    side.move_to(index, temp, inner.netns).await?;

    let index = container.require(temp).await?;
    let mut rename = container.nl.link().set(index).name(inner.ifname.into());
    if let Some(mac) = inner.mac {
        rename = rename.address(mac.to_vec());
    }
    rename.execute().await.with_context(|| {
        format!(
            "cannot rename {temp} to {} in {}",
            inner.ifname,
            container.name()
        )
    })?;
    container
        .add_address(index, inner.ifname, inner.ip, inner.prefix_len)
        .await?;
    let want = LinkWant { up: true, ..want };
    container.configure(index, inner.ifname, want).await?;
    if let Some(gateway) = inner.gateway {
        container.add_default_route(gateway).await?;
    }
    Ok(())
}
