//! The client commands: Docker's grammar with `swarmnet` in place of
//! `docker`, each family in its own file, all typed clients of the daemon's
//! Docker Engine API over its Unix socket.

mod client;
mod container;
mod network;
mod node;
mod service;
mod stack;
mod swarm;
mod table;

use clap::Subcommand;

use crate::model::ApiError;

pub use client::{socket_path, DEFAULT_HOST};

/// The commands that are clients of a daemon's API.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Manage swarm services.
    Service {
        #[command(subcommand)]
        cmd: service::ServiceCmd,
    },
    /// Manage swarm stacks.
    Stack {
        #[command(subcommand)]
        cmd: stack::StackCmd,
    },
    /// Display system-wide information.
    Info,
}

/// Runs a client command against the daemon at `host`; returns the exit code.
pub fn run(host: &str, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Swarm { cmd } => swarm::run(host, cmd),
        Command::Container { cmd } => container::run(host, cmd),
        Command::Network { cmd } => network::run(host, cmd),
        Command::Node { cmd } => node::run(host, cmd),
        Command::Service { cmd } => service::run(host, cmd),
        Command::Stack { cmd } => stack::run(host, cmd),
        Command::Info => info(host),
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
    for warning in doc.info.warnings.unwrap_or_default() {
        println!("{warning}");
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
