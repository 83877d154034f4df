//! `swarmnet machine`: local hosts in network namespaces on a lab underlay.

use clap::Subcommand;

/// Commands of `swarmnet machine`.
#[derive(Debug, Subcommand)]
pub enum MachineCmd {
    /// List machines.
    Ls,
}

/// Runs a machine command and returns the process exit code.
pub fn run(cmd: MachineCmd) -> anyhow::Result<i32> {
    match cmd {
        MachineCmd::Ls => Ok(0),
    }
}
