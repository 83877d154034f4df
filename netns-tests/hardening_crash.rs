//! A worker's daemon SIGKILLed again and again during loops of `container
//! run` on an overlay: after it is back, every live container process belongs
//! to a container `container ls -a` lists (and `rm -f` stops it), and no two
//! live containers hold one address, overlay or egress. Also: `machine ssh`
//! runs the swarmnet that made the machine by its bare name, as the README's
//! "By hand" lines do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::harness::*;

const MANAGER: &str = "192.168.99.100";
const RUNNERS: usize = 3;
const KILLS: usize = 5;

/// A live process's arguments, if it is not a zombie.
fn cmdline(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
    if state == "Z" {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The live container processes of this test (`sleep MARKER`), each with the
/// ID of the container its shim runs it for (None without a shim).
fn container_processes(marker: &str) -> Vec<(i32, Option<String>)> {
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.into_iter()
        .filter(|&pid| cmdline(pid).is_some_and(|args| args == ["sleep", marker]))
        .map(|pid| {
            let shim = ppid(pid)
                .and_then(cmdline)
                .filter(|args| args.get(1).map(String::as_str) == Some("runtime-shim"));
            let id = shim.and_then(|args| {
                let dir = args.iter().skip_while(|a| *a != "--dir").nth(1)?;
                Some(dir.rsplit('/').next()?.to_string())
            });
            (pid, id)
        })
        .collect()
}

/// The IPv4 addresses (but loopback) in a process's network namespace.
fn addresses(pid: i32) -> Vec<String> {
    let out = std::process::Command::new("nsenter")
        .args([
            &format!("--net=/proc/{pid}/ns/net"),
            "ip",
            "-4",
            "-o",
            "addr",
        ])
        .output()
        .expect("run nsenter");
    stdout(&ok(&out))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter(|a| !a.starts_with("127."))
        .map(String::from)
        .collect()
}

#[test]
#[ignore = "needs root"]
fn a_daemon_killed_mid_run_leaves_no_hidden_container() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", MANAGER, &["vm2"]);
    ok(&lab.sn(
        "vm1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.41.0.0/24",
            "crashnet",
        ],
    ));
    // A duration no other test's process carries, to find this test's containers.
    let marker = format!("86400.{}", std::process::id());
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        for _ in 0..RUNNERS {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    let run = ["container", "run", "-d", "--network", "crashnet"];
                    let out = lab.sn("vm2", &[&run[..], &["--", "sleep", &marker]].concat());
                    if !out.status.success() {
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
        for kill in 0..KILLS {
            // Different points in the runners' starts each time.
            thread::sleep(Duration::from_millis(900 + 170 * kill as u64));
            ok(&lab.run(&["machine", "restart", "--signal", "KILL", "vm2"]));
        }
        thread::sleep(Duration::from_secs(1));
        done.store(true, Ordering::SeqCst);
    });
    let listed = stdout(&ok(&lab.sn("vm2", &["container", "ls", "-a", "-q"])));
    let listed: Vec<&str> = listed.lines().map(str::trim).collect();
    let live = container_processes(&marker);
    assert!(
        live.len() >= KILLS,
        "the runners started containers: {live:?}"
    );
    for (pid, id) in &live {
        let id = id.as_deref().unwrap_or("(no shim)");
        assert!(
            listed.iter().any(|short| id.starts_with(short)),
            "process {pid} runs for container {id}, which `container ls -a` does not list: {listed:?}"
        );
    }
    let mut holders: HashMap<String, i32> = HashMap::new();
    for (pid, _) in &live {
        let held = addresses(*pid);
        assert_eq!(
            held.len(),
            2,
            "process {pid} has an overlay and an egress address: {held:?}"
        );
        for ip in held {
            if let Some(other) = holders.insert(ip.clone(), *pid) {
                panic!("processes {other} and {pid} both hold {ip}");
            }
        }
    }
    // Every listed container goes with `rm -f`, and nothing of them runs on.
    for id in &listed {
        ok(&lab.sn("vm2", &["container", "rm", "-f", id]));
    }
    eventually(
        "no container process is left",
        Duration::from_secs(10),
        || {
            let left = container_processes(&marker);
            left.is_empty().then_some(()).ok_or(format!("{left:?}"))
        },
    );
}

#[test]
#[ignore = "needs root"]
fn machine_ssh_finds_the_swarmnet_that_made_the_machine() {
    let lab = Lab::new();
    lab.machines(&["vm1"]);
    let found = stdout(&ok(&lab.ssh("vm1", &["sh", "-c", "command -v swarmnet"])));
    assert_eq!(
        found.trim(),
        bin(),
        "the bare name is the binary under test"
    );
    let log = stdout(&ok(
        &lab.ssh("vm1", &["sh", "-c", "echo $SWARMNET_DAEMON_LOG"])
    ));
    assert!(
        log.trim().ends_with("/machines/vm1/daemon.log"),
        "the CLI inside knows where the daemon's log is: {log}"
    );
    let out = ok(&lab.ssh("vm1", &["swarmnet", "container", "ls"]));
    assert!(stdout(&out).starts_with("CONTAINER ID"), "{}", stdout(&out));
}
