//! A three-node swarm: init, join, node ls and its formats; and, in a swarm
//! of its own, the WireGuard mesh read by `wg`, metrics, and leave and rm
//! taking a peer off every node.

use std::time::Duration;

use crate::harness::*;

const VM1: &str = "192.168.99.100";

/// The tunnel address of a node, from `node inspect`.
fn tunnel_addr(lab: &Lab, node: &str) -> String {
    let out = ok(&lab.sn("vm1", &["node", "inspect", node]));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    doc[0]["WireGuard"]["TunnelAddr"]
        .as_str()
        .unwrap()
        .to_string()
}

fn wg_peers(lab: &Lab, machine: &str) -> Vec<String> {
    let out = ok(&lab.ssh(machine, &["wg", "show", "swarmnet0", "peers"]));
    stdout(&out).lines().map(str::to_string).collect()
}

fn public_key(lab: &Lab, machine: &str) -> String {
    stdout(&ok(
        &lab.ssh(machine, &["wg", "show", "swarmnet0", "public-key"])
    ))
    .trim()
    .to_string()
}

#[test]
#[ignore = "needs root"]
fn a_swarm_forms_and_lists_its_nodes_in_dockers_formats() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    let init = ok(&lab.sn("vm1", &["swarm", "init", "--advertise-addr", VM1]));
    assert!(stdout(&init).contains("Swarm initialized: current node ("));
    let join_cmd = stdout(&ok(&lab.sn("vm1", &["swarm", "join-token", "worker"])));
    assert!(
        join_cmd.contains("swarmnet swarm join --token SWMTKN-1-"),
        "{join_cmd}"
    );
    assert!(join_cmd.contains("192.168.99.100:2377"), "{join_cmd}");
    let token = stdout(&ok(&lab.sn("vm1", &["swarm", "join-token", "-q", "worker"])))
        .trim()
        .to_string();
    assert!(join_cmd.contains(&token));
    for vm in ["vm2", "vm3"] {
        let out = ok(&lab.sn(
            vm,
            &["swarm", "join", "--token", &token, "192.168.99.100:2377"],
        ));
        assert_eq!(stdout(&out).trim(), "This node joined a swarm as a worker.");
    }

    // node ls: Docker's columns, the * on the node asked, Leader, all Ready.
    let ls = eventually("three Ready nodes", Duration::from_secs(10), || {
        let out = stdout(&ok(&lab.sn("vm1", &["node", "ls"])));
        (out.matches("Ready").count() == 3)
            .then_some(out.clone())
            .ok_or(out)
    });
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines[0].starts_with("ID"), "{ls}");
    for col in ["HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"] {
        assert!(lines[0].contains(col), "{ls}");
    }
    let vm1_line = lines.iter().find(|l| l.contains("vm1")).unwrap();
    assert!(
        vm1_line.contains(" * ") && vm1_line.contains("Leader"),
        "{ls}"
    );
    let vm2_line = lines.iter().find(|l| l.contains("vm2")).unwrap();
    assert!(
        !vm2_line.contains('*') && !vm2_line.contains("Leader"),
        "{ls}"
    );
    let fmt = stdout(&ok(&lab.sn(
        "vm1",
        &["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"],
    )));
    let mut fmt_lines: Vec<&str> = fmt.lines().map(str::trim_end).collect();
    fmt_lines.sort();
    assert_eq!(fmt_lines, vec!["vm1 Leader", "vm2", "vm3"]);
    let json = stdout(&ok(&lab.sn("vm1", &["node", "ls", "--format", "json"])));
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert!(first["ID"].is_string() && first["Self"].is_boolean());
    let ids = stdout(&ok(&lab.sn("vm1", &["node", "ls", "-q"])));
    assert_eq!(ids.lines().count(), 3);
    let info = stdout(&ok(&lab.sn("vm2", &["info"])));
    assert!(
        info.contains("Swarm: active") && info.contains(" Is Manager: false"),
        "{info}"
    );
    assert!(info.contains("  192.168.99.100:2377"), "{info}");
    let pretty = stdout(&ok(&lab.sn("vm1", &["node", "inspect", "--pretty", "vm2"])));
    assert!(
        pretty.contains("Hostname:\t\tvm2") && pretty.contains("State:\t\t\tReady"),
        "{pretty}"
    );
}

#[test]
#[ignore = "needs root"]
fn the_mesh_links_every_node_and_drops_the_removed_ones() {
    let lab = Lab::new();
    lab.machine("vm1", &["--metrics-addr", "127.0.0.1:9323"]);
    lab.machines(&["vm2", "vm3"]);
    lab.swarm("vm1", VM1, &["vm2", "vm3"]);
    eventually("three Ready nodes", Duration::from_secs(10), || {
        let out = stdout(&ok(&lab.sn("vm1", &["node", "ls"])));
        (out.matches("Ready").count() == 3).then_some(()).ok_or(out)
    });

    // The mesh: every node has the two others as peers and reaches them.
    let (t1, t2, t3) = (
        tunnel_addr(&lab, "vm1"),
        tunnel_addr(&lab, "vm2"),
        tunnel_addr(&lab, "vm3"),
    );
    for vm in ["vm1", "vm2", "vm3"] {
        eventually(
            &format!("{vm} has two peers"),
            Duration::from_secs(2),
            || {
                let peers = wg_peers(&lab, vm);
                (peers.len() == 2).then_some(()).ok_or(format!("{peers:?}"))
            },
        );
    }
    for (from, to) in [("vm2", &t3), ("vm3", &t1), ("vm1", &t2)] {
        ok(&lab.ssh(from, &["ping", "-c", "2", "-W", "2", to]));
    }
    let show = stdout(&ok(&lab.ssh("vm2", &["wg", "show"])));
    assert_eq!(show.matches("latest handshake:").count(), 2, "{show}");
    assert!(
        show.contains("allowed ips:") && show.contains("endpoint: 192.168.99."),
        "{show}"
    );

    // Metrics, scraped inside the machine.
    let metrics = stdout(&ok(
        &lab.ssh("vm1", &["curl", "-sf", "http://127.0.0.1:9323/metrics"])
    ));
    for needle in [
        "swarmnet_wireguard_peer_receive_bytes_total{",
        "swarmnet_wireguard_peer_transmit_bytes_total{",
        "swarmnet_wireguard_peer_last_handshake_age_seconds{",
        "swarmnet_wireguard_dropped_packets_total",
        "swarmnet_nodes{status=\"ready\"} 3",
        "swarmnet_api_requests_total{api=\"manager\",outcome=\"ok\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }

    // A worker leaves: its peer goes from every node, and it shows Down.
    let vm3_key = public_key(&lab, "vm3");
    assert_eq!(
        stdout(&ok(&lab.sn("vm3", &["swarm", "leave"]))).trim(),
        "Node left the swarm."
    );
    for vm in ["vm1", "vm2"] {
        eventually(
            &format!("vm3's peer gone from {vm}"),
            Duration::from_secs(2),
            || {
                let peers = wg_peers(&lab, vm);
                (!peers.iter().any(|p| p.contains(&vm3_key)))
                    .then_some(())
                    .ok_or(format!("{peers:?}"))
            },
        );
    }
    let ls = stdout(&ok(&lab.sn(
        "vm1",
        &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
    )));
    assert!(ls.contains("vm3 Down"), "{ls}");
    assert!(lab.ssh("vm3", &["wg", "show", "swarmnet0"]).status.code() != Some(0));
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["node", "rm", "vm3"]))).trim(),
        "vm3"
    );

    // A Ready node needs --force; then its peer goes everywhere and its certificate stops working.
    fails_with(
        &lab.sn("vm1", &["node", "rm", "vm2"]),
        "is not down and can't be removed",
    );
    let vm2_key = public_key(&lab, "vm2");
    ok(&lab.sn("vm1", &["node", "rm", "--force", "vm2"]));
    eventually("vm2's peer gone from vm1", Duration::from_secs(2), || {
        let peers = wg_peers(&lab, "vm1");
        (!peers.iter().any(|p| p.contains(&vm2_key)))
            .then_some(())
            .ok_or(format!("{peers:?}"))
    });
    eventually("vm2 cut off from the mesh", Duration::from_secs(5), || {
        let peers = wg_peers(&lab, "vm2");
        peers.is_empty().then_some(()).ok_or(format!("{peers:?}"))
    });
    let ls = stdout(&ok(&lab.sn("vm1", &["node", "ls", "-q"])));
    assert_eq!(ls.lines().count(), 1, "{ls}");
}
