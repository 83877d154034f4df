//! The shim: `swarmnet runtime-shim --dir DIR --name NAME -- CMD...`. Run by
//! `start`, it first acts as a launcher: it re-executes itself (same argv, with
//! SHIM_STAGE set) in a new session, records that shim's identity in
//! shim.json and exits, so the shim is orphaned to init (or the nearest
//! subreaper) and never becomes the daemon's zombie. The shim then spawns the
//! container in new network, mount and UTS namespaces, records it in pid.json,
//! waits for it and records its exit code, outliving daemon restarts.

use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::sched::{unshare, CloneFlags};

use super::files::{self, Layout};
use super::{resolve, sys, Process};

/// Set (to "shim") in the environment of the shim proper, the launcher's child.
const SHIM_STAGE: &str = "SWARMNET_RUNTIME_SHIM_STAGE";

/// Exit codes when the container could not be started, as Docker's.
const CANNOT_START: i32 = 125;
const NOT_EXECUTABLE: i32 = 126;
const NOT_FOUND: i32 = 127;

#[derive(Debug, PartialEq)]
pub(super) struct ShimArgs {
    pub(super) dir: PathBuf,
    pub(super) name: String,
    pub(super) hostname: String,
    pub(super) cmd: Vec<String>,
    /// A network namespace to join instead of making one.
    pub(super) netns: Option<PathBuf>,
    /// `KEY=VALUE` pairs set in the command's environment.
    pub(super) env: Vec<String>,
}

impl ShimArgs {
    /// The argv after the subcommand name.
    pub(super) fn to_args(&self) -> Vec<String> {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args = vec!["--dir".into(), dir, "--name".into(), self.name.clone()];
        args.push("--hostname".into());
        args.push(self.hostname.clone());
        if let Some(netns) = &self.netns {
            args.push("--netns".into());
            args.push(netns.to_string_lossy().into_owned());
        }
        for kv in &self.env {
            args.push("--env".into());
            args.push(kv.clone());
        }
        args.push("--".into());
        args.extend(self.cmd.iter().cloned());
        args
    }

    pub(super) fn parse(args: &[String]) -> Result<ShimArgs> {
        let (mut dir, mut name, mut hostname, mut netns) = (None, None, None, None);
        let mut env = Vec::new();
        let mut rest = args.iter();
        loop {
            match rest.next().map(String::as_str) {
                Some("--dir") => dir = rest.next().map(PathBuf::from),
                Some("--name") => name = rest.next().cloned(),
                Some("--hostname") => hostname = rest.next().cloned(),
                Some("--netns") => netns = rest.next().map(PathBuf::from),
                Some("--env") => env.extend(rest.next().cloned()),
                Some("--") => break,
                other => bail!("runtime-shim: unexpected argument {other:?}"),
            }
        }
        let cmd: Vec<String> = rest.cloned().collect();
        match (dir, name) {
            (Some(dir), Some(name)) if !cmd.is_empty() => Ok(ShimArgs {
                dir,
                hostname: hostname.unwrap_or_else(|| name.clone()),
                name,
                cmd,
                netns,
                env,
            }),
            _ => bail!(
                "usage: runtime-shim --dir DIR --name NAME [--hostname NAME] [--netns PATH] [--env K=V]... -- CMD..."
            ),
        }
    }
}

/// Entry point of the hidden `swarmnet runtime-shim ...` subcommand (argv after
/// the subcommand name); returns the process exit code.
pub fn shim_main(args: Vec<String>) -> Result<i32> {
    let args = ShimArgs::parse(&args)?;
    if std::env::var_os(SHIM_STAGE).is_some_and(|stage| stage == "shim") {
        serve(&args)
    } else {
        launch(&args)
    }
}

/// Starts the shim proper in a new session and records its identity.
fn launch(args: &ShimArgs) -> Result<i32> {
    let mut argv = std::env::args_os();
    let mut cmd = Command::new("/proc/self/exe");
    if let Some(arg0) = argv.next() {
        cmd.arg0(arg0);
    }
    cmd.args(argv)
        .env(SHIM_STAGE, "shim")
        .current_dir("/")
        .stdin(Stdio::null());
    // SAFETY: setsid and close_range are async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            sys::cloexec_from_3()
        });
    }
    let child = cmd.spawn().context("could not start the shim")?;
    let shim = Process::of(child.id() as i32)?;
    files::write_process(&Layout(&args.dir).shim_json(), &shim)?;
    Ok(0)
}

/// Runs the container to its end, recording its identity and exit code.
fn serve(args: &ShimArgs) -> Result<i32> {
    let layout = Layout(&args.dir);
    let code = match spawn_container(args) {
        Ok(mut child) => {
            let recorded = Process::of(child.id() as i32)
                .and_then(|container| files::write_process(&layout.pid_json(), &container));
            if let Err(err) = recorded {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err.context("could not record the container's process"));
            }
            let status = child.wait().context("could not wait for the container")?;
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Err(err) => {
            eprintln!("could not start {:?}: {err:#}", args.cmd[0]);
            match resolve(&args.cmd[0]) {
                None => NOT_FOUND,
                Some(_) if err.kind() == std::io::ErrorKind::PermissionDenied => NOT_EXECUTABLE,
                Some(_) => CANNOT_START,
            }
        }
    };
    eprintln!("{}", files::exit_record(&args.name, code));
    files::write_atomic(
        &layout.exit_code(),
        files::format_exit_code(code).as_bytes(),
    )?;
    Ok(0)
}

/// Writes "swarmnet runtime: could not STEP" (`files::STEP_FAILED`) to fd 2,
/// the container log, on failure.
fn step(what: &'static str, result: std::io::Result<()>) -> std::io::Result<()> {
    if result.is_err() {
        let parts = [
            files::STEP_FAILED.as_bytes(),
            b"could not ",
            what.as_bytes(),
            b"\n",
        ];
        for part in parts {
            // write(2) to fd 2 is async-signal-safe; a failed write has nowhere to go.
            let _ = nix::unistd::write(std::io::stderr(), part);
        }
    }
    result
}

fn spawn_container(args: &ShimArgs) -> std::io::Result<std::process::Child> {
    let layout = Layout(&args.dir);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.container_log())?;
    let mut cmd = Command::new(&args.cmd[0]);
    cmd.args(&args.cmd[1..])
        .env_remove(SHIM_STAGE)
        .env("HOSTNAME", &args.hostname)
        .envs(args.env.iter().filter_map(|kv| kv.split_once('=')))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let name = args.hostname.clone();
    let resolv = sys::cstring(&layout.resolv_conf())?;
    let hosts = sys::cstring(&layout.hosts())?;
    let netns = args.netns.as_ref().map(std::fs::File::open).transpose()?;
    let flags = match netns {
        Some(_) => CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS,
        None => CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS,
    };
    // SAFETY: the hook only makes async-signal-safe syscalls on values made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            step("close inherited fds", sys::cloexec_from_3())?;
            step(
                "start a session",
                nix::unistd::setsid().map(drop).map_err(Into::into),
            )?;
            if let Some(netns) = &netns {
                step(
                    "join the network namespace",
                    nix::sched::setns(netns, CloneFlags::CLONE_NEWNET).map_err(Into::into),
                )?;
            }
            step("unshare namespaces", unshare(flags).map_err(Into::into))?;
            step(
                "set the hostname",
                nix::unistd::sethostname(&name).map_err(Into::into),
            )?;
            step("make / rslave", sys::make_rslave())?;
            step("mount /sys", sys::mount_sysfs())?;
            step(
                "bind /etc/resolv.conf",
                sys::bind(&resolv, c"/etc/resolv.conf"),
            )?;
            step("bind /etc/hosts", sys::bind(&hosts, c"/etc/hosts"))?;
            step("bring lo up", crate::netlink::netns::loopback_up())
        });
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_args_round_trip() {
        let args = ShimArgs {
            dir: "/var/lib/swarmnet/containers/x y".into(),
            name: "web.1".into(),
            hostname: "db-vm3".into(),
            cmd: ["sh", "-c", "echo -- --dir"].map(String::from).into(),
            netns: Some("/run/swarmnet/netns/abc".into()),
            env: vec!["A=1".into(), "B=x y=z".into()],
        };
        assert_eq!(ShimArgs::parse(&args.to_args()).unwrap(), args);
        let no_cmd = ["--dir", "/d", "--name", "n", "--"].map(String::from);
        assert!(ShimArgs::parse(&no_cmd).is_err());
        assert!(ShimArgs::parse(&["--bogus".to_string()]).is_err());
    }
}
