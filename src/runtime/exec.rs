//! `exec`: a command inside a running container's network, UTS and mount
//! namespaces, entered with setns in the child (never on the caller's thread).
//! The caller chooses its stdio (pipes, for the exec API) and spawns it.

use std::ffi::CString;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

use super::{sys, Process};

/// What to run in a container, as Docker's ExecConfig gives it.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries, over the daemon's environment and the container's HOSTNAME.
    pub env: Vec<String>,
    /// Where the command starts, inside the container (`/` when None).
    pub working_dir: Option<String>,
    /// The container's name, its HOSTNAME.
    pub hostname: String,
}

/// A command that runs inside the container's network, mount and UTS
/// namespaces once spawned; its stdio is the caller's to set.
pub fn exec_command(p: &Process, spec: &ExecSpec) -> Result<Command> {
    let Some(program) = spec.cmd.first() else {
        bail!("exec needs a command");
    };
    let mut namespaces = Vec::new();
    // Mount last: entering it changes the root the others' paths would use.
    for (kind, flag) in [
        ("net", CloneFlags::CLONE_NEWNET),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = format!("/proc/{}/ns/{kind}", p.pid);
        let file = File::open(&path).with_context(|| format!("could not open {path}"))?;
        namespaces.push((file, flag));
    }
    // Checked after the opens: the files are then the container's namespaces.
    if !p.alive() {
        bail!("the container's process {} is no longer running", p.pid);
    }
    let dir = CString::new(spec.working_dir.as_deref().unwrap_or("/"))
        .context("the working directory has a NUL byte")?;
    let mut command = Command::new(program);
    command.args(&spec.cmd[1..]).env("HOSTNAME", &spec.hostname);
    for entry in &spec.env {
        if let Some((key, value)) = entry.split_once('=') {
            command.env(key, value);
        }
    }
    // SAFETY: the hook only makes async-signal-safe syscalls (close_range,
    // setns, chdir) on values made before the fork.
    unsafe {
        command.pre_exec(move || {
            sys::cloexec_from_3()?;
            for (file, flag) in &namespaces {
                setns(file, *flag)?;
            }
            nix::unistd::chdir(dir.as_c_str())?;
            Ok(())
        });
    }
    Ok(command)
}

/// The exit code Docker gives a command that could not be run: 127 when it
/// is not found, 126 when it is not executable; None for other failures.
pub fn spawn_failure_code(err: &std::io::Error) -> Option<i32> {
    match err.kind() {
        ErrorKind::NotFound => Some(127),
        ErrorKind::PermissionDenied => Some(126),
        _ => None,
    }
}

/// A process's exit code, 128+signal when a signal ended it.
pub fn exit_code_of(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_spawns_get_dockers_codes() {
        assert_eq!(spawn_failure_code(&ErrorKind::NotFound.into()), Some(127));
        assert_eq!(
            spawn_failure_code(&ErrorKind::PermissionDenied.into()),
            Some(126)
        );
        assert_eq!(spawn_failure_code(&ErrorKind::Interrupted.into()), None);
        assert_eq!(exit_code_of(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code_of(ExitStatus::from_raw(9)), 137);
    }
}
