//! IPv4 addresses and routes of a namespace's links: read, add, make one
//! address the only one, delete; the default route.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::AddressFamily;

use super::Ns;

impl Ns {
    /// The IPv4 addresses (address, prefix length) on link `index` (called
    /// `name`).
    pub async fn addresses(&self, index: u32, name: &str) -> anyhow::Result<Vec<(Ipv4Addr, u8)>> {
        let mut request = self.nl.address().get().set_link_index_filter(index);
        request.message_mut().header.family = AddressFamily::Inet;
        let messages: Vec<AddressMessage> =
            request.execute().try_collect().await.with_context(|| {
                format!("cannot list the addresses of {name} in {}", self.name())
            })?;
        Ok(messages.iter().flat_map(ipv4_locals).collect())
    }

    /// Makes `ip/prefix_len` the only IPv4 address of link `index`.
    pub async fn ensure_address(
        &self,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> anyhow::Result<()> {
        let present = self.addresses(index, name).await?;
        for &(old, old_len) in present.iter().filter(|&&a| a != (ip, prefix_len)) {
            self.delete_address(index, name, old, old_len).await?;
        }
        if present.contains(&(ip, prefix_len)) {
            return Ok(());
        }
        self.add_address(index, name, ip, prefix_len).await
    }

    pub async fn add_address(
        &self,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> anyhow::Result<()> {
        self.nl
            .address()
            .add(index, IpAddr::V4(ip), prefix_len)
            .execute()
            .await
            .with_context(|| format!("cannot add {ip}/{prefix_len} to {name} in {}", self.name()))
    }

    pub async fn delete_address(
        &self,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> anyhow::Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.index = index;
        message
            .attributes
            .push(AddressAttribute::Local(IpAddr::V4(ip)));
        self.nl
            .address()
            .del(message)
            .execute()
            .await
            .with_context(|| {
                format!(
                    "cannot remove {ip}/{prefix_len} from {name} in {}",
                    self.name()
                )
            })
    }

    /// Adds the default route via `gateway`.
    pub async fn add_default_route(&self, gateway: Ipv4Addr) -> anyhow::Result<()> {
        self.nl
            .route()
            .add()
            .v4()
            .gateway(gateway)
            .execute()
            .await
            .with_context(|| {
                format!(
                    "cannot add a default route via {gateway} in {}",
                    self.name()
                )
            })
    }
}

/// The IPv4 local addresses (with the prefix length) in one RTM_NEWADDR.
fn ipv4_locals(message: &AddressMessage) -> Vec<(Ipv4Addr, u8)> {
    message
        .attributes
        .iter()
        .filter_map(|attribute| match attribute {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some((*ip, message.header.prefix_len)),
            _ => None,
        })
        .collect()
}
