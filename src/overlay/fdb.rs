//! The static forwarding of a sandbox's `vxlan0`: per remote endpoint, a
//! permanent FDB entry (`MAC dst VTEP self`) and a permanent neighbour entry
//! (`IP lladdr MAC`) that vxlan's ARP proxy answers from, so there is no
//! flooding and no learning. Reconciled by diff: `plan` is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{bail, Context};

use super::{mac_text, RemoteEndpoint, VXLAN};
use crate::netlink::netns;
use crate::netlink::{Neighbour, Ns, Table};

/// A forwarding entry: frames for `mac` go to `vtep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Fdb {
    pub mac: [u8; 6],
    pub vtep: Ipv4Addr,
}

/// A neighbour entry: `ip` is at `mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Arp {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// The permanent entries the kernel has on `vxlan0`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Present {
    pub fdb: Vec<Fdb>,
    pub arp: Vec<Arp>,
}

/// The smallest set of changes from `Present` to the wanted remotes:
/// deletions first, then upserts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub fdb_delete: Vec<Fdb>,
    pub arp_delete: Vec<Arp>,
    pub fdb_put: Vec<Fdb>,
    pub arp_put: Vec<Arp>,
}

/// Refuses remotes that contradict each other (one MAC at two VTEPs, one IP
/// at two MACs) or carry a multicast MAC.
pub(super) fn plan(remotes: &[RemoteEndpoint], present: &Present) -> anyhow::Result<Plan> {
    let mut vteps = BTreeMap::new();
    let mut macs = BTreeMap::new();
    for remote in remotes {
        if remote.mac[0] & 1 == 1 || remote.mac == [0; 6] {
            bail!(
                "remote {} has MAC {}, which is not unicast",
                remote.ip,
                mac_text(&remote.mac)
            );
        }
        if let Some(other) = vteps
            .insert(remote.mac, remote.vtep)
            .filter(|&v| v != remote.vtep)
        {
            bail!(
                "MAC {} is at two VTEPs, {other} and {}",
                mac_text(&remote.mac),
                remote.vtep
            );
        }
        if let Some(other) = macs
            .insert(remote.ip, remote.mac)
            .filter(|&m| m != remote.mac)
        {
            bail!(
                "{} has two MACs, {} and {}",
                remote.ip,
                mac_text(&other),
                mac_text(&remote.mac)
            );
        }
    }
    let fdb: BTreeSet<Fdb> = vteps
        .into_iter()
        .map(|(mac, vtep)| Fdb { mac, vtep })
        .collect();
    let arp: BTreeSet<Arp> = macs.into_iter().map(|(ip, mac)| Arp { ip, mac }).collect();
    let fdb_present: BTreeSet<Fdb> = present.fdb.iter().copied().collect();
    let arp_present: BTreeSet<Arp> = present.arp.iter().copied().collect();
    let wanted_ips: BTreeSet<Ipv4Addr> = arp.iter().map(|a| a.ip).collect();
    Ok(Plan {
        fdb_delete: fdb_present.difference(&fdb).copied().collect(),
        // A wanted IP at another MAC is replaced by its upsert instead.
        arp_delete: arp_present
            .iter()
            .filter(|a| !wanted_ips.contains(&a.ip))
            .copied()
            .collect(),
        fdb_put: fdb.difference(&fdb_present).copied().collect(),
        arp_put: arp.difference(&arp_present).copied().collect(),
    })
}

/// Reads what `vxlan0` has, applies the plan; returns (written, deleted).
pub(super) async fn set_remotes(
    sandbox: &Path,
    remotes: &[RemoteEndpoint],
) -> anyhow::Result<(usize, usize)> {
    if !netns::is_namespace(sandbox) {
        bail!("there is no sandbox {} on this host", sandbox.display());
    }
    let sandbox = Ns::open(sandbox).await?;
    let vxlan = sandbox.require(VXLAN).await?;
    let present = read(&sandbox, vxlan)
        .await
        .with_context(|| format!("cannot read the entries on {VXLAN} in {}", sandbox.name()))?;
    let plan = plan(remotes, &present)?;
    apply(&sandbox, vxlan, &plan).await?;
    Ok((
        plan.fdb_put.len() + plan.arp_put.len(),
        plan.fdb_delete.len() + plan.arp_delete.len(),
    ))
}

async fn read(sandbox: &Ns, vxlan: u32) -> anyhow::Result<Present> {
    let ours = |n: &Neighbour| n.ifindex == vxlan && n.permanent;
    let fdb = sandbox
        .neighbours(Table::Fdb)
        .await?
        .into_iter()
        // vxlan's own entries; br0's entries for its vxlan0 port say NTF_MASTER.
        .filter(|n| ours(n) && n.own && !n.master)
        .filter_map(|n| {
            Some(Fdb {
                mac: n.lladdr?,
                vtep: n.dst?,
            })
        })
        .collect();
    let arp = sandbox
        .neighbours(Table::Arp)
        .await?
        .into_iter()
        .filter(ours)
        .filter_map(|n| {
            Some(Arp {
                ip: n.dst?,
                mac: n.lladdr?,
            })
        })
        .collect();
    Ok(Present { fdb, arp })
}

/// `MAC dst VTEP self permanent`, vxlan's own entry.
fn fdb_entry(vxlan: u32, entry: &Fdb) -> Neighbour {
    Neighbour {
        table: Table::Fdb,
        ifindex: vxlan,
        permanent: true,
        own: true,
        master: false,
        lladdr: Some(entry.mac),
        dst: Some(entry.vtep),
    }
}

/// `IP lladdr MAC permanent`
fn arp_entry(vxlan: u32, entry: &Arp) -> Neighbour {
    Neighbour {
        table: Table::Arp,
        ifindex: vxlan,
        permanent: true,
        own: false,
        master: false,
        lladdr: Some(entry.mac),
        dst: Some(entry.ip),
    }
}

/// Deletions first (an entry already gone is fine), then upserts.
async fn apply(sandbox: &Ns, vxlan: u32, plan: &Plan) -> anyhow::Result<()> {
    let deletes = plan.fdb_delete.iter().map(|e| fdb_entry(vxlan, e));
    for entry in deletes.chain(plan.arp_delete.iter().map(|e| arp_entry(vxlan, e))) {
        sandbox.delete_neighbour(&entry, VXLAN).await?;
    }
    let puts = plan.fdb_put.iter().map(|e| fdb_entry(vxlan, e));
    for entry in puts.chain(plan.arp_put.iter().map(|e| arp_entry(vxlan, e))) {
        sandbox.put_neighbour(&entry, VXLAN).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn vtep(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(100, 64, 0, last)
    }

    fn remote(mac: [u8; 6], last: u8, host: u8) -> RemoteEndpoint {
        RemoteEndpoint {
            mac,
            ip: ip(last),
            vtep: vtep(host),
        }
    }

    #[test]
    fn from_nothing_everything_is_written() {
        let plan = plan(&[remote(A, 2, 1), remote(B, 3, 2)], &Present::default()).unwrap();
        assert_eq!(
            plan.fdb_put,
            vec![
                Fdb {
                    mac: A,
                    vtep: vtep(1)
                },
                Fdb {
                    mac: B,
                    vtep: vtep(2)
                }
            ]
        );
        assert_eq!(
            plan.arp_put,
            vec![Arp { ip: ip(2), mac: A }, Arp { ip: ip(3), mac: B }]
        );
        assert!(plan.fdb_delete.is_empty() && plan.arp_delete.is_empty());
    }

    #[test]
    fn what_is_there_already_is_left_alone() {
        let wanted = [remote(A, 2, 1)];
        let present = Present {
            fdb: vec![Fdb {
                mac: A,
                vtep: vtep(1),
            }],
            arp: vec![Arp { ip: ip(2), mac: A }],
        };
        assert_eq!(plan(&wanted, &present).unwrap(), Plan::default());
    }

    #[test]
    fn a_moved_endpoint_is_rewritten_and_a_gone_one_deleted() {
        let present = Present {
            fdb: vec![
                Fdb {
                    mac: A,
                    vtep: vtep(1),
                },
                Fdb {
                    mac: B,
                    vtep: vtep(2),
                },
            ],
            arp: vec![Arp { ip: ip(2), mac: A }, Arp { ip: ip(3), mac: B }],
        };
        // A moved to host 3, and its IP now belongs to a new MAC; B is gone.
        let c = [2, 0, 0, 0, 0, 0xc];
        let plan = plan(&[remote(A, 4, 3), remote(c, 2, 3)], &present).unwrap();
        assert_eq!(
            plan.fdb_delete,
            vec![
                Fdb {
                    mac: A,
                    vtep: vtep(1)
                },
                Fdb {
                    mac: B,
                    vtep: vtep(2)
                }
            ]
        );
        assert_eq!(
            plan.fdb_put,
            vec![
                Fdb {
                    mac: A,
                    vtep: vtep(3)
                },
                Fdb {
                    mac: c,
                    vtep: vtep(3)
                }
            ]
        );
        // ip(2) is still wanted (at c): replaced, not deleted.
        assert_eq!(plan.arp_delete, vec![Arp { ip: ip(3), mac: B }]);
        assert_eq!(
            plan.arp_put,
            vec![Arp { ip: ip(2), mac: c }, Arp { ip: ip(4), mac: A }]
        );
    }

    #[test]
    fn contradictions_are_refused() {
        let none = Present::default();
        let err = plan(&[remote(A, 2, 1), remote(A, 3, 2)], &none).unwrap_err();
        assert!(err.to_string().contains("two VTEPs"), "{err}");
        let err = plan(&[remote(A, 2, 1), remote(B, 2, 1)], &none).unwrap_err();
        assert!(err.to_string().contains("two MACs"), "{err}");
        let err = plan(&[remote([1, 0, 0, 0, 0, 1], 2, 1)], &none).unwrap_err();
        assert!(err.to_string().contains("not unicast"), "{err}");
        // The same endpoint twice is no contradiction.
        assert_eq!(
            plan(&[remote(A, 2, 1), remote(A, 2, 1)], &none)
                .unwrap()
                .fdb_put
                .len(),
            1
        );
    }
}
