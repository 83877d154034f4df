//! A machine's daemon: its command line, starting it inside the machine
//! (detached, appending to the machine's log), waiting for its socket, and
//! stopping it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use nix::sys::signal::Signal;

use super::procs::{Namespaces, NsKind, ProcId};
use super::state::{Lab, Machine};

/// Overrides the daemon with a shell script (run by `/bin/sh -c`, with the
/// daemon args as "$@"), for tests before a real daemon exists.
pub const CMD_ENV: &str = "SWARMNET_MACHINE_DAEMON_CMD";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How `restart` stops the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StopSignal {
    /// SIGTERM, then SIGKILL after 10 s.
    #[value(name = "TERM", alias = "SIGTERM")]
    Term,
    /// SIGKILL at once (simulates a crash).
    #[value(name = "KILL", alias = "SIGKILL")]
    Kill,
}

/// The daemon's command line: `<this exe> daemon ARGS...`, or the override.
pub fn argv(args: &[String]) -> Result<Vec<String>> {
    let mut argv = match std::env::var(CMD_ENV) {
        Ok(script) if !script.is_empty() => {
            vec![
                "/bin/sh".into(),
                "-c".into(),
                script,
                "swarmnet-daemon".into(),
            ]
        }
        _ => {
            let exe = std::env::current_exe().context("cannot find the swarmnet executable")?;
            vec![exe.to_string_lossy().into_owned(), "daemon".into()]
        }
    };
    argv.extend_from_slice(args);
    Ok(argv)
}

/// Starts the daemon in the machine's namespaces, in a session of its own.
/// A socket left by a crashed daemon is removed first, as a reboot would.
pub fn start(lab: &Lab, machine: &Machine) -> Result<(Child, ProcId)> {
    let paths = lab.machine(&machine.name);
    match fs::remove_file(&paths.socket) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).context("could not remove the old daemon socket");
        }
        _ => {}
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)?;
    writeln!(
        log,
        "--- swarmnet machine: starting {:?}",
        machine.daemon_argv
    )?;
    let ns = Namespaces::of(&machine.holder, &NsKind::MACHINE)
        .with_context(|| format!("machine {} has lost its namespaces", machine.name))?;
    let (program, args) = machine
        .daemon_argv
        .split_first()
        .context("empty daemon command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env_remove("SWARMNET_HOST");
    ns.enter_on_exec(&mut cmd, true, None)?;
    let child = cmd
        .spawn()
        .with_context(|| format!("could not start the daemon {program}"))?;
    let id = ProcId::of(child.id())?;
    Ok((child, id))
}

/// Polls until the daemon's socket accepts a connection, the daemon exits,
/// or the deadline passes.
pub fn wait_ready(lab: &Lab, machine: &Machine, child: &mut Child) -> Result<()> {
    let paths = lab.machine(&machine.name);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if UnixStream::connect(&paths.socket).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let what = format!("exited ({status}) before its socket was ready");
            bail!(not_ready(&machine.name, &what, &paths.log));
        }
        if Instant::now() > deadline {
            let what = format!(
                "did not open its socket within {} s",
                READY_TIMEOUT.as_secs()
            );
            bail!(not_ready(&machine.name, &what, &paths.log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon that did not come up, in one line: the last line of its log says
/// why (the log goes away with a failed create, so it is quoted here).
fn not_ready(machine: &str, what: &str, log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let last = text.lines().map(str::trim).rfind(|line| !line.is_empty());
    match last {
        Some(last) => format!("the daemon of machine {machine} {what}; its log ends: {last}"),
        None => format!("the daemon of machine {machine} {what} and logged nothing"),
    }
}

pub fn running(machine: &Machine) -> bool {
    machine.daemon.is_some_and(|daemon| daemon.alive())
}

/// Stops the recorded daemon if it still runs.
pub fn stop(machine: &Machine, signal: StopSignal) -> Result<()> {
    let Some(daemon) = machine.daemon else {
        return Ok(());
    };
    if signal == StopSignal::Term {
        daemon.signal(Signal::SIGTERM)?;
        if daemon.wait_gone(STOP_TIMEOUT) {
            return Ok(());
        }
    }
    daemon
        .kill()
        .with_context(|| format!("could not stop the daemon of machine {}", machine.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_not_ready_is_one_line_quoting_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("daemon.log");
        fs::write(
            &log,
            "INFO starting\n\nError: address 192.168.99.100 is in use\n\n",
        )
        .unwrap();
        assert_eq!(
            not_ready(
                "vm1",
                "exited (exit status: 1) before its socket was ready",
                &log
            ),
            "the daemon of machine vm1 exited (exit status: 1) before its socket was ready; \
             its log ends: Error: address 192.168.99.100 is in use"
        );
        assert_eq!(
            not_ready(
                "vm2",
                "did not open its socket within 15 s",
                &dir.path().join("none")
            ),
            "the daemon of machine vm2 did not open its socket within 15 s and logged nothing"
        );
    }

    #[test]
    fn daemon_command_line() {
        let argv = argv(&["--debug".to_string()]).unwrap();
        assert_eq!(argv.last().map(String::as_str), Some("--debug"));
        if std::env::var(CMD_ENV).is_err() {
            assert_eq!(argv[1], "daemon");
        }
    }
}
