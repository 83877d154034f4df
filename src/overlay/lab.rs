//! The root tests' world: "hosts" are namespaces joined by a veth underlay,
//! each running its own `Overlay` on a thread inside it; containers are
//! pinned namespaces. All of it lives under one scratch directory and goes
//! away on drop, panics included.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

use super::Overlay;
use crate::netlink::netns::{self, ScratchDir};

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime, &Rc<Overlay>) + Send>;

/// A namespace with its own `Overlay`, driven from a dedicated thread.
pub(super) struct Host {
    pub ns: PathBuf,
    pub underlay: Ipv4Addr,
    pub sandbox_dir: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    fn start(ns: PathBuf, underlay: Ipv4Addr, sandbox_dir: PathBuf) -> Host {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (path, dir) = (ns.clone(), sandbox_dir.clone());
        let thread = std::thread::spawn(move || {
            // setns is per thread: this thread (never a tokio worker) enters the host.
            let file = std::fs::File::open(&path).expect("opening the host namespace");
            nix::sched::setns(file, CloneFlags::CLONE_NEWNET).expect("entering the host");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a runtime");
            let overlay = Rc::new(Overlay::new(dir));
            for job in queue {
                job(&runtime, &overlay);
            }
        });
        Host {
            ns,
            underlay,
            sandbox_dir,
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` with this host's overlay, on its thread, and waits for it.
    pub fn call<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Rc<Overlay>) -> Fut + Send + 'static,
        Fut: Future<Output = T>,
    {
        let (done, result) = mpsc::channel();
        let job: Job = Box::new(move |runtime, overlay| {
            let _ = done.send(runtime.block_on(f(overlay.clone())));
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        result.recv().expect("the host thread died")
    }

    /// The sandbox namespace of a network on this host.
    pub fn sandbox(&self, network_id: &str) -> PathBuf {
        Overlay::new(self.sandbox_dir.clone()).sandbox_path(network_id)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Hosts joined by an underlay (192.168.77.0/24), plus containers. The
/// hosts are declared first so their threads stop before the namespaces go.
pub(super) struct Lab {
    pub hosts: Vec<Host>,
    scratch: ScratchDir,
}

impl Lab {
    /// `count` hosts (1 or 2); with two, the underlay joins them.
    pub fn new(tag: &str, count: usize) -> Lab {
        let scratch = ScratchDir::new(tag);
        let mut lab = Lab {
            hosts: Vec::new(),
            scratch,
        };
        let paths: Vec<PathBuf> = (0..count)
            .map(|i| lab.scratch.path().join("hosts").join(format!("h{i}")))
            .collect();
        for path in &paths {
            netns::create(path).unwrap();
        }
        if count == 2 {
            let peer = paths[1].display().to_string();
            ok(
                &paths[0],
                "ip",
                &[
                    "link", "add", "u0", "type", "veth", "peer", "name", "u1", "netns", &peer,
                ],
            );
        }
        for (i, path) in paths.into_iter().enumerate() {
            let underlay = Ipv4Addr::new(192, 168, 77, 1 + i as u8);
            if count == 2 {
                let dev = format!("u{i}");
                ok(
                    &path,
                    "ip",
                    &["addr", "add", &format!("{underlay}/24"), "dev", &dev],
                );
                ok(&path, "ip", &["link", "set", &dev, "up"]);
            }
            let sandbox_dir = lab.scratch.path().join(format!("sandboxes-h{i}"));
            lab.hosts.push(Host::start(path, underlay, sandbox_dir));
        }
        lab
    }

    /// A new container namespace named `name`.
    pub fn container(&self, name: &str) -> PathBuf {
        let path = self.scratch.path().join("containers").join(name);
        netns::create(&path).unwrap();
        path
    }
}

/// Runs `program args` inside the namespace at `ns`.
pub(super) fn run(ns: &Path, program: &str, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// Like `run`, but it must succeed; returns its output.
pub(super) fn ok(ns: &Path, program: &str, args: &[&str]) -> String {
    let out = run(ns, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed: {}",
        ns.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One ping from `ns` to `ip`, waiting at most a second.
pub(super) fn pings(ns: &Path, ip: Ipv4Addr) -> bool {
    run(ns, "ping", &["-c", "1", "-W", "1", &ip.to_string()])
        .status
        .success()
}

/// Pings until `ip` answers, up to a deadline.
pub(super) fn wait_for_ping(ns: &Path, ip: Ipv4Addr) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pings(ns, ip) {
        assert!(
            Instant::now() < deadline,
            "no answer from {ip} in {}",
            ns.display()
        );
    }
}

/// The names of the links in `ns` (`ip -o link show ARGS`).
pub(super) fn links(ns: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-o", "link", "show"];
    all.extend(args);
    ok(ns, "ip", &all)
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap().to_string())
        .collect()
}
