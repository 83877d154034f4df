//! Root tests (`#[ignore = "needs root"]`; scripts/test runs them): two
//! devices in two network namespaces this test creates, joined by a veth
//! pair; ping through the tunnel, read it with `wg`, and (a benchmark, run by
//! hand) measure it with iperf3.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use boringtun::x25519::{PublicKey, StaticSecret};
use nix::sched::CloneFlags;

use super::{Device, DeviceConfig, DeviceStats, PeerConfig};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces named after the test run, joined by a veth pair;
/// deleted (with everything in them) when dropped.
struct Lab {
    tag: String,
}

impl Lab {
    fn new(tag: String) -> Lab {
        let lab = Lab { tag };
        let t = &lab.tag;
        for side in ["a", "b"] {
            ok("ip", &["netns", "add", &format!("{t}-{side}")]);
        }
        let (na, nb) = (lab.ns("a"), lab.ns("b"));
        let (va, vb) = (format!("{t}va"), format!("{t}vb"));
        ok(
            "ip",
            &[
                "-n", &na, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns", &nb,
            ],
        );
        for (ns, veth, addr) in [(&na, &va, "10.99.0.1/24"), (&nb, &vb, "10.99.0.2/24")] {
            ok("ip", &["-n", ns, "addr", "add", addr, "dev", veth]);
            ok("ip", &["-n", ns, "link", "set", veth, "up"]);
            ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn ns(&self, side: &str) -> String {
        format!("{}-{side}", self.tag)
    }

    fn exec(&self, side: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(side), program])
            .args(args);
        cmd
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for side in ["a", "b"] {
            let _ = run("ip", &["netns", "del", &self.ns(side)]);
        }
    }
}

/// A device running on its own thread inside a namespace; dropping the
/// handle shuts the device down and waits for it.
struct Node {
    stats: Option<mpsc::Sender<mpsc::Sender<DeviceStats>>>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn start(ns: String, cfg: DeviceConfig, peer: PeerConfig) -> Node {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stats_tx, stats_rx) = mpsc::channel::<mpsc::Sender<DeviceStats>>();
        let thread = std::thread::spawn(move || {
            // setns is per thread: this thread (never a tokio worker) enters the namespace.
            let netns = File::open(format!("/run/netns/{ns}")).expect("opening the namespace");
            nix::sched::setns(netns, CloneFlags::CLONE_NEWNET).expect("entering the namespace");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a runtime");
            let device = match rt.block_on(Device::start(cfg)) {
                Ok(device) => device,
                Err(e) => return ready_tx.send(Err(format!("{e:#}"))).unwrap(),
            };
            device.set_peers(vec![peer]);
            ready_tx.send(Ok(())).unwrap();
            for reply in stats_rx {
                let _ = reply.send(device.stats());
            }
            rt.block_on(device.shutdown());
        });
        let node = Node {
            stats: Some(stats_tx),
            thread: Some(thread),
        };
        let started = ready_rx.recv().expect("the device thread died");
        started.unwrap_or_else(|e| panic!("starting the device: {e}"));
        node
    }

    fn stats(&self) -> DeviceStats {
        let (tx, rx) = mpsc::channel();
        self.stats.as_ref().unwrap().send(tx).unwrap();
        rx.recv().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stats.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Two peered devices; the nodes are declared first so they stop before
/// the lab's namespaces are deleted.
struct Mesh {
    a: Node,
    b: Node,
    keys: [[u8; 32]; 2],
    names: [String; 2],
    lab: Lab,
}

impl Mesh {
    fn new(test: char) -> Mesh {
        let tag = format!("swt{}{test}", std::process::id() % 10000);
        let lab = Lab::new(tag.clone());
        let secrets = [0, 1].map(|_| rand::random::<[u8; 32]>());
        let keys = secrets.map(|s| *PublicKey::from(&StaticSecret::from(s)).as_bytes());
        let names = [format!("{tag}a"), format!("{tag}b")];
        let node = |i: usize| {
            let other = 1 - i;
            let cfg = DeviceConfig {
                name: names[i].clone(),
                private_key: secrets[i],
                listen_port: 51001 + i as u16,
                address: Ipv4Addr::new(100, 64, 0, 1 + i as u8),
                prefix_len: 16,
                mtu: 1420,
            };
            let peer = PeerConfig {
                public_key: keys[other],
                endpoint: SocketAddr::from(([10, 99, 0, 1 + other as u8], 51001 + other as u16)),
                tunnel_addr: Ipv4Addr::new(100, 64, 0, 1 + other as u8),
                persistent_keepalive: None,
            };
            Node::start(lab.ns(["a", "b"][i]), cfg, peer)
        };
        let (a, b) = (node(0), node(1));
        Mesh {
            a,
            b,
            keys,
            names,
            lab,
        }
    }

    /// Pings B's tunnel address from A until it answers, up to a deadline.
    fn wait_for_ping(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self
                .lab
                .exec("a", "ping", &["-c", "1", "-W", "1", "100.64.0.2"])
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no ping reply through the tunnel: {out:?}"
            );
        }
    }
}

#[test]
#[ignore = "needs root"]
fn two_namespaces_ping_through_the_tunnel() {
    let mesh = Mesh::new('p');
    mesh.wait_for_ping();
    let out = mesh
        .lab
        .exec(
            "a",
            "ping",
            &["-c", "3", "-i", "0.2", "-W", "2", "100.64.0.2"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let [a_name, _] = &mesh.names;
    let b_key = base64::engine::general_purpose::STANDARD.encode(mesh.keys[1]);
    let show = ok("wg", &["show", a_name]);
    assert!(show.contains(&format!("peer: {b_key}")), "{show}");
    assert!(show.contains("latest handshake"), "{show}");
    assert!(show.contains("allowed ips: 100.64.0.2/32"), "{show}");
    assert!(ok("wg", &["show", "all"]).contains(&b_key));
    assert!(ok("wg", &["showconf", a_name]).contains("ListenPort = 51001"));

    ok(
        "wg",
        &["set", a_name, "peer", &b_key, "persistent-keepalive", "7"],
    );
    assert!(ok("wg", &["show", a_name, "persistent-keepalive"]).contains('7'));
    assert!(!run("wg", &["set", a_name, "listen-port", "1"])
        .status
        .success());

    let stats = mesh.a.stats();
    let peer = &stats.peers[0];
    assert!(
        peer.last_handshake.is_some() && peer.rx_bytes > 0 && peer.tx_bytes > 0,
        "{stats:?}"
    );
    assert_eq!(
        peer.endpoint,
        Some(SocketAddr::from(([10, 99, 0, 2], 51002)))
    );
    assert!(mesh.b.stats().peers[0].rx_bytes > 0);

    let Mesh {
        a, b, lab, names, ..
    } = mesh;
    drop((a, b));
    for (side, name) in ["a", "b"].iter().zip(&names) {
        assert!(!run("ip", &["-n", &lab.ns(side), "link", "show", name])
            .status
            .success());
        assert!(!Path::new(&format!("/var/run/wireguard/{name}.sock")).exists());
    }
}

/// Kills the iperf3 server (by its own pid) if the test ends first.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cargo test --bin swarmnet netns_test::iperf3 -- --ignored --nocapture`
#[test]
#[ignore = "a 5 s benchmark"]
fn iperf3_through_the_tunnel() {
    let mesh = Mesh::new('i');
    mesh.wait_for_ping();
    let _server = Server(mesh.lab.exec("b", "iperf3", &["-s", "-1"]).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = mesh
            .lab
            .exec("a", "iperf3", &["-c", "100.64.0.2", "-t", "5"])
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
    };
    println!("{}", String::from_utf8_lossy(&out.stdout));
    println!(
        "A: {:?}\nB: {:?}",
        mesh.a.stats().dropped,
        mesh.b.stats().dropped
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
