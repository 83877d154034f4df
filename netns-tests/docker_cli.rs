//! The real docker CLI (Debian's docker.io 20.10 client, no dockerd) drives
//! swarmnet through the Docker Engine API on the daemon's socket: the swarm
//! and its nodes, the worker's refusal, and bad requests in Docker's form.
//! Containers and networks are in docker_containers.rs.

use std::time::Duration;

use crate::harness::*;

/// `docker swarm join-token -q ROLE` on vm1.
fn join_token(lab: &Lab, role: &str) -> String {
    let out = docker(lab, "vm1", &["swarm", "join-token", "-q", role]);
    stdout(&ok(&out)).trim().to_string()
}

/// A raw request to the daemon's socket with curl: (status, body).
fn curl(lab: &Lab, machine: &str, args: &[&str]) -> (String, String) {
    let mut cmd = vec![
        "curl",
        "-s",
        "-o",
        "/dev/stdout",
        "-w",
        "\n%{http_code}",
        "--unix-socket",
        "/run/swarmnet/swarmnet.sock",
    ];
    cmd.extend_from_slice(args);
    let out = stdout(&lab.ssh(machine, &cmd));
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.to_string(), body.to_string())
}

#[test]
#[ignore = "needs root"]
fn docker_cli_forms_and_runs_the_swarm() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);

    let version = stdout(&ok(&docker(&lab, "vm1", &["version"])));
    assert!(version.contains("Server: swarmnet"), "{version}");
    assert!(version.contains("1.41 (minimum version 1.12)"), "{version}");
    let info = stdout(&ok(&docker(&lab, "vm1", &["info"])));
    assert!(info.contains("Swarm: inactive"), "{info}");

    let init = stdout(&ok(&docker(
        &lab,
        "vm1",
        &["swarm", "init", "--advertise-addr", "192.168.99.100"],
    )));
    assert!(init.contains("is now a manager"), "{init}");
    assert!(
        init.contains("docker swarm join --token SWMTKN-1-")
            && init.contains("192.168.99.100:2377"),
        "{init}"
    );
    let worker_cmd = stdout(&ok(&docker(
        &lab,
        "vm1",
        &["swarm", "join-token", "worker"],
    )));
    assert!(
        worker_cmd.contains("To add a worker to this swarm"),
        "{worker_cmd}"
    );
    let token = join_token(&lab, "worker");
    let manager_token = join_token(&lab, "manager");
    assert!(token.starts_with("SWMTKN-1-") && token != manager_token);
    let rotated = stdout(&ok(&docker(
        &lab,
        "vm1",
        &["swarm", "join-token", "--rotate", "worker"],
    )));
    assert!(
        rotated.contains("Successfully rotated worker join token."),
        "{rotated}"
    );
    let fresh = join_token(&lab, "worker");
    assert_ne!(fresh, token);
    docker_fails_with(
        &docker(
            &lab,
            "vm2",
            &["swarm", "join", "--token", &token, "192.168.99.100:2377"],
        ),
        "Error response from daemon: ",
    );
    for vm in ["vm2", "vm3"] {
        let joined = stdout(&ok(&docker(
            &lab,
            vm,
            &["swarm", "join", "--token", &fresh, "192.168.99.100:2377"],
        )));
        assert!(
            joined.contains("This node joined a swarm as a worker."),
            "{joined}"
        );
    }

    let ls = stdout(&ok(&docker(&lab, "vm1", &["node", "ls"])));
    let header = ls.lines().next().unwrap();
    for col in [
        "ID",
        "HOSTNAME",
        "STATUS",
        "AVAILABILITY",
        "MANAGER STATUS",
        "ENGINE VERSION",
    ] {
        assert!(header.contains(col), "{ls}");
    }
    assert_eq!(ls.lines().count(), 4, "{ls}");
    let vm1_row = ls.lines().find(|l| l.contains("vm1")).unwrap();
    assert!(
        vm1_row.contains(" * ") && vm1_row.contains("Leader"),
        "{ls}"
    );
    eventually("every node Ready", Duration::from_secs(15), || {
        let out = stdout(&docker(
            &lab,
            "vm1",
            &[
                "node",
                "ls",
                "--format",
                "{{.Hostname}} {{.Status}} {{.ManagerStatus}}",
            ],
        ));
        let want = ["vm1 Ready Leader", "vm2 Ready ", "vm3 Ready "];
        want.iter()
            .all(|w| out.lines().any(|l| l == w.trim_end() || l == *w))
            .then_some(())
            .ok_or(out)
    });

    let inspect = stdout(&ok(&docker(&lab, "vm1", &["node", "inspect", "vm2"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(doc[0]["Spec"]["Role"], "worker", "{inspect}");
    assert_eq!(doc[0]["Description"]["Hostname"], "vm2", "{inspect}");
    let pretty = stdout(&ok(&docker(
        &lab,
        "vm1",
        &["node", "inspect", "--pretty", "vm2"],
    )));
    assert!(
        pretty.contains("Hostname:") && pretty.contains("vm2") && pretty.contains("Ready"),
        "{pretty}"
    );

    assert_eq!(
        stdout(&ok(&docker(
            &lab,
            "vm1",
            &["node", "update", "--availability", "drain", "vm2"]
        )))
        .trim(),
        "vm2"
    );
    ok(&docker(
        &lab,
        "vm1",
        &["node", "update", "--label-add", "zone=a", "vm2"],
    ));
    let avail = stdout(&ok(&docker(
        &lab,
        "vm1",
        &["node", "ls", "--format", "{{.Hostname}} {{.Availability}}"],
    )));
    assert!(avail.contains("vm2 Drain"), "{avail}");
    let labels = stdout(&ok(&docker(
        &lab,
        "vm1",
        &[
            "node",
            "inspect",
            "--format",
            "{{.Spec.Labels.zone}} {{.Spec.Availability}}",
            "vm2",
        ],
    )));
    assert_eq!(labels.trim(), "a drain");

    // A worker cannot see the cluster; a Ready node needs --force to go.
    docker_fails_with(
        &docker(&lab, "vm2", &["node", "ls"]),
        "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.",
    );
    docker_fails_with(
        &docker(&lab, "vm1", &["node", "rm", "vm2"]),
        "is not down and can't be removed",
    );
    ok(&docker(&lab, "vm1", &["node", "rm", "--force", "vm2"]));
    let left = stdout(&ok(&docker(&lab, "vm3", &["swarm", "leave"])));
    assert!(left.contains("Node left the swarm."), "{left}");
    eventually("vm3 Down after it left", Duration::from_secs(5), || {
        let out = stdout(&docker(
            &lab,
            "vm1",
            &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
        ));
        out.contains("vm3 Down").then_some(()).ok_or(out)
    });
    ok(&docker(&lab, "vm1", &["node", "rm", "vm3"]));
    assert_eq!(
        stdout(&ok(&docker(&lab, "vm1", &["node", "ls", "-q"])))
            .lines()
            .count(),
        1
    );
    docker_fails_with(
        &docker(&lab, "vm1", &["swarm", "leave"]),
        "Use `--force` to ignore this message.",
    );
    ok(&docker(&lab, "vm1", &["swarm", "leave", "--force"]));
    let info = stdout(&ok(&docker(&lab, "vm1", &["info"])));
    assert!(info.contains("Swarm: inactive"), "{info}");
    for vm in ["vm1", "vm2", "vm3"] {
        no_docker_engine(&lab, vm);
    }
}

/// The docker client ran alone: no dockerd, no docker0, no iptables rules.
fn no_docker_engine(lab: &Lab, machine: &str) {
    let dockerd = lab.ssh(machine, &["pgrep", "-x", "dockerd"]);
    assert!(
        !dockerd.status.success(),
        "a dockerd runs: {}",
        stdout(&dockerd)
    );
    let link = lab.ssh(machine, &["ip", "link", "show", "docker0"]);
    assert!(!link.status.success(), "docker0 exists in {machine}");
    let rules = stdout(&ok(&lab.ssh(machine, &["nft", "list", "ruleset"])));
    assert!(
        !rules.contains("DOCKER"),
        "{machine} has Docker's rules: {rules}"
    );
}

#[test]
#[ignore = "needs root"]
fn the_api_refuses_bad_requests_in_dockers_form() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", "192.168.99.100", &["vm2"]);

    let (status, body) = curl(&lab, "vm1", &["http://swarmnet/_ping"]);
    assert_eq!((status.as_str(), body.as_str()), ("200", "OK"));
    let (status, body) = curl(&lab, "vm1", &["http://swarmnet/v1.41/nowhere"]);
    assert_eq!(status, "404");
    assert_eq!(body, r#"{"message":"page not found"}"#);
    let (status, body) = curl(&lab, "vm1", &["http://swarmnet/v1.99/version"]);
    assert_eq!(status, "400");
    assert!(
        body.contains("client version 1.99 is too new. Maximum supported API version is 1.41"),
        "{body}"
    );
    let (status, body) = curl(
        &lab,
        "vm1",
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"Name\":",
            "http://swarmnet/v1.41/networks/create",
        ],
    );
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("not valid JSON"), "{body}");
    let big = format!("{{\"Name\":\"{}\"}}", "x".repeat(2 << 20));
    let big_file = format!("/tmp/{}-big.json", lab.name);
    std::fs::write(&big_file, big).unwrap();
    let at = format!("@{big_file}");
    let (status, _) = curl(
        &lab,
        "vm1",
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &at,
            "http://swarmnet/v1.41/networks/create",
        ],
    );
    std::fs::remove_file(&big_file).unwrap();
    assert_eq!(status, "413");
    let (status, body) = curl(&lab, "vm2", &["http://swarmnet/v1.41/nodes"]);
    assert_eq!(status, "503");
    assert!(body.contains("This node is not a swarm manager."), "{body}");

    // A stale node version is refused, and nothing changes.
    let node: serde_json::Value =
        serde_json::from_str(&curl(&lab, "vm1", &["http://swarmnet/v1.41/nodes/vm2"]).1).unwrap();
    let version = node["Version"]["Index"].as_u64().unwrap();
    let update = |v: u64| {
        let url = format!("http://swarmnet/v1.41/nodes/vm2/update?version={v}");
        curl(
            &lab,
            "vm1",
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"Role":"worker","Availability":"pause"}"#,
                &url,
            ],
        )
    };
    let (status, body) = update(version - 1);
    assert_eq!(status, "400");
    assert!(body.contains("update out of sequence"), "{body}");
    let (status, _) = update(version);
    assert_eq!(status, "200");
    let (status, body) = update(version);
    assert!(
        status == "400" && body.contains("update out of sequence"),
        "{body}"
    );
    let avail = stdout(&ok(&lab.sn(
        "vm1",
        &["node", "ls", "--format", "{{.Hostname}} {{.Availability}}"],
    )));
    assert!(avail.contains("vm2 Pause"), "{avail}");

    // A client that never finishes its body cannot hold the daemon: others are served meanwhile.
    let mut held = std::process::Command::new(bin())
        .env("SWARMNET_LAB", &lab.name)
        .args([
            "machine",
            "ssh",
            "vm1",
            "--",
            "curl",
            "-s",
            "--max-time",
            "20",
            "--unix-socket",
            "/run/swarmnet/swarmnet.sock",
            "-X",
            "POST",
            "-H",
            "Content-Length: 1000",
            "--data-binary",
            "{",
            "http://swarmnet/v1.41/networks/create",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (status, _) = curl(&lab, "vm1", &["http://swarmnet/_ping"]);
    assert_eq!(status, "200");
    let _ = held.kill();
    let _ = held.wait();

    // Images other than the built-in `host` are refused with one sentence.
    let net = ["network", "create", "-d", "overlay", "--attachable", "blue"];
    ok(&docker(&lab, "vm1", &net));
    docker_fails_with(
        &docker(&lab, "vm1", &["run", "-d", "--network", "blue", "nginx"]),
        "built-in image host",
    );
    docker_fails_with(
        &docker(&lab, "vm1", &["network", "inspect", "nowhere"]),
        "No such network",
    );
}
