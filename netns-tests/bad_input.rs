//! Bad input gets one clear line, a non-zero exit, and changes nothing.

use crate::harness::*;

fn not_in_swarm(lab: &Lab, vm: &str) {
    fails_with(
        &lab.sn(vm, &["node", "ls"]),
        "Use \"swarmnet swarm init\" or \"swarmnet swarm join\"",
    );
}

#[test]
#[ignore = "needs root"]
fn a_lone_node_refuses_bad_input() {
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    fails_with(
        &lab.run(&["machine", "create", "vm1"]),
        "machine vm1 already exists",
    );

    // No daemon at the socket: say so, and how to start it.
    let out = lab.sn("vm1", &["--host", "unix:///run/nowhere.sock", "node", "ls"]);
    fails_with(&out, "Cannot connect to the swarmnet daemon at unix:///run/nowhere.sock. Is the swarmnet daemon running?");

    // init: an address that is not this host's; then twice.
    fails_with(
        &lab.sn("vm1", &["swarm", "init", "--advertise-addr", "10.9.9.9"]),
        "advertise address 10.9.9.9 is not an address of this host",
    );
    fails_with(
        &lab.sn("vm1", &["swarm", "init", "--advertise-addr", "not-an-ip"]),
        "invalid advertise address",
    );
    not_in_swarm(&lab, "vm1");
    assert!(stdout(&ok(&lab.sn("vm1", &["info"]))).contains("Swarm: inactive"));
    lab.swarm("vm1", "192.168.99.100", &[]);
    fails_with(
        &lab.sn(
            "vm1",
            &["swarm", "init", "--advertise-addr", "192.168.99.100"],
        ),
        "This node is already part of a swarm.",
    );

    // Unknown nodes and roles; a manager must force its leave.
    fails_with(
        &lab.sn("vm1", &["node", "inspect", "vm9"]),
        "No such node: vm9",
    );
    fails_with(&lab.sn("vm1", &["node", "rm", "vm9"]), "No such node: vm9");
    fails_with(
        &lab.sn("vm1", &["swarm", "leave"]),
        "Use `--force` to ignore this message.",
    );
    let role = lab.sn("vm1", &["swarm", "join-token", "boss"]);
    assert!(
        !role.status.success() && stderr(&role).contains("unknown role"),
        "{}",
        stderr(&role)
    );
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["node", "ls", "-q"])))
            .lines()
            .count(),
        1
    );
}

#[test]
#[ignore = "needs root"]
fn bad_joins_are_refused_and_a_worker_stays_a_worker() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    let token = lab.swarm("vm1", "192.168.99.100", &[]);

    // join: malformed, unreachable, another cluster's, rotated away.
    fails_with(
        &lab.sn(
            "vm2",
            &[
                "swarm",
                "join",
                "--token",
                "SWMTKN-1-nonsense",
                "192.168.99.100:2377",
            ],
        ),
        "invalid join token",
    );
    fails_with(
        &lab.sn(
            "vm2",
            &["swarm", "join", "--token", &token, "192.168.99.200:2377"],
        ),
        "could not reach the manager at 192.168.99.200:2377",
    );
    ok(&lab.sn(
        "vm3",
        &["swarm", "init", "--advertise-addr", "192.168.99.102"],
    ));
    let other = stdout(&ok(&lab.sn("vm3", &["swarm", "join-token", "-q", "worker"])))
        .trim()
        .to_string();
    fails_with(
        &lab.sn(
            "vm2",
            &["swarm", "join", "--token", &other, "192.168.99.100:2377"],
        ),
        "its CA digest does not match",
    );
    ok(&lab.sn("vm1", &["swarm", "join-token", "--rotate", "worker"]));
    fails_with(
        &lab.sn(
            "vm2",
            &["swarm", "join", "--token", &token, "192.168.99.100:2377"],
        ),
        "invalid join token",
    );
    not_in_swarm(&lab, "vm2");
    let ls = stdout(&ok(&lab.sn("vm1", &["node", "ls", "-q"])));
    assert_eq!(ls.lines().count(), 1, "failed joins must add no node: {ls}");

    // A worker token makes a worker, never a manager; a worker refuses cluster calls in Docker's words.
    let fresh = stdout(&ok(&lab.sn("vm1", &["swarm", "join-token", "-q", "worker"])))
        .trim()
        .to_string();
    ok(&lab.sn(
        "vm2",
        &["swarm", "join", "--token", &fresh, "192.168.99.100"],
    ));
    fails_with(
        &lab.sn("vm2", &["node", "ls"]),
        "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.",
    );
    fails_with(
        &lab.sn("vm2", &["swarm", "join-token", "manager"]),
        "Worker nodes can't be used",
    );
    let inspect = stdout(&ok(&lab.sn("vm1", &["node", "inspect", "vm2"])));
    assert!(inspect.contains("\"Role\": \"worker\""), "{inspect}");
    fails_with(
        &lab.sn(
            "vm2",
            &["swarm", "join", "--token", &fresh, "192.168.99.100:2377"],
        ),
        "This node is already part of a swarm.",
    );
}
