//! One network namespace as the overlay drives it: an rtnetlink handle for
//! changes, a raw socket (see `rawnl`) for reads and FDB entries, and the link
//! and address helpers the sandbox, veth and gateway code share.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Context;
use futures::TryStreamExt;

use super::rawnl::RawNl;
use crate::netlink::netns::{self, NsHandle};

const ENODEV: i32 = libc::ENODEV;

pub struct Ns {
    pub nl: NsHandle,
    pub raw: RawNl,
}

/// What a link should look like; `None` leaves that property alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkWant {
    pub mtu: Option<u32>,
    pub master: Option<u32>,
    pub up: bool,
}

impl Ns {
    /// The namespace at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<Ns> {
        let nl = netns::handle_in(path).await?;
        let raw = netns::run_in(path, || Ok(RawNl::open()?)).await?;
        Ok(Ns { nl, raw })
    }

    /// The calling thread's namespace (the host's).
    pub async fn here() -> anyhow::Result<Ns> {
        let nl = netns::handle_here().await?;
        let raw = RawNl::open().context("opening a netlink socket")?;
        Ok(Ns { nl, raw })
    }

    pub fn name(&self) -> &str {
        self.nl.name()
    }

    /// The index of link `name`, None if there is none.
    pub async fn index(&self, name: &str) -> anyhow::Result<Option<u32>> {
        let found = self
            .nl
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(link) => Ok(link.map(|link| link.header.index)),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -ENODEV => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot look up {name} in {}", self.name())),
        }
    }

    /// The index of link `name`, which must exist.
    /// The index of bridge `name`, made first if it is not there.
    pub async fn ensure_bridge(&self, name: &str) -> anyhow::Result<u32> {
        if let Some(index) = self.index(name).await? {
            return Ok(index);
        }
        self.nl
            .link()
            .add()
            .bridge(name.into())
            .execute()
            .await
            .with_context(|| format!("cannot create {name} in {}", self.name()))?;
        self.require(name).await
    }

    pub async fn require(&self, name: &str) -> anyhow::Result<u32> {
        self.index(name)
            .await?
            .with_context(|| format!("there is no {name} in {}", self.name()))
    }

    /// Sets what differs from `want` on link `index` (called `name`), in one
    /// request; nothing when it already matches.
    pub async fn configure(
        &mut self,
        index: u32,
        name: &str,
        want: LinkWant,
    ) -> anyhow::Result<()> {
        let now = self
            .raw
            .link(index)
            .with_context(|| format!("cannot read {name} in {}", self.name()))?;
        let mut request = self.nl.link().set(index);
        let mut changes = Vec::new();
        if let Some(mtu) = want.mtu.filter(|&mtu| mtu != now.mtu) {
            request = request.mtu(mtu);
            changes.push(format!("MTU {mtu}"));
        }
        if let Some(master) = want.master.filter(|&master| master != now.master) {
            request = request.controller(master);
            changes.push(format!("master (link {master})"));
        }
        if want.up && !now.up {
            request = request.up();
            changes.push("up".to_string());
        }
        if changes.is_empty() {
            return Ok(());
        }
        request.execute().await.with_context(|| {
            format!(
                "cannot set {} on {name} in {}",
                changes.join(", "),
                self.name()
            )
        })
    }

    /// Makes `ip/prefix_len` the only IPv4 address of link `index`.
    pub async fn ensure_address(
        &mut self,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> anyhow::Result<()> {
        let present = self
            .raw
            .addresses(index)
            .with_context(|| format!("cannot list the addresses of {name} in {}", self.name()))?;
        for &(old, old_len) in present.iter().filter(|&&a| a != (ip, prefix_len)) {
            self.raw
                .delete_address(index, old, old_len)
                .with_context(|| {
                    format!(
                        "cannot remove {old}/{old_len} from {name} in {}",
                        self.name()
                    )
                })?;
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

    /// Moves link `index` (called `name`) into the namespace at `target`.
    pub async fn move_to(&self, index: u32, name: &str, target: &Path) -> anyhow::Result<()> {
        let namespace = netns::open(target)?;
        self.nl
            .link()
            .set(index)
            .setns_by_fd(namespace.as_raw_fd())
            .execute()
            .await
            .with_context(|| {
                format!(
                    "cannot move {name} from {} into {}",
                    self.name(),
                    target.display()
                )
            })
    }

    /// Deletes link `name` if it exists; true if it did.
    pub async fn delete(&self, name: &str) -> anyhow::Result<bool> {
        let Some(index) = self.index(name).await? else {
            return Ok(false);
        };
        match self.nl.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -ENODEV => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot delete {name} in {}", self.name())),
        }
    }
}
