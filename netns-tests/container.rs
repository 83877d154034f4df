//! Standalone containers on a machine: their own network, mount and UTS
//! namespaces, resolv.conf, only their stdio, logs, exec with exit codes
//! passed through, exit codes of their own, Docker's words for bad input, and
//! survival across a daemon crash. The daemon runs the real binary as each
//! container's shim, so these are the container runtime's root tests too.

use std::time::Duration;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(10);

/// `container run -d --name NAME -- sh -c SCRIPT` on vm1; returns the ID.
fn run_sh(lab: &Lab, name: &str, script: &str) -> String {
    let args = [
        "container",
        "run",
        "-d",
        "--name",
        name,
        "--",
        "sh",
        "-c",
        script,
    ];
    stdout(&ok(&lab.sn("vm1", &args))).trim().to_string()
}

fn exec(lab: &Lab, name: &str, cmd: &[&str]) -> std::process::Output {
    let mut args = vec!["container", "exec", name, "--"];
    args.extend_from_slice(cmd);
    lab.sn("vm1", &args)
}

fn pid_of(lab: &Lab, name: &str) -> String {
    let args = ["container", "inspect", "--format", "{{.State.Pid}}", name];
    stdout(&ok(&lab.sn("vm1", &args))).trim().to_string()
}

/// `{{.Names}} {{.Status}}` of every container on vm1, stopped ones too.
fn statuses(lab: &Lab) -> String {
    let args = [
        "container",
        "ls",
        "-a",
        "--format",
        "{{.Names}} {{.Status}}",
    ];
    stdout(&ok(&lab.sn("vm1", &args)))
}

#[test]
#[ignore = "needs root"]
fn containers_run_in_their_own_namespaces_with_only_their_stdio() {
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    let id = run_sh(&lab, "c1", "echo hello from c1; exec sleep 600");
    assert_eq!(id.len(), 64, "{id}");
    eventually("c1 logs", WAIT, || {
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

    // Its own namespaces: hostname, resolv.conf, only lo.
    assert_eq!(stdout(&ok(&exec(&lab, "c1", &["hostname"]))).trim(), "c1");
    let resolv = stdout(&ok(&exec(&lab, "c1", &["cat", "/etc/resolv.conf"])));
    assert!(
        resolv.contains("nameserver 127.0.0.11") && resolv.contains("options ndots:0"),
        "{resolv}"
    );
    let links = stdout(&ok(&exec(&lab, "c1", &["ip", "-o", "link"])));
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.starts_with("1: lo: <LOOPBACK,UP"), "{links}");
    let host_resolv = stdout(&ok(&lab.ssh("vm1", &["cat", "/etc/resolv.conf"])));
    assert!(
        !host_resolv.contains("127.0.0.11"),
        "the container's resolv.conf leaked: {host_resolv}"
    );

    // It holds only its stdio: nothing of the daemon's or the shim's leaks in.
    let pid = pid_of(&lab, "c1");
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|fd| fd.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "the container holds only its stdio");

    // exec passes exit codes through, with Docker's 127 for a missing command.
    assert_eq!(
        exec(&lab, "c1", &["sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    let missing = exec(&lab, "c1", &["swarmnet-no-such-command"]);
    assert_eq!(missing.status.code(), Some(127), "{}", stderr(&missing));

    // SIGTERM ends it as 128+15, and exec then refuses.
    let (status, body) = kill(&lab, "c1", "TERM");
    assert_eq!(status, "204", "{body}");
    eventually("c1 exits", WAIT, || {
        let all = statuses(&lab);
        all.contains("c1 Exited (143)").then_some(()).ok_or(all)
    });
    assert!(!exec(&lab, "c1", &["true"]).status.success());

    // An attached run passes the exit code through; exited containers show with -a.
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
    let all = statuses(&lab);
    assert!(all.contains("c2 Exited (5)"), "{all}");
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["container", "ls", "-q"]))),
        "",
        "no container runs"
    );
}

/// `POST /containers/NAME/kill?signal=SIGNAL` on vm1's socket: (status, body).
fn kill(lab: &Lab, name: &str, signal: &str) -> (String, String) {
    let url = format!("http://swarmnet/containers/{name}/kill?signal={signal}");
    let out = stdout(&ok(&lab.ssh(
        "vm1",
        &[
            "curl",
            "-s",
            "-X",
            "POST",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            "/run/swarmnet/swarmnet.sock",
            &url,
        ],
    )));
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.to_string(), body.to_string())
}

#[test]
#[ignore = "needs root"]
fn bad_container_input_gets_dockers_words_and_changes_nothing() {
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    run_sh(&lab, "c1", "exec sleep 600");
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
    fails_with(
        &lab.sn(
            "vm1",
            &[
                "container",
                "run",
                "-d",
                "--name",
                "c9",
                "--",
                "swarmnet-no-such-command",
            ],
        ),
        "executable file not found",
    );
    let all = statuses(&lab);
    assert_eq!(all.lines().count(), 1, "only c1 was made: {all}");
    assert!(all.starts_with("c1 Up "), "{all}");
}

#[test]
#[ignore = "needs root"]
fn containers_outlive_a_daemon_crash_and_rm_f_ends_them() {
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    run_sh(&lab, "c1", "exec sleep 600");

    // The daemon dies hard; the container keeps running with the same process.
    let before = pid_of(&lab, "c1");
    ok(&lab.run(&["machine", "restart", "--signal", "KILL", "vm1"]));
    assert_eq!(pid_of(&lab, "c1"), before);
    assert_eq!(stdout(&ok(&exec(&lab, "c1", &["hostname"]))).trim(), "c1");

    // rm -f stops and removes; the process is gone.
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["container", "rm", "-f", "c1"]))),
        "c1\n"
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
