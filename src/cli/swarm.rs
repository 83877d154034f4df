//! `swarmnet swarm init|join|join-token|leave`.

use clap::{Args, Subcommand};

use super::client::{path, Client};
use crate::api::models::{Swarm, SwarmInitRequest, SwarmJoinRequest};
use crate::api::{InfoDoc, NodeDoc};
use crate::model::NodeRole;

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
    let client = Client::new(host)?;
    match cmd {
        SwarmCmd::Init(args) => {
            let req = SwarmInitRequest {
                advertise_addr: Some(args.advertise_addr),
                listen_addr: args.listen_addr,
                default_addr_pool: args.default_addr_pool.map(|p| vec![p]),
                subnet_size: args.default_addr_pool_mask_length.map(u32::from),
                ..Default::default()
            };
            let node_id: String = client.post("/swarm/init", &req)?;
            println!("Swarm initialized: current node ({node_id}) is now a manager.\n");
            let (token, addr) = (
                join_token(&client, NodeRole::Worker)?,
                manager_addr(&client)?,
            );
            print!("{}", join_instructions(NodeRole::Worker, &token, &addr));
            println!("To add a manager to this swarm, run 'swarmnet swarm join-token manager' and follow the instructions.\n");
        }
        SwarmCmd::Join(args) => {
            let req = SwarmJoinRequest {
                remote_addrs: Some(vec![args.remote]),
                join_token: Some(args.token),
                advertise_addr: args.advertise_addr,
                ..Default::default()
            };
            client.post_empty("/swarm/join", Some(&req))?;
            let info: InfoDoc = client.get("/info")?;
            let manager = info.info.swarm.and_then(|s| s.control_available) == Some(true);
            let role = if manager {
                NodeRole::Manager
            } else {
                NodeRole::Worker
            };
            println!("This node joined a swarm as a {role}.");
        }
        SwarmCmd::JoinToken(args) => {
            if args.rotate {
                let swarm: Swarm = client.get("/swarm")?;
                let version = swarm.version.and_then(|v| v.index).unwrap_or_default();
                let flag = match args.role {
                    NodeRole::Worker => "rotateWorkerToken",
                    NodeRole::Manager => "rotateManagerToken",
                };
                let version = version.to_string();
                let update = path("/swarm/update", &[("version", &version), (flag, "true")]);
                client.post_empty(&update, Some(&swarm.spec.unwrap_or_default()))?;
            }
            let token = join_token(&client, args.role)?;
            if args.quiet {
                println!("{token}");
                return Ok(0);
            }
            if args.rotate {
                println!("Successfully rotated {} join token.\n", args.role);
            }
            print!(
                "{}",
                join_instructions(args.role, &token, &manager_addr(&client)?)
            );
        }
        SwarmCmd::Leave { force } => {
            let leave = path("/swarm/leave", &[("force", if force { "1" } else { "0" })]);
            client.post_empty(&leave, None::<&()>)?;
            println!("Node left the swarm.");
        }
    }
    Ok(0)
}

/// The join token of a role, from `GET /swarm`.
fn join_token(client: &Client, role: NodeRole) -> anyhow::Result<String> {
    let swarm: Swarm = client.get("/swarm")?;
    let tokens = swarm.join_tokens.unwrap_or_default();
    Ok(match role {
        NodeRole::Worker => tokens.worker,
        NodeRole::Manager => tokens.manager,
    }
    .unwrap_or_default())
}

/// This manager's API address, as Docker finds it: this node's manager status.
fn manager_addr(client: &Client) -> anyhow::Result<String> {
    let info: InfoDoc = client.get("/info")?;
    let node_id = info.info.swarm.and_then(|s| s.node_id).unwrap_or_default();
    let node: NodeDoc = client.get(&format!("/nodes/{node_id}"))?;
    Ok(node
        .node
        .manager_status
        .and_then(|m| m.addr)
        .unwrap_or_default())
}

/// Docker's paragraph with the whole join command.
fn join_instructions(role: NodeRole, token: &str, addr: &str) -> String {
    format!(
        "To add a {role} to this swarm, run the following command:\n\n    swarmnet swarm join --token {token} {addr}\n\n"
    )
}
