//! The overlay driver's tests: names and input checks without root; with
//! root, whole worlds in namespaces (see `lab`) checked with `ping`, `ip` and
//! `bridge`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::lab::{links, ok, pings, wait_for_ping, Lab};
use super::*;

const NET: &str = "a1b2c3d4e5f6a7b8";

fn mac(last: u8) -> [u8; 6] {
    [0x02, 0x42, 0x0a, 0x4d, 0x00, last]
}

fn spec(network_id: &str, vni: u32, subnet: u8, vtep: Ipv4Addr) -> SandboxSpec {
    SandboxSpec {
        network_id: network_id.into(),
        vni,
        gateway: Ipv4Addr::new(10, subnet, 0, 1),
        prefix_len: 24,
        mtu: 1400,
        local_vtep: vtep,
    }
}

fn plug(network_id: &str, endpoint_id: &str, netns: &Path, ip: Ipv4Addr) -> Plug {
    Plug {
        network_id: network_id.into(),
        endpoint_id: endpoint_id.into(),
        netns: netns.to_owned(),
        ifname: "eth0".into(),
        mac: mac(ip.octets()[3]),
        ip,
        prefix_len: 24,
        mtu: 1400,
    }
}

fn remote(plug: &Plug, vtep: Ipv4Addr) -> RemoteEndpoint {
    RemoteEndpoint {
        mac: plug.mac,
        ip: plug.ip,
        vtep,
    }
}

/// The permanent entries of vxlan0 in `sandbox`, as `bridge` and `ip` show them.
fn forwarding(sandbox: &Path) -> (Vec<String>, Vec<String>) {
    let fdb = ok(sandbox, "bridge", &["fdb", "show", "dev", "vxlan0"]);
    let neigh = ok(sandbox, "ip", &["neigh", "show", "dev", "vxlan0"]);
    let keep = |text: String, word: &str| -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(word) && !l.contains("master"))
            .map(|l| l.trim().to_string())
            .collect();
        lines.sort();
        lines
    };
    (keep(fdb, "permanent"), keep(neigh, "PERMANENT"))
}

#[test]
fn names_and_input_checks() {
    let overlay = Overlay::new(PathBuf::from("/run/swarmnet/netns"));
    assert_eq!(
        overlay.sandbox_path(NET),
        Path::new("/run/swarmnet/netns/1-a1b2c3d4e5")
    );
    assert_eq!(
        overlay.sandbox_path("ab"),
        Path::new("/run/swarmnet/netns/1-ab")
    );
    assert_eq!(
        veth::names("ve", "0123456789abcdef"),
        ("ve-01234567".to_string(), "vt-01234567".to_string())
    );
    assert_eq!(veth::names("gw", "abc").1, "gt-abc");
    assert!(GW_BRIDGE.len() <= 15);
    assert_eq!(mac_text(&mac(3)), "02:42:0a:4d:00:03");

    assert!(check_id("network id", "../etc").is_err());
    assert!(check_id("network id", "").is_err());
    assert!(check_id("network id", NET).is_ok());
    for bad in ["", "a/b", "has space", "sixteen-chars-xx", "..", "a:b"] {
        assert!(check_ifname(bad).is_err(), "{bad:?}");
    }
    assert!(check_ifname("eth0").is_ok());
    assert!(check_prefix(0).is_err() && check_prefix(33).is_err() && check_prefix(24).is_ok());
    assert!(check_mtu(67).is_err() && check_mtu(65536).is_err() && check_mtu(1400).is_ok());
}

#[test]
fn bad_input_is_refused_before_the_kernel() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let overlay = Overlay::new(PathBuf::from("/nonexistent/swarmnet"));
    let mut bad = spec(NET, 0, 77, Ipv4Addr::LOCALHOST);
    let err = runtime.block_on(overlay.ensure_sandbox(&bad)).unwrap_err();
    assert!(err.to_string().contains("VNI 0"), "{err}");
    bad.vni = 1;
    bad.mtu = 10;
    assert!(runtime.block_on(overlay.ensure_sandbox(&bad)).is_err());
    let mut multicast = plug(
        NET,
        "e1",
        Path::new("/nonexistent"),
        Ipv4Addr::new(10, 77, 0, 2),
    );
    multicast.mac[0] = 1;
    let err = runtime.block_on(overlay.plug(&multicast)).unwrap_err();
    assert!(err.to_string().contains("not a unicast MAC"), "{err}");
    assert!(overlay.sandboxes().is_empty());
}

#[test]
#[ignore = "needs root"]
fn containers_on_two_hosts_talk_over_the_overlay() {
    let lab = Lab::new("ovt-ping", 2);
    let [a, b] = [&lab.hosts[0], &lab.hosts[1]];
    for host in [a, b] {
        let spec = spec(NET, 4242, 77, host.underlay);
        host.call(move |ov| async move { ov.ensure_sandbox(&spec).await })
            .unwrap();
    }
    let (c1, c2) = (lab.container("c1"), lab.container("c2"));
    let p1 = plug(NET, "e1aaaaaaaaaa", &c1, Ipv4Addr::new(10, 77, 0, 2));
    let p2 = plug(NET, "e2bbbbbbbbbb", &c2, Ipv4Addr::new(10, 77, 0, 3));
    for (host, p) in [(a, &p1), (b, &p2)] {
        let p = p.clone();
        host.call(move |ov| async move { ov.plug(&p).await })
            .unwrap();
    }
    let to_b = vec![remote(&p2, b.underlay)];
    let to_a = vec![remote(&p1, a.underlay)];
    let set = |host: &lab::Host, remotes: Vec<RemoteEndpoint>| {
        host.call(move |ov| async move { ov.set_remotes(NET, &remotes).await })
            .unwrap()
    };
    assert_eq!(set(a, to_b.clone()), (2, 0));
    assert_eq!(set(a, to_b.clone()), (0, 0));
    assert_eq!(set(b, to_a), (2, 0));

    wait_for_ping(&c1, p2.ip);
    assert!(pings(&c2, p1.ip));
    assert!(
        pings(&c1, Ipv4Addr::new(10, 77, 0, 1)),
        "the gateway on br0"
    );

    let eth0 = ok(&c1, "ip", &["-o", "link", "show", "eth0"]);
    assert!(eth0.contains("mtu 1400"), "{eth0}");
    assert!(eth0.contains("02:42:0a:4d:00:02"), "{eth0}");
    // link-netnsid: vxlan0's UDP socket lives in another namespace (the host).
    let sandbox = a.sandbox(NET);
    assert_eq!(
        forwarding(&sandbox),
        (
            vec![format!(
                "02:42:0a:4d:00:03 dst {} link-netnsid 0 self permanent",
                b.underlay
            )],
            vec!["10.77.0.3 lladdr 02:42:0a:4d:00:03 PERMANENT".to_string()],
        )
    );
    let vxlan = ok(&sandbox, "ip", &["-d", "-o", "link", "show", "vxlan0"]);
    for want in [
        "mtu 1400",
        "master br0",
        "id 4242",
        "dstport 4789",
        "nolearning",
        "proxy",
    ] {
        assert!(vxlan.contains(want), "{want}: {vxlan}");
    }
    assert!(vxlan.contains(&format!("local {}", a.underlay)), "{vxlan}");

    // A removed remote disappears, and with it the way to that container.
    assert_eq!(set(a, vec![]), (0, 2));
    assert_eq!(forwarding(&sandbox), (vec![], vec![]));
    assert!(!pings(&c1, p2.ip));
    assert_eq!(set(a, to_b), (2, 0));
    wait_for_ping(&c1, p2.ip);

    // Ensuring again changes nothing: same devices, same indexes, same address.
    let before = ok(&sandbox, "ip", &["-o", "-4", "addr", "show"])
        + &ok(&sandbox, "ip", &["-o", "link", "show"]);
    let again = spec(NET, 4242, 77, a.underlay);
    a.call(move |ov| async move { ov.ensure_sandbox(&again).await })
        .unwrap();
    let after = ok(&sandbox, "ip", &["-o", "-4", "addr", "show"])
        + &ok(&sandbox, "ip", &["-o", "link", "show"]);
    assert_eq!(before, after);
    assert_eq!(links(&sandbox, &["type", "vxlan"]), ["vxlan0"]);
    assert_eq!(links(&sandbox, &["type", "bridge"]), ["br0"]);
    assert_eq!(links(&a.ns, &[]), ["lo", "u0"], "nothing left in the host");

    // Another tunnel address: vxlan0 is made anew, without the old entries.
    let moved = spec(NET, 4242, 77, Ipv4Addr::new(192, 168, 77, 9));
    a.call(move |ov| async move { ov.ensure_sandbox(&moved).await })
        .unwrap();
    let vxlan = ok(&sandbox, "ip", &["-d", "-o", "link", "show", "vxlan0"]);
    assert!(
        vxlan.contains("local 192.168.77.9") && vxlan.contains("master br0"),
        "{vxlan}"
    );
    assert_eq!(forwarding(&sandbox), (vec![], vec![]));
    assert_eq!(links(&a.ns, &[]), ["lo", "u0"]);

    // Unplug and remove leave nothing behind.
    for _ in 0..2 {
        a.call(|ov| async move { ov.unplug(NET, "e1aaaaaaaaaa").await })
            .unwrap();
    }
    assert!(!links(&sandbox, &[]).iter().any(|l| l.starts_with("ve-")));
    assert_eq!(links(&c1, &[]), ["lo"]);
    assert_eq!(a.call(|ov| async move { ov.sandboxes() }), ["a1b2c3d4e5"]);
    for _ in 0..2 {
        a.call(|ov| async move { ov.remove_sandbox(NET).await })
            .unwrap();
    }
    assert!(!sandbox.exists());
    assert!(a.call(|ov| async move { ov.sandboxes() }).is_empty());
    let err = a
        .call(|ov| async move { ov.set_remotes(NET, &[]).await })
        .unwrap_err();
    assert!(format!("{err:#}").contains("no sandbox"), "{err:#}");
}

#[test]
#[ignore = "needs root"]
fn networks_with_the_same_subnet_but_other_vnis_stay_apart() {
    let lab = Lab::new("ovt-iso", 2);
    let [a, b] = [&lab.hosts[0], &lab.hosts[1]];
    let (x, y) = ("aaaaaaaaaaaaxxxx", "bbbbbbbbbbbbyyyy");
    for host in [a, b] {
        for (net, vni) in [(x, 101), (y, 102)] {
            let spec = spec(net, vni, 78, host.underlay);
            host.call(move |ov| async move { ov.ensure_sandbox(&spec).await })
                .unwrap();
        }
    }
    let ip = |last| Ipv4Addr::new(10, 78, 0, last);
    let (xa, xb, ya, yb) = (
        lab.container("xa"),
        lab.container("xb"),
        lab.container("ya"),
        lab.container("yb"),
    );
    let pxa = plug(x, "xa", &xa, ip(2));
    let pxb = plug(x, "xb", &xb, ip(3));
    let mut pya = plug(y, "ya", &ya, ip(2));
    pya.mac = mac(0x12);
    let pyb = plug(y, "yb", &yb, ip(4));
    // Two plugs at once on one host: the overlay serializes them.
    let (first, second) = (pxa.clone(), pya.clone());
    a.call(move |ov| async move {
        let (one, two) = tokio::join!(ov.plug(&first), ov.plug(&second));
        one.and(two)
    })
    .unwrap();
    for p in [&pxb, &pyb] {
        let p = p.clone();
        b.call(move |ov| async move { ov.plug(&p).await }).unwrap();
    }
    // Host a's network x also (wrongly) points yb's address and MAC at host b:
    // host b decapsulates VNI 101 into network x, where yb is not.
    let remotes_a = [
        (x, vec![remote(&pxb, b.underlay), remote(&pyb, b.underlay)]),
        (y, vec![remote(&pyb, b.underlay)]),
    ];
    let remotes_b = [
        (x, vec![remote(&pxa, a.underlay)]),
        (y, vec![remote(&pya, a.underlay)]),
    ];
    for (host, remotes) in [(a, remotes_a), (b, remotes_b)] {
        for (net, list) in remotes {
            host.call(move |ov| async move { ov.set_remotes(net, &list).await })
                .unwrap();
        }
    }
    wait_for_ping(&xa, ip(3));
    wait_for_ping(&ya, ip(4));
    assert!(!pings(&xa, ip(4)), "network x reached network y");
    assert!(!pings(&ya, ip(3)), "network y reached network x");
    assert_eq!(links(&a.ns, &["type", "vxlan"]), Vec::<String>::new());
}

#[test]
#[ignore = "needs root"]
fn plugging_refuses_a_taken_name_and_leaves_nothing_on_failure() {
    let lab = Lab::new("ovt-plug", 1);
    let host = &lab.hosts[0];
    let spec = spec(NET, 7, 79, Ipv4Addr::new(192, 168, 77, 1));
    host.call(move |ov| async move { ov.ensure_sandbox(&spec).await })
        .unwrap();
    let c = lab.container("c");
    let first = plug(NET, "first", &c, Ipv4Addr::new(10, 79, 0, 2));
    let call_plug = |p: Plug| host.call(move |ov| async move { ov.plug(&p).await });
    call_plug(first.clone()).unwrap();

    let taken = plug(NET, "second", &c, Ipv4Addr::new(10, 79, 0, 3));
    let err = format!("{:#}", call_plug(taken).unwrap_err());
    assert!(
        err.contains(&format!("eth0 already exists in {}", c.display())),
        "{err}"
    );
    let again = Plug {
        netns: lab.container("d"),
        ..first.clone()
    };
    let err = format!("{:#}", call_plug(again).unwrap_err());
    assert!(err.contains("ve-first already exists"), "{err}");
    let nowhere = Plug {
        network_id: "nonet".into(),
        ..first
    };
    let err = format!("{:#}", call_plug(nowhere).unwrap_err());
    assert!(err.contains("no sandbox"), "{err}");
    let sandbox = host.sandbox(NET);
    let ports: Vec<String> = links(&sandbox, &[])
        .into_iter()
        .filter(|l| l.starts_with("ve-"))
        .collect();
    assert_eq!(ports, ["ve-first"]);
}

#[test]
#[ignore = "needs root"]
fn the_gateway_bridge_routes_containers_out() {
    let lab = Lab::new("ovt-gw", 1);
    let host = &lab.hosts[0];
    let gateway = Ipv4Addr::new(172, 30, 0, 1);
    for _ in 0..2 {
        host.call(move |ov| async move { ov.ensure_gateway_bridge(gateway, 16).await })
            .unwrap();
    }
    let addrs = ok(
        &host.ns,
        "ip",
        &["-o", "-4", "addr", "show", "dev", GW_BRIDGE],
    );
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    assert!(addrs.contains("172.30.0.1/16"), "{addrs}");

    let c = lab.container("c");
    let gw_plug = GatewayPlug {
        endpoint_id: "0123456789ab".into(),
        netns: c.clone(),
        ifname: "eth1".into(),
        ip: Ipv4Addr::new(172, 30, 0, 2),
        prefix_len: 16,
        gateway,
        mtu: 1450,
    };
    let p = gw_plug.clone();
    host.call(move |ov| async move { ov.plug_gateway(&p).await })
        .unwrap();
    wait_for_ping(&c, gateway);
    let route = ok(&c, "ip", &["route", "show", "default"]);
    assert!(route.contains("default via 172.30.0.1 dev eth1"), "{route}");
    assert!(ok(&c, "ip", &["-o", "link", "show", "eth1"]).contains("mtu 1450"));
    let port = ok(&host.ns, "ip", &["-o", "link", "show", "gw-01234567"]);
    assert!(port.contains(&format!("master {GW_BRIDGE}")), "{port}");

    for _ in 0..2 {
        host.call(|ov| async move { ov.unplug_gateway("0123456789ab").await })
            .unwrap();
    }
    assert_eq!(links(&host.ns, &[]), ["lo", GW_BRIDGE]);
    assert_eq!(links(&c, &[]), ["lo"]);

    // A gateway outside the subnet fails at the route, after the veth was
    // made: the veth goes again.
    let unreachable = GatewayPlug {
        gateway: Ipv4Addr::new(172, 31, 0, 1),
        ..gw_plug
    };
    let err = host
        .call(move |ov| async move { ov.plug_gateway(&unreachable).await })
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("default route via 172.31.0.1"),
        "{err:#}"
    );
    assert_eq!(links(&host.ns, &[]), ["lo", GW_BRIDGE]);
    assert_eq!(links(&c, &[]), ["lo"]);
}

#[test]
#[ignore = "needs root"]
fn a_sandbox_removed_can_be_made_again_at_once() {
    let lab = Lab::new("ovt-again", 1);
    let host = &lab.hosts[0];
    for round in 0..10 {
        let spec = spec(NET, 9, 81, Ipv4Addr::new(192, 168, 78, 1));
        let made = host.call(move |ov| async move {
            ov.ensure_sandbox(&spec).await?;
            ov.remove_sandbox(NET).await
        });
        assert!(made.is_ok(), "round {round}: {:#}", made.unwrap_err());
    }
}
