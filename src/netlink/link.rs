//! One network namespace as the drivers use it (`Ns`): an rtnetlink handle
//! bound inside it, and the link helpers the sandboxes, veths, the gateway
//! bridge, the mesh's TAP and the machines share: find, create (bridge,
//! veth), read, configure (MTU, master, txqueuelen, up), move and delete.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Context;
use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlag, LinkInfo, LinkMessage,
};

use crate::netlink::netns::{self, NsHandle};

pub(super) const ENODEV: i32 = libc::ENODEV;

pub struct Ns {
    pub nl: NsHandle,
}

/// What a link should look like; `None` leaves that property alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkWant {
    pub mtu: Option<u32>,
    pub master: Option<u32>,
    pub up: bool,
}

/// What the drivers read of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    pub mtu: u32,
    /// The index of the bridge it is enslaved to, 0 if none.
    pub master: u32,
    pub up: bool,
    pub txqueuelen: u32,
    /// Set when the link is a VXLAN device.
    pub vxlan: Option<Vxlan>,
}

/// What the overlay reads of a VXLAN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vxlan {
    pub vni: u32,
    pub local: Option<Ipv4Addr>,
}

impl Ns {
    /// The namespace at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<Ns> {
        Ok(Ns {
            nl: netns::handle_in(path).await?,
        })
    }

    /// The namespace already open as `namespace`, called `name` in errors.
    pub async fn open_file(namespace: File, name: String) -> anyhow::Result<Ns> {
        Ok(Ns {
            nl: netns::handle_inside(namespace, name).await?,
        })
    }

    /// The calling thread's namespace (the host's).
    pub async fn here() -> anyhow::Result<Ns> {
        Ok(Ns {
            nl: netns::handle_here().await?,
        })
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
    pub async fn require(&self, name: &str) -> anyhow::Result<u32> {
        self.index(name)
            .await?
            .with_context(|| format!("there is no {name} in {}", self.name()))
    }

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

    /// Makes the veth pair `name` (here, up) and `peer`, both with `mtu` if
    /// given; `peer` is made straight inside `peer_ns` if given, else here.
    pub async fn add_veth(
        &self,
        name: &str,
        peer: &str,
        mtu: Option<u32>,
        peer_ns: Option<&File>,
    ) -> anyhow::Result<()> {
        let mut request = self.nl.link().add().veth(peer.into(), name.into());
        let message = request.message_mut();
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(peer_message) = veth_peer(message) {
            if let Some(mtu) = mtu {
                peer_message.attributes.push(LinkAttribute::Mtu(mtu));
            }
            if let Some(target) = peer_ns {
                let fd = target.as_raw_fd();
                peer_message.attributes.push(LinkAttribute::NetNsFd(fd));
            }
        }
        request
            .execute()
            .await
            .with_context(|| format!("cannot create veth pair {name}/{peer} in {}", self.name()))
    }

    /// The state of link `index` (called `name`).
    pub async fn link(&self, index: u32, name: &str) -> anyhow::Result<LinkState> {
        let read = self
            .nl
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await;
        match read {
            Ok(Some(message)) => Ok(link_state(&message)),
            Ok(None) => anyhow::bail!("there is no {name} in {}", self.name()),
            Err(e) => Err(e).with_context(|| format!("cannot read {name} in {}", self.name())),
        }
    }

    /// Sets what differs from `want` on link `index` (called `name`), in one
    /// request; nothing when it already matches.
    pub async fn configure(&self, index: u32, name: &str, want: LinkWant) -> anyhow::Result<()> {
        let now = self.link(index, name).await?;
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

    /// Sets the transmit queue length of link `index` (called `name`).
    pub async fn set_txqueuelen(&self, index: u32, name: &str, len: u32) -> anyhow::Result<()> {
        let mut request = self.nl.link().set(index);
        request
            .message_mut()
            .attributes
            .push(LinkAttribute::TxQueueLen(len));
        request.execute().await.with_context(|| {
            format!(
                "cannot set the queue length of {name} to {len} in {}",
                self.name()
            )
        })
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

/// The peer's message inside a veth creation request.
fn veth_peer(message: &mut LinkMessage) -> Option<&mut LinkMessage> {
    message.attributes.iter_mut().find_map(|attribute| {
        let LinkAttribute::LinkInfo(infos) = attribute else {
            return None;
        };
        infos.iter_mut().find_map(|info| match info {
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) => Some(peer),
            _ => None,
        })
    })
}

/// The state in an RTM_NEWLINK message.
fn link_state(message: &LinkMessage) -> LinkState {
    let mut state = LinkState {
        mtu: 0,
        master: 0,
        up: message.header.flags.contains(&LinkFlag::Up),
        txqueuelen: 0,
        vxlan: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::Mtu(mtu) => state.mtu = *mtu,
            LinkAttribute::Controller(master) => state.master = *master,
            LinkAttribute::TxQueueLen(len) => state.txqueuelen = *len,
            LinkAttribute::LinkInfo(infos) => state.vxlan = vxlan_info(infos),
            _ => {}
        }
    }
    state
}

/// The VNI and local address in link info of kind "vxlan".
fn vxlan_info(infos: &[LinkInfo]) -> Option<Vxlan> {
    if !infos.contains(&LinkInfo::Kind(InfoKind::Vxlan)) {
        return None;
    }
    let data = infos.iter().find_map(|info| match info {
        LinkInfo::Data(InfoData::Vxlan(data)) => Some(data),
        _ => None,
    })?;
    let mut vxlan = Vxlan {
        vni: 0,
        local: None,
    };
    for item in data {
        match item {
            InfoVxlan::Id(vni) => vxlan.vni = *vni,
            InfoVxlan::Local(octets) => {
                vxlan.local = <[u8; 4]>::try_from(octets.as_slice())
                    .ok()
                    .map(Ipv4Addr::from)
            }
            _ => {}
        }
    }
    Some(vxlan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_link_info_is_read_and_other_kinds_are_not() {
        let data = InfoData::Vxlan(vec![
            InfoVxlan::Id(4242),
            InfoVxlan::Local(vec![100, 64, 0, 1]),
            InfoVxlan::Learning(false),
        ]);
        let infos = vec![LinkInfo::Kind(InfoKind::Vxlan), LinkInfo::Data(data)];
        let want = Vxlan {
            vni: 4242,
            local: Some(Ipv4Addr::new(100, 64, 0, 1)),
        };
        assert_eq!(vxlan_info(&infos), Some(want));
        assert_eq!(vxlan_info(&[LinkInfo::Kind(InfoKind::Bridge)]), None);
        assert_eq!(vxlan_info(&[]), None);

        let mut message = LinkMessage::default();
        message.header.flags.push(LinkFlag::Up);
        message.attributes.extend([
            LinkAttribute::Mtu(1400),
            LinkAttribute::Controller(3),
            LinkAttribute::TxQueueLen(1000),
            LinkAttribute::LinkInfo(infos),
        ]);
        let state = LinkState {
            mtu: 1400,
            master: 3,
            up: true,
            txqueuelen: 1000,
            vxlan: Some(want),
        };
        assert_eq!(link_state(&message), state);
    }
}
