//! Standalone containers on a machine: their own network, mount and UTS
//! namespaces, resolv.conf, logs, exec with exit codes passed through, Docker's
//! words for bad input, and survival across a daemon crash.

use std::time::Duration;

use crate::harness::*;

#[test]
fn containers_run_in_their_own_namespaces_and_outlive_the_daemon() {
    if !root_or_skip("containers_run_in_their_own_namespaces_and_outlive_the_daemon") {
        return;
    }
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    let id = stdout(&ok(&lab.sn(
        "vm1",
        &[
            "container",
            "run",
            "-d",
            "--name",
            "c1",
            "--",
            "sh",
            "-c",
            "echo hello from c1; exec sleep 600",
        ],
    )));
    assert_eq!(id.trim().len(), 64, "{id}");
    eventually("c1 logs", Duration::from_secs(10), || {
        let logs = stdout(&ok(&lab.sn("vm1", &["container", "logs", "c1"])));
        logs.contains("hello from c1").then_some(()).ok_or(logs)
    });
    let ls = stdout(&ok(&lab.sn("vm1", &["container", "ls"])));
    assert!(ls.starts_with("CONTAINER ID"), "{ls}");
    assert!(
        ls.lines().any(|l| l.contains("c1") && l.contains("Up ")),
        "{ls}"
    );
    let names = stdout(&ok(&lab.sn(
        "vm1",
        &["container", "ls", "--format", "{{.Names}} {{.State}}"],
    )));
    assert_eq!(names.trim(), "c1 running");

    // Its own namespaces: hostname, resolv.conf, only lo.
    assert_eq!(
        stdout(&ok(
            &lab.sn("vm1", &["container", "exec", "c1", "--", "hostname"])
        ))
        .trim(),
        "c1"
    );
    let resolv = stdout(&ok(&lab.sn(
        "vm1",
        &["container", "exec", "c1", "--", "cat", "/etc/resolv.conf"],
    )));
    assert!(
        resolv.contains("nameserver 127.0.0.11") && resolv.contains("options ndots:0"),
        "{resolv}"
    );
    let links = stdout(&ok(&lab.sn(
        "vm1",
        &["container", "exec", "c1", "--", "ip", "-o", "link"],
    )));
    assert_eq!(links.lines().count(), 1, "{links}");
    let host_resolv = stdout(&ok(&lab.ssh("vm1", &["cat", "/etc/resolv.conf"])));
    assert!(
        !host_resolv.contains("127.0.0.11"),
        "the container's resolv.conf leaked: {host_resolv}"
    );
    let code = lab
        .sn(
            "vm1",
            &["container", "exec", "c1", "--", "sh", "-c", "exit 3"],
        )
        .status
        .code();
    assert_eq!(code, Some(3));
    let fmt = stdout(&ok(&lab.sn(
        "vm1",
        &[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}} {{.Config.Hostname}} {{.Name}}",
            "c1",
        ],
    )));
    assert_eq!(fmt.trim(), "running c1 /c1");

    // Bad input: Docker's words, nothing changed.
    fails_with(
        &lab.sn(
            "vm1",
            &["container", "run", "-d", "--name", "c1", "--", "true"],
        ),
        "The container name \"/c1\" is already in use",
    );
    fails_with(
        &lab.sn("vm1", &["container", "rm", "c1"]),
        "You cannot remove a running container",
    );
    fails_with(
        &lab.sn("vm1", &["container", "logs", "nope"]),
        "No such container: nope",
    );
    fails_with(
        &lab.sn(
            "vm1",
            &["container", "run", "-d", "--name", "bad/name", "--", "true"],
        ),
        "invalid container name",
    );

    // The daemon dies hard; the container keeps running with the same process.
    let pid = |lab: &Lab| {
        stdout(&ok(&lab.sn(
            "vm1",
            &["container", "inspect", "--format", "{{.State.Pid}}", "c1"],
        )))
        .trim()
        .to_string()
    };
    let before = pid(&lab);
    ok(&lab.run(&["machine", "restart", "--signal", "KILL", "vm1"]));
    assert_eq!(pid(&lab), before);
    assert_eq!(
        stdout(&ok(
            &lab.sn("vm1", &["container", "exec", "c1", "--", "hostname"])
        ))
        .trim(),
        "c1"
    );

    // Attached run passes the exit code through; exited containers show with -a.
    let out = lab.sn(
        "vm1",
        &[
            "container",
            "run",
            "--name",
            "c2",
            "--",
            "sh",
            "-c",
            "echo bye; exit 5",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stdout(&out).contains("bye"));
    let all = stdout(&ok(&lab.sn(
        "vm1",
        &[
            "container",
            "ls",
            "-a",
            "--format",
            "{{.Names}} {{.Status}}",
        ],
    )));
    assert!(all.contains("c2 Exited (5)"), "{all}");
    assert!(!stdout(&ok(&lab.sn("vm1", &["container", "ls", "-q"]))).is_empty());

    // rm -f stops and removes; the process is gone.
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["container", "rm", "-f", "c1", "c2"]))),
        "c1\nc2\n"
    );
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["container", "ls", "-a", "-q"]))),
        ""
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{before}")).exists(),
        "c1's process {before} survived rm -f"
    );
}
