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
    let info = client::call(host, &crate::proto::LocalRequest::Info)?;
    let field = |k: &str| match &info[k] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("Containers: {}", field("Containers"));
    println!("Swarm: {}", field("LocalNodeState"));
    if field("LocalNodeState") == "active" {
        println!(" NodeID: {}", field("NodeID"));
        let manager = info["ControlAvailable"].as_bool().unwrap_or(false);
        println!(" Is Manager: {manager}");
        println!(" Node Address: {}", field("NodeAddr"));
        println!(" Manager Addresses:\n  {}", field("ManagerAddr"));
        println!(" Tunnel Address: {}", field("TunnelAddr"));
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

/// A Unix time as RFC 3339, as Docker prints times in JSON.
pub fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The one line a user sees for an error, in Docker's words where Docker has them.
pub fn error_sentence(err: &anyhow::Error) -> String {
    match err.downcast_ref::<ApiError>() {
        Some(api) => format!("Error response from daemon: {api}"),
        None => format!("Error: {err:#}"),
    }
}
