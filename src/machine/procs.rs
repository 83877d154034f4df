//! A machine's namespaces through /proc: open handles on a process's
//! namespaces, and entering them in a child's `pre_exec`. Process identity
//! (pid + start time, pidfd signals) is `crate::procs`.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

pub use crate::procs::{signal_checked, stat, ProcId, Stat};
use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

/// A namespace kind a machine owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Net,
    Uts,
    Mnt,
}

impl NsKind {
    pub const MACHINE: [NsKind; 3] = [NsKind::Net, NsKind::Uts, NsKind::Mnt];

    pub(super) fn file(self) -> &'static str {
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

    /// The handle on the namespace of `kind`, if it is one of these.
    pub(super) fn file(&self, kind: NsKind) -> Option<&File> {
        self.entries
            .iter()
            .find(|(held, _)| *held == kind)
            .map(|(_, file)| file)
    }

    pub(super) fn inodes(&self) -> Result<Vec<(NsKind, u64)>> {
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
        let cwd = cwd
            .map(|dir| CString::new(dir.as_os_str().as_bytes()))
            .transpose()?;
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
                    // A directory missing in the namespaces leaves the command in /.
                    let _ = nix::unistd::chdir(dir.as_c_str());
                }
                Ok(())
            });
        }
        Ok(())
    }
}
