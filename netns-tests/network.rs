//! Overlay networks in the control plane: IPAM from the default pool, user
//! subnets, overlap rules, Docker's columns and JSON, and bad input.

use crate::harness::*;

fn inspect(lab: &Lab, name: &str) -> serde_json::Value {
    let out = ok(&lab.sn("vm1", &["network", "inspect", name]));
    serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()[0].clone()
}

#[test]
#[ignore = "needs root"]
fn networks_are_allocated_checked_and_kept() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    fails_with(
        &lab.sn(
            "vm1",
            &[
                "swarm",
                "init",
                "--advertise-addr",
                "192.168.99.100",
                "--default-addr-pool",
                "10.10.0.0/16",
                "--default-addr-pool-mask-length",
                "8",
            ],
        ),
        "invalid --default-addr-pool-mask-length 8",
    );
    ok(&lab.sn(
        "vm1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            "192.168.99.100",
            "--default-addr-pool",
            "10.10.0.0/16",
        ],
    ));
    let token = stdout(&ok(&lab.sn("vm1", &["swarm", "join-token", "-q", "worker"])));
    ok(&lab.sn(
        "vm2",
        &["swarm", "join", "--token", token.trim(), "192.168.99.100"],
    ));

    // ingress is made at init, from the pool, with Docker's first VNI.
    let ingress = inspect(&lab, "ingress");
    assert_eq!(ingress["IPAM"]["Config"][0]["Subnet"], "10.10.0.0/24");
    assert_eq!(ingress["Ingress"], true);
    assert_eq!(
        ingress["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
        "4096"
    );

    let id = stdout(&ok(
        &lab.sn("vm1", &["network", "create", "-d", "overlay", "blue"])
    ));
    assert_eq!(id.trim().len(), 25, "{id}");
    ok(&lab.sn(
        "vm1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.20.0.0/24",
            "--gateway",
            "10.20.0.254",
            "--opt",
            "mtu=1300",
            "red",
        ],
    ));
    let blue = inspect(&lab, "blue");
    assert_eq!(blue["IPAM"]["Config"][0]["Subnet"], "10.10.1.0/24");
    assert_eq!(blue["IPAM"]["Config"][0]["Gateway"], "10.10.1.1");
    assert_eq!(blue["Attachable"], false);
    let red = inspect(&lab, "red");
    assert_eq!(red["IPAM"]["Config"][0]["Gateway"], "10.20.0.254");
    assert_eq!(red["Attachable"], true);
    assert_eq!(red["MTU"], 1300);
    assert_ne!(red["VNI"], blue["VNI"]);

    let ls = stdout(&ok(&lab.sn("vm1", &["network", "ls"])));
    let header = ls.lines().next().unwrap();
    for col in ["NETWORK ID", "NAME", "DRIVER", "SCOPE"] {
        assert!(header.contains(col), "{ls}");
    }
    for name in ["ingress", "blue", "red"] {
        let line = ls
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing: {ls}"));
        assert!(line.contains("overlay") && line.contains("swarm"), "{ls}");
    }
    let names = stdout(&ok(
        &lab.sn("vm1", &["network", "ls", "--format", "{{.Name}}"])
    ));
    assert_eq!(names, "blue\ningress\nred\n");

    // Bad input: one line, non-zero, nothing made.
    for (args, needle) in [
        (vec!["--subnet", "10.20.0.0/33", "x1"], "invalid subnet"),
        (
            vec!["--subnet", "10.20.0.128/25", "x2"],
            "overlaps network red (10.20.0.0/24)",
        ),
        (vec!["--subnet", "10.10.0.0/16", "x3"], "overlaps network"),
        (
            vec!["--subnet", "10.30.0.0/24", "--gateway", "10.31.0.1", "x4"],
            "is not a host address of subnet 10.30.0.0/24",
        ),
        (vec!["blue"], "network with name blue already exists"),
        (vec!["-d", "bridge", "x5"], "use -d overlay"),
        (
            vec!["--subnet", "100.64.0.0/24", "x6"],
            "overlaps the node mesh 100.64.0.0/16",
        ),
    ] {
        let mut cmd = vec!["network", "create"];
        cmd.extend(args);
        fails_with(&lab.sn("vm1", &cmd), needle);
    }
    fails_with(
        &lab.sn("vm1", &["network", "inspect", "green"]),
        "network green not found",
    );
    fails_with(
        &lab.sn("vm1", &["network", "rm", "green"]),
        "network green not found",
    );
    fails_with(
        &lab.sn("vm2", &["network", "ls"]),
        "Worker nodes can't be used to view or modify cluster state.",
    );
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["network", "ls", "-q"])))
            .lines()
            .count(),
        3
    );

    // Overlap when asked for; removal; all of it kept across a manager restart.
    ok(&lab.sn(
        "vm1",
        &[
            "network",
            "create",
            "--subnet",
            "10.20.0.0/24",
            "--opt",
            "allow-overlap",
            "red2",
        ],
    ));
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["network", "rm", "blue"]))).trim(),
        "blue"
    );
    ok(&lab.run(&["machine", "restart", "--signal", "KILL", "vm1"]));
    let names = stdout(&ok(
        &lab.sn("vm1", &["network", "ls", "--format", "{{.Name}}"])
    ));
    assert_eq!(names, "ingress\nred\nred2\n");
}
