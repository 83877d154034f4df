//! The command line: Docker's grammar with `swarmnet` in place of `docker`.
//! Each command family has its own file; all but `daemon` and `machine` talk
//! to the local daemon over its Unix socket.

mod client;
mod container;
mod network;
mod node;
mod swarm;
mod table;

use clap::{Parser, Subcommand};

use crate::daemon::DaemonArgs;
use crate::machine::MachineCmd;
use crate::model::ApiError;

#[derive(Debug, Parser)]
#[command(
    name = "swarmnet",
    version,
    about = "Docker Swarm's networking, encrypted by WireGuard"
)]
pub struct Cli {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long, global = true, env = "SWARMNET_HOST", default_value = client::DEFAULT_HOST)]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the root daemon (one per host).
    Daemon(DaemonArgs),
    /// Manage the swarm.
    Swarm {
        #[command(subcommand)]
        cmd: swarm::SwarmCmd,
    },
    /// Manage containers.
    Container {
        #[command(subcommand)]
        cmd: container::ContainerCmd,
    },
    /// Manage networks.
    Network {
        #[command(subcommand)]
        cmd: network::NetworkCmd,
    },
    /// Manage swarm nodes.
    Node {
        #[command(subcommand)]
        cmd: node::NodeCmd,
    },
    /// Manage local machines: hosts in network namespaces on this box.
    Machine {
        #[command(subcommand)]
        cmd: MachineCmd,
    },
    /// Display system-wide information.
    Info,
    /// A tiny HTTP server that says who answered (as traefik/whoami).
    Whoami(crate::whoami::WhoamiArgs),
    /// The per-container shim the daemon starts (internal).
    #[command(name = "runtime-shim", hide = true)]
    RuntimeShim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Runs the command; returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Daemon(args) => crate::daemon::run(args, &client::socket_path(&cli.host)?),
        Command::Swarm { cmd } => swarm::run(&cli.host, cmd),
        Command::Container { cmd } => container::run(&cli.host, cmd),
        Command::Network { cmd } => network::run(&cli.host, cmd),
        Command::Node { cmd } => node::run(&cli.host, cmd),
        Command::Machine { cmd } => crate::machine::run(cmd),
        Command::Info => info(&cli.host),
        Command::Whoami(args) => crate::whoami::run(args),
        Command::RuntimeShim { args } => crate::agent::runtime::shim_main(args),
    }
}

/// `swarmnet info`: the Swarm section of `docker info`.
fn info(host: &str) -> anyhow::Result<i32> {
    let doc: crate::api::InfoDoc = client::Client::new(host)?.get("/info")?;
    let swarm = doc.info.swarm.unwrap_or_default();
    let active = swarm.local_node_state == Some(crate::api::models::LocalNodeState::ACTIVE);
    println!("Containers: {}", doc.info.containers.unwrap_or_default());
    println!("Swarm: {}", if active { "active" } else { "inactive" });
    if active {
        println!(" NodeID: {}", swarm.node_id.unwrap_or_default());
        println!(" Is Manager: {}", swarm.control_available == Some(true));
        println!(" Node Address: {}", swarm.node_addr.unwrap_or_default());
        println!(" Manager Addresses:");
        for m in swarm.remote_managers.unwrap_or_default() {
            println!("  {}", m.addr.unwrap_or_default());
        }
        println!(" Tunnel Address: {}", doc.tunnel_addr.unwrap_or_default());
    }
    Ok(0)
}

/// `-q` and `--format`, as every Docker `ls` has them.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only display IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output using a Go template, or "json".
    #[arg(long)]
    pub format: Option<String>,
}

/// The one line a user sees for an error, in Docker's words where Docker has them.
pub fn error_sentence(err: &anyhow::Error) -> String {
    match err.downcast_ref::<ApiError>() {
        Some(api) => format!("Error response from daemon: {api}"),
        None => format!("Error: {err:#}"),
    }
}
