//! The test harness: a lab of machines (hosts in network namespaces) made with
//! the real `swarmnet` binary, removed by a guard even when a test fails.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_swarmnet")
}

/// A lab of machines private to one test; everything goes when it drops.
pub struct Lab {
    pub name: String,
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl Lab {
    pub fn new() -> Lab {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "this test makes network namespaces and needs root: run scripts/test as root"
        );
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        Lab {
            name: format!("snt{}x{n}", std::process::id() % 100_000),
        }
    }

    /// A `swarmnet` command on the host, in this lab.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args).env("SWARMNET_LAB", &self.name);
        cmd
    }

    /// Runs `swarmnet ARGS` on the host and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run swarmnet")
    }

    /// Creates machines, each with its daemon running.
    pub fn machines(&self, names: &[&str]) {
        for name in names {
            self.machine(name, &[]);
        }
    }

    pub fn machine(&self, name: &str, daemon_args: &[&str]) {
        let mut args = vec!["machine", "create", name];
        for a in daemon_args {
            args.push("--daemon-arg");
            args.push(a);
        }
        ok(&self.run(&args));
    }

    /// Runs CMD inside a machine.
    pub fn ssh(&self, machine: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["machine", "ssh", machine, "--"];
        args.extend_from_slice(cmd);
        self.run(&args)
    }

    /// Runs `swarmnet ARGS` inside a machine.
    pub fn sn(&self, machine: &str, args: &[&str]) -> Output {
        let mut cmd = vec![bin()];
        cmd.extend_from_slice(args);
        self.ssh(machine, &cmd)
    }

    /// `swarm init` on `manager`, and every other machine joined as a worker.
    pub fn swarm(&self, manager: &str, addr: &str, workers: &[&str]) -> String {
        ok(&self.sn(manager, &["swarm", "init", "--advertise-addr", addr]));
        let token = stdout(&ok(
            &self.sn(manager, &["swarm", "join-token", "-q", "worker"])
        ))
        .trim()
        .to_string();
        for w in workers {
            ok(&self.sn(
                w,
                &["swarm", "join", "--token", &token, &format!("{addr}:2377")],
            ));
        }
        token
    }

    /// `machine inspect NAME` as JSON.
    pub fn machine_info(&self, machine: &str) -> serde_json::Value {
        let out = ok(&self.run(&["machine", "inspect", machine]));
        serde_json::from_str(&stdout(&out)).expect("machine inspect gives JSON")
    }

    /// Rewrites a machine's /etc/resolv.conf in place (truncate, then write),
    /// as its daemon must see it through the bind mount: a rename would not.
    pub fn set_resolv_conf(&self, machine: &str, text: &str) {
        use std::io::Write;
        let info = self.machine_info(machine);
        let path = info["resolv_conf"]
            .as_str()
            .expect("machine inspect names the machine's resolv.conf");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        file.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.run(&["machine", "rm", "-f", "--all"]);
        if !out.status.success() {
            eprintln!(
                "cleanup of lab {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns the output.
#[track_caller]
pub fn ok(out: &Output) -> Output {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    out.clone()
}

/// Asserts failure with one line on stderr containing `needle`; returns that line.
#[track_caller]
pub fn fails_with(out: &Output, needle: &str) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        stdout(out)
    );
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line: {err}"
    );
    err
}

/// Polls `check` until it returns Some, or panics with the last state after `deadline`.
#[track_caller]
pub fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > deadline => {
                panic!("{what}: not true within {deadline:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The children of a process this test started, so it can stop what that
/// process runs, by pid.
pub fn children(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// The docker client scripts/install-docker-client unpacked.
pub fn docker_bin() -> String {
    let path = format!("{}/target/docker-client/docker", env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run scripts/install-docker-client"
    );
    path
}

/// `docker ARGS` inside a machine, against its swarmnet daemon.
pub fn docker(lab: &Lab, machine: &str, args: &[&str]) -> Output {
    let config = format!(
        "DOCKER_CONFIG={}/target/docker-client/config",
        env!("CARGO_MANIFEST_DIR")
    );
    let bin = docker_bin();
    let mut cmd = vec![
        "env",
        "DOCKER_HOST=unix:///run/swarmnet/swarmnet.sock",
        config.as_str(),
        bin.as_str(),
    ];
    cmd.extend_from_slice(args);
    lab.ssh(machine, &cmd)
}

/// docker's one error line.
#[track_caller]
pub fn docker_fails_with(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure: {}", stdout(out));
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}
