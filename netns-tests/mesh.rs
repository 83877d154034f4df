//! Load balancing end to end (issue 11): the ingress routing mesh answers a
//! published port on every node from every replica and keeps the client's
//! own address (TCP and UDP, through a node that runs no task too); a VIP
//! spreads a container's connections over the replicas; scale, drain and a
//! killed task change the backends at once; an established connection
//! survives a scale that keeps its task, and conntrack would keep it idle far
//! past IPVS's 900 s; a port another service publishes is refused.
//!
//! Three swarm machines and `client`, a machine that is not in the swarm:
//! what it sees is what a user outside the cluster sees.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::*;
use crate::services::converges;

const MANAGER: &str = "192.168.99.100";
pub(crate) const NODES: [&str; 3] = ["vm1", "vm2", "vm3"];
pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// How long the balancers may take to follow a change in a test. The target
/// is 1 s (the times are printed); this leaves room for a loaded machine.
pub(crate) const FOLLOW: Duration = Duration::from_secs(5);
/// Debian's python3 (a pyenv shim on PATH needs the user's environment,
/// which a task does not get).
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// The swarm (vm1 manager, vm2 and vm3 workers, an attachable overlay
/// `app`) and `client` outside it.
pub(crate) struct Mesh {
    pub(crate) lab: Lab,
    /// Each node's name and underlay address.
    nodes: Vec<(&'static str, String)>,
    /// The client's own address.
    pub(crate) client: String,
}

impl Mesh {
    pub(crate) fn new() -> Mesh {
        let lab = Lab::new();
        lab.machines(&["vm1", "vm2", "vm3", "client"]);
        lab.swarm("vm1", MANAGER, &["vm2", "vm3"]);
        ok(&lab.sn(
            "vm1",
            &["network", "create", "-d", "overlay", "--attachable", "app"],
        ));
        let address = |m: &str| {
            lab.machine_info(m)["address"]
                .as_str()
                .expect("machine inspect gives the address")
                .to_string()
        };
        let nodes = NODES.iter().map(|n| (*n, address(n))).collect();
        let client = address("client");
        Mesh { lab, nodes, client }
    }

    pub(crate) fn addr(&self, node: &str) -> &str {
        &self.nodes.iter().find(|(n, _)| *n == node).unwrap().1
    }

    /// `count` URLs of a published port, taking the nodes in turn.
    pub(crate) fn urls_on(&self, nodes: &[&str], port: u16, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| format!("http://{}:{port}/", self.addr(nodes[i % nodes.len()])))
            .collect()
    }

    /// `count` URLs of port 8080 on every node in turn.
    pub(crate) fn urls(&self, count: usize) -> Vec<String> {
        self.urls_on(&NODES, 8080, count)
    }

    /// curl from the client, each URL a new connection.
    pub(crate) fn curl(&self, urls: &[String]) -> Vec<Reply> {
        self.curl_within(CONNECT, urls)
    }

    /// The same, each connection given up after `connect` (seconds).
    fn curl_within(&self, connect: &str, urls: &[String]) -> Vec<Reply> {
        let mut cmd = vec!["sh", "-c", CURL_EACH, "sh", connect];
        cmd.extend(urls.iter().map(String::as_str));
        answers(&self.lab.ssh("client", &cmd), urls.len())
    }

    /// Curls that must all be answered, each by whoami with the client's own address.
    #[track_caller]
    pub(crate) fn curl_ok(&self, urls: &[String]) -> Vec<String> {
        let answers = all_answered(self.curl(urls));
        for a in &answers {
            assert_eq!(a.remote, self.client, "the client's own address: {a:?}");
        }
        answers.into_iter().map(|a| a.hostname).collect()
    }
}

/// What whoami said.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) hostname: String,
    /// RemoteAddr's address (without the port).
    pub(crate) remote: String,
}

/// A request's outcome, and when it began (the client's clock, which is this box's).
pub(crate) type Reply = (SystemTime, Result<Answer, String>);

/// How long a request may take to connect (seconds), as curl takes it.
const CONNECT: &str = "2";
/// The same while a change is being followed: a connection to a task that
/// is gone hangs (its SYN is dropped), and a short wait keeps the next
/// request, and so the measured time, close behind it.
const CONNECT_PROBE: &str = "0.3";

/// A shell loop (arguments: CONNECT_TIMEOUT URL...): one curl per URL, one
/// line per answer: `OK STARTED_NS HOSTNAME REMOTEADDR`, or `ERR STARTED_NS URL WHY`.
const CURL_EACH: &str = r#"c=$1; shift
for u in "$@"; do
  t=$(date +%s%N)
  if out=$(curl -sS --connect-timeout "$c" --max-time 3 "$u" 2>&1); then
    printf '%s\n' "$out" | awk -v t="$t" '/^Hostname:/ {h = $2} /^RemoteAddr:/ {r = $2} END {print "OK", t, h, r}'
  else
    printf 'ERR %s %s %s\n' "$t" "$u" "$(printf '%s' "$out" | head -n 1)"
  fi
done"#;

/// The answers of `CURL_EACH`, one per URL.
#[track_caller]
fn answers(out: &std::process::Output, count: usize) -> Vec<Reply> {
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        count,
        "one line per request: {text}{}",
        stderr(out)
    );
    lines
        .iter()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let nanos: u64 = f.get(1).and_then(|t| t.parse().ok()).unwrap_or_default();
            let at = UNIX_EPOCH + Duration::from_nanos(nanos);
            let answer = match f.as_slice() {
                ["OK", _, hostname, remote] => Ok(Answer {
                    hostname: hostname.to_string(),
                    remote: remote
                        .rsplit_once(':')
                        .map_or(*remote, |(ip, _)| ip)
                        .to_string(),
                }),
                _ => Err(line.to_string()),
            };
            (at, answer)
        })
        .collect()
}

#[track_caller]
fn all_answered(replies: Vec<Reply>) -> Vec<Answer> {
    let failed: Vec<&String> = replies
        .iter()
        .filter_map(|(_, a)| a.as_ref().err())
        .collect();
    assert!(failed.is_empty(), "requests failed: {failed:#?}");
    replies.into_iter().filter_map(|(_, a)| a.ok()).collect()
}

/// Counts by hostname.
fn tally(hostnames: &[String]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for h in hostnames {
        *tally.entry(h.clone()).or_insert(0) += 1;
    }
    tally
}

/// `service create` of whoami on port 3000, on `app`.
pub(crate) fn whoami<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["service", "create", "--name", name, "--network", "app"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["host", bin(), "whoami", "--port", "3000"]);
    args
}

/// The running tasks of a service by the hostname their whoami gives
/// (Docker's container name, `web.1.<task id>`), with their node.
pub(crate) fn tasks(lab: &Lab, service: &str) -> BTreeMap<String, String> {
    let out = ok(&lab.sn(
        "vm1",
        &[
            "service",
            "ps",
            service,
            "--no-trunc",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Name}}.{{.ID}} {{.Node}} {{.CurrentState}}",
        ],
    ));
    stdout(&out)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (name, node, state) = (f.next()?, f.next()?, f.next()?);
            (state == "Running").then(|| (name.to_string(), node.to_string()))
        })
        .collect()
}

pub(crate) fn names(tasks: &BTreeMap<String, String>) -> BTreeSet<String> {
    tasks.keys().cloned().collect()
}

/// When the balancers followed a change, as requests after it saw: after
/// the last request that went wrong (if any did), and at the latest by the
/// first of the requests that all went right since (a batch of them at least).
struct Followed {
    after: Option<Duration>,
    by: Duration,
}

impl std::fmt::Display for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.after {
            Some(after) => write!(f, "between {after:?} and {:?}", self.by),
            None => write!(f, "by {:?} (no request went wrong)", self.by),
        }
    }
}

/// Polls batches of `urls` from the client until every answer of one
/// satisfies `good`; when, after `since`, it did.
#[track_caller]
fn follows(
    mesh: &Mesh,
    what: &str,
    since: SystemTime,
    urls: &[String],
    good: impl Fn(&Answer) -> bool,
) -> Followed {
    let after = |at: SystemTime| at.duration_since(since).unwrap_or_default();
    let (mut last_bad, mut good_since) = (None, None);
    eventually(what, FOLLOW, || {
        let replies = mesh.curl_within(CONNECT_PROBE, urls);
        for (at, answer) in &replies {
            if answer.as_ref().is_ok_and(&good) {
                good_since.get_or_insert(after(*at));
            } else {
                (last_bad, good_since) = (Some(after(*at)), None);
            }
        }
        replies
            .iter()
            .all(|(_, a)| a.as_ref().is_ok_and(&good))
            .then_some(())
            .ok_or(format!("{replies:#?}"))
    });
    Followed {
        after: last_bad,
        by: good_since.unwrap_or_default(),
    }
}

#[test]
#[ignore = "needs root"]
fn a_published_port_answers_on_every_node_from_every_replica_with_the_clients_address() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &whoami("web", &["--replicas", "3", "-p", "8080:3000"]),
    ));
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let replicas = names(&tasks(lab, "web"));

    // 30 requests to each node reach every replica, and each replica sees
    // the client's own address.
    for node in NODES {
        let seen = tally(&mesh.curl_ok(&mesh.urls_on(&[node], 8080, 30)));
        assert_eq!(
            seen.keys().cloned().collect::<BTreeSet<_>>(),
            replicas,
            "through {node}: {seen:?}"
        );
        eprintln!("through {node}: {seen:?}");
    }

    // Through a node that runs no task of the service: the same.
    ok(&lab.sn(
        "vm1",
        &whoami(
            "edge",
            &[
                "--replicas",
                "2",
                "--constraint",
                "node.hostname!=vm3",
                "-p",
                "8081:3000",
            ],
        ),
    ));
    let edge = tasks(lab, "edge");
    assert!(
        edge.len() == 2 && edge.values().all(|node| node != "vm3"),
        "{edge:?}"
    );
    let seen = tally(&mesh.curl_ok(&mesh.urls_on(&["vm3"], 8081, 20)));
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        names(&edge),
        "through vm3, which runs no edge task: {seen:?}"
    );
    // A node's own `curl localhost:8080`, as Swarm users check, on a node
    // with no edge task: it leaves by the node's ingress leg.
    let local = ok(&lab.ssh("vm3", &["curl", "-sS", "-m", "3", "http://127.0.0.1:8081/"]));
    let text = String::from_utf8_lossy(&local.stdout);
    assert!(text.contains("Hostname: edge."), "{text}");
}

#[test]
#[ignore = "needs root"]
fn a_vip_from_a_container_spreads_over_every_replica() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn("vm1", &whoami("web", &["--replicas", "3"])));
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let replicas = names(&tasks(lab, "web"));
    ok(&lab.sn(
        "vm2",
        &[
            "container",
            "run",
            "-d",
            "--name",
            "cli",
            "--network",
            "app",
            "--",
            "sleep",
            "infinity",
        ],
    ));
    let exec = |cmd: &[&str]| {
        let mut args = vec!["container", "exec", "cli", "--"];
        args.extend_from_slice(cmd);
        lab.sn("vm2", &args)
    };

    // `web` is one address: the VIP that service inspect shows on `app`.
    let app = stdout(&ok(
        &lab.sn("vm1", &["network", "inspect", "--format", "{{.Id}}", "app"])
    ))
    .trim()
    .to_string();
    let inspect = stdout(&ok(&lab.sn("vm1", &["service", "inspect", "web"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let vip = doc[0]["Endpoint"]["VirtualIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["NetworkID"] == app.as_str())
        .and_then(|v| v["Addr"].as_str()?.split('/').next())
        .unwrap_or_else(|| panic!("no VIP on app ({app}): {inspect}"))
        .to_string();
    let dig = eventually("dig +short web answers", WAIT, || {
        let out = exec(&["dig", "+short", "+time=2", "+tries=1", "web"]);
        let text = stdout(&out);
        (out.status.success() && !text.trim().is_empty())
            .then(|| text.clone())
            .ok_or(format!("{text}{}", stderr(&out)))
    });
    assert_eq!(dig.lines().collect::<Vec<_>>(), [vip.as_str()], "{dig}");

    // 30 connections to web:3000 reach every replica, from cli's own address.
    let cli_ip = stdout(&ok(&lab.sn(
        "vm2",
        &[
            "container",
            "inspect",
            "--format",
            "{{.NetworkSettings.Networks.app.IPAddress}}",
            "cli",
        ],
    )))
    .trim()
    .to_string();
    let urls = vec!["http://web:3000/".to_string(); 30];
    let mut cmd = vec!["sh", "-c", CURL_EACH, "sh", CONNECT];
    cmd.extend(urls.iter().map(String::as_str));
    let answers = all_answered(answers(&exec(&cmd), urls.len()));
    for a in &answers {
        assert_eq!(a.remote, cli_ip, "{a:?}");
    }
    let seen = tally(&answers.into_iter().map(|a| a.hostname).collect::<Vec<_>>());
    eprintln!("through the VIP {vip}: {seen:?}");
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        replicas,
        "{seen:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn scale_and_drain_change_the_mesh_backends_at_once() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &whoami("web", &["--replicas", "3", "-p", "8080:3000"]),
    ));
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let probe = mesh.urls(9);

    // Scale down to one: every node leads every request to it.
    ok(&lab.sn("vm1", &["service", "scale", "web=1"]));
    let scaled = SystemTime::now();
    let one = tasks(lab, "web");
    assert_eq!(one.len(), 1, "{one:?}");
    let only = one.keys().next().unwrap().clone();
    let took = follows(&mesh, "only the one task answers", scaled, &probe, |a| {
        a.hostname == only
    });
    eprintln!("web=1: the mesh followed {took} after the scale returned (converged)");
    let seen = tally(&mesh.curl_ok(&mesh.urls(20)));
    assert_eq!(seen.keys().collect::<Vec<_>>(), [&only], "{seen:?}");

    // Scale up again: all three answer.
    ok(&lab.sn("vm1", &["service", "scale", "web=3"]));
    let scaled = SystemTime::now();
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let three = names(&tasks(lab, "web"));
    let took = eventually("every replica answers", FOLLOW, || {
        let replies = mesh.curl(&mesh.urls(15));
        let began = replies[0].0.duration_since(scaled).unwrap_or_default();
        let seen: BTreeSet<String> = replies
            .into_iter()
            .map(|(_, a)| a.map(|a| a.hostname))
            .collect::<Result<_, _>>()?;
        (seen == three)
            .then_some(began)
            .ok_or(format!("{seen:?}, want {three:?}"))
    });
    eprintln!("web=3: the mesh followed by {took:?} after the scale returned (converged)");

    // Drain vm2: its task is no longer reached, through any node, vm2 included.
    let on_vm2: BTreeSet<String> = tasks(lab, "web")
        .into_iter()
        .filter(|(_, node)| node == "vm2")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(on_vm2.len(), 1, "{on_vm2:?}");
    ok(&lab.sn("vm1", &["node", "update", "--availability", "drain", "vm2"]));
    let drained = SystemTime::now();
    let took = follows(&mesh, "vm2's task is not reached", drained, &probe, |a| {
        !on_vm2.contains(&a.hostname)
    });
    eprintln!("drain: the mesh followed {took} after the drain returned");
    let seen = tally(&mesh.curl_ok(&mesh.urls(20)));
    assert!(
        seen.keys().all(|h| !on_vm2.contains(h)),
        "{seen:?} reaches {on_vm2:?}"
    );
    eventually("the drained task is replaced", WAIT, || {
        let now = tasks(lab, "web");
        (now.len() == 3 && now.values().all(|n| n != "vm2"))
            .then_some(())
            .ok_or(format!("{now:?}"))
    });
}

#[test]
#[ignore = "needs root"]
fn a_killed_task_stops_receiving_new_connections() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &whoami("web", &["--replicas", "3", "-p", "8080:3000"]),
    ));
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let (victim, _) = tasks(lab, "web")
        .into_iter()
        .find(|(_, node)| node == "vm2")
        .expect("a task on vm2");
    let id = victim.rsplit('.').next().unwrap().to_string();
    let pid = stdout(&ok(&lab.sn(
        "vm2",
        &[
            "container",
            "inspect",
            "--format",
            "{{.State.Pid}}",
            &victim,
        ],
    )))
    .trim()
    .to_string();

    // kill -9, then watch `service ps` and the mesh at the same time.
    ok(&lab.ssh("vm2", &["kill", "-9", &pid]));
    let killed = SystemTime::now();
    let (failed, took) = std::thread::scope(|s| {
        let failed = s.spawn(|| {
            eventually("the killed task is reported failed", WAIT, || {
                let ps = stdout(&ok(&lab.sn("vm1", &["service", "ps", "--no-trunc", "web"])));
                ps.lines()
                    .any(|l| l.starts_with(&id) && l.contains("Failed"))
                    .then_some(())
                    .ok_or(ps)
            });
            killed.elapsed().unwrap_or_default()
        });
        let took = follows(
            &mesh,
            "no request goes to the dead task",
            killed,
            &mesh.urls(9),
            |a| a.hostname != victim,
        );
        (failed.join().unwrap(), took)
    });
    eprintln!("killed: reported failed by {failed:?}; the mesh followed {took} after the kill");
    // Now that it is reported failed, every new connection is answered, never by it.
    let answered = all_answered(mesh.curl(&mesh.urls(20)));
    assert!(
        answered.iter().all(|a| a.hostname != victim),
        "{answered:?}"
    );
}

/// An HTTP/1.1 connection held open by python's http.client; each line on
/// stdin asks GET / again on it, each answer is one line: `Hostname: NAME
/// LOCALPORT`, or `ERR ...`.
const HOLD: &str = r#"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
def get():
    try:
        c.request("GET", "/")
        body = c.getresponse().read().decode()
        host = [l for l in body.splitlines() if l.startswith("Hostname:")][0]
        print(host, c.sock.getsockname()[1], flush=True)
    except Exception as e:
        print("ERR", repr(e), flush=True)
get()
for line in sys.stdin:
    get()
"#;

/// A held connection, closed (stdin ends) and its process stopped by pid
/// even when the test fails.
struct Held {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
    /// The whoami that answered first, and the local port.
    hostname: String,
    port: String,
}

impl Held {
    /// Opens the connection and asks once; why not, if no answer came.
    fn open(lab: &Lab, args: &[&str]) -> Result<Held, String> {
        let mut child = lab
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the held connection");
        let input = child.stdin.take();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut held = Held {
            child,
            input,
            output,
            hostname: String::new(),
            port: String::new(),
        };
        (held.hostname, held.port) = held.answer()?;
        Ok(held)
    }

    fn answer(&mut self) -> Result<(String, String), String> {
        let mut line = String::new();
        self.output
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["Hostname:", name, port] => Ok((name.to_string(), port.to_string())),
            _ => Err(format!("the held connection answered {line:?}")),
        }
    }

    /// GET / again on the same connection: the same task answers.
    #[track_caller]
    fn again(&mut self, what: &str) {
        writeln!(self.input.as_mut().unwrap()).unwrap();
        let (hostname, port) = self.answer().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            (hostname.as_str(), port.as_str()),
            (self.hostname.as_str(), self.port.as_str()),
            "{what}: the same connection, the same task"
        );
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.input.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The timeout (seconds left) of the ESTABLISHED conntrack entries
/// `conntrack -L ARGS` lists in a namespace.
#[track_caller]
fn conntrack_timeouts(out: &std::process::Output) -> Vec<u64> {
    let text = stdout(&ok(out));
    let timeouts: Vec<u64> = text
        .lines()
        .filter(|l| l.contains(" ESTABLISHED "))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    assert!(
        !timeouts.is_empty(),
        "no ESTABLISHED entry: {text}{}",
        stderr(out)
    );
    timeouts
}

#[track_caller]
fn outlives_ipvs(what: &str, timeouts: &[u64]) {
    eprintln!("{what}: conntrack timeout {timeouts:?} s");
    assert!(
        timeouts.iter().all(|t| *t > 900),
        "{what}: an idle connection would be cut: {timeouts:?} s left"
    );
}

#[test]
#[ignore = "needs root"]
fn established_connections_survive_a_scale_and_are_not_cut_when_idle() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &whoami("web", &["--replicas", "1", "-p", "8080:3000"]),
    ));
    let one = tasks(lab, "web");
    let (task, task_node) = one.iter().next().expect("one task");
    let (task, task_node) = (task.clone(), task_node.clone());
    // Through the mesh by a node that does not run the task, and through the
    // VIP from a container on another node.
    let entry = *NODES.iter().find(|n| **n != task_node).unwrap();
    let cli_node = *NODES.iter().rev().find(|n| **n != task_node).unwrap();
    ok(&lab.sn(
        cli_node,
        &[
            "container",
            "run",
            "-d",
            "--name",
            "cli",
            "--network",
            "app",
            "--",
            "sleep",
            "infinity",
        ],
    ));
    // Where these flows are tracked (the node that DNATs the mesh, the task,
    // the container that DNATs the VIP), the namespace's own established
    // timeout is cut to 5 s, and mid-stream pickup turned off: only a
    // flow's own entry can carry it, and only swarmnet's timeout policy
    // keeps that entry through an idle spell. All three are the lab's.
    const SHORT: [&str; 4] = [
        "sysctl",
        "-qw",
        "net.netfilter.nf_conntrack_tcp_timeout_established=5",
        "net.netfilter.nf_conntrack_tcp_loose=0",
    ];
    ok(&lab.ssh(entry, &SHORT));
    let in_container = |node: &str, name: &str, cmd: &[&str]| {
        let mut args = vec!["container", "exec", name, "--"];
        args.extend(cmd);
        lab.sn(node, &args)
    };
    ok(&in_container(&task_node, &task, &SHORT));
    ok(&in_container(cli_node, "cli", &SHORT));
    let mut through_mesh = Held::open(
        lab,
        &[
            "machine",
            "ssh",
            "client",
            "--",
            PYTHON,
            "-c",
            HOLD,
            mesh.addr(entry),
            "8080",
        ],
    )
    .unwrap_or_else(|e| panic!("through the mesh: {e}"));
    // A new container's first lookups may race its resolver: ask again.
    let mut through_vip = eventually("a connection to web:3000 from cli", WAIT, || {
        Held::open(
            lab,
            &[
                "machine",
                "ssh",
                cli_node,
                "--",
                bin(),
                "container",
                "exec",
                "cli",
                "--",
                PYTHON,
                "-c",
                HOLD,
                "web",
                "3000",
            ],
        )
    });
    assert_eq!(through_mesh.hostname, task);
    assert_eq!(through_vip.hostname, task);

    // Long-lived: each namespace that tracks these connections keeps them
    // by swarmnet's policy (5 days), not by its 5 s sysctl, and so far
    // longer than IPVS's 900 s.
    let policy_kept = |when: &str, mesh_port: &str, vip_port: &str| {
        let mesh_flow = [
            "conntrack",
            "-L",
            "-p",
            "tcp",
            "-s",
            &mesh.client,
            "--sport",
            mesh_port,
        ];
        let vip_flow = [
            "conntrack",
            "-L",
            "-p",
            "tcp",
            "--sport",
            vip_port,
            "--dport",
            "3000",
        ];
        for (what, out) in [
            (format!("mesh, on {entry}"), lab.ssh(entry, &mesh_flow)),
            (
                format!("mesh, in the task on {task_node}"),
                in_container(&task_node, &task, &mesh_flow),
            ),
            (
                format!("VIP, in cli on {cli_node}"),
                in_container(cli_node, "cli", &vip_flow),
            ),
        ] {
            let timeouts = conntrack_timeouts(&out);
            outlives_ipvs(&format!("{what}, {when}"), &timeouts);
            assert!(
                timeouts.iter().all(|t| *t > 400_000),
                "{what}, {when}: not swarmnet's 432000 s policy but {timeouts:?} s"
            );
        }
    };
    policy_kept("opened", &through_mesh.port, &through_vip.port);

    // A scale up keeps them, and so does a scale down that keeps their task.
    ok(&lab.sn("vm1", &["service", "scale", "web=3"]));
    through_mesh.again("mesh, after web=3");
    through_vip.again("VIP, after web=3");
    ok(&lab.sn("vm1", &["service", "scale", "web=1"]));
    let kept = tasks(lab, "web");
    assert!(
        kept.contains_key(&task),
        "the scale down kept the first task: {kept:?}"
    );
    through_mesh.again("mesh, after web=1");
    through_vip.again("VIP, after web=1");
    // The balancers replaced their chains twice: the flows kept the policy,
    // and the requests since refreshed their entries by it.
    policy_kept("after the scales", &through_mesh.port, &through_vip.port);

    // Not cut while idle: longer than the namespaces' 5 s, measured.
    let idle = Duration::from_secs(7);
    std::thread::sleep(idle);
    through_mesh.again(&format!("mesh, after {idle:?} idle"));
    through_vip.again(&format!("VIP, after {idle:?} idle"));
}

/// A UDP server on 0.0.0.0:53 that answers each datagram with
/// `SENDER_IP:SENDER_PORT HOSTNAME`.
const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(("%s:%d %s" % (peer[0], peer[1], socket.gethostname())).encode(), peer)
"#;

/// Sends one datagram from a new socket to each ADDR:PORT argument; one
/// line each: `OK SENT_TO LOCAL_PORT REPLY_FROM PAYLOAD`, or `ERR SENT_TO WHY`.
const UDP_ASK: &str = r#"
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.bind(("0.0.0.0", 0))
    try:
        s.sendto(b"who", (host, int(port)))
        data, src = s.recvfrom(2048)
        print("OK", target, s.getsockname()[1], "%s:%d" % src, data.decode(), flush=True)
    except Exception as e:
        print("ERR", target, repr(e), flush=True)
    s.close()
"#;

#[test]
#[ignore = "needs root"]
fn a_udp_published_port_answers_from_the_node_asked_with_the_clients_address() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &[
            "service",
            "create",
            "--name",
            "echo",
            "--replicas",
            "3",
            "-p",
            "5353:53/udp",
            "--network",
            "app",
            "host",
            PYTHON,
            "-c",
            UDP_ECHO,
        ],
    ));
    converges(lab, "echo", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let replicas = names(&tasks(lab, "echo"));
    let targets: Vec<String> = (0..30)
        .map(|i| format!("{}:5353", mesh.nodes[i % 3].1))
        .collect();
    let mut cmd = vec![PYTHON, "-c", UDP_ASK];
    cmd.extend(targets.iter().map(String::as_str));
    let out = ok(&lab.ssh("client", &cmd));
    let text = stdout(&out);
    let mut seen = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ["OK", sent_to, port, from, sender, hostname] = f.as_slice() else {
            panic!("a datagram without its reply: {line}\n{text}");
        };
        // The reply comes from the address and port asked, so a client's
        // connected socket takes it; the task saw the client's own address.
        assert_eq!(from, sent_to, "{line}");
        assert_eq!(*sender, format!("{}:{port}", mesh.client), "{line}");
        *seen.entry(hostname.to_string()).or_insert(0) += 1;
    }
    assert_eq!(text.lines().count(), targets.len(), "{text}");
    eprintln!("UDP replies by task: {seen:?}");
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        replicas,
        "{seen:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn a_port_another_service_publishes_is_refused_naming_it() {
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    lab.swarm("vm1", MANAGER, &[]);
    ok(&lab.sn(
        "vm1",
        &["network", "create", "-d", "overlay", "--attachable", "app"],
    ));
    ok(&lab.sn("vm1", &whoami("web", &["--detach", "-p", "8080:3000"])));
    let before = stdout(&ok(&lab.sn("vm1", &["service", "ls"])));

    let err = fails_with(
        &lab.sn("vm1", &whoami("api", &["--detach", "-p", "8080:3001"])),
        "port '8080' is already in use by service 'web'",
    );
    eprintln!("{err}");
    fails_with(
        &lab.sn(
            "vm1",
            &whoami(
                "api",
                &["--detach", "--publish", "published=8080,target=3000"],
            ),
        ),
        "service 'web'",
    );
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["service", "ls"]))),
        before,
        "nothing created"
    );
    // An update that would take it is refused too, and changes nothing.
    ok(&lab.sn("vm1", &whoami("api", &["--detach", "-p", "8081:3000"])));
    publish_add_refused(&lab, "api", "service 'web'");
    // The same number over UDP is another port.
    ok(&lab.sn("vm1", &whoami("dns", &["--detach", "-p", "8080:3000/udp"])));
}

/// `service update --publish-add 8080:3000 SERVICE` fails with one line
/// holding `needle`, and the service is as it was.
#[track_caller]
fn publish_add_refused(lab: &Lab, service: &str, needle: &str) {
    let before = stdout(&ok(&lab.sn("vm1", &["service", "inspect", service])));
    let update = [
        "service",
        "update",
        "--detach",
        "--publish-add",
        "8080:3000",
        service,
    ];
    fails_with(&lab.sn("vm1", &update), needle);
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["service", "inspect", service]))),
        before,
        "{service} unchanged"
    );
}

/// `node ls` on vm1 says `node` is in `status`.
fn node_is(lab: &Lab, node: &str, status: &str) -> Result<(), String> {
    let ls = stdout(&ok(&lab.sn(
        "vm1",
        &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
    )));
    ls.lines()
        .any(|l| l == format!("{node} {status}"))
        .then_some(())
        .ok_or(ls)
}

#[test]
#[ignore = "needs root"]
fn a_down_node_leaves_every_balancer_and_comes_back_with_its_node() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &whoami("edge", &["--mode", "global", "-p", "8080:3000"]),
    ));
    converges(lab, "edge", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let all = names(&tasks(lab, "edge"));
    let on_vm3 = tasks(lab, "edge")
        .into_iter()
        .find(|(_, node)| node == "vm3")
        .map(|(name, _)| name)
        .expect("a task on vm3");
    let urls = mesh.urls_on(&["vm1", "vm2"], 8080, 30);
    let seen = tally(&mesh.curl_ok(&urls));
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "{seen:?}"
    );

    // vm3's daemon stops, and its task with it; the manager hears nothing
    // more from it. A global task stays on its Down node (as Docker's), but
    // takes no traffic: the mesh on vm1 and vm2 stops sending to it.
    let stopped = SystemTime::now();
    ok(&lab.run(&["machine", "stop", "vm3"]));
    eventually("vm3 Down", WAIT, || node_is(lab, "vm3", "Down"));
    let down = stopped.elapsed().unwrap_or_default();
    let followed = follows(&mesh, "vm3's task out of the mesh", stopped, &urls, |a| {
        a.hostname != on_vm3
    });
    eprintln!("vm3 Down {down:?} after its daemon stopped; the mesh followed {followed}");
    assert!(
        followed.by.saturating_sub(down) <= FOLLOW,
        "out of every balancer within {FOLLOW:?} of going Down: Down at {down:?}, followed {followed}"
    );
    let seen = tally(&mesh.curl_ok(&urls));
    assert_eq!(seen.len(), 2, "the two live nodes' tasks answer: {seen:?}");

    // Back: the node's task runs again and takes traffic again.
    ok(&lab.run(&["machine", "start", "vm3"]));
    eventually("vm3 Ready", WAIT, || node_is(lab, "vm3", "Ready"));
    converges(lab, "edge", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let again = names(&tasks(lab, "edge"));
    eventually("every node's task answers again", WAIT, || {
        let seen = tally(&mesh.curl_ok(&urls));
        (seen.keys().cloned().collect::<BTreeSet<_>>() == again)
            .then_some(())
            .ok_or(format!("{seen:?} of {again:?}"))
    });
}

/// A process holding a port in a machine's own namespace, killed by PID
/// when dropped.
struct Holder<'a> {
    lab: &'a Lab,
    machine: &'static str,
    pid: String,
}

impl<'a> Holder<'a> {
    /// python3 listening on TCP `port` (or bound to UDP `port`) on every
    /// address of `machine`, for at most 10 minutes.
    fn start(lab: &'a Lab, machine: &'static str, port: u16, udp: bool) -> Holder<'a> {
        let kind = if udp { "SOCK_DGRAM" } else { "SOCK_STREAM" };
        let listen = if udp { "" } else { "s.listen(); " };
        let program = format!(
            "import socket, time; s = socket.socket(socket.AF_INET, socket.{kind}); \
             s.bind(('0.0.0.0', {port})); {listen}time.sleep(600)"
        );
        let script = format!("{PYTHON} -c \"{program}\" </dev/null >/dev/null 2>&1 & echo $!");
        let pid = stdout(&ok(&lab.ssh(machine, &["sh", "-c", &script])))
            .trim()
            .to_string();
        let holder = Holder { lab, machine, pid };
        let proto = if udp { "udp" } else { "tcp" };
        eventually(&format!("{machine} holds {port}/{proto}"), WAIT, || {
            let flags = if udp { "-uanp" } else { "-tlnp" };
            let ss = stdout(&lab.ssh(machine, &["ss", "-H", flags]));
            ss.contains(&format!(":{port} ")).then_some(()).ok_or(ss)
        });
        holder
    }
}

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        let _ = self.lab.ssh(self.machine, &["kill", &self.pid]);
    }
}

#[test]
#[ignore = "needs root"]
fn a_port_something_on_a_node_listens_on_is_refused_naming_the_node_and_the_process() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    let tcp = Holder::start(lab, "vm2", 8080, false);
    let udp = Holder::start(lab, "vm3", 5353, true);
    let before = stdout(&ok(&lab.sn("vm1", &["service", "ls"])));

    let err = fails_with(
        &lab.sn("vm1", &whoami("web", &["--detach", "-p", "8080:3000"])),
        &format!(
            "port 8080/tcp is already in use on node vm2 by python3 (pid {}) listening on 0.0.0.0:8080",
            tcp.pid
        ),
    );
    eprintln!("{err}");
    fails_with(
        &lab.sn(
            "vm1",
            &whoami(
                "dns",
                &[
                    "--detach",
                    "--publish",
                    "published=5353,target=53,protocol=udp,mode=host",
                ],
            ),
        ),
        &format!(
            "port 5353/udp is already in use on node vm3 by python3 (pid {}) bound to 0.0.0.0:5353",
            udp.pid
        ),
    );
    // The swarm's own ports are held too: the node-to-node port on every node.
    fails_with(
        &lab.sn("vm1", &whoami("web", &["--detach", "-p", "7946:3000"])),
        "port 7946/tcp is already in use on node vm1 by swarmnet",
    );
    // The docker client gets the same sentence.
    docker_fails_with(
        &docker(
            lab,
            "vm1",
            &[
                "service",
                "create",
                "--detach",
                "--name",
                "web",
                "-p",
                "8080:3000",
                "host",
                "true",
            ],
        ),
        "port 8080/tcp is already in use on node vm2 by python3",
    );
    assert_eq!(
        stdout(&ok(&lab.sn("vm1", &["service", "ls"]))),
        before,
        "nothing created"
    );

    // An update that would take it is refused and changes nothing; the
    // service's own ports are not in its way.
    ok(&lab.sn("vm1", &whoami("web", &["--detach", "-p", "8081:3000"])));
    publish_add_refused(lab, "web", "on node vm2 by python3");
    ok(&lab.sn(
        "vm1",
        &["service", "update", "--detach", "--env-add", "A=1", "web"],
    ));
    // Once the process is gone, the port is free.
    drop(tcp);
    eventually("8080 free on vm2", WAIT, || {
        let out = lab.sn(
            "vm1",
            &[
                "service",
                "update",
                "--detach",
                "--publish-add",
                "8080:3000",
                "web",
            ],
        );
        out.status.success().then_some(()).ok_or(stderr(&out))
    });
}
