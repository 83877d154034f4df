//! Overlay networks end to end: containers on three machines reach each other
//! over VXLAN inside the WireGuard mesh (ping, curl to `swarmnet whoami`),
//! networks stay apart, the underlay carries only WireGuard, the MTU is exact,
//! containers get out through the gateway bridge, and removal leaves nothing;
//! and, on a lab of its own, bad input on an overlay leaves no trace.

use std::process::Output;
use std::time::Duration;

use crate::harness::*;

const MANAGER: &str = "192.168.99.100";
const WAIT: Duration = Duration::from_secs(20);

/// `container run -d` on a machine with extra options; returns the container's ID.
fn run(lab: &Lab, machine: &str, name: &str, opts: &[&str], cmd: &[&str]) -> String {
    let mut args = vec!["container", "run", "-d", "--name", name];
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(cmd);
    stdout(&ok(&lab.sn(machine, &args))).trim().to_string()
}

fn sn_out(lab: &Lab, machine: &str, args: &[&str]) -> String {
    stdout(&ok(&lab.sn(machine, args)))
}

fn ip_of(lab: &Lab, machine: &str, name: &str) -> String {
    let out = ok(&lab.sn(
        machine,
        &[
            "container",
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            name,
        ],
    ));
    stdout(&out).trim().to_string()
}

fn exec(lab: &Lab, machine: &str, name: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["container", "exec", name, "--"];
    args.extend_from_slice(cmd);
    lab.sn(machine, &args)
}

fn pings(lab: &Lab, machine: &str, name: &str, ip: &str) -> bool {
    exec(lab, machine, name, &["ping", "-c1", "-W1", ip])
        .status
        .success()
}

/// Waits until `name` on `machine` reaches `ip` by ping.
fn reaches(lab: &Lab, machine: &str, name: &str, ip: &str) {
    eventually(&format!("{name} on {machine} pings {ip}"), WAIT, || {
        pings(lab, machine, name, ip)
            .then_some(())
            .ok_or_else(|| "no reply".to_string())
    });
}

/// Fetches whoami's answer at ip:3000 from inside a container.
fn curl(lab: &Lab, machine: &str, name: &str, url: &str) -> Result<String, String> {
    let out = exec(lab, machine, name, &["curl", "-sf", "-m", "3", url]);
    out.status
        .success()
        .then(|| stdout(&out))
        .ok_or_else(|| stderr(&out))
}

fn network(lab: &Lab, name: &str, subnet: &str, extra: &[&str]) {
    let mut args = vec![
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        subnet,
    ];
    args.extend_from_slice(extra);
    args.push(name);
    ok(&lab.sn("vm1", &args));
}

fn sandboxes(lab: &Lab, machine: &str) -> String {
    stdout(&ok(&lab.ssh(machine, &["ls", "/run/swarmnet/netns"])))
}

#[test]
#[ignore = "needs root"]
fn containers_on_overlays_talk_across_hosts_and_networks_stay_apart() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2", "vm3"]);
    lab.swarm("vm1", MANAGER, &["vm2", "vm3"]);
    network(&lab, "blue", "10.20.0.0/24", &[]);
    network(&lab, "red", "10.30.0.0/24", &[]);

    let serve = [bin(), "whoami", "--port", "3000"];
    run(&lab, "vm1", "c1", &["--network", "blue"], &serve);
    run(
        &lab,
        "vm2",
        "c2",
        &[
            "--network",
            "blue",
            "--ip",
            "10.20.0.50",
            "--network-alias",
            "db",
        ],
        &serve,
    );
    run(&lab, "vm3", "c3", &["--network", "red"], &serve);
    run(
        &lab,
        "vm2",
        "c4",
        &["--network", "blue", "--network", "red"],
        &serve,
    );
    run(&lab, "vm1", "c5", &["--network", "red"], &serve);
    let c1 = ip_of(&lab, "vm1", "c1");
    assert_eq!(c1, "10.20.0.2", "the lowest free address after the gateway");
    assert_eq!(ip_of(&lab, "vm2", "c2"), "10.20.0.50");
    let c3 = ip_of(&lab, "vm3", "c3");
    let c4: Vec<String> = ip_of(&lab, "vm2", "c4")
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(c4.len(), 2, "one address per network: {c4:?}");
    let c5 = ip_of(&lab, "vm1", "c5");
    let listed = sn_out(
        &lab,
        "vm2",
        &["container", "ls", "--format", "{{.Names}} {{.Networks}}"],
    );
    assert!(listed.contains("c4 blue,red\n"), "{listed}");

    // Across hosts, by ping and HTTP.
    reaches(&lab, "vm2", "c2", &c1);
    let body = eventually("c2 fetches c1's whoami", WAIT, || {
        curl(&lab, "vm2", "c2", &format!("http://{c1}:3000/"))
    });
    assert!(body.starts_with("Hostname: c1\n"), "{body}");
    assert!(body.contains(&format!("IP: {c1}\n")), "{body}");
    assert!(body.contains("RemoteAddr: 10.20.0.50:"), "{body}");
    // A container on both networks reaches both.
    reaches(&lab, "vm2", "c4", &c1);
    reaches(&lab, "vm2", "c4", &c3);
    reaches(&lab, "vm3", "c3", &c4[1]);

    // Isolation both ways, across hosts and on the same host, ICMP and TCP.
    for (machine, from, to) in [
        ("vm2", "c2", c3.as_str()),
        ("vm3", "c3", c1.as_str()),
        ("vm1", "c5", c1.as_str()),
        ("vm1", "c1", c5.as_str()),
    ] {
        assert!(
            !pings(&lab, machine, from, to),
            "{from} must not reach {to}"
        );
        let fetched = curl(&lab, machine, from, &format!("http://{to}:3000/"));
        assert!(fetched.is_err(), "{from} fetched from {to}: {fetched:?}");
    }

    // UDP too: a datagram from a container on both networks arrives, none
    // from a container on red only, on the same host or another (c2's, sent
    // after theirs, arrives first).
    let c1_at = ("vm1", "c1");
    assert_eq!(first_udp_source(&lab, c1_at, &c1, &[("vm2", "c4")]), c4[0]);
    for sender in [("vm1", "c5"), ("vm3", "c3")] {
        let first = first_udp_source(&lab, c1_at, &c1, &[sender, ("vm2", "c2")]);
        assert_eq!(first, "10.20.0.50", "{sender:?} reached c1 over UDP");
    }

    // The MTU: the underlay's 1500 less WireGuard (80) and VXLAN (50).
    let mtu = stdout(&ok(&exec(
        &lab,
        "vm1",
        "c1",
        &["cat", "/sys/class/net/eth0/mtu"],
    )));
    assert_eq!(mtu.trim(), "1370");
    let largest = (1370 - 28).to_string();
    let too_big = (1370 - 27).to_string();
    ok(&exec(
        &lab,
        "vm2",
        "c2",
        &["ping", "-c1", "-W2", "-M", "do", "-s", &largest, &c1],
    ));
    assert!(
        !exec(
            &lab,
            "vm2",
            "c2",
            &["ping", "-c1", "-W2", "-M", "do", "-s", &too_big, &c1]
        )
        .status
        .success(),
        "a DF ping one byte over the MTU must not get through"
    );

    // Egress through the gateway bridge: a worker's container reaches the manager's underlay address.
    reaches(&lab, "vm2", "c2", MANAGER);

    underlay_carries_only_wireguard(&lab, &c1);

    // network inspect: the containers per node; rm refused while they are attached.
    let inspect = stdout(&ok(&lab.sn("vm1", &["network", "inspect", "blue"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let containers = doc[0]["Containers"].as_object().unwrap();
    let mut names: Vec<&str> = containers
        .values()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["c1", "c2", "c4"]);
    assert_eq!(doc[0]["Peers"].as_array().unwrap().len(), 2, "{inspect}");
    fails_with(
        &lab.sn("vm1", &["network", "rm", "blue"]),
        "has active endpoints",
    );

    // Removing leaves nothing: no interface, namespace or endpoint.
    for (machine, name) in [
        ("vm1", "c1"),
        ("vm1", "c5"),
        ("vm2", "c2"),
        ("vm2", "c4"),
        ("vm3", "c3"),
    ] {
        ok(&lab.sn(machine, &["container", "rm", "-f", name]));
    }
    for machine in ["vm1", "vm2", "vm3"] {
        eventually(&format!("{machine} has no namespace left"), WAIT, || {
            let left = sandboxes(&lab, machine);
            left.trim().is_empty().then_some(()).ok_or(left)
        });
        let links = stdout(&ok(&lab.ssh(machine, &["ip", "-o", "link"])));
        assert!(!links.contains(" gw-"), "{machine}: {links}");
        assert!(!links.contains(" ve-"), "{machine}: {links}");
    }
    ok(&lab.sn("vm1", &["network", "rm", "blue", "red"]));
}

/// The source address of the first UDP datagram to port 9999 that a
/// capture inside `to` sees: each sender in turn sends five. The capture
/// ends with that datagram (its timeout is only a ceiling).
fn first_udp_source(
    lab: &Lab,
    (to_vm, to): (&str, &str),
    ip: &str,
    senders: &[(&str, &str)],
) -> String {
    let mut capture = lab
        .cmd(&[
            "machine",
            "ssh",
            to_vm,
            "--",
            bin(),
            "container",
            "exec",
            to,
            "--",
            "timeout",
            "20",
            "tcpdump",
            "--immediate-mode",
            "-i",
            "any",
            "-n",
            "-l",
            "-c",
            "1",
            "udp",
            "port",
            "9999",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    let mut said = wait_until_listening(&mut capture);
    for (vm, from) in senders {
        for _ in 0..5 {
            exec(
                lab,
                vm,
                from,
                &["bash", "-c", &format!("echo probe > /dev/udp/{ip}/9999")],
            );
        }
    }
    let out = capture.wait_with_output().expect("tcpdump ends");
    let seen = stdout(&out);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut said, &mut rest);
    let source = seen
        .split_once(" IP ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit_once('.'))
        .map(|(host, _port)| host.to_string());
    source.unwrap_or_else(|| panic!("no datagram reached {to} ({}): {seen}{rest}", out.status))
}

/// Reads a starting tcpdump's stderr until it says it is listening; returns
/// the rest, to keep open until it ends (a closed pipe would kill it).
fn wait_until_listening(
    capture: &mut std::process::Child,
) -> std::io::BufReader<std::process::ChildStderr> {
    let mut stderr = std::io::BufReader::new(capture.stderr.take().expect("piped"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        let read = std::io::BufRead::read_line(&mut stderr, &mut line).expect("tcpdump's stderr");
        assert!(read > 0, "tcpdump ended before listening");
    }
    stderr
}

/// A capture on vm2's underlay during a transfer: only UDP to the WireGuard
/// port, and never the marker the transfer carries. The control plane (TLS
/// to the manager on 2377) is left out of the capture.
fn underlay_carries_only_wireguard(lab: &Lab, c1: &str) {
    let pcap = format!("/tmp/{}-underlay.pcap", lab.name);
    let marker = format!("MARKER-{}-plaintext", lab.name);
    let capture = lab
        .cmd(&[
            "machine",
            "ssh",
            "vm2",
            "--",
            "timeout",
            "60",
            "tcpdump",
            "--immediate-mode",
            "-i",
            "eth0",
            "-U",
            "-w",
            &pcap,
            "not",
            "tcp",
            "port",
            "2377",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    /// Stops the capture (once the transfer is done, or when the test fails)
    /// and removes its file.
    struct Capture(std::process::Child, String);
    impl Capture {
        fn stop(&mut self) {
            // The ssh runs `timeout`, which passes SIGINT on to tcpdump.
            for pid in children(self.0.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            let _ = self.0.wait();
        }
    }
    impl Drop for Capture {
        fn drop(&mut self) {
            self.stop();
            let _ = std::fs::remove_file(&self.1);
        }
    }
    let mut capture = Capture(capture, pcap.clone());
    let _said = wait_until_listening(&mut capture.0);
    for _ in 0..3 {
        let body = curl(lab, "vm2", "c2", &format!("http://{c1}:3000/{marker}")).unwrap();
        assert!(
            body.contains(&marker),
            "whoami echoes the request line: {body}"
        );
    }
    capture.stop();
    let bytes = std::fs::read(&pcap).unwrap();
    drop(capture);
    assert!(
        !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    let dump = std::process::Command::new("tcpdump")
        .args(["-nn", "-r", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    let lines = stdout(&dump);
    let packets: Vec<&str> = lines.lines().filter(|l| l.contains(" IP ")).collect();
    assert!(packets.len() >= 6, "the transfer was captured: {lines}");
    for p in packets {
        assert!(
            p.contains(".51820 > ") || p.contains(".51820: UDP"),
            "only WireGuard on the underlay: {p}"
        );
        assert!(p.contains("UDP"), "only WireGuard on the underlay: {p}");
    }
}

#[test]
#[ignore = "needs root"]
fn bad_container_input_on_overlays_is_one_line_and_leaves_no_trace() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", MANAGER, &["vm2"]);
    network(&lab, "blue", "10.20.0.0/24", &[]);
    let serve = [bin(), "whoami", "--port", "3000"];
    run(
        &lab,
        "vm2",
        "c2",
        &["--network", "blue", "--ip", "10.20.0.50"],
        &serve,
    );
    bad_input_changes_nothing(&lab);
}

/// Every bad input is one line, a non-zero exit, and no trace.
fn bad_input_changes_nothing(lab: &Lab) {
    ok(&lab.sn(
        "vm1",
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.60.0.0/24",
            "closed",
        ],
    ));
    let before = sandboxes(lab, "vm2");
    let serve = [bin(), "whoami", "--port", "3000"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--network", "blue", "--ip", "10.99.0.5"],
            "does not belong",
        ),
        (
            vec!["--network", "blue", "--ip", "10.20.0.50"],
            "Address already in use",
        ),
        (vec!["--network", "nope"], "network nope not found"),
        (
            vec!["--network", "closed"],
            "network closed not manually attachable",
        ),
        (
            vec!["--network", "ingress"],
            "network ingress not manually attachable",
        ),
        (
            vec!["--network", "blue", "--network", "nope"],
            "network nope not found",
        ),
    ];
    for (opts, needle) in cases {
        let mut args = vec!["container", "run", "-d", "--name", "bad"];
        args.extend_from_slice(&opts);
        args.push("--");
        args.extend_from_slice(&serve);
        fails_with(&lab.sn("vm2", &args), needle);
    }
    let mut taken = vec![
        "container",
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "blue",
        "--",
    ];
    taken.extend_from_slice(&serve);
    fails_with(&lab.sn("vm2", &taken), "is already in use");
    fails_with(
        &lab.sn(
            "vm2",
            &[
                "container",
                "attach",
                "--network",
                "blue",
                "/run/netns/nope",
            ],
        ),
        "does not exist",
    );
    let all = stdout(&ok(
        &lab.sn("vm2", &["container", "ls", "-a", "--format", "{{.Names}}"])
    ));
    assert!(!all.contains("bad"), "{all}");
    assert_eq!(
        sandboxes(lab, "vm2"),
        before,
        "no namespace left from a refused run"
    );
    let inspect = stdout(&ok(&lab.sn("vm1", &["network", "inspect", "blue"])));
    assert!(!inspect.contains("\"bad\""), "no endpoint left: {inspect}");
    ok(&lab.sn("vm1", &["network", "rm", "closed"]));

    // A full subnet: a /30 has one address besides its gateway.
    ok(&lab.sn(
        "vm1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.70.0.0/30",
            "tiny",
        ],
    ));
    let sleep = ["container", "run", "-d", "--network", "tiny", "--name"];
    ok(&lab.sn("vm2", &[&sleep[..], &["t1", "--", "sleep", "600"]].concat()));
    fails_with(
        &lab.sn("vm2", &[&sleep[..], &["t2", "--", "sleep", "600"]].concat()),
        "no available IPv4 addresses on this network's address pools: tiny",
    );
    ok(&lab.sn("vm2", &["container", "rm", "-f", "t1"]));
    ok(&lab.sn("vm1", &["network", "rm", "tiny"]));
}
