//! `machine ls`, `inspect`, `ssh` and `restart`: the commands that use an
//! existing machine. `ssh` puts this swarmnet first on the command's PATH
//! and tells its CLI where the daemon's log is.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{signal, SigHandler, Signal};
use serde_json::json;

use super::daemon::{self, StopSignal};
use super::holder;
use super::procs::{Namespaces, NsKind};
use super::state::{Lab, Machine};

/// The PATH a command gets when the caller has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn state(machine: &Machine) -> &'static str {
    if daemon::running(machine) {
        "Running"
    } else {
        "Stopped"
    }
}

/// Renders rows under a header, columns separated by at least three spaces.
fn render_table(header: [&str; 3], rows: &[[String; 3]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 3]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("   ").trim_end())
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line([&row[0], &row[1], &row[2]]));
    }
    out
}

pub fn ls(lab: &Lab, quiet: bool) -> Result<i32> {
    let mut rows = Vec::new();
    for name in lab.names()? {
        match lab.load(&name) {
            Ok(machine) => rows.push([name, machine.address().to_string(), state(&machine).into()]),
            Err(_) => rows.push([name, "-".into(), "Error".into()]),
        }
    }
    if quiet {
        rows.iter().for_each(|[name, ..]| println!("{name}"));
    } else {
        print!("{}", render_table(["NAME", "ADDRESS", "STATE"], &rows));
    }
    Ok(0)
}

pub fn inspect(lab: &Lab, name: &str) -> Result<i32> {
    let machine = lab.load(name)?;
    let paths = lab.machine(name);
    let info = json!({
        "name": machine.name,
        "lab": lab.name,
        "address": machine.address().to_string(),
        "state": state(&machine),
        "daemon_pid": machine.daemon.filter(|d| d.alive()).map(|d| d.pid),
        "holder_pid": machine.holder.pid,
        "daemon_argv": machine.daemon_argv,
        "dir": paths.dir,
        "run_dir": paths.run,
        "lib_dir": paths.lib,
        "socket": paths.socket,
        "log": paths.log,
        "resolv_conf": paths.resolv_conf,
    });
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(0)
}

/// The machine's namespaces, or a clear error when its holder is gone.
fn namespaces(lab: &Lab, machine: &Machine) -> Result<Namespaces> {
    let name = &machine.name;
    if !holder::is_holder(&machine.holder, &lab.name, Some(name)) {
        bail!("machine {name} is broken (its namespaces are gone): remove it with `swarmnet machine rm -f {name}`");
    }
    Namespaces::of(&machine.holder, &NsKind::MACHINE)
}

/// Runs a command (default $SHELL or /bin/sh) inside the machine and returns
/// its exit code, 128+signal if it was killed.
pub fn ssh(lab: &Lab, name: &str, command: &[String]) -> Result<i32> {
    let machine = lab.load(name)?;
    let ns = namespaces(lab, &machine)?;
    let argv = match command {
        [] => vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())],
        _ => command.to_vec(),
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_remove("SWARMNET_HOST")
        .env(DAEMON_LOG_ENV, lab.machine(name).log);
    if let Some(path) = path_with_this_swarmnet(std::env::var_os("PATH")) {
        cmd.env("PATH", path);
    }
    let cwd = std::env::current_dir().ok();
    ns.enter_on_exec(&mut cmd, false, cwd.as_deref())?;
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("swarmnet machine ssh: {}: command not found", argv[0]);
            return Ok(127);
        }
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("swarmnet machine ssh: {}: permission denied", argv[0]);
            return Ok(126);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("could not run {} in machine {name}", argv[0]))
        }
    };
    Ok(exit_code(wait_through_interrupts(&mut child)?))
}

/// Where the CLI inside a machine says the daemon's log is (the machine's
/// daemon.log, as the host sees it), read by the CLI's client.
const DAEMON_LOG_ENV: &str = "SWARMNET_DAEMON_LOG";

/// `path` (the default PATH when unset) with the directory of this swarmnet
/// binary first, so the `swarmnet` that made the machine runs inside it even
/// when it was built with cargo and is on no PATH; None if it cannot be found.
fn path_with_this_swarmnet(path: Option<OsString>) -> Option<OsString> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    let rest = path.unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&rest))).ok()
}

/// Waits for the child while ignoring ^C and ^\ (they reach the child, which
/// decides), as a shell does.
fn wait_through_interrupts(child: &mut Child) -> Result<ExitStatus> {
    // SAFETY: SIG_IGN runs no handler code; the old handlers are restored.
    let old = unsafe {
        [
            signal(Signal::SIGINT, SigHandler::SigIgn)?,
            signal(Signal::SIGQUIT, SigHandler::SigIgn)?,
        ]
    };
    let status = child.wait();
    // SAFETY: reinstalls the handlers that were in place before.
    unsafe {
        signal(Signal::SIGINT, old[0])?;
        signal(Signal::SIGQUIT, old[1])?;
    }
    Ok(status?)
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Stops the daemon (SIGTERM with a grace period, or SIGKILL at once) and
/// starts it again with its saved arguments.
pub fn restart(lab: &Lab, name: &str, signal: StopSignal) -> Result<i32> {
    eprintln!("Restarting machine {name}...");
    stop_daemon(lab, name, signal)?;
    start_daemon(lab, name)?;
    println!("{name}");
    Ok(0)
}

/// `machine stop`: the daemon stops; the machine stays.
pub fn stop(lab: &Lab, name: &str, signal: StopSignal) -> Result<i32> {
    eprintln!("Stopping machine {name}...");
    stop_daemon(lab, name, signal)?;
    println!("{name}");
    Ok(0)
}

/// `machine start`: a stopped machine's daemon starts again.
pub fn start(lab: &Lab, name: &str) -> Result<i32> {
    if daemon::running(&lab.load(name)?) {
        bail!("machine {name} is already running; use \"swarmnet machine restart {name}\" to restart its daemon");
    }
    start_daemon(lab, name)?;
    println!("{name}");
    Ok(0)
}

fn stop_daemon(lab: &Lab, name: &str, signal: StopSignal) -> Result<()> {
    lab.load(name)?;
    let _lock = lab.lock()?;
    let mut machine = lab.load(name)?;
    namespaces(lab, &machine)?;
    daemon::stop(&machine, signal)?;
    machine.daemon = None;
    lab.save(&machine)
}

fn start_daemon(lab: &Lab, name: &str) -> Result<()> {
    lab.load(name)?;
    let _lock = lab.lock()?;
    let mut machine = lab.load(name)?;
    namespaces(lab, &machine)?;
    eprintln!("Starting daemon...");
    let (mut child, daemon) = daemon::start(lab, &machine)?;
    machine.daemon = Some(daemon);
    lab.save(&machine)?;
    daemon::wait_ready(lab, &machine, &mut child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let rows = [
            [
                "vm1".to_string(),
                "192.168.99.100".to_string(),
                "Running".to_string(),
            ],
            [
                "longer-name".to_string(),
                "192.168.99.101".to_string(),
                "Stopped".to_string(),
            ],
        ];
        let table = render_table(["NAME", "ADDRESS", "STATE"], &rows);
        assert_eq!(
            table,
            "NAME          ADDRESS          STATE\n\
             vm1           192.168.99.100   Running\n\
             longer-name   192.168.99.101   Stopped\n"
        );
        assert_eq!(
            render_table(["NAME", "ADDRESS", "STATE"], &[]),
            "NAME   ADDRESS   STATE\n"
        );
    }

    #[test]
    fn this_swarmnet_comes_first_on_path() {
        let dir = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let path = path_with_this_swarmnet(Some("/usr/bin:/bin".into())).unwrap();
        let dirs: Vec<_> = std::env::split_paths(&path).collect();
        assert_eq!(dirs, [dir.clone(), "/usr/bin".into(), "/bin".into()]);
        let path = path_with_this_swarmnet(None).unwrap();
        assert_eq!(std::env::split_paths(&path).next(), Some(dir));
        assert!(path.to_string_lossy().ends_with(DEFAULT_PATH));
    }

    #[test]
    fn exit_codes_pass_through() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
