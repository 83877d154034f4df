//! Finding and stopping every process of a machine: those in its namespaces,
//! those carrying its private /run, and all their descendants, frozen first
//! and then killed.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

use super::procs::{signal_checked, stat, Namespaces, NsKind, ProcId, Stat};

/// The inode of a process's namespace, if readable.
fn ns_inode(pid: i32, kind: NsKind) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{}", kind.file()))
        .ok()
        .map(|m| m.ino())
}

/// How a machine's processes are recognised: by a namespace inode, or (for a
/// process that made namespaces of its own) by a mount whose root is the
/// machine's private /run, which only copies of its mount tree carry.
struct Target {
    inodes: Vec<(NsKind, u64)>,
    marker: Option<String>,
}

impl Target {
    fn holds(&self, pid: i32) -> bool {
        let in_ns = self
            .inodes
            .iter()
            .any(|(kind, inode)| ns_inode(pid, *kind) == Some(*inode));
        in_ns
            || self.marker.as_ref().is_some_and(|marker| {
                fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                    .is_ok_and(|info| mount_roots(&info).any(|root| root == marker))
            })
    }
}

/// The root field (the mounted directory) of every mountinfo line.
fn mount_roots(mountinfo: &str) -> impl Iterator<Item = &str> {
    mountinfo.lines().filter_map(|line| line.split(' ').nth(3))
}

/// The directory mounted on top at `point` in a process's mount table
/// (never "/", which any /run mount would share).
pub fn bound_at(owner: &ProcId, point: &str) -> Option<String> {
    let info = fs::read_to_string(format!("/proc/{}/mountinfo", owner.pid)).ok()?;
    let root = info
        .lines()
        .rev()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .find(|fields| fields.get(4) == Some(&point))?
        .get(3)?
        .to_string();
    (root != "/" && owner.alive()).then_some(root)
}

/// One process of a /proc snapshot.
#[derive(Debug, Clone)]
struct ProcInfo {
    pid: i32,
    stat: Stat,
    inside: bool,
}

fn snapshot(target: &Target) -> Vec<ProcInfo> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok());
    pids.filter_map(|pid| {
        Some(ProcInfo {
            pid,
            stat: stat(pid)?,
            inside: target.holds(pid),
        })
    })
    .collect()
}

/// Processes inside the target and all their descendants, parents first,
/// leaving out `exclude` and zombies.
fn members(procs: &[ProcInfo], exclude: &[i32]) -> Vec<i32> {
    let mut found: Vec<i32> = procs
        .iter()
        .filter(|p| p.inside && !exclude.contains(&p.pid))
        .map(|p| p.pid)
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

/// Stops every process inside `ns` (or carrying the mount root `marker`), and
/// their descendants, except `keep`: first SIGSTOP until the whole tree is
/// frozen (so nothing forks or escapes by reparenting), then SIGKILL.
pub fn kill_inside(ns: &Namespaces, keep: &[i32], marker: Option<&str>) -> Result<()> {
    let target = Target {
        inodes: ns.inodes()?,
        marker: marker.map(String::from),
    };
    let mut exclude = vec![1, std::process::id() as i32];
    exclude.extend_from_slice(keep);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = snapshot(&target);
        let found = members(&procs, &exclude);
        if found.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("could not stop processes {found:?}");
        }
        let set: HashSet<i32> = found.iter().copied().collect();
        let still_member =
            |pid: i32| target.holds(pid) || stat(pid).is_some_and(|s| set.contains(&s.ppid));
        let frozen = |pid: &i32| {
            let state = procs.iter().find(|p| p.pid == *pid).map(|p| p.stat.state);
            matches!(state, Some('T' | 't'))
        };
        let signal = if found.iter().all(frozen) {
            Signal::SIGKILL
        } else {
            Signal::SIGSTOP
        };
        for &pid in &found {
            signal_checked(pid, signal, || still_member(pid))?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i32, ppid: i32, state: char, inside: bool) -> ProcInfo {
        ProcInfo {
            pid,
            stat: Stat {
                state,
                ppid,
                start: 1,
            },
            inside,
        }
    }

    #[test]
    fn members_are_processes_inside_and_their_descendants() {
        let procs = vec![
            proc(1, 0, 'S', false),
            proc(10, 1, 'S', true),   // holder, excluded
            proc(20, 1, 'S', true),   // daemon inside
            proc(21, 20, 'S', false), // its task, in namespaces of its own
            proc(22, 21, 'S', false), // the task's child
            proc(23, 20, 'Z', false), // a zombie child
            proc(30, 1, 'S', false),  // unrelated host process
            proc(31, 30, 'S', false),
        ];
        assert_eq!(members(&procs, &[1, 10]), vec![20, 21, 22]);
    }

    #[test]
    fn mount_roots_are_the_fourth_field() {
        let info = "64 44 254:0 /run/swarmnet-lab/l/machines/vm1/run /run rw - ext4 /dev/vda rw\n\
                    47 44 0:22 / /sys rw - sysfs sysfs rw";
        let roots: Vec<&str> = mount_roots(info).collect();
        assert_eq!(roots, ["/run/swarmnet-lab/l/machines/vm1/run", "/"]);
    }
}
