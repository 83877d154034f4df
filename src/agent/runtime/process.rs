//! The container's main process as pid + start time: liveness read from
//! /proc/PID/stat, signals sent through a pidfd after re-checking that identity
//! (the approach of `machine::procs`, which is private to `machine`), and a stop
//! that also kills what the container left behind in its network namespace.

use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::Process;

/// How long a SIGKILLed process may take to be gone, threads included.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// (state, start time) from /proc/PID/stat; the command name may hold spaces and parentheses.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(19)?.parse().ok()?,
    ))
}

fn stat(pid: i32) -> Option<(char, u64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl Process {
    /// The process with this pid now, if it exists.
    pub(super) fn of(pid: i32) -> Result<Process> {
        let (_, start_time) = stat(pid).with_context(|| format!("process {pid} vanished"))?;
        Ok(Process { pid, start_time })
    }

    /// True while this very process runs (a zombie has already left its namespaces).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(state, start)| start == self.start_time && state != 'Z')
    }

    /// True while the pid is still this process with more than one thread: a
    /// leader shows as a zombie before its other threads have let go of their files.
    fn exiting_threads(&self) -> bool {
        stat(self.pid).is_some_and(|(_, start)| start == self.start_time)
            && fs::read_dir(format!("/proc/{}/task", self.pid)).is_ok_and(|t| t.count() > 1)
    }

    fn gone_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() || self.exiting_threads() {
            if Instant::now() > deadline {
                return false;
            }
            sleep(POLL);
        }
        true
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// Signals the process through a pidfd if it is still this one; false if it is gone.
    pub(super) fn signal(&self, signal: Signal) -> Result<bool> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) };
        if fd < 0 {
            return match Errno::last() {
                Errno::ESRCH => Ok(false),
                errno => Err(errno).context("pidfd_open"),
            };
        }
        // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        if !self.alive() {
            return Ok(false);
        }
        let no_info = std::ptr::null::<libc::siginfo_t>();
        // SAFETY: a valid pidfd, a valid signal number, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                signal as i32,
                no_info,
                0,
            )
        };
        match rc {
            0 => Ok(true),
            _ if Errno::last() == Errno::ESRCH => Ok(false),
            _ => Err(Errno::last())
                .with_context(|| format!("could not send {signal} to {}", self.pid)),
        }
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
            Some(netns) => kill_rest_of_namespace(&netns),
            None => Ok(()),
        }
    }
}

/// SIGKILLs every process (but this one) whose network namespace is `netns`,
/// until none is left. The open `netns` keeps its inode from being reused. A
/// namespace shared with this process or with PID 1 is never a container's.
fn kill_rest_of_namespace(netns: &File) -> Result<()> {
    let target = netns.metadata()?;
    for shared in ["/proc/self/ns/net", "/proc/1/ns/net"] {
        if fs::metadata(shared).is_ok_and(|ns| ns.ino() == target.ino() && ns.dev() == target.dev())
        {
            bail!("process is not in a network namespace of its own; not sweeping it");
        }
    }
    let me = std::process::id() as i32;
    let deadline = Instant::now() + KILL_TIMEOUT;
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
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} processes are left in the container's namespace",
                members.len()
            );
        }
        for member in &members {
            member.signal(Signal::SIGKILL)?;
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
    fn stat_parsing_survives_odd_command_names() {
        let text = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1 2 3";
        assert_eq!(parse_stat(text), Some(('S', 12345)));
        assert_eq!(parse_stat("garbage"), None);
    }

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
