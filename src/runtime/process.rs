//! The container's main process as pid + start time (`crate::procs`: liveness
//! from /proc, signals through a pidfd after re-checking that identity), its
//! end as the runtime records it, and a stop that also kills what the
//! container left behind in its network namespace.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

use super::files::{read_process, Layout};
use super::Process;
use crate::procs::ProcId;

/// How long a SIGKILLed process may take to be gone, threads included.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

impl Process {
    fn id(&self) -> ProcId {
        ProcId {
            pid: self.pid,
            start: self.start_time,
        }
    }

    /// The process with this pid now, if it exists.
    pub(super) fn of(pid: i32) -> Result<Process> {
        let id = ProcId::of(u32::try_from(pid)?)?;
        Ok(Process {
            pid: id.pid,
            start_time: id.start,
        })
    }

    /// True while this very process runs (a zombie has already left its namespaces).
    pub fn alive(&self) -> bool {
        self.id().alive()
    }

    /// Resolves once this process has exited (`ProcId::exited`).
    pub async fn exited(&self) -> Result<()> {
        self.id().exited().await
    }

    pub(super) fn gone_within(&self, timeout: Duration) -> bool {
        self.id().wait_gone(timeout)
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// Signals the process through a pidfd if it is still this one; false if it is gone.
    pub(super) fn signal(&self, signal: Signal) -> Result<bool> {
        self.id().signal(signal)
    }

    /// SIGTERM, then SIGKILL after `grace`; returns when the process and all its
    /// threads are gone. Processes it left in its network namespace (children
    /// of a shell, `exec`s) are then killed too, as Docker's end of PID 1 does.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        let netns = File::open(self.netns_path()).ok().filter(|_| self.alive());
        if self.signal(Signal::SIGTERM)? && !self.gone_within(grace) {
            self.signal(Signal::SIGKILL)?;
            if !self.gone_within(KILL_TIMEOUT) {
                bail!("process {} did not exit after SIGKILL", self.pid);
            }
        }
        match netns {
            Some(netns) => kill_namespace_members(&netns).map(drop),
            None => Ok(()),
        }
    }
}

/// True once the container of `dir` whose main process is `process` has
/// ended: the process has exited and its shim has recorded how (its exit
/// code), or is gone without doing so. Until then the container counts as
/// running, so its exit code is never read before the shim writes it.
pub fn has_ended(dir: &Path, process: &Process) -> bool {
    let shim_alive = || {
        read_process(&Layout(dir).shim_json())
            .ok()
            .flatten()
            .is_some_and(|shim| shim.alive())
    };
    !process.alive() && (super::exit_code(dir).is_some() || !shim_alive())
}

/// Resolves once `has_ended` holds: the process's exit, then its shim's,
/// each awaited on a pidfd (they need not be this process's children).
pub async fn ended(dir: &Path, process: Process) -> Result<()> {
    process.exited().await?;
    if let Some(shim) = read_process(&Layout(dir).shim_json())? {
        shim.exited().await?;
    }
    Ok(())
}

/// SIGKILLs every process (but this one) whose network namespace is `netns`,
/// until none is left, and returns how many it found. The open `netns` keeps
/// its inode from being reused. A namespace shared with this process or with
/// PID 1 is never a container's.
pub(super) fn kill_namespace_members(netns: &File) -> Result<usize> {
    let target = netns.metadata()?;
    for shared in ["/proc/self/ns/net", "/proc/1/ns/net"] {
        if fs::metadata(shared).is_ok_and(|ns| ns.ino() == target.ino() && ns.dev() == target.dev())
        {
            bail!("process is not in a network namespace of its own; not sweeping it");
        }
    }
    let me = std::process::id() as i32;
    let deadline = Instant::now() + KILL_TIMEOUT;
    let mut killed = 0;
    loop {
        let members: Vec<Process> = fs::read_dir("/proc")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != me)
            .filter_map(|pid| {
                let process = Process::of(pid).ok()?;
                let ns = fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
                let same = ns.ino() == target.ino() && ns.dev() == target.dev();
                (same && process.alive()).then_some(process)
            })
            .collect();
        if members.is_empty() {
            return Ok(killed);
        }
        if Instant::now() > deadline {
            bail!(
                "{} processes are left in the container's namespace",
                members.len()
            );
        }
        for member in &members {
            if member.signal(Signal::SIGKILL)? {
                killed += 1;
            }
        }
        for member in &members {
            member.gone_within(KILL_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_recycled_pid_is_not() {
        let me = Process::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
        let other = Process {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.alive());
        assert!(!other.signal(Signal::SIGTERM).unwrap());
        assert!(me.netns_path().ends_with("ns/net"));
    }
}
