//! `swarmnet machine`: our docker-machine. Each machine is a host of its own on
//! this box (network, UTS and mount namespaces) with one leg on a lab underlay
//! bridge (192.168.99.0/24) and its own `swarmnet daemon`.
//!
//! Design:
//! - A lab (SWARMNET_LAB, default "swarmnet") keeps its state under
//!   /run/swarmnet-lab/<lab>/ and owns one network namespace holding the bridge
//!   `br0` (no address, no route out). Machines are numbered by address: .100
//!   is leg `m0` in the lab namespace, its peer is `eth0` in the machine.
//! - Namespaces live as long as a holder process (`machine holder`, hidden):
//!   one per lab, one per machine, created unshared in the child's `pre_exec`,
//!   then pausing. Nothing is bind-mounted under /run/netns; debug with
//!   `nsenter -t <holder_pid> -n -u -m` (`machine inspect` shows the pid).
//! - Processes are recorded as pid + start time and signalled through a pidfd
//!   after re-checking that identity (a holder also by its command line), so a
//!   reused pid is never signalled. Removal freezes (SIGSTOP) then kills every
//!   process in the machine's namespaces, or whose mount table carries the
//!   machine's private /run, and all their descendants.
//! - The machine's mount tree is made rprivate; /var/lib/swarmnet (created
//!   empty on the host if missing, as the bind target) and /run are bound to
//!   its own dirs, mounts under the host's /run are detached, /sys is fresh.
//!   /etc/resolv.conf is the machine's own `resolv.conf` (bound over it, made
//!   at create with no nameserver, so the lab never asks a real resolver);
//!   rewrite it in place to give the machine upstreams, as a rename is not
//!   seen through the bind.
//! - Other processes (the daemon, ssh commands) enter a holder's namespaces
//!   with setns in `pre_exec`; netlink sockets are opened on a short-lived
//!   thread that entered one (see `ip`); never on the CLI's own threads.
//! - SWARMNET_MACHINE_DAEMON_CMD replaces the daemon with a shell script (run
//!   by `/bin/sh -c`, daemon args in "$@"); the command line is saved at create
//!   and reused by restart. SWARMNET_HOST is not passed into a machine.

mod commands;
mod create;
mod daemon;
mod holder;
mod ip;
mod procs;
mod rm;
mod state;
mod sweep;

use anyhow::{bail, Result};
use clap::Subcommand;

use daemon::StopSignal;
use state::Lab;

/// Commands of `swarmnet machine`.
#[derive(Debug, Subcommand)]
pub enum MachineCmd {
    /// Create a machine and start its daemon.
    Create {
        /// The machine's name, also its hostname.
        name: String,
        /// An argument for the machine's `swarmnet daemon` (repeatable).
        #[arg(long = "daemon-arg", value_name = "ARG", allow_hyphen_values = true)]
        daemon_args: Vec<String>,
    },
    /// List machines.
    Ls {
        /// Only print machine names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a command inside a machine (default: a shell).
    Ssh {
        name: String,
        /// The command and its arguments, after `--`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Stop a machine's daemon and start it again.
    Restart {
        name: String,
        /// TERM (then KILL after 10 s) or KILL at once.
        #[arg(long, value_enum, ignore_case = true, default_value = "TERM")]
        signal: StopSignal,
    },
    /// Stop a machine's daemon (the machine and its namespaces stay).
    Stop {
        name: String,
        /// TERM (then KILL after 10 s) or KILL at once.
        #[arg(long, value_enum, ignore_case = true, default_value = "TERM")]
        signal: StopSignal,
    },
    /// Start a stopped machine's daemon again.
    Start { name: String },
    /// Remove machines, or with --all every machine and the lab.
    Rm {
        /// Carry on past errors and report them all at the end.
        #[arg(short, long)]
        force: bool,
        /// Remove every machine of the lab, then the lab itself.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        #[arg(required_unless_present = "all")]
        names: Vec<String>,
    },
    /// Show a machine as JSON.
    Inspect { name: String },
    /// Hold a lab's or machine's namespaces (internal).
    #[command(hide = true)]
    Holder {
        #[arg(long)]
        lab: String,
        #[arg(long)]
        name: Option<String>,
    },
}

/// Runs a machine command and returns the process exit code.
pub fn run(cmd: MachineCmd) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        bail!("swarmnet machine needs root: run it with sudo");
    }
    match cmd {
        MachineCmd::Create { name, daemon_args } => {
            create::create(&Lab::from_env()?, &name, &daemon_args)
        }
        MachineCmd::Ls { quiet } => commands::ls(&Lab::from_env()?, quiet),
        MachineCmd::Ssh { name, command } => commands::ssh(&Lab::from_env()?, &name, &command),
        MachineCmd::Restart { name, signal } => commands::restart(&Lab::from_env()?, &name, signal),
        MachineCmd::Stop { name, signal } => commands::stop(&Lab::from_env()?, &name, signal),
        MachineCmd::Start { name } => commands::start(&Lab::from_env()?, &name),
        MachineCmd::Rm { force, all, names } => rm::rm(&Lab::from_env()?, &names, all, force),
        MachineCmd::Inspect { name } => commands::inspect(&Lab::from_env()?, &name),
        MachineCmd::Holder { lab, name } => holder::serve(&lab, name.as_deref()),
    }
}
