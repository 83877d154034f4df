//! `swarmnet swarm init|join|join-token|leave`.

use clap::{Args, Subcommand};

use super::client::call;
use crate::model::NodeRole;
use crate::proto::{ClusterRequest, LocalRequest};

#[derive(Debug, Subcommand)]
pub enum SwarmCmd {
    /// Initialize a swarm, with this node as its manager.
    Init(InitArgs),
    /// Join a swarm as a node.
    Join(JoinArgs),
    /// Manage join tokens.
    JoinToken(JoinTokenArgs),
    /// Leave the swarm.
    Leave {
        /// Force this node to leave the swarm, ignoring warnings.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Advertised address (format: <ip>[:port]).
    #[arg(long)]
    advertise_addr: String,
    /// Listen address (format: <ip>[:port]).
    #[arg(long)]
    listen_addr: Option<String>,
    /// Default address pool in CIDR format (10.0.0.0/8).
    #[arg(long)]
    default_addr_pool: Option<String>,
    /// Default address pool subnet mask length (24).
    #[arg(long)]
    default_addr_pool_mask_length: Option<u8>,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Token for entry into the swarm.
    #[arg(long)]
    token: String,
    /// Advertised address (format: <ip>[:port]).
    #[arg(long)]
    advertise_addr: Option<String>,
    /// The manager's address (format: <ip>[:port]).
    remote: String,
}

#[derive(Debug, Args)]
pub struct JoinTokenArgs {
    /// Only display the token.
    #[arg(short, long)]
    quiet: bool,
    /// Rotate the join token.
    #[arg(long)]
    rotate: bool,
    /// worker or manager.
    #[arg(value_parser = NodeRole::parse)]
    role: NodeRole,
}

pub fn run(host: &str, cmd: SwarmCmd) -> anyhow::Result<i32> {
    match cmd {
        SwarmCmd::Init(args) => {
            let reply = call(
                host,
                &LocalRequest::SwarmInit {
                    advertise_addr: args.advertise_addr,
                    listen_addr: args.listen_addr,
                    default_addr_pool: args.default_addr_pool,
                    default_addr_pool_mask_length: args.default_addr_pool_mask_length,
                },
            )?;
            let node_id = reply["node_id"].as_str().unwrap_or_default();
            let addr = reply["advertise_addr"].as_str().unwrap_or_default();
            let token = reply["worker_token"].as_str().unwrap_or_default();
            println!("Swarm initialized: current node ({node_id}) is now a manager.\n");
            print!("{}", join_instructions(NodeRole::Worker, token, addr));
            println!("To add a manager to this swarm, run 'swarmnet swarm join-token manager' and follow the instructions.\n");
        }
        SwarmCmd::Join(args) => {
            let reply = call(
                host,
                &LocalRequest::SwarmJoin {
                    token: args.token,
                    remote: args.remote,
                    advertise_addr: args.advertise_addr,
                },
            )?;
            let role = reply["role"].as_str().unwrap_or("worker");
            println!("This node joined a swarm as a {role}.");
        }
        SwarmCmd::JoinToken(args) => {
            let reply = call(
                host,
                &LocalRequest::Cluster(ClusterRequest::JoinToken {
                    role: args.role,
                    rotate: args.rotate,
                }),
            )?;
            let token = reply.as_str().unwrap_or_default();
            if args.quiet {
                println!("{token}");
                return Ok(0);
            }
            if args.rotate {
                println!("Successfully rotated {} join token.\n", args.role);
            }
            let info = call(host, &LocalRequest::Info)?;
            let addr = info["ManagerAddr"].as_str().unwrap_or_default();
            print!("{}", join_instructions(args.role, token, addr));
        }
        SwarmCmd::Leave { force } => {
            call(host, &LocalRequest::SwarmLeave { force })?;
            println!("Node left the swarm.");
        }
    }
    Ok(0)
}

/// Docker's paragraph with the whole join command.
fn join_instructions(role: NodeRole, token: &str, addr: &str) -> String {
    format!(
        "To add a {role} to this swarm, run the following command:\n\n    swarmnet swarm join --token {token} {addr}\n\n"
    )
}
