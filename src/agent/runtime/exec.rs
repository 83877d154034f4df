//! `exec`: runs a command inside a running container's network, UTS and mount
//! namespaces, entered with setns in the child (never on the caller's thread).

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

use super::{sys, Process};

/// Runs CMD inside the container's network, mount and UTS namespaces with inherited stdio; returns its exit code (128+signal if killed), 127 if not found.
pub fn exec(p: &Process, cmd: &[String]) -> Result<i32> {
    let Some(program) = cmd.first() else {
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
    let mut command = Command::new(program);
    command.args(&cmd[1..]);
    // SAFETY: the hook only makes async-signal-safe syscalls (close_range,
    // setns, chdir) on files opened before the fork.
    unsafe {
        command.pre_exec(move || {
            sys::cloexec_from_3()?;
            for (file, flag) in &namespaces {
                setns(file, *flag)?;
            }
            nix::unistd::chdir(c"/")?;
            Ok(())
        });
    }
    let status = match command.spawn() {
        Ok(mut child) => child.wait().context("could not wait for the exec")?,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(127),
        Err(err) if err.kind() == ErrorKind::PermissionDenied => return Ok(126),
        Err(err) => return Err(err).with_context(|| format!("could not exec {program:?}")),
    };
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
