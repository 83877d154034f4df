//! The gateway bridge: GW_BRIDGE in the host namespace, and the veths that
//! give containers their default route through it (Docker's
//! `docker_gwbridge`).

use std::net::Ipv4Addr;

use super::veth::{self, Inner};
use super::{GatewayPlug, GW_BRIDGE};
use crate::netlink::{LinkWant, Ns};

pub(super) async fn ensure_bridge(gateway: Ipv4Addr, prefix_len: u8) -> anyhow::Result<()> {
    let host = Ns::here().await?;
    let index = host.ensure_bridge(GW_BRIDGE).await?;
    host.ensure_address(index, GW_BRIDGE, gateway, prefix_len)
        .await?;
    let want = LinkWant {
        up: true,
        ..LinkWant::default()
    };
    host.configure(index, GW_BRIDGE, want).await
}

pub(super) async fn plug(plug: &GatewayPlug) -> anyhow::Result<()> {
    let host = Ns::here().await?;
    let inner = Inner {
        netns: &plug.netns,
        ifname: &plug.ifname,
        mac: None,
        ip: plug.ip,
        prefix_len: plug.prefix_len,
        mtu: plug.mtu,
        gateway: Some(plug.gateway),
    };
    let names = veth::names("gw", &plug.endpoint_id);
    veth::connect(&host, GW_BRIDGE, &names, &inner).await
}

pub(super) async fn unplug(endpoint_id: &str) -> anyhow::Result<()> {
    let host = Ns::here().await?;
    host.delete(&veth::names("gw", endpoint_id).0)
        .await
        .map(drop)
}
