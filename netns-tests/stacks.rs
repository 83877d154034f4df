//! Stacks end to end (issue 12, first part): a compose file deployed with
//! `swarmnet stack deploy` on three machines: the published port answers a
//! client outside the swarm, the services answer to their short and
//! qualified names on the stack's network, a deploy of the same file
//! changes nothing (every version stays), a changed file updates only what
//! changed, `stack rm` leaves nothing, and bad files change nothing.

use std::time::Duration;

use crate::harness::*;

const MANAGER: &str = "192.168.99.100";
const WAIT: Duration = Duration::from_secs(60);

/// The stack: front published on 8080, api with `${API_REPLICAS:-2}`
/// replicas, db on vm3 only (its hostname `db-{{.Node.Hostname}}`), on the
/// attachable network `app`.
fn compose_file() -> String {
    let bin = bin();
    format!(
        r#"version: "3.8"
x-whoami: &whoami
  image: host
  networks: [app]
  restart: always
services:
  front:
    <<: *whoami
    command: ["{bin}", whoami, --port, "3000"]
    ports: ["8080:3000"]
  api:
    <<: *whoami
    command: {bin} whoami --port 3001
    deploy:
      replicas: ${{API_REPLICAS:-2}}
  db:
    <<: *whoami
    command: {bin} whoami --port 3002
    hostname: "db-{{{{.Node.Hostname}}}}"
    deploy:
      placement:
        constraints: [node.hostname==vm3]
networks:
  app:
    attachable: true
"#
    )
}

/// `service ls` as NAME REPLICAS lines, sorted.
fn replicas(lab: &Lab) -> String {
    stdout(&ok(&lab.sn(
        "vm1",
        &["service", "ls", "--format", "{{.Name}} {{.Replicas}}"],
    )))
}

/// Each service's version, by name.
fn versions(lab: &Lab) -> Vec<(String, String)> {
    ["vote_front", "vote_api", "vote_db"]
        .iter()
        .map(|s| {
            let v = ok(&lab.sn(
                "vm1",
                &["service", "inspect", s, "--format", "{{.Version.Index}}"],
            ));
            (s.to_string(), stdout(&v).trim().to_string())
        })
        .collect()
}

/// `swarmnet stack deploy ARGS` on vm1 with `var` (`NAME=VALUE`) in its environment.
fn deploy_with(lab: &Lab, var: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = vec!["env", var, bin(), "stack", "deploy"];
    cmd.extend_from_slice(args);
    ok(&lab.ssh("vm1", &cmd))
}

/// No task container of stack `vote` and no published-port table is left
/// on any of `machines`.
fn nothing_left(lab: &Lab, machines: &[&str]) {
    for vm in machines {
        eventually(&format!("nothing of the stack left on {vm}"), WAIT, || {
            let names = stdout(&ok(
                &lab.sn(vm, &["container", "ls", "-a", "--format", "{{.Names}}"])
            ));
            let tables = stdout(&ok(&lab.ssh(vm, &["nft", "list", "tables"])));
            (!names.contains("vote_") && !tables.contains("swarmnet_ingress"))
                .then_some(())
                .ok_or(format!("{names}{tables}"))
        });
    }
}

fn running_all(lab: &Lab, want: &str) {
    eventually(&format!("the stack runs {want}"), WAIT, || {
        let now = replicas(lab);
        (now.trim() == want).then_some(()).ok_or(now)
    });
}

#[test]
#[ignore = "needs root"]
fn a_stack_deploys_answers_redeploys_only_what_changed_and_is_removed() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3", "client"]);
    lab.swarm("vm1", MANAGER, &["vm2", "vm3"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, compose_file()).unwrap();
    let file = file.to_str().unwrap();

    let out = ok(&lab.sn("vm1", &["stack", "deploy", "-c", file, "vote"]));
    let said = stdout(&out);
    for line in [
        "Creating network vote_app",
        "Creating service vote_api",
        "Creating service vote_db",
        "Creating service vote_front",
    ] {
        assert!(said.contains(line), "{said}");
    }
    assert!(
        stderr(&out).contains("Ignoring unsupported options: restart"),
        "{}",
        stderr(&out)
    );
    running_all(&lab, "vote_api 2/2\nvote_db 1/1\nvote_front 1/1");
    let ls = stdout(&ok(&lab.sn("vm1", &["stack", "ls"])));
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().eq(["vote", "3", "Swarm"])),
        "{ls}"
    );
    let db = stdout(&ok(&lab.sn(
        "vm1",
        &["stack", "ps", "vote", "--format", "{{.Name}} {{.Node}}"],
    )));
    assert!(db.lines().any(|l| l.starts_with("vote_db.1 vm3")), "{db}");

    // The client outside the swarm reaches front on every node.
    for node in ["192.168.99.100", "192.168.99.101", "192.168.99.102"] {
        let url = format!("http://{node}:8080/");
        eventually(&format!("front answers on {url}"), WAIT, || {
            let out = lab.ssh("client", &["curl", "-sS", "-m", "3", &url]);
            let text = stdout(&out);
            text.contains("Hostname: vote_front.1.")
                .then_some(())
                .ok_or(format!("{text}{}", stderr(&out)))
        });
    }

    // On the stack's network, api answers to its short and its full name (the VIP).
    ok(&lab.sn(
        "vm1",
        &[
            "container",
            "run",
            "-d",
            "--name",
            "probe",
            "--network",
            "vote_app",
            "host",
            "sleep",
            "600",
        ],
    ));
    let vip = |name: &str| {
        eventually(&format!("{name} resolves"), WAIT, || {
            let out = lab.sn(
                "vm1",
                &[
                    "container",
                    "exec",
                    "probe",
                    "--",
                    "dig",
                    "+short",
                    "@127.0.0.11",
                    name,
                ],
            );
            let text = stdout(&out).trim().to_string();
            (out.status.success() && text.lines().count() == 1)
                .then_some(text.clone())
                .ok_or(format!("{text}{}", stderr(&out)))
        })
    };
    assert_eq!(vip("api"), vip("vote_api"));
    // db's hostname from the file, Docker's placeholder filled in on its node.
    eventually("db answers with its hostname", WAIT, || {
        let out = lab.sn(
            "vm1",
            &[
                "container",
                "exec",
                "probe",
                "--",
                "curl",
                "-sS",
                "-m",
                "3",
                "http://db:3002/",
            ],
        );
        let text = stdout(&out);
        text.contains("Hostname: db-vm3")
            .then_some(())
            .ok_or(format!("{text}{}", stderr(&out)))
    });

    // The same file again changes nothing: every version stays.
    let before = versions(&lab);
    let again = ok(&lab.sn("vm1", &["stack", "deploy", "-c", file, "vote"]));
    assert!(!stdout(&again).contains("Creating"), "{}", stdout(&again));
    assert_eq!(versions(&lab), before, "the same file changes nothing");

    // api at 3 replicas: only api changes.
    deploy_with(&lab, "API_REPLICAS=3", &["-c", file, "vote"]);
    let after = versions(&lab);
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        assert_eq!(name == "vote_api", was != now, "{name}: {was} -> {now}");
    }
    running_all(&lab, "vote_api 3/3\nvote_db 1/1\nvote_front 1/1");

    // db out of the file: kept without --prune, removed with it.
    let full = compose_file();
    let (head, tail) = full.split_once("  db:\n").unwrap();
    let (_, rest) = tail.split_once("networks:\n").unwrap();
    let no_db = dir.path().join("no-db.yml");
    std::fs::write(&no_db, format!("{head}networks:\n{rest}")).unwrap();
    let no_db = no_db.to_str().unwrap();
    deploy_with(&lab, "API_REPLICAS=3", &["-c", no_db, "vote"]);
    assert!(
        replicas(&lab).contains("vote_db 1/1"),
        "kept without --prune"
    );
    let pruned = deploy_with(&lab, "API_REPLICAS=3", &["--prune", "-c", no_db, "vote"]);
    assert!(
        stdout(&pruned).contains("Removing service vote_db"),
        "{}",
        stdout(&pruned)
    );
    running_all(&lab, "vote_api 3/3\nvote_front 1/1");

    // Bad files are one line each and change nothing.
    let bad = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cases = [
        (bad("syntax.yml", "services:\n  web:\n    command: [a\n"), "vote", "syntax.yml: line 4, column 1:"),
        (
            bad("type.yml", "services:\n  web:\n    command: x\n    deploy:\n      replicas: three\n"),
            "vote",
            "services.web.deploy.replicas must be a number, not \"three\"",
        ),
        (
            bad("external.yml", "services:\n  web:\n    command: x\n    networks: [gone]\nnetworks:\n  gone:\n    external: true\n"),
            "vote",
            "network \"gone\" is declared as external, but could not be found",
        ),
        (bad("image.yml", "services:\n  web:\n    image: nginx\n"), "vote", "service \"web\": image \"nginx\" cannot run here"),
        (file.to_string(), "Bad Name", "invalid stack name \"Bad Name\""),
        (
            bad("taken.yml", "services:\n  web:\n    command: x\n    ports: [\"8080:80\"]\n"),
            "other",
            "failed to create service other_web: Error response from daemon: port '8080' is already in use by service 'vote_front'",
        ),
        (
            bad("constraint.yml", "services:\n  web:\n    command: x\n    deploy:\n      placement:\n        constraints: [\"node.colour=blue\"]\n"),
            "other",
            "failed to create service other_web: Error response from daemon:",
        ),
    ];
    let listed = replicas(&lab);
    for (path, stack, needle) in &cases {
        fails_with(
            &lab.sn("vm1", &["stack", "deploy", "-c", path, stack]),
            needle,
        );
    }
    assert_eq!(replicas(&lab), listed, "nothing changed");
    let nets = stdout(&ok(
        &lab.sn("vm1", &["network", "ls", "--format", "{{.Name}}"])
    ));
    assert!(
        !nets.contains("other_"),
        "the refused stack left no network: {nets}"
    );

    // rm leaves no service and no network of the stack.
    ok(&lab.sn("vm1", &["container", "rm", "-f", "probe"]));
    let out = stdout(&ok(&lab.sn("vm1", &["stack", "rm", "vote"])));
    assert!(
        out.contains("Removing service vote_api") && out.contains("Removing network vote_app"),
        "{out}"
    );
    assert_eq!(replicas(&lab).trim(), "");
    let nets = stdout(&ok(
        &lab.sn("vm1", &["network", "ls", "--format", "{{.Name}}"])
    ));
    assert!(!nets.contains("vote_"), "{nets}");
    // No task container and no published-port table is left on any node.
    nothing_left(&lab, &["vm1", "vm2", "vm3"]);
}

#[test]
#[ignore = "needs root"]
fn the_docker_cli_deploys_lists_and_removes_a_stack() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", MANAGER, &["vm2"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, compose_file()).unwrap();
    let file = file.to_str().unwrap();

    let out = docker(&lab, "vm1", &["stack", "deploy", "-c", file, "vote"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Creating service vote_api"),
        "{}",
        stdout(&out)
    );
    running_all(&lab, "vote_api 2/2\nvote_db 0/1\nvote_front 1/1");
    let ls = stdout(&docker(&lab, "vm1", &["stack", "ls"]));
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().eq(["vote", "3", "Swarm"])),
        "{ls}"
    );
    let services = stdout(&docker(
        &lab,
        "vm1",
        &[
            "stack",
            "services",
            "vote",
            "--format",
            "{{.Name}} {{.Ports}}",
        ],
    ));
    assert!(
        services.contains("vote_front *:8080->3000/tcp"),
        "{services}"
    );
    let ps = stdout(&docker(
        &lab,
        "vm1",
        &[
            "stack",
            "ps",
            "vote",
            "--format",
            "{{.Name}} {{.DesiredState}}",
        ],
    ));
    assert!(ps.contains("vote_api.2 Running"), "{ps}");
    let inspect = |s: &str| {
        stdout(&docker(
            &lab,
            "vm1",
            &[
                "service",
                "inspect",
                s,
                "--format",
                "{{.Version.Index}} {{json .Spec.TaskTemplate.ContainerSpec.Labels}}",
            ],
        ))
    };
    let before = inspect("vote_api");
    assert!(
        before.contains(r#""com.docker.stack.namespace":"vote""#),
        "{before}"
    );
    let again = docker(&lab, "vm1", &["stack", "deploy", "-c", file, "vote"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(inspect("vote_api"), before, "the same file changes nothing");

    // docker 20.10's rm does not wait for the tasks: the networks go for
    // users at once (as swarmkit lets them) and for the nodes once the
    // tasks have stopped.
    let rm = docker(&lab, "vm1", &["stack", "rm", "vote"]);
    assert!(rm.status.success(), "{}{}", stdout(&rm), stderr(&rm));
    assert!(
        stdout(&rm).contains("Removing network vote_app"),
        "{}",
        stdout(&rm)
    );
    assert_eq!(replicas(&lab).trim(), "");
    let nets = stdout(&docker(
        &lab,
        "vm1",
        &["network", "ls", "--format", "{{.Name}}"],
    ));
    assert!(!nets.contains("vote_"), "{nets}");
    nothing_left(&lab, &["vm1", "vm2"]);
    // The name is free again once the tasks are gone.
    eventually("vote_app can be made again", WAIT, || {
        let out = lab.sn("vm1", &["network", "create", "-d", "overlay", "vote_app"]);
        out.status.success().then_some(()).ok_or(stderr(&out))
    });
}

/// Every stack file of tests/stack-corpus (public projects' files, their
/// images replaced by commands): deployed, answering on its published
/// port from outside the swarm, and removed without a trace.
#[test]
#[ignore = "needs root"]
fn the_corpus_of_public_stack_files_deploys_answers_and_is_removed() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3", "client"]);
    lab.swarm("vm1", MANAGER, &["vm2", "vm3"]);
    let corpus = format!("{}/tests/stack-corpus", env!("CARGO_MANIFEST_DIR"));
    // (file, every service with its replicas, a published port and who answers it)
    let cases = [
        (
            "example-voting-app.yml",
            "voting_db 1/1\nvoting_redis 1/1\nvoting_result 1/1\nvoting_visualizer 1/1\nvoting_vote 2/2\nvoting_worker 1/1",
            "voting",
            5000,
            "Hostname: voting_vote.",
        ),
        (
            "traefik-whoami.yml",
            "edge_traefik 1/1\nedge_whoami 3/3",
            "edge",
            8000,
            "Name: traefik",
        ),
    ];
    let swarmnet = format!("SWARMNET={}", bin());
    for (file, want, stack, port, answer) in cases {
        let path = format!("{corpus}/{file}");
        deploy_with(&lab, &swarmnet, &["-c", &path, stack]);
        running_all(&lab, want);
        let url = format!("http://192.168.99.102:{port}/");
        eventually(&format!("{stack} answers on {url}"), WAIT, || {
            let out = lab.ssh("client", &["curl", "-sS", "-m", "3", &url]);
            let text = stdout(&out);
            text.contains(answer)
                .then_some(())
                .ok_or(format!("{text}{}", stderr(&out)))
        });
        ok(&lab.sn("vm1", &["stack", "rm", stack]));
        assert_eq!(replicas(&lab).trim(), "", "{file}: no service left");
        let nets = stdout(&ok(
            &lab.sn("vm1", &["network", "ls", "--format", "{{.Name}}"])
        ));
        assert!(!nets.contains(&format!("{stack}_")), "{file}: {nets}");
    }
}
