//! The lab's network set-up, on the netlink layer: the underlay bridge in the
//! lab namespace, each machine's leg (a veth on that bridge whose peer is
//! made straight inside the machine as `eth0`), and the machine's address.
//! A namespace is reached through its holder's /proc/PID/ns/net, held open
//! while the holder's identity is checked, so a reused pid is never entered.

use std::future::Future;

use anyhow::{Context, Result};

use super::procs::{Namespaces, NsKind, ProcId};
use super::state::{Machine, UNDERLAY_PREFIX};
use crate::netlink::{LinkWant, Ns};

/// The underlay bridge, private to the lab namespace.
const BRIDGE: &str = "br0";
const MTU: u32 = 1500;
/// A machine's leg, as the machine sees it.
const ETH0: &str = "eth0";

const UP: LinkWant = LinkWant {
    mtu: None,
    master: None,
    up: true,
};

/// The lab namespace: an up bridge without addresses.
pub fn lab_setup(lab_holder: &ProcId) -> Result<()> {
    block_on(async {
        let lab = open(lab_holder, "the lab namespace").await?;
        let bridge = lab.ensure_bridge(BRIDGE).await?;
        lab.configure(bridge, BRIDGE, UP).await
    })
}

/// The machine's veth in the lab namespace, its peer made straight inside the
/// machine as `eth0`, the lab end on the bridge and up.
pub fn leg_setup(lab_holder: &ProcId, machine: &Machine) -> Result<()> {
    let inside = net_namespace(&machine.holder)?;
    block_on(async {
        let lab = open(lab_holder, "the lab namespace").await?;
        let leg = machine.leg();
        lab.add_veth(&leg, ETH0, Some(MTU), Some(&inside)).await?;
        let bridge = lab.require(BRIDGE).await?;
        let index = lab.require(&leg).await?;
        let want = LinkWant {
            master: Some(bridge),
            ..UP
        };
        lab.configure(index, &leg, want).await
    })
}

/// Inside the machine: lo and eth0 up, the underlay address on eth0.
pub fn machine_setup(machine: &Machine) -> Result<()> {
    block_on(async {
        let inside = open(&machine.holder, &format!("machine {}", machine.name)).await?;
        let lo = inside.require("lo").await?;
        inside.configure(lo, "lo", UP).await?;
        let eth0 = inside.require(ETH0).await?;
        inside
            .add_address(eth0, ETH0, machine.address(), UNDERLAY_PREFIX)
            .await?;
        inside.configure(eth0, ETH0, UP).await
    })
}

/// Deletes the machine's leg (and so its eth0) in the lab namespace; a leg
/// already gone is fine.
pub fn delete_leg(lab_holder: &ProcId, machine: &Machine) -> Result<()> {
    block_on(async {
        let lab = open(lab_holder, "the lab namespace").await?;
        lab.delete(&machine.leg()).await.map(drop)
    })
}

/// The network namespace of `owner`, which must still be the same process.
fn net_namespace(owner: &ProcId) -> Result<std::fs::File> {
    let namespaces = Namespaces::of(owner, &[NsKind::Net])?;
    let file = namespaces
        .file(NsKind::Net)
        .with_context(|| format!("process {} has no network namespace", owner.pid))?;
    file.try_clone().with_context(|| {
        format!(
            "could not hold the network namespace of process {}",
            owner.pid
        )
    })
}

/// A netlink handle inside the network namespace of `owner`, called `what`.
async fn open(owner: &ProcId, what: &str) -> Result<Ns> {
    let namespace = net_namespace(owner)?;
    Ns::open_file(namespace, format!("{what} (process {})", owner.pid)).await
}

/// Runs the netlink work of one CLI step on a runtime of its own: the
/// machine commands are synchronous.
fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start a runtime for netlink")?
        .block_on(work)
}
