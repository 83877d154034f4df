//! Persistence: the manager restarted (SIGKILL too) keeps the cluster, tokens,
//! certificates and nodes; a restarted worker comes back without a new token.
//! A second manager (joined with the manager token) answers cluster calls by
//! forwarding them to the leader.

use std::time::Duration;

use crate::harness::*;

fn ready_count(lab: &Lab) -> Result<(), String> {
    let out = lab.sn(
        "vm1",
        &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
    );
    let text = stdout(&out);
    (text.matches("Ready").count() == 3)
        .then_some(())
        .ok_or(text + &stderr(&out))
}

/// Waits until every node is Ready in `node ls` on the manager.
fn all_ready(lab: &Lab, what: &str) {
    eventually(what, Duration::from_secs(10), || ready_count(lab));
}

/// Waits until `from` pings `addr` over the mesh.
fn reaches(lab: &Lab, from: &str, addr: &str) {
    eventually(
        &format!("{from} reaches {addr} over the mesh"),
        Duration::from_secs(10),
        || {
            let out = lab.ssh(from, &["ping", "-c", "1", "-W", "1", addr]);
            out.status.success().then_some(()).ok_or(stdout(&out))
        },
    );
}

#[test]
#[ignore = "needs root"]
fn state_survives_daemon_restarts() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    let token = lab.swarm("vm1", "192.168.99.100", &["vm2"]);
    let manager_token = stdout(&ok(
        &lab.sn("vm1", &["swarm", "join-token", "-q", "manager"])
    ));
    let joined = ok(&lab.sn(
        "vm3",
        &[
            "swarm",
            "join",
            "--token",
            manager_token.trim(),
            "192.168.99.100:2377",
        ],
    ));
    assert_eq!(
        stdout(&joined).trim(),
        "This node joined a swarm as a manager."
    );
    let ids_before = stdout(&ok(&lab.sn("vm1", &["node", "ls", "-q"])));
    all_ready(&lab, "all nodes Ready");
    let from_vm3 = stdout(&ok(&lab.sn("vm3", &["node", "ls"])));
    let vm3_line = from_vm3
        .lines()
        .find(|l| l.contains("vm3"))
        .unwrap_or_default();
    assert!(
        vm3_line.contains(" * ") && vm3_line.contains("Reachable"),
        "{from_vm3}"
    );

    // node update: availability and labels, kept across the restart below.
    let updated = ok(&lab.sn(
        "vm1",
        &[
            "node",
            "update",
            "--availability",
            "drain",
            "--label-add",
            "zone=a",
            "vm2",
        ],
    ));
    assert_eq!(stdout(&updated).trim(), "vm2");
    fails_with(
        &lab.sn("vm1", &["node", "update", "--label-rm", "nope", "vm2"]),
        "key nope doesn't exist in node's labels",
    );
    fails_with(
        &lab.sn("vm1", &["node", "update", "--availability", "drain", "vm9"]),
        "No such node: vm9",
    );

    // The manager dies hard and comes back with everything.
    ok(&lab.run(&["machine", "restart", "--signal", "KILL", "vm1"]));
    all_ready(&lab, "all nodes Ready after the manager's restart");
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["node", "ls", "-q"]))),
        ids_before
    );
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["swarm", "join-token", "-q", "worker"]))).trim(),
        token
    );
    assert_eq!(
        stdout(&ok(
            &lab.sn("vm1", &["swarm", "join-token", "-q", "manager"])
        )),
        manager_token
    );
    reaches(&lab, "vm2", "100.64.0.1");

    let avail = stdout(&ok(&lab.sn(
        "vm1",
        &["node", "ls", "--format", "{{.Hostname}} {{.Availability}}"],
    )));
    assert!(avail.contains("vm2 Drain"), "{avail}");
    let inspect = stdout(&ok(&lab.sn("vm1", &["node", "inspect", "vm2"])));
    assert!(inspect.contains("\"zone\": \"a\""), "{inspect}");

    // The worker restarts and rejoins on its own.
    ok(&lab.run(&["machine", "restart", "vm2"]));
    all_ready(&lab, "all nodes Ready after the worker's restart");
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["node", "ls", "-q"]))),
        ids_before
    );
    reaches(&lab, "vm1", "100.64.0.2");

    // A stopped worker shows Down within 10 s.
    let vm2 = ok(&lab.run(&["machine", "inspect", "vm2"]));
    let pid =
        serde_json::from_str::<serde_json::Value>(&stdout(&vm2)).unwrap()["daemon_pid"].as_i64();
    let pid = pid.expect("machine inspect gives the daemon pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    eventually("vm2 Down", Duration::from_secs(10), || {
        let text = stdout(&lab.sn(
            "vm1",
            &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
        ));
        text.contains("vm2 Down").then_some(()).ok_or(text)
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    all_ready(&lab, "vm2 Ready again");
}
