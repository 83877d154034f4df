//! The container runtime: a container is a process in its own network, mount
//! and UTS namespaces, with its own hostname, /etc/resolv.conf and /etc/hosts
//! (files in its directory, bind-mounted) and its own /sys; its network
//! namespace is made fresh (`lo` up and nothing else) or given, plumbed.
//!
//! `start` runs a shim (`swarmnet runtime-shim`, see `shim`) that owns the
//! container process, outlives the daemon and records, in the container's
//! directory: `pid.json` (pid + start time, so a recycled pid is never taken
//! for the container), `exit-code` (128+signal when killed, 127 when the
//! command is not found), `container.log` (its stdout and stderr) and
//! `shim.log`. After a daemon crash, `leftovers` finds what a shim started
//! for a directory no record owns yet. `exec_command` enters a running container's namespaces in a child.
//! Nothing here calls setns or unshare on the calling thread.
//!
//! Tests: the shim is this executable, so the runtime's root tests are
//! end-to-end ones (netns-tests/container.rs): the daemon of a machine, run
//! from the binary under test, starts containers with itself as the shim.

mod exec;
mod files;
mod leftovers;
mod process;
mod shim;
mod sys;
#[cfg(test)]
mod tests;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use exec::{exec_command, exit_code_of, spawn_failure_code, ExecSpec};
pub use leftovers::{kill_namespace, live_process, stop_leftovers};
pub use process::{ended, has_ended};
pub use shim::shim_main;

use files::Layout;
use shim::ShimArgs;

/// How long `start` waits for the shim to report the container's process.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The PATH searched when the environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run, and where its files live.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub id: String,
    pub name: String,
    /// The container's hostname (its name unless `--hostname` gave one).
    pub hostname: String,
    pub cmd: Vec<String>,
    /// The container's own directory, created by the caller.
    pub dir: PathBuf,
    /// A network namespace made (and plumbed) beforehand to run in; without
    /// it the container gets a new one with only `lo`.
    pub netns: Option<PathBuf>,
    /// The container's addresses, written to its /etc/hosts under its name.
    pub addresses: Vec<std::net::Ipv4Addr>,
    /// `KEY=VALUE` pairs added to its environment.
    pub env: Vec<String>,
}

/// The container's main process, identified by pid and start time (so a recycled pid is never mistaken for it).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    pub start_time: u64,
}

/// Starts a container through its shim and returns its main process. Errors
/// are one line; when the shim or the command fails, it says why (from their
/// logs) and leaves naming the container to the caller.
pub fn start(spec: &ContainerSpec) -> Result<Process> {
    validate(spec)?;
    // This very executable, even if its file was replaced since it started
    // (an upgrade): the shim must speak the daemon's language.
    let exe = Path::new("/proc/self/exe");
    let layout = Layout(&spec.dir);
    for stale in [layout.shim_json(), layout.pid_json(), layout.exit_code()] {
        match fs::remove_file(&stale) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("could not remove {}", stale.display()))
            }
            _ => {}
        }
    }
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    files::write_atomic(
        &layout.resolv_conf(),
        files::resolv_conf(&host_resolv).as_bytes(),
    )?;
    let hosts = files::hosts(&spec.hostname, &spec.addresses);
    files::write_atomic(&layout.hosts(), hosts.as_bytes())?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.shim_log())
        .context("could not open shim.log")?;
    let args = ShimArgs {
        dir: spec.dir.clone(),
        name: spec.name.clone(),
        hostname: spec.hostname.clone(),
        cmd: spec.cmd.clone(),
        netns: spec.netns.clone(),
        env: spec.env.clone(),
    };
    let mut cmd = Command::new(exe);
    cmd.arg0(
        std::env::args_os()
            .next()
            .unwrap_or_else(|| "swarmnet".into()),
    )
    .arg("runtime-shim")
    .args(args.to_args())
    .current_dir("/")
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    // SAFETY: setsid and close_range are async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            sys::cloexec_from_3()
        });
    }
    let mut launcher = cmd.spawn().context("could not run the runtime shim")?;
    let deadline = Instant::now() + START_TIMEOUT;
    let failed = |what: &str| {
        let [shim_log, container_log] = [layout.shim_log(), layout.container_log()]
            .map(|log| fs::read_to_string(log).unwrap_or_default());
        let why = files::start_failure(&shim_log, &container_log);
        anyhow::anyhow!("{what}: {why}")
    };
    let mut pause = Backoff::default();
    let status = loop {
        if let Some(status) = launcher.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = launcher.kill();
            let _ = launcher.wait();
            return Err(failed("its shim did not start in time"));
        }
        pause.sleep();
    };
    let shim_process = match files::read_process(&layout.shim_json())? {
        Some(shim_process) if status.success() => shim_process,
        _ => return Err(failed("its shim could not start")),
    };
    let mut pause = Backoff::default();
    loop {
        // Read before pid.json: a shim that wrote it and ended is a success.
        let shim_alive = shim_process.alive();
        if let Some(container) = files::read_process(&layout.pid_json())? {
            tracing::info!(id = %spec.id, name = %spec.name, pid = container.pid, "container started");
            return Ok(container);
        }
        if !shim_alive {
            return Err(failed("its process could not start"));
        }
        if Instant::now() > deadline {
            shim_process.signal(nix::sys::signal::Signal::SIGKILL)?;
            return Err(failed("its process did not start in time"));
        }
        pause.sleep();
    }
}

/// Polling that starts at 1 ms and doubles to 10 ms: a shim usually answers
/// within a few milliseconds, and a fixed 10 ms made most of a start's time.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(1))
    }
}

impl Backoff {
    fn sleep(&mut self) {
        sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_millis(10));
    }
}

/// Waits, up to `timeout`, for a container's shim to end, so its last writes
/// (the exit code, the logs) are done before its files are removed. True
/// when it has ended (or there is none).
pub fn wait_for_shim(dir: &Path, timeout: Duration) -> bool {
    match files::read_process(&Layout(dir).shim_json()) {
        Ok(Some(shim)) => shim.gone_within(timeout),
        _ => true,
    }
}

/// Checks what can be checked before anything is started.
fn validate(spec: &ContainerSpec) -> Result<()> {
    let Some(program) = spec.cmd.first() else {
        bail!("container {} has no command", spec.name);
    };
    if spec.name.is_empty() {
        bail!("container {} has no name", spec.id);
    }
    if spec.hostname.is_empty() || spec.hostname.len() > 64 || spec.hostname.contains(['\0', '/']) {
        bail!("{:?} is not a valid container hostname", spec.hostname);
    }
    if let Some(netns) = spec.netns.as_ref().filter(|ns| !ns.exists()) {
        bail!("network namespace {} does not exist", netns.display());
    }
    if !spec.dir.is_dir() {
        bail!("container directory {} does not exist", spec.dir.display());
    }
    check_command(program)
}

/// Refuses a program that is not an executable (looked up on PATH), with Docker's words.
pub fn check_command(program: &str) -> Result<()> {
    if resolve(program).is_none() {
        bail!("exec: {program:?}: executable file not found in $PATH");
    }
    Ok(())
}

/// The executable `program` names, looked up on PATH when it has no slash.
fn resolve(program: &str) -> Option<PathBuf> {
    let executable = |path: &Path| {
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program)).then(|| PathBuf::from(program));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| executable(candidate))
}

/// The exit code recorded by the shim once the container has ended, if it has.
pub fn exit_code(dir: &Path) -> Option<i32> {
    files::parse_exit_code(&fs::read_to_string(Layout(dir).exit_code()).ok()?)
}

/// The container's stdout and stderr.
pub fn log_path(dir: &Path) -> PathBuf {
    Layout(dir).container_log()
}

/// When the container ended: the time the shim recorded its exit code.
pub fn finished_at(dir: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(Layout(dir).exit_code()).ok()?.modified().ok()
}

/// Signals the container's main process if it is still the same; false if it is gone.
pub fn signal(p: &Process, signal: nix::sys::signal::Signal) -> Result<bool> {
    p.signal(signal)
}
