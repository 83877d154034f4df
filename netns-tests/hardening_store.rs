//! A full disk under the manager's store: a write fails with one sentence,
//! `info` warns with the store's path and the cause, and once space is freed
//! writes work again without restarting the daemon.

use std::time::Duration;

use crate::harness::*;

/// The daemon's process ID, from `machine inspect`.
fn daemon_pid(lab: &Lab, machine: &str) -> u64 {
    let out = ok(&lab.run(&["machine", "inspect", machine]));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let doc = if doc.is_array() { doc[0].clone() } else { doc };
    doc["daemon_pid"].as_u64().expect("a running daemon")
}

#[test]
#[ignore = "needs root"]
fn a_full_disk_under_the_store_is_reported_and_writes_resume_once_freed() {
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    // The machine has its own mount namespace: this tmpfs is the daemon's
    // state directory from here on, and nobody else's.
    ok(&lab.ssh(
        "vm1",
        &[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=8m,mode=0700",
            "swarmnet-state",
            "/var/lib/swarmnet",
        ],
    ));
    ok(&lab.sn(
        "vm1",
        &["swarm", "init", "--advertise-addr", "192.168.99.100"],
    ));
    let pid = daemon_pid(&lab, "vm1");

    // Fill the disk: dd stops at "No space left on device".
    let fill = lab.ssh(
        "vm1",
        &["dd", "if=/dev/zero", "of=/var/lib/swarmnet/fill", "bs=64k"],
    );
    assert!(!fill.status.success(), "the tmpfs should fill up");
    let err = fails_with(
        &lab.sn("vm1", &["network", "create", "-d", "overlay", "blue"]),
        "No space left on device",
    );
    assert!(err.contains("/var/lib/swarmnet/swarm/swarm.redb"), "{err}");
    let info = stdout(&ok(&lab.sn("vm1", &["info"])));
    assert!(
        info.contains("WARNING: the manager's store at /var/lib/swarmnet/swarm/swarm.redb failed to write: No space left on device"),
        "{info}"
    );

    ok(&lab.ssh("vm1", &["rm", "/var/lib/swarmnet/fill"]));
    eventually(
        "a write after space is freed",
        Duration::from_secs(10),
        || {
            let out = lab.sn("vm1", &["network", "create", "-d", "overlay", "blue"]);
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| stderr(&out))
        },
    );
    ok(&lab.sn("vm1", &["network", "inspect", "blue"]));
    let info = stdout(&ok(&lab.sn("vm1", &["info"])));
    assert!(!info.contains("WARNING"), "{info}");
    assert_eq!(daemon_pid(&lab, "vm1"), pid, "the daemon was not restarted");
}
