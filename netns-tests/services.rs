//! Services on three machines with the swarmnet CLI: replicas spread over
//! the nodes, scaling, constraints (role, hostname, labels), Pending with
//! Docker's reason, global mode including a node that joins later, drain and
//! active, a killed task replaced, a lost node's tasks placed elsewhere and
//! never duplicated when it comes back, a rolling update, and bad input.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::*;

/// `service ps SERVICE` arguments that list the tasks meant to run, as "NODE STATE".
pub fn ps_running(service: &str) -> [&str; 7] {
    [
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    ]
}

/// Running tasks by node hostname, from the output of `ps_running`.
pub fn by_node(ps: &str) -> BTreeMap<String, usize> {
    let mut by_node = BTreeMap::new();
    for (node, state) in ps.lines().filter_map(|l| l.split_once(' ')) {
        if state.starts_with("Running") {
            *by_node.entry(node.to_string()).or_insert(0) += 1;
        }
    }
    by_node
}

/// Running tasks of a service by node hostname, as `service ps` shows them.
pub fn running(lab: &Lab, on: &str, service: &str) -> BTreeMap<String, usize> {
    by_node(&stdout(&ok(&lab.sn(on, &ps_running(service)))))
}

/// Waits until the service runs exactly `want` tasks per node.
#[track_caller]
pub fn converges(lab: &Lab, service: &str, want: &[(&str, usize)], within: Duration) {
    let want: BTreeMap<String, usize> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    eventually(&format!("{service} runs {want:?}"), within, || {
        let now = running(lab, "vm1", service);
        (now == want)
            .then_some(())
            .ok_or_else(|| tasks(lab, service))
    });
}

/// Every task of a service with its error, for a failure's message.
pub fn tasks(lab: &Lab, service: &str) -> String {
    stdout(&lab.sn("vm1", &["service", "ps", "--no-trunc", service]))
}

/// Runs a service command that waits for convergence; a failure shows the tasks.
#[track_caller]
pub fn converged(lab: &Lab, args: &[&str], service: &str) -> String {
    let out = lab.sn("vm1", args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}\n{}",
        stdout(&out),
        stderr(&out),
        tasks(lab, service)
    );
    stdout(&out)
}

fn total(map: &BTreeMap<String, usize>) -> usize {
    map.values().sum()
}

const WITHIN: Duration = Duration::from_secs(30);

fn whoami_service<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["service", "create", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["host", bin(), "whoami", "--port", "3000"]);
    args
}

#[test]
#[ignore = "needs root"]
fn services_spread_scale_follow_constraints_and_go_global() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.machine("vm3", &["--label", "disk=ssd"]);
    let token = lab.swarm("vm1", "192.168.99.100", &["vm2", "vm3"]);
    ok(&lab.sn("vm1", &["network", "create", "-d", "overlay", "app"]));

    // Three replicas, one per node; create waits until they run.
    let out = ok(&lab.sn(
        "vm1",
        &whoami_service(
            "web",
            &["--replicas", "3", "--network", "name=app,alias=front"],
        ),
    ));
    let text = stdout(&out);
    assert!(
        text.contains("overall progress: 3 out of 3 tasks"),
        "{text}"
    );
    assert!(text.contains("verify: Service converged"), "{text}");
    converges(&lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WITHIN);
    // The long --network form: its alias is in the spec, where Docker shows it.
    let inspect = stdout(&ok(&lab.sn("vm1", &["service", "inspect", "web"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        doc[0]["Spec"]["TaskTemplate"]["Networks"][0]["Aliases"],
        serde_json::json!(["front"]),
        "{inspect}"
    );
    let ls = stdout(&ok(&lab.sn("vm1", &["service", "ls"])));
    let row = ls.lines().find(|l| l.contains(" web ")).unwrap_or_default();
    assert!(
        row.contains("replicated") && row.contains("3/3") && row.contains("host"),
        "{ls}"
    );

    // A task is a container on its node, on the service's network, answering there.
    let names = stdout(&ok(
        &lab.sn("vm2", &["container", "ls", "--format", "{{.Names}}"])
    ));
    let task = names
        .lines()
        .find(|n| n.starts_with("web."))
        .unwrap_or_else(|| panic!("no task container on vm2: {names}"))
        .to_string();
    let ip = stdout(&ok(&lab.sn(
        "vm2",
        &[
            "container",
            "inspect",
            "--format",
            "{{.NetworkSettings.Networks.app.IPAddress}}",
            &task,
        ],
    )))
    .trim()
    .to_string();
    let on_vm1 = stdout(&ok(
        &lab.sn("vm1", &["container", "ls", "--format", "{{.Names}}"])
    ));
    let vm1_task = on_vm1
        .lines()
        .find(|n| n.starts_with("web."))
        .unwrap()
        .to_string();
    let url = format!("http://{ip}:3000/");
    let reply = stdout(&ok(&lab.sn(
        "vm1",
        &[
            "container",
            "exec",
            &vm1_task,
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ],
    )));
    assert!(reply.contains(&format!("Hostname: {task}")), "{reply}");
    let logs = stdout(&ok(&lab.sn("vm2", &["container", "logs", &task])));
    assert!(logs.contains("listening"), "{logs}");

    // Scale up spreads, scale down removes.
    ok(&lab.sn("vm1", &["service", "scale", "web=5"]));
    let five = running(&lab, "vm1", "web");
    assert_eq!(total(&five), 5, "{five:?}");
    assert!(
        five.values().all(|n| (1..=2).contains(n)),
        "spread: {five:?}"
    );
    ok(&lab.sn("vm1", &["service", "scale", "web=2"]));
    eventually("2 tasks", WITHIN, || {
        let now = running(&lab, "vm1", "web");
        (total(&now) == 2).then_some(()).ok_or(format!("{now:?}"))
    });

    // Constraints: role, hostname, labels; the manager runs nothing of a worker-only service.
    converged(
        &lab,
        &[
            "service",
            "update",
            "--replicas",
            "4",
            "--constraint-add",
            "node.role==worker",
            "web",
        ],
        "web",
    );
    converges(&lab, "web", &[("vm2", 2), ("vm3", 2)], WITHIN);
    converged(
        &lab,
        &[
            "service",
            "update",
            "--constraint-add",
            "node.hostname!=vm2",
            "web",
        ],
        "web",
    );
    converges(&lab, "web", &[("vm3", 4)], WITHIN);
    ok(&lab.sn(
        "vm1",
        &["node", "update", "--label-add", "zone=east", "vm2"],
    ));
    ok(&lab.sn(
        "vm1",
        &whoami_service(
            "east",
            &["--replicas", "2", "--constraint", "node.labels.zone==east"],
        ),
    ));
    converges(&lab, "east", &[("vm2", 2)], WITHIN);
    // An engine label: the daemon's own --label.
    ok(&lab.sn(
        "vm1",
        &whoami_service(
            "ssd",
            &["--replicas", "2", "--constraint", "engine.labels.disk==ssd"],
        ),
    ));
    converges(&lab, "ssd", &[("vm3", 2)], WITHIN);

    // Nowhere to go: Pending, with Docker's reason.
    ok(&lab.sn(
        "vm1",
        &whoami_service(
            "mars",
            &["--detach", "--constraint", "node.labels.zone==mars"],
        ),
    ));
    eventually("mars pending", WITHIN, || {
        let ps = stdout(&ok(&lab.sn("vm1", &["service", "ps", "--no-trunc", "mars"])));
        (ps.contains("Pending")
            && ps.contains("no suitable node (scheduling constraints not satisfied on 3 nodes)"))
        .then_some(())
        .ok_or(ps)
    });

    // Global: one per node, and one on a node that joins later.
    ok(&lab.sn("vm1", &whoami_service("everywhere", &["--mode", "global"])));
    converges(
        &lab,
        "everywhere",
        &[("vm1", 1), ("vm2", 1), ("vm3", 1)],
        WITHIN,
    );
    lab.machines(&["vm4"]);
    ok(&lab.sn(
        "vm4",
        &["swarm", "join", "--token", &token, "192.168.99.100:2377"],
    ));
    converges(
        &lab,
        "everywhere",
        &[("vm1", 1), ("vm2", 1), ("vm3", 1), ("vm4", 1)],
        WITHIN,
    );

    // service rm: the tasks stop and their containers go.
    ok(&lab.sn(
        "vm1",
        &["service", "rm", "everywhere", "east", "mars", "ssd"],
    ));
    eventually("no everywhere containers", WITHIN, || {
        let ls = stdout(&ok(
            &lab.sn("vm4", &["container", "ls", "-a", "--format", "{{.Names}}"])
        ));
        (!ls.contains("everywhere.")).then_some(()).ok_or(ls)
    });
}

#[test]
#[ignore = "needs root"]
fn tasks_are_replaced_after_a_kill_a_drain_and_a_lost_node() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    lab.swarm("vm1", "192.168.99.100", &["vm2", "vm3"]);
    ok(&lab.sn(
        "vm1",
        &whoami_service("web", &["--replicas", "3", "--restart-delay", "1s"]),
    ));
    converges(&lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WITHIN);

    // kill -9 of a task's process: a failed task, and a new one in its slot.
    let names = stdout(&ok(
        &lab.sn("vm2", &["container", "ls", "--format", "{{.Names}}"])
    ));
    let task = names
        .lines()
        .find(|n| n.starts_with("web."))
        .unwrap()
        .to_string();
    let pid = stdout(&ok(&lab.sn(
        "vm2",
        &["container", "inspect", "--format", "{{.State.Pid}}", &task],
    )))
    .trim()
    .to_string();
    ok(&lab.ssh("vm2", &["kill", "-9", &pid]));
    let slot = task.split('.').nth(1).unwrap().to_string();
    eventually("the killed task is replaced", WITHIN, || {
        let ps = stdout(&ok(&lab.sn("vm1", &["service", "ps", "--no-trunc", "web"])));
        let failed = ps.lines().any(|l| {
            l.contains(&format!("\\_ web.{slot}"))
                && l.contains("Failed")
                && l.contains("task: non-zero exit (137)")
        });
        let replaced = ps.lines().any(|l| {
            l.contains(&format!(" web.{slot} ")) && l.contains("Running") && !l.contains("\\_")
        });
        (failed && replaced).then_some(()).ok_or(ps)
    });

    // drain moves tasks off; active lets new ones land.
    ok(&lab.sn("vm1", &["node", "update", "--availability", "drain", "vm2"]));
    eventually("nothing on vm2", WITHIN, || {
        let now = running(&lab, "vm1", "web");
        (!now.contains_key("vm2") && total(&now) == 3)
            .then_some(())
            .ok_or(format!("{now:?}"))
    });
    ok(&lab.sn(
        "vm1",
        &["node", "update", "--availability", "active", "vm2"],
    ));
    ok(&lab.sn("vm1", &["service", "scale", "web=6"]));
    converges(&lab, "web", &[("vm1", 2), ("vm2", 2), ("vm3", 2)], WITHIN);

    // A worker's daemon stops: its tasks stop with it and run elsewhere
    // (within 15 s on an idle box: scripts/bench services measures it; the
    // deadline here leaves room for a loaded CI machine).
    ok(&lab.run(&["machine", "stop", "vm3"]));
    let started = std::time::Instant::now();
    eventually("vm3's tasks elsewhere", WITHIN, || {
        let now = running(&lab, "vm1", "web");
        let placed = now.get("vm1").copied().unwrap_or(0) + now.get("vm2").copied().unwrap_or(0);
        (placed == 6)
            .then_some(())
            .ok_or_else(|| tasks(&lab, "web"))
    });
    eprintln!("rescheduled in {:?}", started.elapsed());
    // Back again: its stale tasks are shut down, never run twice.
    ok(&lab.run(&["machine", "start", "vm3"]));
    eventually("vm3 Ready", WITHIN, || {
        let ls = stdout(&ok(&lab.sn(
            "vm1",
            &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
        )));
        ls.contains("vm3 Ready").then_some(()).ok_or(ls)
    });
    for _ in 0..10 {
        let now = running(&lab, "vm1", "web");
        assert_eq!(total(&now), 6, "never more than the replicas: {now:?}");
        let on_vm3 = stdout(&ok(
            &lab.sn("vm3", &["container", "ls", "--format", "{{.Names}}"])
        ));
        assert!(
            !on_vm3.contains("web."),
            "no stale task runs on vm3: {on_vm3}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // A worker leaves: its tasks stop cleanly there and run on the others.
    ok(&lab.sn("vm2", &["swarm", "leave"]));
    let on_vm2 = stdout(&ok(
        &lab.sn("vm2", &["container", "ls", "-a", "--format", "{{.Names}}"])
    ));
    assert!(
        !on_vm2.contains("web."),
        "the tasks left with the node: {on_vm2}"
    );
    eventually("vm2's tasks elsewhere", WITHIN, || {
        let now = running(&lab, "vm1", "web");
        let placed = now.get("vm1").copied().unwrap_or(0) + now.get("vm3").copied().unwrap_or(0);
        (placed == 6)
            .then_some(())
            .ok_or_else(|| tasks(&lab, "web"))
    });
}

#[test]
#[ignore = "needs root"]
fn a_rolling_update_replaces_one_task_at_a_time_and_rolls_back() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    lab.swarm("vm1", "192.168.99.100", &["vm2", "vm3"]);
    ok(&lab.sn(
        "vm1",
        &whoami_service("web", &["--replicas", "3", "--env", "COLOUR=blue"]),
    ));
    converges(&lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WITHIN);
    let out = ok(&lab.sn(
        "vm1",
        &[
            "service",
            "update",
            "--env-add",
            "COLOUR=green",
            "--update-parallelism",
            "1",
            "--update-delay",
            "1s",
            "web",
        ],
    ));
    assert!(
        stdout(&out).contains("verify: Service converged"),
        "{}",
        stdout(&out)
    );
    let inspect = stdout(&ok(&lab.sn("vm1", &["service", "inspect", "web"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(doc[0]["UpdateStatus"]["State"], "completed", "{inspect}");
    assert!(
        doc[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
            .to_string()
            .contains("COLOUR=green"),
        "{inspect}"
    );
    // One at a time: the new tasks started at least a second apart.
    let ps = stdout(&ok(&lab.sn(
        "vm1",
        &[
            "service",
            "ps",
            "web",
            "--format",
            "{{.Name}} {{.DesiredState}}",
        ],
    )));
    assert_eq!(
        ps.lines().filter(|l| l.ends_with("Shutdown")).count(),
        3,
        "{ps}"
    );
    let running_now = ps.lines().filter(|l| l.ends_with("Running")).count();
    assert_eq!(running_now, 3, "{ps}");

    // A failing update pauses and says why; rollback brings the old spec back.
    let out = lab.sn(
        "vm1",
        &["service", "update", "--args", "no-such-subcommand", "web"],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    let inspect = stdout(&ok(&lab.sn("vm1", &["service", "inspect", "web"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(doc[0]["UpdateStatus"]["State"], "paused", "{inspect}");
    assert!(
        doc[0]["UpdateStatus"]["Message"]
            .to_string()
            .contains("update paused due to failure"),
        "{inspect}"
    );
    ok(&lab.sn("vm1", &["service", "rollback", "web"]));
    converges(&lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WITHIN);
    let inspect = stdout(&ok(&lab.sn("vm1", &["service", "inspect", "web"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        doc[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"][1], "whoami",
        "{inspect}"
    );

    // Logs of every task from every node, named as docker names them.
    let logs = stdout(&ok(&lab.sn("vm1", &["service", "logs", "web"])));
    for node in ["vm1", "vm2", "vm3"] {
        assert!(logs.contains(&format!("@{node}    | ")), "{logs}");
    }
}

#[test]
#[ignore = "needs root"]
fn bad_service_input_gets_one_line_and_changes_nothing() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", "192.168.99.100", &["vm2"]);
    ok(&lab.sn("vm1", &whoami_service("web", &["--detach"])));
    let before = stdout(&ok(&lab.sn("vm1", &["service", "ls", "-q"])));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            whoami_service("a", &["--network", "nope"]),
            "No such network: nope",
        ),
        (
            whoami_service("a", &["--network", "name=nope,colour=red"]),
            "invalid field key colour",
        ),
        (
            whoami_service("a", &["--replicas", "2", "--mode", "global"]),
            "replicas can only be used with replicated",
        ),
        (
            whoami_service("a", &["--constraint", "node.role=worker"]),
            "expected one operator from ==, !=",
        ),
        (
            whoami_service("a", &["--constraint", "node.colour==red"]),
            "key 'node.colour' is invalid",
        ),
        (whoami_service("web", &[]), "already exists"),
        (whoami_service("a", &["--replicas", "-1"]), "replicas"),
        (
            vec!["service", "create", "--name", "a", "nginx"],
            "only image is \"host\"",
        ),
        (vec!["service", "scale", "nope=2"], "nope"),
        (vec!["service", "rm", "nope"], "nope"),
        (
            vec!["node", "update", "--availability", "drain", "nope"],
            "nope",
        ),
        (vec!["node", "demote", "vm1"], "last manager"),
    ];
    for (args, needle) in cases {
        fails_with(&lab.sn("vm1", &args), needle);
    }
    ok(&lab.sn(
        "vm1",
        &whoami_service("g", &["--mode", "global", "--detach"]),
    ));
    fails_with(
        &lab.sn("vm1", &["service", "scale", "g=3"]),
        "scale can only be used with replicated",
    );
    ok(&lab.sn("vm1", &["service", "rm", "g"]));
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["service", "ls", "-q"]))),
        before,
        "nothing changed"
    );
}
