//! The real docker CLI runs containers on an overlay through swarmnet's
//! Docker Engine API: run, exec across hosts with exit codes and streams,
//! logs, ps, inspect, network connect and disconnect, rm.

use std::time::Duration;

use crate::harness::*;

#[test]
#[ignore = "needs root"]
fn docker_cli_runs_containers_on_an_overlay() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", "192.168.99.100", &["vm2"]);
    let create = [
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.20.0.0/24",
        "my_overlay",
    ];
    let id = stdout(&ok(&docker(&lab, "vm1", &create)))
        .trim()
        .to_string();
    let ls = stdout(&ok(&docker(&lab, "vm1", &["network", "ls"])));
    for name in ["ingress", "my_overlay"] {
        let row = ls.lines().find(|l| l.contains(name)).unwrap_or_default();
        assert!(row.contains("overlay") && row.contains("swarm"), "{ls}");
    }
    assert!(ls.contains(&id[..12]), "{ls}");
    let net: serde_json::Value = serde_json::from_str(&stdout(&ok(&docker(
        &lab,
        "vm1",
        &["network", "inspect", "my_overlay"],
    ))))
    .unwrap();
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "10.20.0.0/24");
    assert_eq!(net[0]["Attachable"], true);

    let whoami = [
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "my_overlay",
        "host",
        bin(),
        "whoami",
        "--port",
        "3000",
    ];
    let c1 = stdout(&ok(&docker(&lab, "vm1", &whoami)))
        .trim()
        .to_string();
    assert_eq!(c1.len(), 64, "{c1}");
    let sleeper = [
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "my_overlay",
        "host",
        "sleep",
        "infinity",
    ];
    ok(&docker(&lab, "vm2", &sleeper));
    let ip_of = [
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "c1",
    ];
    let ip = stdout(&ok(&docker(&lab, "vm1", &ip_of))).trim().to_string();
    assert!(ip.starts_with("10.20.0."), "{ip}");
    let url = format!("http://{ip}:3000/");
    let answer = eventually(
        "c2 on vm2 reaches c1 on vm1",
        Duration::from_secs(10),
        || {
            let out = docker(&lab, "vm2", &["exec", "c2", "curl", "-s", "-m", "2", &url]);
            let body = stdout(&out);
            body.contains("Hostname: c1")
                .then_some(body.clone())
                .ok_or(body)
        },
    );
    assert!(answer.contains(&format!("IP: {ip}")), "{answer}");
    let code = docker(
        &lab,
        "vm2",
        &["exec", "c2", "sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(code.status.code(), Some(3));
    assert_eq!(stdout(&code).trim(), "out");
    assert_eq!(stderr(&code).trim(), "err");
    eventually("c1's log has whoami's line", Duration::from_secs(5), || {
        let logs = stdout(&docker(&lab, "vm1", &["logs", "c1"]));
        logs.contains("listening").then_some(()).ok_or(logs)
    });
    let ps = stdout(&ok(&docker(
        &lab,
        "vm1",
        &["ps", "--format", "{{.Names}} {{.Image}} {{.Status}}"],
    )));
    assert!(ps.lines().any(|l| l.starts_with("c1 host Up")), "{ps}");
    let doc: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&docker(&lab, "vm1", &["inspect", "c1"])))).unwrap();
    assert_eq!(doc[0]["Name"], "/c1");
    assert_eq!(doc[0]["State"]["Running"], true);
    assert_eq!(
        doc[0]["NetworkSettings"]["Networks"]["my_overlay"]["NetworkID"],
        id.as_str()
    );

    // A short-lived container: logs -f ends with it, ps -a shows its exit code.
    let brief = [
        "run",
        "-d",
        "--name",
        "t1",
        "host",
        "sh",
        "-c",
        "echo one; sleep 1; echo two; exit 4",
    ];
    ok(&docker(&lab, "vm1", &brief));
    let followed = stdout(&ok(&docker(&lab, "vm1", &["logs", "-f", "t1"])));
    assert_eq!(followed, "one\ntwo\n");
    let all = stdout(&ok(&docker(
        &lab,
        "vm1",
        &["ps", "-a", "--format", "{{.Names}} {{.Status}}"],
    )));
    assert!(all.lines().any(|l| l.starts_with("t1 Exited (4)")), "{all}");

    // connect / disconnect a running container.
    ok(&docker(
        &lab,
        "vm1",
        &["network", "create", "-d", "overlay", "--attachable", "red"],
    ));
    ok(&docker(&lab, "vm1", &["network", "connect", "red", "c1"]));
    let nets = [
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "c1",
    ];
    let both = stdout(&ok(&docker(&lab, "vm1", &nets)));
    assert!(
        both.contains("my_overlay") && both.contains("red"),
        "{both}"
    );
    docker_fails_with(
        &docker(&lab, "vm1", &["network", "connect", "red", "c1"]),
        "already attached to network red",
    );
    ok(&docker(
        &lab,
        "vm1",
        &["network", "disconnect", "red", "c1"],
    ));
    let one = stdout(&ok(&docker(&lab, "vm1", &nets)));
    assert_eq!(one.trim(), "my_overlay");
    ok(&docker(&lab, "vm1", &["network", "rm", "red"]));

    assert_eq!(
        stdout(&ok(&docker(&lab, "vm1", &["rm", "-f", "c1", "t1"]))),
        "c1\nt1\n"
    );
    let left = stdout(&ok(&docker(&lab, "vm1", &["ps", "-a", "-q"])));
    assert!(left.is_empty(), "{left}");
    docker_fails_with(
        &docker(&lab, "vm1", &["logs", "c1"]),
        "No such container: c1",
    );
}
