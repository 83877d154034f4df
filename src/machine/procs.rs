//! Processes and namespaces through /proc: a process identity that survives pid
//! reuse (pid + start time), signals sent through a pidfd after re-checking who
//! the pid is, entering a process's namespaces in a child's `pre_exec`, and
//! stopping every process of a machine.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// A namespace kind a machine owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Net,
    Uts,
    Mnt,
}

impl NsKind {
    pub const MACHINE: [NsKind; 3] = [NsKind::Net, NsKind::Uts, NsKind::Mnt];

    fn file(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Uts => "uts",
            NsKind::Mnt => "mnt",
        }
    }

    fn flag(self) -> CloneFlags {
        match self {
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
            NsKind::Mnt => CloneFlags::CLONE_NEWNS,
        }
    }
}

/// What /proc/PID/stat tells us.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    state: char,
    ppid: i32,
    start: u64,
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

fn stat(pid: i32) -> Option<Stat> {
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
        Ok(ProcId { pid, start: stat.start })
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

    /// Polls until the process is gone or the timeout passes.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
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

/// Opens a pidfd, re-checks `still_ours` (the pidfd now pins the process),
/// then signals through the pidfd, so a reused pid is never signalled.
fn signal_checked(pid: i32, signal: Signal, still_ours: impl Fn() -> bool) -> Result<bool> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return match Errno::last() {
            Errno::ESRCH => Ok(false),
            errno => Err(errno).context("pidfd_open"),
        };
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !still_ours() {
        return Ok(false);
    }
    let null = std::ptr::null::<libc::siginfo_t>();
    // SAFETY: a valid pidfd, a valid signal number, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal as i32, null, 0)
    };
    match rc {
        0 => Ok(true),
        _ if Errno::last() == Errno::ESRCH => Ok(false),
        _ => Err(Errno::last()).with_context(|| format!("could not send {signal} to {pid}")),
    }
}

/// Open handles on a process's namespaces; they keep the namespaces (and so
/// their inode numbers) alive while held.
pub struct Namespaces {
    entries: Vec<(NsKind, File)>,
}

impl Namespaces {
    pub fn of(owner: &ProcId, kinds: &[NsKind]) -> Result<Namespaces> {
        let mut entries = Vec::new();
        for &kind in kinds {
            let path = format!("/proc/{}/ns/{}", owner.pid, kind.file());
            let file = File::open(&path).with_context(|| format!("could not open {path}"))?;
            entries.push((kind, file));
        }
        if !owner.alive() {
            bail!("process {} exited", owner.pid);
        }
        Ok(Namespaces { entries })
    }

    fn inodes(&self) -> Result<Vec<(NsKind, u64)>> {
        self.entries
            .iter()
            .map(|(kind, file)| Ok((*kind, file.metadata()?.ino())))
            .collect()
    }

    /// Makes `cmd`'s child enter these namespaces (mount last) before exec,
    /// optionally start a new session, and change to `cwd` if it exists there.
    pub fn enter_on_exec(&self, cmd: &mut Command, setsid: bool, cwd: Option<&Path>) -> Result<()> {
        let mut entries = Vec::new();
        for (kind, file) in &self.entries {
            entries.push((kind.flag(), file.try_clone()?));
        }
        entries.sort_by_key(|(flag, _)| *flag == CloneFlags::CLONE_NEWNS);
        let cwd = cwd.map(|dir| CString::new(dir.as_os_str().as_bytes())).transpose()?;
        // SAFETY: the hook only makes async-signal-safe syscalls (setns, setsid,
        // chdir) on values prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for (flag, file) in &entries {
                    setns(file, *flag)?;
                }
                if setsid {
                    nix::unistd::setsid()?;
                }
                if let Some(dir) = &cwd {
                    libc::chdir(dir.as_ptr());
                }
                Ok(())
            });
        }
        Ok(())
    }
}

/// The inode of a process's namespace, if readable.
fn ns_inode(pid: i32, kind: NsKind) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{}", kind.file())).ok().map(|m| m.ino())
}

/// One process of a /proc snapshot.
#[derive(Debug, Clone)]
struct ProcInfo {
    pid: i32,
    stat: Stat,
    inodes: Vec<(NsKind, u64)>,
}

fn snapshot(kinds: &[NsKind]) -> Vec<ProcInfo> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok());
    pids.filter_map(|pid| {
        let stat = stat(pid)?;
        let inodes = kinds.iter().filter_map(|k| Some((*k, ns_inode(pid, *k)?))).collect();
        Some(ProcInfo { pid, stat, inodes })
    })
    .collect()
}

/// Processes inside the target namespaces and all their descendants, parents
/// first, leaving out `exclude` and zombies.
fn members(procs: &[ProcInfo], target: &[(NsKind, u64)], exclude: &[i32]) -> Vec<i32> {
    let mut found: Vec<i32> = procs
        .iter()
        .filter(|p| p.inodes.iter().any(|ns| target.contains(ns)))
        .map(|p| p.pid)
        .filter(|pid| !exclude.contains(pid))
        .collect();
    let mut seen: HashSet<i32> = found.iter().copied().collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for child in procs.iter().filter(|p| p.stat.ppid == parent) {
            if !exclude.contains(&child.pid) && seen.insert(child.pid) {
                found.push(child.pid);
            }
        }
        i += 1;
    }
    let zombie = |pid: &i32| procs.iter().any(|p| p.pid == *pid && p.stat.state == 'Z');
    found.retain(|pid| !zombie(pid));
    found
}

/// Stops every process inside `ns` (and their descendants) except `keep`:
/// first SIGSTOP until the whole tree is frozen (so nothing forks or escapes by
/// reparenting), then SIGKILL.
pub fn kill_inside(ns: &Namespaces, keep: &[i32]) -> Result<()> {
    let target = ns.inodes()?;
    let kinds: Vec<NsKind> = target.iter().map(|(kind, _)| *kind).collect();
    let mut exclude = vec![1, std::process::id() as i32];
    exclude.extend_from_slice(keep);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = snapshot(&kinds);
        let found = members(&procs, &target, &exclude);
        if found.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("could not stop processes {found:?}");
        }
        let set: HashSet<i32> = found.iter().copied().collect();
        let still_member = |pid: i32| {
            let inside = kinds.iter().any(|k| ns_inode(pid, *k).is_some_and(|i| target.contains(&(*k, i))));
            inside || stat(pid).is_some_and(|s| set.contains(&s.ppid))
        };
        let frozen = |pid: &i32| {
            let state = procs.iter().find(|p| p.pid == *pid).map(|p| p.stat.state);
            matches!(state, Some('T' | 't'))
        };
        let signal = if found.iter().all(frozen) { Signal::SIGKILL } else { Signal::SIGSTOP };
        for &pid in &found {
            signal_checked(pid, signal, || still_member(pid))?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i32, ppid: i32, state: char, net: u64) -> ProcInfo {
        let stat = Stat { state, ppid, start: 1 };
        ProcInfo { pid, stat, inodes: vec![(NsKind::Net, net), (NsKind::Mnt, net + 1000)] }
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let text = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1 2 3";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat, Stat { state: 'S', ppid: 7, start: 12345 });
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn members_are_namespace_processes_and_their_descendants() {
        let procs = vec![
            proc(1, 0, 'S', 1),
            proc(10, 1, 'S', 5),   // holder, excluded
            proc(20, 1, 'S', 5),   // daemon inside
            proc(21, 20, 'S', 9),  // its task in another netns
            proc(22, 21, 'S', 9),  // the task's child
            proc(23, 20, 'Z', 9),  // a zombie child
            proc(30, 1, 'S', 1),   // unrelated host process
            proc(31, 30, 'S', 1),
        ];
        let found = members(&procs, &[(NsKind::Net, 5)], &[1, 10]);
        assert_eq!(found, vec![20, 21, 22]);
    }

    #[test]
    fn members_match_any_namespace_kind() {
        let procs = vec![proc(40, 1, 'S', 7), proc(41, 1, 'S', 8)];
        let found = members(&procs, &[(NsKind::Mnt, 1008)], &[]);
        assert_eq!(found, vec![41]);
    }

    #[test]
    fn this_process_is_alive_and_identified() {
        let me = ProcId::of(std::process::id()).unwrap();
        assert!(me.alive());
        assert!(!ProcId { pid: me.pid, start: me.start + 1 }.alive());
        assert!(me.cmdline().is_some_and(|args| !args.is_empty()));
    }
}
