//! Health checks end to end: a whoami service of 2 replicas on an overlay,
//! each task checked with `test -f DIR/ok-$(hostname)` (a task's hostname is
//! its container's name, `web.1.<task id>`, and its filesystem the host's,
//! so the test flips each task's health with a file). `dig tasks.web` from a
//! container lists only the healthy tasks; a task that turns unhealthy
//! leaves the answers, is stopped, fails with Docker's error and is
//! replaced; `container inspect` and `container ls` show the health.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

const MANAGER: &str = "192.168.99.100";
const WAIT: Duration = Duration::from_secs(30);

/// `GET path` on vm1's API, as JSON.
fn api(lab: &Lab, path: &str) -> serde_json::Value {
    let url = format!("http://swarmnet{path}");
    let sock = "/run/swarmnet/swarmnet.sock";
    let out = ok(&lab.ssh("vm1", &["curl", "-sSf", "--unix-socket", sock, &url]));
    serde_json::from_str(&stdout(&out)).expect("the API answers JSON")
}

/// Every task of `web`, as the manager has it.
fn tasks(lab: &Lab) -> Vec<serde_json::Value> {
    let all = api(lab, "/tasks");
    let web = api(lab, "/services/web");
    all.as_array()
        .expect("a list of tasks")
        .iter()
        .filter(|t| t["ServiceID"] == web["ID"])
        .cloned()
        .collect()
}

/// A task's container name (its hostname): `web.<slot>.<id>`.
fn name(task: &serde_json::Value) -> String {
    format!("web.{}.{}", task["Slot"], task["ID"].as_str().unwrap())
}

/// The running tasks meant to run, by container name, with their address on `net_id`.
fn running(lab: &Lab, net_id: &str) -> BTreeMap<String, Ipv4Addr> {
    tasks(lab)
        .iter()
        .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
        .map(|t| {
            let addr = t["NetworksAttachments"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["Network"]["ID"] == net_id)
                .and_then(|a| a["Addresses"][0].as_str()?.split('/').next()?.parse().ok())
                .unwrap_or_else(|| panic!("a running task without an address on app: {t}"));
            (name(t), addr)
        })
        .collect()
}

/// `dig +short tasks.web` from the idle container on vm1.
fn tasks_web(lab: &Lab) -> Result<BTreeSet<Ipv4Addr>, String> {
    let out = lab.sn(
        "vm1",
        &[
            "container",
            "exec",
            "cli1",
            "--",
            "dig",
            "@127.0.0.11",
            "+short",
            "+tries=1",
            "+timeout=2",
            "tasks.web",
        ],
    );
    if !out.status.success() {
        return Err(format!("dig failed: {}{}", stdout(&out), stderr(&out)));
    }
    Ok(stdout(&out)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Waits until `tasks.web` answers exactly `want`.
#[track_caller]
fn tasks_web_is(lab: &Lab, want: &BTreeSet<Ipv4Addr>, why: &str) {
    eventually(why, WAIT, || {
        let got = tasks_web(lab)?;
        (got == *want)
            .then_some(())
            .ok_or(format!("tasks.web answers {got:?}, want {want:?}"))
    });
}

/// `container inspect` of a task's container on whichever machine runs it.
fn inspect(lab: &Lab, container: &str) -> serde_json::Value {
    for machine in ["vm1", "vm2"] {
        let out = lab.sn(machine, &["container", "inspect", container]);
        if out.status.success() {
            let docs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
            return docs[0].clone();
        }
    }
    panic!("no machine has container {container}");
}

/// `container ls` STATUS of a task's container.
fn ps_status(lab: &Lab, container: &str) -> String {
    for machine in ["vm1", "vm2"] {
        let out = ok(&lab.sn(
            machine,
            &["container", "ls", "--format", "{{.Names}}\t{{.Status}}"],
        ));
        let text = stdout(&out);
        let found = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{container}\t")));
        if let Some(status) = found {
            return status.to_string();
        }
    }
    panic!("no machine lists container {container}");
}

/// The container names `GET /containers/json?filters={"health":[HEALTH]}`
/// gives on both machines (`docker ps --filter health=...`).
fn with_health(lab: &Lab, health: &str) -> BTreeSet<String> {
    let filters = format!(r#"filters={{"health":["{health}"]}}"#);
    let sock = "/run/swarmnet/swarmnet.sock";
    let mut names = BTreeSet::new();
    for machine in ["vm1", "vm2"] {
        let out = ok(&lab.ssh(
            machine,
            &[
                "curl",
                "-sSf",
                "--unix-socket",
                sock,
                "-G",
                "http://swarmnet/containers/json",
                "--data-urlencode",
                &filters,
            ],
        ));
        let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        for c in list.as_array().unwrap() {
            names.insert(
                c["Names"][0]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('/')
                    .to_string(),
            );
        }
    }
    names
}

fn mark_ok(dir: &Path, task: &str) {
    std::fs::write(dir.join(format!("ok-{task}")), "").unwrap();
}

#[test]
#[ignore = "needs root"]
fn only_healthy_tasks_take_traffic_and_an_unhealthy_one_is_replaced() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", MANAGER, &["vm2"]);
    ok(&lab.sn(
        "vm1",
        &["network", "create", "-d", "overlay", "--attachable", "app"],
    ));
    let app = stdout(&ok(
        &lab.sn("vm1", &["network", "inspect", "--format", "{{.Id}}", "app"])
    ))
    .trim()
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    let check = format!("test -f {}/ok-$(hostname)", dir.path().display());
    // A long start period: failures before the first pass do not count, so
    // the tasks wait (starting) until the test marks them.
    ok(&lab.sn(
        "vm1",
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "2",
            "--network",
            "app",
            "--health-cmd",
            &check,
            "--health-interval",
            "500ms",
            "--health-retries",
            "2",
            "--health-start-period",
            "5m",
            "--restart-delay",
            "1s",
            "--stop-grace-period",
            "1s",
            "host",
            bin(),
            "whoami",
            "--port",
            "3000",
        ],
    ));
    ok(&lab.sn(
        "vm1",
        &[
            "container",
            "run",
            "-d",
            "--name",
            "cli1",
            "--network",
            "app",
            "--",
            "sleep",
            "infinity",
        ],
    ));
    let first = eventually("2 running tasks", WAIT, || {
        let r = running(&lab, &app);
        (r.len() == 2).then_some(r.clone()).ok_or(format!("{r:?}"))
    });
    let names: Vec<String> = first.keys().cloned().collect();

    // Starting: running, but not in the answers.
    tasks_web_is(&lab, &BTreeSet::new(), "starting tasks take no traffic");
    let starting = inspect(&lab, &names[0]);
    assert_eq!(
        starting["State"]["Health"]["Status"], "starting",
        "{starting}"
    );
    assert!(ps_status(&lab, &names[0]).ends_with("(health: starting)"));
    let inspected = ok(&lab.sn("vm1", &["service", "inspect", "web"]));
    let spec: serde_json::Value = serde_json::from_str(&stdout(&inspected)).unwrap();
    let health = &spec[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["HealthCheck"];
    assert_eq!(health["Test"], serde_json::json!(["CMD-SHELL", check]));
    assert_eq!(health["Interval"], 500_000_000);

    // Both healthy: both answer.
    for n in &names {
        mark_ok(dir.path(), n);
    }
    let both: BTreeSet<Ipv4Addr> = first.values().copied().collect();
    tasks_web_is(&lab, &both, "healthy tasks answer");
    let healthy = inspect(&lab, &names[0]);
    let state = &healthy["State"]["Health"];
    assert_eq!(state["Status"], "healthy", "{healthy}");
    assert_eq!(state["FailingStreak"], 0);
    let log = state["Log"].as_array().expect("State.Health.Log");
    assert!(!log.is_empty() && log.len() <= 5, "{log:?}");
    assert_eq!(log.last().unwrap()["ExitCode"], 0);
    assert!(log[0]["Start"].as_str().unwrap().ends_with('Z'));
    let status = ps_status(&lab, &names[0]);
    assert!(
        status.starts_with("Up ") && status.ends_with("(healthy)"),
        "{status}"
    );
    let both_names: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(with_health(&lab, "healthy"), both_names);
    assert_eq!(
        with_health(&lab, "none"),
        BTreeSet::from(["cli1".to_string()])
    );
    // The docker client sees the same.
    let mut seen = BTreeSet::new();
    for machine in ["vm1", "vm2"] {
        let args = [
            "ps",
            "--filter",
            "health=healthy",
            "--format",
            "{{.Names}} {{.Status}}",
        ];
        for line in stdout(&ok(&docker(&lab, machine, &args))).lines() {
            let (name, status) = line.split_once(' ').unwrap();
            assert!(status.ends_with("(healthy)"), "{line}");
            seen.insert(name.to_string());
            let format = "{{.State.Health.Status}} {{len .State.Health.Log}}";
            let out = ok(&docker(
                &lab,
                machine,
                &["inspect", "--format", format, name],
            ));
            assert!(stdout(&out).starts_with("healthy "), "{}", stdout(&out));
        }
    }
    assert_eq!(seen, both_names);

    // One turns unhealthy: it leaves the answers at once, then is stopped,
    // fails in Docker's words and is replaced by a new task.
    let (sick, kept) = (&names[0], &names[1]);
    std::fs::remove_file(dir.path().join(format!("ok-{sick}"))).unwrap();
    tasks_web_is(
        &lab,
        &BTreeSet::from([first[kept]]),
        "an unhealthy task leaves the answers",
    );
    let failed = eventually("the unhealthy task failed", WAIT, || {
        let all = tasks(&lab);
        let t = all.iter().find(|t| name(t) == *sick).cloned();
        t.filter(|t| t["Status"]["State"] == "failed")
            .ok_or(format!("{all:?}"))
    });
    let err = failed["Status"]["Err"].as_str().unwrap_or_default();
    assert!(err.ends_with("dockerexec: unhealthy container"), "{err}");
    let gone = inspect(&lab, sick);
    assert_eq!(gone["State"]["Running"], false, "{gone}");
    assert_eq!(gone["State"]["Health"]["Status"], "unhealthy");
    assert!(gone["State"]["Health"]["FailingStreak"].as_u64().unwrap() >= 2);
    let replacement = eventually("a replacement task runs", WAIT, || {
        let r = running(&lab, &app);
        let new: Vec<_> = r.iter().filter(|(n, _)| !names.contains(n)).collect();
        match (r.len(), new.as_slice()) {
            (2, [(n, ip)]) => Ok(((*n).clone(), **ip)),
            _ => Err(format!("{r:?}")),
        }
    });
    let waiting = inspect(&lab, &replacement.0);
    assert_eq!(waiting["State"]["Health"]["Status"], "starting");
    tasks_web_is(
        &lab,
        &BTreeSet::from([first[kept]]),
        "the replacement takes no traffic until healthy",
    );
    mark_ok(dir.path(), &replacement.0);
    // The docker client's health flags, as it sends them (`Healthcheck`).
    let args = [
        "service",
        "create",
        "-d",
        "--name",
        "probe",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "--health-retries",
        "4",
        "host",
        "sleep",
        "1d",
    ];
    ok(&docker(&lab, "vm1", &args));
    let format = "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}";
    let out = ok(&docker(
        &lab,
        "vm1",
        &["service", "inspect", "--format", format, "probe"],
    ));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000, "Retries": 4})
    );
    tasks_web_is(
        &lab,
        &BTreeSet::from([first[kept], replacement.1]),
        "the healthy replacement answers",
    );
}
