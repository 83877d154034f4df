//! A task's life seen through the routing mesh (issue 11): a task that is
//! stopped takes no new connections and drains the open ones, answering a
//! request in flight before it exits; a `mode=host` port answers only on
//! the nodes that run a task, from that node's own task, and shows as
//! Docker shows it.
//!
//! The lab is mesh.rs's: three swarm machines and `client`, outside the swarm.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::*;
use crate::mesh::{tasks, whoami, Mesh, Reply, FOLLOW, NODES, PYTHON, WAIT};
use crate::services::converges;

/// A shell script (arguments: URL...): one curl per URL, all at once, each
/// line `OK STATUS HOSTNAME CONNECTION` (CONNECTION is the reply's
/// Connection header, `-` without one) or `ERR URL WHY`.
const SLOW_ALL: &str = r#"for u in "$@"; do
  (
    if out=$(curl -sS -i --max-time 30 "$u" 2>&1); then
      printf '%s\n' "$out" | tr -d '\r' | awk '
        NR == 1 {s = $2} /^Connection:/ {c = $2} /^Hostname:/ {h = $2}
        END {print "OK", s, h, (c == "" ? "-" : c)}'
    else
      printf 'ERR %s %s\n' "$u" "$(printf '%s' "$out" | head -n 1)"
    fi
  ) &
done
wait"#;

/// One TCP connection to HOST PORT (the arguments), given up after 2 s:
/// prints `connected`, or the error's name (`ConnectionRefusedError`,
/// `TimeoutError`).
const CONNECT_ONCE: &str = r#"
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    print("connected")
except OSError as e:
    print(type(e).__name__)
"#;

/// Slow requests from the client, in flight until they end; stopped by pid
/// even when the test fails.
struct Slow(Child);

impl Slow {
    /// GET `path` of each of `urls` (which end in `/`).
    fn start(mesh: &Mesh, urls: &[String], path: &str) -> Slow {
        let urls: Vec<String> = urls
            .iter()
            .map(|u| format!("{}{path}", u.trim_end_matches('/')))
            .collect();
        let mut args = vec!["machine", "ssh", "client", "--", "sh", "-c", SLOW_ALL, "sh"];
        args.extend(urls.iter().map(String::as_str));
        let child = mesh
            .lab
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the slow requests");
        Slow(child)
    }

    fn running(&mut self) -> bool {
        self.0
            .try_wait()
            .expect("the slow requests' state")
            .is_none()
    }

    /// The answers, one line each, once all have ended.
    fn answers(mut self) -> Vec<String> {
        let mut text = String::new();
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        self.0.wait().unwrap();
        text.lines().map(str::to_string).collect()
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A shell loop on a machine that waits, polling every 20 ms, until `until`
/// (a shell condition) holds and then prints the time; it first waits for
/// `armed`, then says so on a line of its own.
struct Poller {
    child: Child,
    output: BufReader<ChildStdout>,
}

impl Poller {
    fn start(lab: &Lab, machine: &str, armed: &str, until: &str) -> Poller {
        let script = format!(
            "until {armed}; do sleep 0.02; done; echo armed; \
             until {until}; do sleep 0.02; done; date +%s%N"
        );
        let mut child = lab
            .cmd(&["machine", "ssh", machine, "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a poller");
        let output = BufReader::new(child.stdout.take().unwrap());
        Poller { child, output }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Returns once the poller watches.
    #[track_caller]
    fn armed(&mut self) {
        assert_eq!(self.line(), "armed");
    }

    /// When the condition came true.
    #[track_caller]
    fn time(mut self) -> SystemTime {
        let line = self.line();
        let nanos: u64 = line
            .parse()
            .unwrap_or_else(|_| panic!("a poller's time: {line:?}"));
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A container's address on a network, as `container inspect` gives it on its node.
fn address(lab: &Lab, node: &str, container: &str, network: &str) -> String {
    let format = format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}");
    stdout(&ok(&lab.sn(
        node,
        &["container", "inspect", "--format", &format, container],
    )))
    .trim()
    .to_string()
}

/// The client's connections established to port 3000 of a task, as `ss`
/// shows them in the task's namespace.
fn held_by(mesh: &Mesh, node: &str, task: &str) -> usize {
    let out = mesh.lab.sn(
        node,
        &[
            "container",
            "exec",
            task,
            "--",
            "ss",
            "-Htn",
            "state",
            "established",
            "( sport = :3000 )",
        ],
    );
    stdout(&ok(&out))
        .lines()
        .filter(|l| l.contains(&format!(" {}:", mesh.client)))
        .count()
}

#[test]
#[ignore = "needs root"]
fn a_stopping_task_takes_no_new_connections_and_answers_the_requests_in_flight() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &whoami(
            "web",
            &[
                "--replicas",
                "3",
                "--stop-grace-period",
                "30s",
                "-p",
                "8080:3000",
            ],
        ),
    ));
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let before = tasks(lab, "web");
    // web=2 stops the task in slot 3.
    let (stopping, node) = before
        .iter()
        .find(|(name, _)| name.starts_with("web.3."))
        .map(|(name, node)| (name.clone(), node.clone()))
        .unwrap_or_else(|| panic!("no task in slot 3: {before:?}"));

    // Slow requests, one through each node at a time, until the stopping
    // task holds one (the balancers choose): each batch is in the tasks'
    // hands before the next, so every one the stopping task holds is from
    // the last batch and in its hands at the scale.
    let mut slow = Vec::new();
    let on_stopping = eventually("a slow request on the task to stop", WAIT, || {
        slow.push(Slow::start(&mesh, &mesh.urls(3), "/?wait=5s"));
        let held = eventually("the slow requests are in the tasks' hands", WAIT, || {
            let live = 3 * slow.iter_mut().map(Slow::running).filter(|r| *r).count();
            let held: Vec<(String, usize)> = before
                .iter()
                .map(|(task, node)| (task.clone(), held_by(&mesh, node, task)))
                .collect();
            let total: usize = held.iter().map(|(_, n)| n).sum();
            (total == live)
                .then_some(held.clone())
                .ok_or(format!("{live} in flight: {held:?}"))
        });
        let on_stopping = held
            .iter()
            .find(|(t, _)| *t == stopping)
            .map_or(0, |(_, n)| *n);
        (on_stopping > 0)
            .then_some(on_stopping)
            .ok_or(format!("{held:?}"))
    });

    // Watch, on every node, the stopping task's address leave the routing
    // mesh; and the task's listener close.
    let ingress_ip = address(lab, &node, &stopping, "ingress");
    let in_mesh = format!("nft list table ip swarmnet_ingress | grep -q '{ingress_ip} '");
    let mut left_mesh: Vec<(&str, Poller)> = NODES
        .iter()
        .map(|n| (*n, Poller::start(lab, n, &in_mesh, &format!("! {in_mesh}"))))
        .collect();
    let pid = stdout(&ok(&lab.sn(
        &node,
        &[
            "container",
            "inspect",
            "--format",
            "{{.State.Pid}}",
            &stopping,
        ],
    )))
    .trim()
    .to_string();
    let listens = format!("nsenter -t {pid} -n ss -Hltn 'sport = :3000' | grep -q .");
    let mut closed = Poller::start(lab, &node, &listens, &format!("! {listens}"));
    for (_, poller) in &mut left_mesh {
        poller.armed();
    }
    closed.armed();

    let slow_batches = slow.len();
    ok(&lab.sn("vm1", &["service", "scale", "--detach", "web=2"]));
    let scaled = SystemTime::now();
    let deadline = Instant::now() + WAIT;
    // New requests, through every node, for as long as the slow ones last.
    let mut after: Vec<Reply> = Vec::new();
    while slow.iter_mut().any(Slow::running) {
        assert!(Instant::now() < deadline, "the slow requests never ended");
        after.extend(mesh.curl(&mesh.urls(6)));
    }
    let answers: Vec<String> = slow.into_iter().flat_map(Slow::answers).collect();

    // The task stops listening only once every node's balancer has let it go.
    let since = |at: &SystemTime| at.duration_since(scaled).unwrap_or_default();
    let closed = since(&closed.time());
    let left: Vec<(&str, Duration)> = left_mesh
        .into_iter()
        .map(|(n, poller)| (n, since(&poller.time())))
        .collect();
    eprintln!("after web=2: {stopping} left the mesh on {left:?}, stopped listening at {closed:?}");
    assert!(
        left.iter().all(|(_, at)| *at < closed),
        "{stopping} stopped listening at {closed:?}, before the mesh let it go: {left:?}"
    );
    // So no new request is refused or lost while the task stops.
    let failed: Vec<(Duration, &String)> = after
        .iter()
        .filter_map(|(at, a)| Some((since(at), a.as_ref().err()?)))
        .collect();
    assert!(
        failed.is_empty(),
        "new requests failed (started that long after the scale): {failed:#?}"
    );
    // It takes none once the balancers have followed the scale (within
    // FOLLOW), while its slow requests still run: new ones go elsewhere.
    let reached: Vec<Duration> = after
        .iter()
        .filter(|(_, a)| a.as_ref().is_ok_and(|a| a.hostname == stopping))
        .map(|(at, _)| since(at))
        .collect();
    let followed = reached.iter().max().copied().unwrap_or_default();
    let elsewhere = after.iter().filter(|(at, _)| since(at) > followed).count();
    eprintln!(
        "web=2: {} new requests while {stopping} drained; {} reached it (started {reached:?} \
         after the scale), {elsewhere} after the last of those went elsewhere",
        after.len(),
        reached.len(),
    );
    assert!(
        followed < FOLLOW,
        "new requests reached the stopping task {reached:?} after the scale"
    );
    assert!(elsewhere > 0, "no new request while it drained: {after:#?}");

    // Every slow request is answered; the stopping task's while it was
    // shutting down (its reply closes the connection, as Go's after Shutdown).
    assert_eq!(answers.len(), 3 * slow_batches, "{answers:#?}");
    let mut drained = 0;
    for line in &answers {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ["OK", "200", hostname, connection] = f.as_slice() else {
            panic!("a slow request failed: {line}\n{answers:#?}");
        };
        assert!(before.contains_key(*hostname), "{line}");
        if *hostname == stopping {
            assert_eq!(*connection, "close", "answered while shutting down: {line}");
            drained += 1;
        }
    }
    assert_eq!(drained, on_stopping, "{answers:#?}");

    // Then it ends by itself, long before its 30 s grace period, and its
    // container goes.
    let ended = Instant::now();
    eventually(
        "the stopped task's container goes",
        Duration::from_secs(10),
        || {
            let out = stdout(&ok(
                &lab.sn(&node, &["container", "ls", "-a", "--format", "{{.Names}}"])
            ));
            (!out.contains(&stopping)).then_some(()).ok_or(out)
        },
    );
    eprintln!(
        "{stopping} on {node} drained {drained} requests and ended {:?} after they did",
        ended.elapsed()
    );
}

#[test]
#[ignore = "needs root"]
fn a_host_mode_port_answers_only_where_a_task_runs_from_that_nodes_own_task() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn(
        "vm1",
        &whoami(
            "direct",
            &[
                "--replicas",
                "2",
                "--constraint",
                "node.hostname!=vm1",
                "--publish",
                "published=8081,target=3000,mode=host",
            ],
        ),
    ));
    converges(lab, "direct", &[("vm2", 1), ("vm3", 1)], WAIT);
    let placed = tasks(lab, "direct");

    // Each node that runs a task answers from that task only, and the task
    // sees the client's own address.
    for (task, node) in &placed {
        let seen: BTreeSet<String> = mesh
            .curl_ok(&mesh.urls_on(&[node], 8081, 10))
            .into_iter()
            .collect();
        assert_eq!(seen, BTreeSet::from([task.clone()]), "through {node}");
    }
    // A node without a task has nothing on the port: the connection is
    // refused at once (not dropped, which would leave the client waiting).
    let out = ok(&lab.ssh(
        "client",
        &[PYTHON, "-c", CONNECT_ONCE, mesh.addr("vm1"), "8081"],
    ));
    assert_eq!(stdout(&out).trim(), "ConnectionRefusedError", "vm1:8081");

    // As Docker shows it: `service ps` gives each task's host port...
    let ps = stdout(&ok(&lab.sn(
        "vm1",
        &[
            "service",
            "ps",
            "direct",
            "--format",
            "{{.Node}} {{.Ports}}",
        ],
    )));
    let mut rows: Vec<&str> = ps.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        ["vm2 *:8081->3000/tcp", "vm3 *:8081->3000/tcp"],
        "{ps}"
    );
    let table = stdout(&ok(&lab.sn("vm1", &["service", "ps", "direct"])));
    let header = table.lines().next().unwrap_or_default();
    assert!(header.trim_end().ends_with("PORTS"), "{table}");
    assert_eq!(table.matches("*:8081->3000/tcp").count(), 2, "{table}");
    // ... `service ls` lists ingress ports only, so none here ...
    let ls = stdout(&ok(&lab.sn(
        "vm1",
        &["service", "ls", "--format", "{{.Name}}|{{.Ports}}"],
    )));
    assert_eq!(ls.trim_end(), "direct|", "{ls}");
    // ... and `service inspect` the port with its mode.
    let inspect = stdout(&ok(&lab.sn("vm1", &["service", "inspect", "direct"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let port = serde_json::json!([{
        "Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8081, "PublishMode": "host"
    }]);
    assert_eq!(doc[0]["Endpoint"]["Ports"], port, "{inspect}");
    assert_eq!(doc[0]["Spec"]["EndpointSpec"]["Ports"], port, "{inspect}");
}
