//! The real docker CLI runs services on three machines through swarmnet's
//! Docker Engine API: bad published ports refused, create, scale, drain,
//! constraints, promote and demote, global mode, a rolling update and its
//! rollback, service logs and rm, each checked as a Docker Swarm user would.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::*;
use crate::services::{by_node, ps_running};

const WITHIN: Duration = Duration::from_secs(30);

const NOT_A_MANAGER: &str = "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";

/// `docker ARGS` on vm1 (the leader), which must succeed; its stdout.
fn on_vm1(lab: &Lab, args: &[&str]) -> String {
    stdout(&ok(&docker(lab, "vm1", args)))
}

/// `docker service create` of whoami on PORT, with EXTRA flags before the image.
fn whoami_service<'a>(name: &'a str, port: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["service", "create", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["host", bin(), "whoami", "--port", port]);
    args
}

/// A docker service command that waits for the service: it must end converged.
#[track_caller]
fn converged(lab: &Lab, args: &[&str]) -> String {
    let out = on_vm1(lab, args);
    assert!(
        out.trim_end().ends_with("verify: Service converged"),
        "{out}"
    );
    out
}

/// Running tasks of a service by node, from `docker service ps`.
fn running(lab: &Lab, service: &str) -> BTreeMap<String, usize> {
    by_node(&on_vm1(lab, &ps_running(service)))
}

/// Waits until the service runs exactly `want` tasks on each node.
#[track_caller]
fn runs(lab: &Lab, service: &str, want: &[(&str, usize)]) {
    let want: BTreeMap<String, usize> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    eventually(&format!("{service} runs {want:?}"), WITHIN, || {
        let now = running(lab, service);
        (now == want).then_some(()).ok_or(format!("{now:?}"))
    });
}

/// Waits until the service runs `count` tasks, none of them on `off`.
#[track_caller]
fn runs_off(lab: &Lab, service: &str, count: usize, off: &[&str]) {
    eventually(
        &format!("{count} {service} tasks, none on {off:?}"),
        WITHIN,
        || {
            let now = running(lab, service);
            let placed = now.values().sum::<usize>() == count;
            let avoided = off.iter().all(|n| !now.contains_key(*n));
            (placed && avoided).then_some(()).ok_or(format!("{now:?}"))
        },
    );
}

/// The whitespace-split rows of a docker table, without its header.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
#[ignore = "needs root"]
fn docker_cli_creates_scales_drains_and_constrains_a_service() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    lab.swarm("vm1", "192.168.99.100", &["vm2", "vm3"]);

    // Bad published ports: refused in one line (Docker's words), nothing made.
    let dnsrr = whoami_service(
        "web",
        "3000",
        &["--endpoint-mode", "dnsrr", "-p", "8080:3000"],
    );
    fails_with(
        &docker(&lab, "vm1", &dnsrr),
        "Error response from daemon: EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
    );
    let sctp = whoami_service("web", "3000", &["-p", "8080:3000/sctp"]);
    fails_with(
        &docker(&lab, "vm1", &sctp),
        "protocol sctp (port 3000/sctp) is not supported",
    );
    assert_eq!(on_vm1(&lab, &["service", "ls", "-q"]), "");

    // Three replicas on an overlay, one per node, named web.1..web.3.
    ok(&docker(
        &lab,
        "vm1",
        &["network", "create", "-d", "overlay", "app"],
    ));
    let create = whoami_service(
        "web",
        "3000",
        &["--replicas", "3", "--network", "name=app,alias=front"],
    );
    let progress = converged(&lab, &create);
    assert!(
        progress.contains("overall progress: 3 out of 3 tasks"),
        "{progress}"
    );
    let ls = on_vm1(&lab, &["service", "ls"]);
    assert_eq!(
        rows(&ls)
            .iter()
            .map(|r| r[1..].join(" "))
            .collect::<Vec<_>>(),
        ["web replicated 3/3 host"],
        "{ls}"
    );
    // The long --network form: docker sends the alias, inspect shows it back.
    let inspect = on_vm1(&lab, &["service", "inspect", "web"]);
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        doc[0]["Spec"]["TaskTemplate"]["Networks"][0]["Aliases"],
        serde_json::json!(["front"]),
        "{inspect}"
    );
    let ps = on_vm1(&lab, &["service", "ps", "web"]);
    let mut tasks = rows(&ps);
    tasks.sort_by_key(|r| r[1]);
    let names: Vec<[&str; 3]> = tasks.iter().map(|r| [r[1], r[4], r[5]]).collect();
    assert_eq!(
        names,
        [
            ["web.1", "Running", "Running"],
            ["web.2", "Running", "Running"],
            ["web.3", "Running", "Running"],
        ],
        "{ps}"
    );
    let mut nodes: Vec<&str> = tasks.iter().map(|r| r[3]).collect();
    nodes.sort();
    assert_eq!(nodes, ["vm1", "vm2", "vm3"], "{ps}");

    // Scale with update --replicas, then with scale.
    converged(&lab, &["service", "update", "--replicas", "4", "web"]);
    runs_off(&lab, "web", 4, &[]);
    let scaled = converged(&lab, &["service", "scale", "web=5"]);
    assert!(scaled.starts_with("web scaled to 5\n"), "{scaled}");
    assert!(
        scaled.contains("overall progress: 5 out of 5 tasks"),
        "{scaled}"
    );
    runs_off(&lab, "web", 5, &[]);

    // Drain moves vm2's tasks elsewhere; node ps shows them shut down.
    let drain = ["node", "update", "--availability", "drain", "vm2"];
    assert_eq!(on_vm1(&lab, &drain), "vm2\n");
    runs_off(&lab, "web", 5, &["vm2"]);
    eventually("vm2's tasks Shutdown", WITHIN, || {
        let ps = on_vm1(&lab, &["node", "ps", "vm2"]);
        let tasks = rows(&ps);
        let shut = tasks
            .iter()
            .all(|r| r[4] == "Shutdown" && r[5] == "Shutdown");
        (!tasks.is_empty() && shut).then_some(()).ok_or(ps)
    });
    let active = ["node", "update", "--availability", "active", "vm2"];
    assert_eq!(on_vm1(&lab, &active), "vm2\n");

    // Worker-only: the manager's tasks move to vm2 and vm3.
    converged(
        &lab,
        &[
            "service",
            "update",
            "--constraint-add",
            "node.role==worker",
            "web",
        ],
    );
    runs_off(&lab, "web", 5, &["vm1"]);

    // Promoted, vm2 is a manager: it answers node ls, and its tasks leave.
    docker_fails_with(&docker(&lab, "vm2", &["node", "ls"]), NOT_A_MANAGER);
    assert_eq!(
        on_vm1(&lab, &["node", "promote", "vm2"]),
        "Node vm2 promoted to a manager in the swarm.\n"
    );
    eventually("vm2 Reachable", WITHIN, || {
        let ls = on_vm1(&lab, &["node", "ls"]);
        rows(&ls)
            .iter()
            .any(|r| r[1..5] == ["vm2", "Ready", "Active", "Reachable"])
            .then_some(())
            .ok_or(ls)
    });
    let from_vm2 = eventually("node ls on vm2", WITHIN, || {
        let out = docker(&lab, "vm2", &["node", "ls"]);
        out.status
            .success()
            .then(|| stdout(&out))
            .ok_or(stderr(&out))
    });
    assert!(
        rows(&from_vm2).iter().any(|r| r[1..3] == ["*", "vm2"]),
        "{from_vm2}"
    );
    runs(&lab, "web", &[("vm3", 5)]);

    // Demoted, vm2 is a worker again; the last manager cannot be demoted.
    assert_eq!(
        on_vm1(&lab, &["node", "demote", "vm2"]),
        "Manager vm2 demoted in the swarm.\n"
    );
    eventually("vm2 refuses node ls", WITHIN, || {
        let out = docker(&lab, "vm2", &["node", "ls"]);
        let err = stderr(&out);
        (!out.status.success() && err.contains(NOT_A_MANAGER))
            .then_some(())
            .ok_or(format!("{}{err}", stdout(&out)))
    });
    docker_fails_with(
        &docker(&lab, "vm1", &["node", "demote", "vm1"]),
        "attempting to demote the last manager of the swarm",
    );
}

#[test]
#[ignore = "needs root"]
fn docker_cli_runs_global_services_rolls_updates_back_and_removes_them() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    lab.swarm("vm1", "192.168.99.100", &["vm2", "vm3"]);
    converged(&lab, &whoami_service("web", "3000", &["--replicas", "3"]));
    runs(&lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)]);

    // Global: one task on every node.
    converged(&lab, &whoami_service("g", "3001", &["--mode", "global"]));
    runs(&lab, "g", &[("vm1", 1), ("vm2", 1), ("vm3", 1)]);
    let ls = on_vm1(&lab, &["service", "ls", "--filter", "name=g"]);
    assert_eq!(rows(&ls)[0][1..], ["g", "global", "3/3", "host"], "{ls}");

    // A rolling update, one task at a time, then its rollback.
    let update = converged(
        &lab,
        &[
            "service",
            "update",
            "--update-parallelism",
            "1",
            "--update-delay",
            "1s",
            "--env-add",
            "COLOUR=green",
            "web",
        ],
    );
    for step in 1..=3 {
        let line = format!("overall progress: {step} out of 3 tasks");
        assert!(update.contains(&line), "{update}");
    }
    let state = [
        "service",
        "inspect",
        "--format",
        "{{.UpdateStatus.State}}",
        "web",
    ];
    assert_eq!(on_vm1(&lab, &state), "completed\n");
    let inspect = on_vm1(&lab, &["service", "inspect", "web"]);
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        doc[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"],
        serde_json::json!(["COLOUR=green"]),
        "{inspect}"
    );
    let ps = on_vm1(&lab, &["service", "ps", "web"]);
    let mut history: Vec<Vec<&str>> = rows(&ps).into_iter().filter(|r| r[1] == "\\_").collect();
    history.sort_by_key(|r| r[2]);
    let shut: Vec<[&str; 3]> = history.iter().map(|r| [r[2], r[5], r[6]]).collect();
    assert_eq!(
        shut,
        [
            ["web.1", "Shutdown", "Shutdown"],
            ["web.2", "Shutdown", "Shutdown"],
            ["web.3", "Shutdown", "Shutdown"],
        ],
        "{ps}"
    );
    runs(&lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)]);
    let rollback = converged(&lab, &["service", "rollback", "web"]);
    assert!(
        rollback.contains("rollback: manually requested rollback"),
        "{rollback}"
    );
    assert_eq!(on_vm1(&lab, &state), "rollback_completed\n");
    let inspect = on_vm1(&lab, &["service", "inspect", "web"]);
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        doc[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"],
        serde_json::Value::Null,
        "{inspect}"
    );
    runs(&lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)]);

    // Logs from every node that ran a task, prefixed as docker prefixes them.
    eventually("logs from vm1, vm2 and vm3", WITHIN, || {
        let logs = on_vm1(&lab, &["service", "logs", "web"]);
        let well_formed = logs.lines().all(|l| {
            let Some((prefix, text)) = l.split_once("    | ") else {
                return false;
            };
            let parts: Vec<&str> = prefix.split(['.', '@']).collect();
            matches!(parts[..], ["web", slot, id, node]
                if ["1", "2", "3"].contains(&slot)
                    && id.len() == 12
                    && node.starts_with("vm"))
                && (text.contains("whoami listening") || text.contains("whoami shutting down"))
        });
        let every_node = ["vm1", "vm2", "vm3"]
            .iter()
            .all(|n| logs.contains(&format!("@{n}    | ")));
        (well_formed && every_node).then_some(()).ok_or(logs)
    });

    // rm: the services go, and so do their task containers on every node.
    assert_eq!(on_vm1(&lab, &["service", "rm", "web", "g"]), "web\ng\n");
    eventually("no services", WITHIN, || {
        let ls = on_vm1(&lab, &["service", "ls", "-q"]);
        ls.is_empty().then_some(()).ok_or(ls)
    });
    for machine in ["vm1", "vm2", "vm3"] {
        eventually(&format!("no task containers on {machine}"), WITHIN, || {
            let names = stdout(&ok(&lab.sn(
                machine,
                &["container", "ls", "-a", "--format", "{{.Names}}"],
            )));
            let left = names
                .lines()
                .any(|n| n.starts_with("web.") || n.starts_with("g."));
            (!left).then_some(()).ok_or(names)
        });
    }
}
