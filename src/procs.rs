//! Process identity through /proc: a process told apart from a later one
//! reusing its pid by its start time, signals sent through a pidfd after
//! re-checking who the pid is, waiting until every thread has gone, and
//! awaiting its exit on a pidfd (any process, not only a child).

use std::fs;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// What /proc/PID/stat tells us.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub start: u64,
}

/// Parses /proc/PID/stat; the command name may hold spaces and parentheses.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A process, told apart from a later one reusing its pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

impl ProcId {
    pub fn of(pid: u32) -> Result<ProcId> {
        let pid = i32::try_from(pid)?;
        let stat = stat(pid).with_context(|| format!("process {pid} vanished"))?;
        Ok(ProcId {
            pid,
            start: stat.start,
        })
    }

    /// True while this very process runs (a zombie has already left its namespaces).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z')
    }

    /// The process's arguments, if it is still this process.
    pub fn cmdline(&self) -> Option<Vec<String>> {
        let raw = fs::read(format!("/proc/{}/cmdline", self.pid)).ok()?;
        let args = raw
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        self.alive().then_some(args)
    }

    /// Signals the process if it is still this one; false if it is gone.
    pub fn signal(&self, signal: Signal) -> Result<bool> {
        signal_checked(self.pid, signal, || self.alive())
    }

    /// True while any thread of this process is still exiting: a leader shows
    /// as a zombie before its other threads have closed the files they share
    /// (a database lock, a listening socket).
    fn exiting_threads(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start)
            && fs::read_dir(format!("/proc/{}/task", self.pid))
                .map(|tasks| tasks.count() > 1)
                .unwrap_or(false)
    }

    /// Polls until the process and all its threads are gone or the timeout passes.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() || self.exiting_threads() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Resolves once this process has exited (at once if it already has, or
    /// if its pid now names another process): its pidfd becomes readable
    /// when the process exits, whoever its parent is. Needs a tokio reactor.
    pub async fn exited(&self) -> Result<()> {
        let Some(pidfd) = pidfd_checked(self.pid, || {
            stat(self.pid).is_some_and(|s| s.start == self.start)
        })?
        else {
            return Ok(());
        };
        // SAFETY: the OwnedFd is moved in and owned by the AsyncFd, so its fd
        // stays open, and the same, for the AsyncFd's whole life.
        let pidfd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
        }
        .with_context(|| format!("could not wait on the pidfd of process {}", self.pid))?;
        let _ready = pidfd.readable().await?;
        Ok(())
    }

    /// SIGKILLs the process and waits for it to be gone.
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::SIGKILL)?;
        if !self.wait_gone(Duration::from_secs(5)) {
            bail!("process {} did not exit after SIGKILL", self.pid);
        }
        Ok(())
    }
}

/// Opens a pidfd, then re-checks `still_ours` (the pidfd now pins the
/// process, so the check holds for as long as the pidfd): None when the pid
/// is gone or is no longer ours.
fn pidfd_checked(pid: i32, still_ours: impl Fn() -> bool) -> Result<Option<OwnedFd>> {
    let target = (pid > 0)
        .then(|| rustix::process::Pid::from_raw(pid))
        .flatten()
        .with_context(|| format!("{pid} is not a process id"))?;
    match rustix::process::pidfd_open(target, rustix::process::PidfdFlags::empty()) {
        Ok(pidfd) => Ok(still_ours().then_some(pidfd)),
        Err(rustix::io::Errno::SRCH) => Ok(None),
        Err(errno) => Err(std::io::Error::from(errno))
            .with_context(|| format!("could not open a pidfd for process {pid}")),
    }
}

/// Opens a pidfd, re-checks `still_ours` (the pidfd now pins the process),
/// then signals through the pidfd, so a reused pid is never signalled.
pub fn signal_checked(pid: i32, signal: Signal, still_ours: impl Fn() -> bool) -> Result<bool> {
    let sig = rustix::process::Signal::from_named_raw(signal as i32)
        .with_context(|| format!("{signal} cannot be sent through a pidfd"))?;
    let Some(pidfd) = pidfd_checked(pid, still_ours)? else {
        return Ok(false);
    };
    match rustix::process::pidfd_send_signal(&pidfd, sig) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::SRCH) => Ok(false),
        Err(errno) => Err(std::io::Error::from(errno))
            .with_context(|| format!("could not send {signal} to process {pid}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let text = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1 2 3";
        let stat = parse_stat(text).unwrap();
        assert_eq!(
            stat,
            Stat {
                state: 'S',
                ppid: 7,
                start: 12345
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_identified() {
        let me = ProcId::of(std::process::id()).unwrap();
        assert!(me.alive());
        assert!(!ProcId {
            pid: me.pid,
            start: me.start + 1
        }
        .alive());
        assert!(me.cmdline().is_some_and(|args| !args.is_empty()));
    }

    /// `exited` waits on a child, on a process that is not this one's child
    /// (as a restarted daemon sees the tasks it started before), and not at
    /// all for a process that is gone or a pid that names another process.
    #[test]
    fn exited_resolves_when_the_process_ends_whoever_its_parent() {
        use std::process::Command;
        use tokio::time::timeout;
        let pending = Duration::from_millis(300);
        let bound = Duration::from_secs(5);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut child = Command::new("sleep").arg("30").spawn().unwrap();
            let id = ProcId::of(child.id()).unwrap();
            let exited = id.exited();
            tokio::pin!(exited);
            assert!(
                timeout(pending, &mut exited).await.is_err(),
                "resolved while the child runs"
            );
            child.kill().unwrap();
            timeout(bound, exited).await.unwrap().unwrap();
            child.wait().unwrap();
            timeout(bound, id.exited()).await.unwrap().unwrap();

            let shell = Command::new("sh")
                .args(["-c", "sleep 1 >/dev/null 2>&1 & echo $!"])
                .output()
                .unwrap();
            let orphan: u32 = String::from_utf8_lossy(&shell.stdout)
                .trim()
                .parse()
                .unwrap();
            let orphan = ProcId::of(orphan).unwrap();
            assert_ne!(stat(orphan.pid).unwrap().ppid, std::process::id() as i32);
            let exited = orphan.exited();
            tokio::pin!(exited);
            assert!(
                timeout(pending, &mut exited).await.is_err(),
                "resolved while the orphan runs"
            );
            timeout(bound, exited).await.unwrap().unwrap();
            assert!(!orphan.alive());

            let me = ProcId::of(std::process::id()).unwrap();
            let other = ProcId {
                start: me.start + 1,
                ..me
            };
            timeout(bound, other.exited()).await.unwrap().unwrap();
        });
    }

    #[test]
    fn signals_reach_only_a_process_still_ours() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(!signal_checked(pid, Signal::SIGTERM, || false).unwrap());
        assert!(
            child.try_wait().unwrap().is_none(),
            "signalled a process not ours"
        );
        assert!(signal_checked(pid, Signal::SIGTERM, || true).unwrap());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
        assert!(!signal_checked(pid, Signal::SIGTERM, || true).unwrap());
        assert!(signal_checked(0, Signal::SIGTERM, || true).is_err());
    }
}
