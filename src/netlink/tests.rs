//! Root tests of the netlink layer, each in namespaces of its own: links,
//! veths made across namespaces, addresses, the queue length, and the
//! upsert of FDB entries flagged NTF_SELF and of neighbour entries, checked
//! against what iproute2 shows.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use super::netns::{self, ScratchDir};
use super::{LinkWant, Neighbour, Ns, Table};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `args` run inside the namespace at `ns`; must succeed.
fn show(ns: &Path, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .expect("running nsenter");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const A: [u8; 6] = [2, 0x42, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0x42, 0, 0, 0, 0xb];

#[test]
#[ignore = "needs root"]
fn fdb_entries_flagged_self_and_neighbours_are_upserted_and_deleted() {
    let scratch = ScratchDir::new("nlt-fdb");
    let path = scratch.path().join("fdb");
    netns::create(&path).unwrap();
    runtime().block_on(async {
        let ns = Ns::open(&path).await.unwrap();
        ns.nl
            .link()
            .add()
            .vxlan("vx0".into(), 77)
            .local(Ipv4Addr::new(192, 0, 2, 1))
            .port(4789)
            .learning(false)
            .execute()
            .await
            .unwrap();
        let vx = ns.require("vx0").await.unwrap();
        let fdb = |mac, last| Neighbour {
            table: Table::Fdb,
            ifindex: vx,
            permanent: true,
            own: true,
            master: false,
            lladdr: Some(mac),
            dst: Some(Ipv4Addr::new(192, 0, 2, last)),
        };
        let arp = |mac| Neighbour {
            table: Table::Arp,
            own: false,
            dst: Some(Ipv4Addr::new(10, 9, 0, 3)),
            ..fdb(mac, 0)
        };
        let ours = |entries: Vec<Neighbour>| -> Vec<Neighbour> {
            entries
                .into_iter()
                .filter(|n| n.ifindex == vx && n.permanent && n.lladdr.is_some())
                .collect()
        };

        ns.put_neighbour(&fdb(A, 2), "vx0").await.unwrap();
        ns.put_neighbour(&arp(A), "vx0").await.unwrap();
        assert_eq!(ours(ns.neighbours(Table::Fdb).await.unwrap()), [fdb(A, 2)]);
        // Upserts replace: the MAC moves to another VTEP, the IP to another MAC.
        ns.put_neighbour(&fdb(A, 3), "vx0").await.unwrap();
        ns.put_neighbour(&arp(B), "vx0").await.unwrap();
        assert_eq!(ours(ns.neighbours(Table::Fdb).await.unwrap()), [fdb(A, 3)]);
        assert_eq!(ours(ns.neighbours(Table::Arp).await.unwrap()), [arp(B)]);
        let bridge = show(&path, &["bridge", "fdb", "show", "dev", "vx0"]);
        let line = bridge.lines().find(|l| l.contains("02:42:00:00:00:0a"));
        assert_eq!(
            line.map(str::trim),
            Some("02:42:00:00:00:0a dst 192.0.2.3 self permanent"),
            "{bridge}"
        );
        let neigh = show(&path, &["ip", "neigh", "show", "dev", "vx0"]);
        assert_eq!(neigh.trim(), "10.9.0.3 lladdr 02:42:00:00:00:0b PERMANENT");

        for entry in [fdb(A, 3), arp(B)] {
            assert!(ns.delete_neighbour(&entry, "vx0").await.unwrap());
            assert!(!ns.delete_neighbour(&entry, "vx0").await.unwrap());
        }
        assert!(ours(ns.neighbours(Table::Fdb).await.unwrap()).is_empty());
        assert!(ours(ns.neighbours(Table::Arp).await.unwrap()).is_empty());

        ns.delete("vx0").await.unwrap();
        let err = ns.put_neighbour(&fdb(A, 2), "vx0").await.unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("cannot write FDB entry 02:42:00:00:00:0a dst 192.0.2.2 on vx0 in "),
            "{text}"
        );
    });
}

#[test]
#[ignore = "needs root"]
fn links_veths_addresses_and_queue_length() {
    let scratch = ScratchDir::new("nlt-link");
    let (left, right) = (scratch.path().join("l"), scratch.path().join("r"));
    netns::create(&left).unwrap();
    netns::create(&right).unwrap();
    runtime().block_on(async {
        let ns = Ns::open(&left).await.unwrap();
        let bridge = ns.ensure_bridge("brx").await.unwrap();
        assert_eq!(ns.ensure_bridge("brx").await.unwrap(), bridge);

        let target = netns::open(&right).unwrap();
        ns.add_veth("va", "vb", Some(1400), Some(&target))
            .await
            .unwrap();
        assert_eq!(ns.index("vb").await.unwrap(), None, "vb made on the left");
        let peer = show(&right, &["ip", "-o", "link", "show", "vb"]);
        assert!(peer.contains("mtu 1400"), "{peer}");

        let va = ns.require("va").await.unwrap();
        let want = LinkWant {
            mtu: Some(1300),
            master: Some(bridge),
            up: true,
        };
        ns.configure(va, "va", want).await.unwrap();
        ns.set_txqueuelen(va, "va", 1234).await.unwrap();
        let state = ns.link(va, "va").await.unwrap();
        assert_eq!(
            (
                state.mtu,
                state.master,
                state.up,
                state.txqueuelen,
                state.vxlan
            ),
            (1300, bridge, true, 1234, None)
        );
        let shown = show(&left, &["ip", "-o", "link", "show", "va"]);
        assert!(
            shown.contains("master brx") && shown.contains("qlen 1234"),
            "{shown}"
        );

        let (one, two) = (Ipv4Addr::new(10, 9, 1, 1), Ipv4Addr::new(10, 9, 2, 1));
        ns.ensure_address(bridge, "brx", one, 24).await.unwrap();
        ns.ensure_address(bridge, "brx", two, 16).await.unwrap();
        ns.ensure_address(bridge, "brx", two, 16).await.unwrap();
        assert_eq!(ns.addresses(bridge, "brx").await.unwrap(), [(two, 16)]);
        let err = ns.add_address(bridge, "brx", two, 16).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot add 10.9.2.1/16 to brx in "),
            "{err}"
        );

        assert!(ns.delete("va").await.unwrap());
        assert!(!ns.delete("va").await.unwrap());
        let err = ns.link(va, "va").await.unwrap_err();
        assert!(err.to_string().starts_with("cannot read va in "), "{err}");
    });
    let links = show(&right, &["ip", "-o", "link", "show"]);
    assert!(!links.contains("vb"), "the pair went with va: {links}");
}
