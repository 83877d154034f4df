//! Service discovery end to end, with `dig @127.0.0.11` from inside containers
//! on two machines: service names, `tasks.` names following a scale on both
//! nodes, dnsrr, container names and aliases, network scope, TCP, PTR, AAAA,
//! case; forwarding to a lab upstream (unbound on a machine of the lab) and
//! SERVFAIL without one; malformed packets; a daemon restart. Machines have
//! their own resolv.conf, rewritten in place by the tests.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::harness::*;
use support::*;
#[test]
#[ignore = "needs root"]
fn services_and_their_tasks_answer_and_follow_a_scale_on_both_nodes() {
    let lab = Lab::new();
    swarm_with_app(&lab);
    let app = network_id(&lab, "app");
    ok(&lab.sn("vm1", &whoami_service("web", &["--replicas", "2"])));
    idle(&lab, "vm1", "cli1", "app");
    idle(&lab, "vm2", "cli2", "app");
    let tasks = running_tasks(&lab, "web", &app);
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let task_ips: BTreeSet<Ipv4Addr> = tasks.values().copied().collect();
    let web_ips = vip(&lab, "web", &app).map_or(task_ips.clone(), |v| BTreeSet::from([v]));

    // `web` and `tasks.web` from both machines, once the resolvers are up.
    for (machine, cli) in [("vm1", "cli1"), ("vm2", "cli2")] {
        answers(&first(&lab, machine, cli, "web", &web_ips), &web_ips);
        answers(&ask(&lab, machine, cli, &["tasks.web"]), &task_ips);
    }
    // Any case; over TCP; AAAA is an empty NOERROR.
    answers(&ask(&lab, "vm2", "cli2", &["WeB"]), &web_ips);
    answers(&ask(&lab, "vm2", "cli2", &["TASKS.Web"]), &task_ips);
    let tcp = ask(&lab, "vm2", "cli2", &["+tcp", "tasks.web"]);
    assert!(tcp.tcp, "dig went over TCP: {}", tcp.text);
    answers(&tcp, &task_ips);
    status_is(&ask(&lab, "vm2", "cli2", &["web", "AAAA"]), "NOERROR");
    // PTR of each task's address is its container's name on the network.
    for (name, ip) in &tasks {
        let reply = ask(&lab, "vm2", "cli2", &["-x", &ip.to_string()]);
        let ptr: Vec<&str> = reply.data("PTR").collect();
        assert_eq!(ptr, [format!("{name}.app.")], "{}", reply.text);
    }
    // Each task's name answers its own address.
    let (name, ip) = tasks.iter().next().unwrap();
    answers(&ask(&lab, "vm1", "cli1", &[name]), &BTreeSet::from([*ip]));

    // tasks.web follows a scale up and down on both machines.
    scale_and_follow(&lab, 4, &app);
    scale_and_follow(&lab, 1, &app);

    // dnsrr: every running task, from either machine, also by the
    // service's alias on the network.
    let dnsrr = [
        "--replicas",
        "2",
        "--endpoint-mode",
        "dnsrr",
        "--network",
        "name=app,alias=round",
    ];
    ok(&lab.sn("vm1", &whoami_service("rr", &dnsrr)));
    let rr = task_addrs(&lab, "rr", &app, 2);
    for (machine, cli) in [("vm1", "cli1"), ("vm2", "cli2")] {
        answers(&first(&lab, machine, cli, "rr", &rr), &rr);
        answers(&ask(&lab, machine, cli, &["tasks.rr"]), &rr);
        answers(&ask(&lab, machine, cli, &["round"]), &rr);
    }
}

#[test]
#[ignore = "needs root"]
fn container_names_and_aliases_answer_only_on_shared_networks() {
    let lab = Lab::new();
    swarm_with_app(&lab);
    ok(&lab.sn(
        "vm1",
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "other",
        ],
    ));
    run(
        &lab,
        "vm1",
        "c1",
        &["--network", "app", "--network-alias", "db"],
        &["sleep", "infinity"],
    );
    idle(&lab, "vm2", "c2", "app");
    run(
        &lab,
        "vm1",
        "hidden",
        &["--network", "other", "--network-alias", "secret"],
        &["sleep", "infinity"],
    );
    let c1 = BTreeSet::from([ip_of(&lab, "vm1", "c1", "app")]);
    let hidden = BTreeSet::from([ip_of(&lab, "vm1", "hidden", "other")]);

    answers(&first(&lab, "vm2", "c2", "c1", &c1), &c1);
    answers(&ask(&lab, "vm2", "c2", &["db"]), &c1);
    answers(&ask(&lab, "vm2", "c2", &["C1"]), &c1);
    answers(&ask(&lab, "vm2", "c2", &["+tcp", "db"]), &c1);
    status_is(&ask(&lab, "vm2", "c2", &["c1", "AAAA"]), "NOERROR");
    // Names on a network the asker is not on are NXDOMAIN, both ways.
    status_is(&ask(&lab, "vm2", "c2", &["hidden"]), "NXDOMAIN");
    status_is(&ask(&lab, "vm2", "c2", &["secret"]), "NXDOMAIN");
    answers(&first(&lab, "vm1", "hidden", "secret", &hidden), &hidden);
    status_is(&ask(&lab, "vm1", "hidden", &["c1"]), "NXDOMAIN");
    status_is(&ask(&lab, "vm1", "hidden", &["db"]), "NXDOMAIN");
    // PTR: Docker's NAME.NETWORK.
    let c1_ip = c1.first().unwrap().to_string();
    let reply = ask(&lab, "vm2", "c2", &["-x", &c1_ip]);
    assert_eq!(
        reply.data("PTR").collect::<Vec<_>>(),
        ["c1.app."],
        "{}",
        reply.text
    );
    // The resolv.conf swarmnet wrote works for any program (glibc here).
    let out = ok(&exec(&lab, "vm2", "c2", &["getent", "ahostsv4", "db"]));
    assert!(stdout(&out).starts_with(&c1_ip), "{}", stdout(&out));

    malformed_packets_leave_the_resolver_answering(&lab, &c1);
}

/// Sends malformed queries (and a flood) from c2, then checks every reply
/// was FORMERR or none, and that the resolver still answers over UDP and TCP.
fn malformed_packets_leave_the_resolver_answering(lab: &Lab, c1: &BTreeSet<Ipv4Addr>) {
    let out = ok(&exec(lab, "vm2", "c2", &["python3", "-c", MALFORMED]));
    let text = stdout(&out);
    eprintln!("malformed packets:\n{text}");
    let results: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once(": ")).collect();
    for case in ["empty", "short", "response"] {
        assert_eq!(
            results.get(case),
            Some(&"none"),
            "{case} gets no reply: {text}"
        );
    }
    for case in [
        "no-question",
        "long-label",
        "pointer-loop",
        "pointer-out",
        "huge-name",
        "many-questions",
    ] {
        let got = results.get(case).copied().unwrap_or("missing");
        assert!(
            got == "none" || got == "rcode=1 qr=1 id=ok",
            "{case} is dropped or FORMERR, got {got}: {text}"
        );
    }
    let got = results.get("longest-name").copied().unwrap_or("missing");
    assert!(
        got.starts_with("rcode=") && got.ends_with("qr=1 id=ok"),
        "the longest legal name gets an answer: {got}: {text}"
    );
    for case in ["tcp-garbage", "tcp-huge-length", "tcp-closed"] {
        assert!(results.contains_key(case), "{case} ran: {text}");
    }
    assert_eq!(
        results.get("tcp-beside-idle"),
        Some(&"NOERROR"),
        "an idle TCP connection does not hold up the next: {text}"
    );
    assert!(
        results.get("flood").is_some_and(|r| r.starts_with("sent")),
        "{text}"
    );
    answers(&ask(lab, "vm2", "c2", &["c1"]), c1);
    answers(&ask(lab, "vm2", "c2", &["+tcp", "c1"]), c1);
}

/// Malformed queries to 127.0.0.11:53, one line each: `CASE: none` or
/// `CASE: rcode=N qr=Q id=ok|bad`; then TCP abuse and a bounded flood.
const MALFORMED: &str = r#"
import socket, struct, subprocess, time
R = ("127.0.0.11", 53)
def hdr(i, flags=0x0100, qd=1):
    return struct.pack(">HHHHHH", i, flags, qd, 0, 0, 0)
def q(name):
    return b"".join(bytes([len(l)]) + l for l in name.split(b".")) + b"\0" + b"\0\1\0\1"
def udp(case, data, i=None, wait=0.5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(wait)
    s.sendto(data, R)
    try:
        r = s.recv(65535)
        fl = struct.unpack(">H", r[2:4])[0]
        ok = "ok" if i is None or r[:2] == struct.pack(">H", i) else "bad"
        print(f"{case}: rcode={fl & 15} qr={fl >> 15} id={ok}", flush=True)
    except socket.timeout:
        print(f"{case}: none", flush=True)
udp("empty", b"")
udp("short", b"\x12\x34\x01")
udp("response", hdr(0x1001, 0x8180) + q(b"c1"), 0x1001)
udp("no-question", hdr(0x1002), 0x1002)
udp("long-label", hdr(0x1003) + b"\x40" + b"a" * 64 + b"\0\0\1\0\1", 0x1003)
udp("pointer-loop", hdr(0x1004) + b"\xc0\x0c\0\1\0\1", 0x1004)
udp("pointer-out", hdr(0x1005) + b"\xff" * 50, 0x1005)
udp("huge-name", hdr(0x1006) + q(b".".join([b"a" * 63] * 5)), 0x1006)
udp("many-questions", hdr(0x1007, qd=65535) + q(b"c1"), 0x1007)
udp("longest-name", hdr(0x1008) + q(b".".join([b"b" * 63] * 3 + [b"c" * 61])), 0x1008, 5)
def tcp(case, data, hold=1.0):
    s = socket.create_connection(R, timeout=hold)
    if data:
        s.sendall(data)
    try:
        r = s.recv(65535)
        print(f"{case}: {len(r)} bytes", flush=True)
    except (socket.timeout, ConnectionResetError):
        print(f"{case}: no reply", flush=True)
    s.close()
tcp("tcp-garbage", b"\x00\x05hello")
tcp("tcp-huge-length", b"\xff\xff" + b"x" * 10, 0.3)
tcp("tcp-closed", b"")
idle = socket.create_connection(R, timeout=5)
d = subprocess.run(["dig", "@127.0.0.11", "+tcp", "+tries=1", "+timeout=3", "c1"],
                   capture_output=True, text=True).stdout
st = [l.split("status: ")[1].split(",")[0] for l in d.splitlines() if "status: " in l]
print("tcp-beside-idle: " + (st[0] if st else "no reply"), flush=True)
idle.close()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent, end = 0, time.time() + 2
while sent < 20000 and time.time() < end:
    try:
        s.sendto(hdr(sent & 0xffff) + q(b"c1"), R)
        sent += 1
    except BlockingIOError:
        time.sleep(0.001)
print(f"flood: sent {sent}", flush=True)
"#;

/// A lab upstream on machine `ns`: unbound, authoritative for lab.test
/// (with a name too big for UDP), refusing everything else, logging every
/// query. Returns its address and its log's path on the host.
fn upstream(lab: &Lab, ns: &str) -> (String, String) {
    let info = lab.machine_info(ns);
    let addr = info["address"].as_str().unwrap().to_string();
    let run_dir = info["run_dir"].as_str().unwrap();
    std::fs::create_dir_all(format!("{run_dir}/unbound")).unwrap();
    let big: String = (1..=100)
        .map(|i| format!("  local-data: \"big.lab.test. 60 IN A 192.0.2.{i}\"\n"))
        .collect();
    let conf = format!(
        "server:\n  interface: {addr}\n  port: 53\n  do-ip6: no\n  do-daemonize: yes\n  \
         chroot: \"\"\n  username: \"\"\n  directory: \"/run/unbound\"\n  \
         pidfile: \"/run/unbound/unbound.pid\"\n  logfile: \"/run/unbound/unbound.log\"\n  \
         use-syslog: no\n  log-queries: yes\n  verbosity: 1\n  num-threads: 1\n  \
         msg-cache-size: 1m\n  rrset-cache-size: 1m\n  outgoing-range: 16\n  \
         access-control: 192.168.99.0/24 allow\n  module-config: \"iterator\"\n  \
         local-zone: \".\" refuse\n  local-zone: \"lab.test.\" static\n  \
         local-data: \"www.lab.test. 60 IN A 192.0.2.80\"\n{big}\
         remote-control:\n  control-enable: no\n"
    );
    std::fs::write(format!("{run_dir}/unbound/unbound.conf"), conf).unwrap();
    ok(&lab.ssh(ns, &["unbound-checkconf", "/run/unbound/unbound.conf"]));
    ok(&lab.ssh(ns, &["unbound", "-c", "/run/unbound/unbound.conf"]));
    eventually("unbound answers on the lab", WAIT, || {
        let at = format!("@{addr}");
        let out = lab.ssh(
            "vm1",
            &["dig", &at, "+tries=1", "+timeout=1", "www.lab.test"],
        );
        parse_dig(&stdout(&out))
            .filter(|r| r.data("A").any(|a| a == "192.0.2.80"))
            .ok_or(stdout(&out) + &stderr(&out))
    });
    (addr, format!("{run_dir}/unbound/unbound.log"))
}

#[test]
#[ignore = "needs root"]
fn other_names_go_to_the_hosts_resolvers_and_fail_fast_without_one() {
    let lab = Lab::new();
    swarm_with_app(&lab);
    lab.machines(&["ns"]);
    let (upstream_addr, log) = upstream(&lab, "ns");
    ok(&lab.sn("vm1", &whoami_service("web", &["--replicas", "2"])));
    idle(&lab, "vm1", "cli1", "app");
    idle(&lab, "vm2", "cli2", "app");
    let clis = [("vm1", "cli1"), ("vm2", "cli2")];

    // Without a nameserver, a name of the outside world fails at once.
    for (machine, cli) in clis {
        let reply = eventually(&format!("{cli} answers"), FOLLOW, || {
            dig(&lab, machine, cli, &["www.lab.test"])
        });
        status_is(&reply, "SERVFAIL");
        assert!(reply.query_ms < 1000, "{}", reply.text);
    }

    for machine in ["vm1", "vm2"] {
        lab.set_resolv_conf(machine, &format!("nameserver {upstream_addr}\n"));
    }
    for (machine, cli) in clis {
        let reply = eventually(
            &format!("{cli} forwards to the lab upstream"),
            FOLLOW,
            || {
                let reply = dig(&lab, machine, cli, &["www.lab.test"])?;
                (reply.status == "NOERROR")
                    .then_some(reply.clone())
                    .ok_or(reply.text)
            },
        );
        answers(&reply, &BTreeSet::from([Ipv4Addr::new(192, 0, 2, 80)]));
        status_is(
            &ask_upstream(&lab, machine, cli, &["nope.lab.test"]),
            "NXDOMAIN",
        );
        answers(
            &ask_upstream(&lab, machine, cli, &["+tcp", "www.lab.test"]),
            &BTreeSet::from([Ipv4Addr::new(192, 0, 2, 80)]),
        );
        // Too big for UDP upstream: the resolver asks again over TCP (and
        // over UDP tells dig to, which then does).
        for args in [["+tcp", "big.lab.test"], ["+notcp", "big.lab.test"]] {
            let big = ask_upstream(&lab, machine, cli, &args);
            assert_eq!(big.a().len(), 100, "{args:?}: {}", big.text);
        }
        // The swarm's own names are answered here and never asked upstream.
        answers(
            &ask(&lab, machine, cli, &["tasks.web"]),
            &task_addrs(&lab, "web", &network_id(&lab, "app"), 2),
        );
        assert_eq!(ask(&lab, machine, cli, &["web"]).status, "NOERROR");
        assert_eq!(ask(&lab, machine, cli, &["cli1"]).status, "NOERROR");
    }
    let queries = eventually("unbound logs the queries", FOLLOW, || {
        let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
        text.contains(" big.lab.test. ")
            .then_some(text.clone())
            .ok_or(text)
    });
    for name in [" web. ", " tasks.web. ", " cli1. ", " cli2. "] {
        assert!(
            !queries.contains(name),
            "{name} reached the upstream: {queries}"
        );
    }

    // An upstream that never answers: SERVFAIL within the resolver's timeout.
    for machine in ["vm1", "vm2"] {
        lab.set_resolv_conf(machine, "nameserver 192.168.99.250\n");
    }
    let mut n = 0;
    let reply = eventually(
        "SERVFAIL from a silent upstream",
        Duration::from_secs(20),
        || {
            n += 1;
            let name = format!("q{n}.lab.test");
            let reply = dig_with(&lab, "vm2", "cli2", 5, &[&name])?;
            (reply.status == "SERVFAIL")
                .then_some(reply.clone())
                .ok_or(reply.text)
        },
    );
    eprintln!("SERVFAIL after {} ms", reply.query_ms);
    assert!(reply.query_ms < 4500, "{}", reply.text);
    let fresh = dig_with(&lab, "vm2", "cli2", 5, &["fresh.lab.test"]).unwrap();
    status_is(&fresh, "SERVFAIL");
    assert!(fresh.query_ms < 4500, "{}", fresh.text);
    // Meanwhile the swarm's names answer at once.
    let web = ask(&lab, "vm2", "cli2", &["tasks.web"]);
    assert!(
        web.status == "NOERROR" && web.query_ms < 500,
        "{}",
        web.text
    );
}

#[test]
#[ignore = "needs root"]
fn a_containers_resolver_is_back_soon_after_a_daemon_restart() {
    let lab = Lab::new();
    swarm_with_app(&lab);
    idle(&lab, "vm1", "c1", "app");
    idle(&lab, "vm2", "cli", "app");
    let c1 = BTreeSet::from([ip_of(&lab, "vm1", "c1", "app")]);
    answers(&first(&lab, "vm2", "cli", "c1", &c1), &c1);
    for signal in ["KILL", "TERM"] {
        ok(&lab.run(&["machine", "restart", "--signal", signal, "vm2"]));
        let up = Instant::now();
        eventually(
            &format!("cli gets c1 after a {signal} restart"),
            FOLLOW,
            || {
                let reply = dig_with(&lab, "vm2", "cli", 1, &["c1"])?;
                (reply.a() == c1).then_some(()).ok_or(reply.text)
            },
        );
        let took = up.elapsed();
        eprintln!("resolver back {took:?} after the daemon ({signal}) was up");
        assert!(took < Duration::from_secs(2), "back after {took:?}");
    }
}

#[test]
#[ignore = "needs root"]
fn machines_have_their_own_resolv_conf_rewritten_in_place() {
    let lab = Lab::new();
    let host = std::fs::read("/etc/resolv.conf").unwrap();
    lab.machines(&["vm1"]);
    let inside = stdout(&ok(&lab.ssh("vm1", &["cat", "/etc/resolv.conf"])));
    assert_eq!(
        inside,
        "# resolv.conf of swarmnet machine vm1: no upstream resolver; add nameserver lines\n"
    );
    lab.set_resolv_conf("vm1", "nameserver 192.0.2.53\n");
    let inside = stdout(&ok(&lab.ssh("vm1", &["cat", "/etc/resolv.conf"])));
    assert_eq!(inside, "nameserver 192.0.2.53\n");
    assert_eq!(
        std::fs::read("/etc/resolv.conf").unwrap(),
        host,
        "the host's resolv.conf is untouched"
    );
}

#[test]
fn dig_output_is_read() {
    let text = "\
; <<>> DiG 9.18.28 <<>> @127.0.0.11 tasks.web
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242
;; flags: qr aa rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 1

;; QUESTION SECTION:
;tasks.web.\t\t\tIN\tA

;; ANSWER SECTION:
tasks.web.\t\t1\tIN\tA\t10.0.1.3
tasks.web.\t\t1\tIN\tA\t10.0.1.4

;; Query time: 3 msec
;; SERVER: 127.0.0.11#53(127.0.0.11) (TCP)
";
    let reply = parse_dig(text).unwrap();
    assert_eq!(reply.status, "NOERROR");
    assert_eq!(
        reply.a(),
        BTreeSet::from([Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)])
    );
    assert_eq!(reply.answers[0].1, 1);
    assert_eq!(reply.query_ms, 3);
    assert!(reply.tcp);
    assert!(parse_dig(";; connection timed out; no servers could be reached\n").is_none());
}
