//! What the DNS tests share: dig run in containers and its replies read,
//! a two-machine swarm with `app`, and the running tasks as the manager has them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::harness::*;

pub(super) const MANAGER: &str = "192.168.99.100";
pub(super) const WAIT: Duration = Duration::from_secs(30);
/// How long a test lets answers take to follow a change. The target (1 s
/// from a task's start or stop to every node's answers) is the benchmark's;
/// this leaves room for a loaded machine.
pub(super) const FOLLOW: Duration = Duration::from_secs(5);
/// What a test calls a reasonable time to follow a change, measured from the
/// moment the CLI saw the service converged.
pub(super) const FOLLOW_FAST: Duration = Duration::from_secs(3);
/// The longest TTL the resolver may give (the issue's 0 to 5 s).
pub(super) const MAX_TTL: u32 = 5;

/// A reply as dig prints it.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) status: String,
    /// (name, ttl, type, data) of the answer section.
    pub(super) answers: Vec<(String, u32, String, String)>,
    pub(super) query_ms: u64,
    pub(super) tcp: bool,
    pub(super) text: String,
}

impl Reply {
    pub(super) fn a(&self) -> BTreeSet<Ipv4Addr> {
        self.data("A").filter_map(|d| d.parse().ok()).collect()
    }

    pub(super) fn data<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.answers
            .iter()
            .filter(move |(_, _, t, _)| t == kind)
            .map(|(_, _, _, d)| d.as_str())
    }
}

/// Reads dig's full output; None when it has no reply in it.
pub(super) fn parse_dig(text: &str) -> Option<Reply> {
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))?
        .split(',')
        .next()?
        .to_string();
    let answers = text
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.parse().ok()?,
                f.get(3)?.to_string(),
                f.get(4..)?.join(" "),
            ))
        })
        .collect();
    let query_ms = text
        .lines()
        .find_map(|l| l.strip_prefix(";; Query time: "))
        .and_then(|t| t.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    let tcp = text
        .lines()
        .any(|l| l.starts_with(";; SERVER:") && l.ends_with("(TCP)"));
    Some(Reply {
        status,
        answers,
        query_ms,
        tcp,
        text: text.to_string(),
    })
}

pub(super) fn exec(lab: &Lab, machine: &str, container: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["container", "exec", container, "--"];
    args.extend_from_slice(cmd);
    lab.sn(machine, &args)
}

/// `dig @127.0.0.11 ARGS` inside a container: its reply, or why there is none.
pub(super) fn dig_with(
    lab: &Lab,
    machine: &str,
    container: &str,
    timeout: u32,
    args: &[&str],
) -> Result<Reply, String> {
    let timeout = format!("+timeout={timeout}");
    let mut cmd = vec!["dig", "@127.0.0.11", "+tries=1", &timeout];
    cmd.extend_from_slice(args);
    let out = exec(lab, machine, container, &cmd);
    let text = stdout(&out);
    parse_dig(&text)
        .filter(|_| out.status.success())
        .ok_or_else(|| format!("dig {args:?} from {container}: {text}{}", stderr(&out)))
}

pub(super) fn dig(
    lab: &Lab,
    machine: &str,
    container: &str,
    args: &[&str],
) -> Result<Reply, String> {
    dig_with(lab, machine, container, 2, args)
}

/// A reply that must come (from upstream: its TTLs are upstream's).
#[track_caller]
pub(super) fn ask_upstream(lab: &Lab, machine: &str, container: &str, args: &[&str]) -> Reply {
    dig(lab, machine, container, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A reply about the swarm's names that must come, checked for the
/// resolver's short TTL.
#[track_caller]
pub(super) fn ask(lab: &Lab, machine: &str, container: &str, args: &[&str]) -> Reply {
    let reply = ask_upstream(lab, machine, container, args);
    for (name, ttl, _, _) in &reply.answers {
        assert!(
            *ttl <= MAX_TTL,
            "TTL {ttl} of {name} over {MAX_TTL}: {}",
            reply.text
        );
    }
    reply
}

/// The first answer for `name` from a container just started (its resolver
/// and the names it asks for on their way): waits until it is `want`.
pub(super) fn first(
    lab: &Lab,
    machine: &str,
    container: &str,
    name: &str,
    want: &BTreeSet<Ipv4Addr>,
) -> Reply {
    eventually(&format!("{container} gets {name}"), FOLLOW, || {
        let reply = dig(lab, machine, container, &[name])?;
        (reply.status == "NOERROR" && &reply.a() == want)
            .then_some(reply.clone())
            .ok_or(reply.text)
    })
}

/// A NOERROR answer with exactly these addresses.
#[track_caller]
pub(super) fn answers(reply: &Reply, want: &BTreeSet<Ipv4Addr>) {
    assert!(
        reply.status == "NOERROR" && &reply.a() == want,
        "want {want:?}: {}",
        reply.text
    );
}

#[track_caller]
pub(super) fn status_is(reply: &Reply, status: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert!(reply.answers.is_empty(), "{}", reply.text);
}

/// `container run -d --name NAME OPTS -- CMD` on a machine.
pub(super) fn run(lab: &Lab, machine: &str, name: &str, opts: &[&str], cmd: &[&str]) {
    let mut args = vec!["container", "run", "-d", "--name", name];
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(cmd);
    ok(&lab.sn(machine, &args));
}

/// A container that only sleeps, on `network`.
pub(super) fn idle(lab: &Lab, machine: &str, name: &str, network: &str) {
    run(
        lab,
        machine,
        name,
        &["--network", network],
        &["sleep", "infinity"],
    );
}

/// A container's address on a network.
pub(super) fn ip_of(lab: &Lab, machine: &str, name: &str, network: &str) -> Ipv4Addr {
    let format = format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}");
    let out = ok(&lab.sn(
        machine,
        &["container", "inspect", "--format", &format, name],
    ));
    let text = stdout(&out);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} has no address on {network}: {text:?}"))
}

/// Two machines in a swarm with an attachable overlay `app`.
pub(super) fn swarm_with_app(lab: &Lab) {
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", MANAGER, &["vm2"]);
    ok(&lab.sn(
        "vm1",
        &["network", "create", "-d", "overlay", "--attachable", "app"],
    ));
}

/// GET on the manager's API (through its socket inside vm1), as JSON.
pub(super) fn api(lab: &Lab, path: &str, filters: Option<&str>) -> serde_json::Value {
    let url = format!("http://swarmnet{path}");
    let mut cmd = vec![
        "curl",
        "-sSf",
        "--unix-socket",
        "/run/swarmnet/swarmnet.sock",
        "-G",
        &url,
    ];
    let filters = filters.map(|f| format!("filters={f}"));
    if let Some(f) = &filters {
        cmd.extend_from_slice(&["--data-urlencode", f]);
    }
    let out = ok(&lab.ssh("vm1", &cmd));
    serde_json::from_str(&stdout(&out)).expect("the API answers JSON")
}

pub(super) fn network_id(lab: &Lab, network: &str) -> String {
    let out = ok(&lab.sn(
        "vm1",
        &["network", "inspect", "--format", "{{.Id}}", network],
    ));
    stdout(&out).trim().to_string()
}

/// The tasks of a service meant to run and running, by the name Docker gives
/// their containers (`web.1.<task id>`), with their address on `net_id`.
pub(super) fn running_tasks(lab: &Lab, service: &str, net_id: &str) -> BTreeMap<String, Ipv4Addr> {
    let filters = format!(r#"{{"service":["{service}"],"desired-state":["running"]}}"#);
    let tasks = api(lab, "/tasks", Some(&filters));
    let mut running = BTreeMap::new();
    for task in tasks.as_array().expect("a list of tasks") {
        if task["Status"]["State"] != "running" {
            continue;
        }
        let addr = task["NetworksAttachments"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["Network"]["ID"] == net_id)
            .and_then(|a| a["Addresses"][0].as_str()?.split('/').next()?.parse().ok())
            .unwrap_or_else(|| panic!("a running task without an address on the network: {task}"));
        let name = format!(
            "{service}.{}.{}",
            task["Slot"],
            task["ID"].as_str().unwrap()
        );
        running.insert(name, addr);
    }
    running
}

/// The running tasks' addresses, once there are `count` of them.
pub(super) fn task_addrs(
    lab: &Lab,
    service: &str,
    net_id: &str,
    count: usize,
) -> BTreeSet<Ipv4Addr> {
    eventually(&format!("{count} running {service} tasks"), WAIT, || {
        let tasks = running_tasks(lab, service, net_id);
        (tasks.len() == count)
            .then(|| tasks.values().copied().collect())
            .ok_or(format!("{tasks:?}"))
    })
}

/// The service's virtual IP on the network, if it has one (issue 11 gives
/// them); until then `web` answers as dnsrr does.
pub(super) fn vip(lab: &Lab, service: &str, net_id: &str) -> Option<Ipv4Addr> {
    let doc = api(lab, &format!("/services/{service}"), None);
    doc["Endpoint"]["VirtualIPs"]
        .as_array()?
        .iter()
        .find(|v| v["NetworkID"] == net_id)?["Addr"]
        .as_str()?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// `service create` of a whoami service on `app` (unless `extra` names networks).
pub(super) fn whoami_service<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["service", "create", "--name", name];
    if !extra.contains(&"--network") {
        args.extend_from_slice(&["--network", "app"]);
    }
    args.extend_from_slice(extra);
    args.extend_from_slice(&["host", bin(), "whoami", "--port", "3000"]);
    args
}

/// Scales `web` and waits until `tasks.web` is the new set of running
/// tasks from the idle containers on both machines; returns how long each
/// took after the scale was converged.
pub(super) fn scale_and_follow(
    lab: &Lab,
    replicas: usize,
    net_id: &str,
) -> BTreeMap<&'static str, Duration> {
    ok(&lab.sn("vm1", &["service", "scale", &format!("web={replicas}")]));
    let converged = Instant::now();
    let want = task_addrs(lab, "web", net_id, replicas);
    let mut seen = BTreeMap::new();
    eventually(
        &format!("tasks.web follows web={replicas} on both machines"),
        FOLLOW,
        || {
            for (machine, cli) in [("vm1", "cli1"), ("vm2", "cli2")] {
                if seen.contains_key(machine) {
                    continue;
                }
                let reply = dig(lab, machine, cli, &["tasks.web"])?;
                if reply.status == "NOERROR" && reply.a() == want {
                    seen.insert(machine, converged.elapsed());
                } else {
                    return Err(format!("{machine} answers {:?}, want {want:?}", reply.a()));
                }
            }
            Ok(())
        },
    );
    eprintln!("tasks.web followed web={replicas}: {seen:?} after the scale converged");
    for (machine, took) in &seen {
        assert!(
            *took < FOLLOW_FAST,
            "{machine} took {took:?} to follow web={replicas}"
        );
    }
    seen
}
