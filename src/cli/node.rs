//! `swarmnet node ls|inspect|rm`, with Docker's columns, templates and words.

use std::collections::BTreeMap;

use clap::Subcommand;

use super::client::call;
use super::table;
use crate::model::{Availability, NodeView};
use crate::proto::{ClusterRequest, LocalRequest, NodeUpdate};

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List nodes in the swarm.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        list: super::ListArgs,
    },
    /// Display detailed information on one or more nodes.
    Inspect {
        /// Print the information in a human friendly format.
        #[arg(long)]
        pretty: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Update a node.
    Update {
        /// Availability of the node ("active", "pause", "drain").
        #[arg(long, value_parser = Availability::parse)]
        availability: Option<Availability>,
        /// Add or update a node label (key=value).
        #[arg(long = "label-add", value_name = "KEY=VALUE")]
        label_add: Vec<String>,
        /// Remove a node label if exists.
        #[arg(long = "label-rm", value_name = "KEY")]
        label_rm: Vec<String>,
        node: String,
    },
    /// Remove one or more nodes from the swarm.
    #[command(alias = "remove")]
    Rm {
        /// Force remove a node from the swarm.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

pub fn run(host: &str, cmd: NodeCmd) -> anyhow::Result<i32> {
    match cmd {
        NodeCmd::Ls { list } => {
            let reply = call(host, &LocalRequest::Cluster(ClusterRequest::NodeLs))?;
            let self_id = reply["self"].as_str().unwrap_or_default().to_string();
            let nodes: Vec<NodeView> = serde_json::from_value(reply["nodes"].clone())?;
            print!(
                "{}",
                ls(&nodes, &self_id, list.quiet, list.format.as_deref())?
            );
            Ok(0)
        }
        NodeCmd::Inspect { pretty, nodes } => {
            let mut found = Vec::new();
            for name in &nodes {
                let reply = call(
                    host,
                    &LocalRequest::Cluster(ClusterRequest::NodeInspect { node: name.clone() }),
                )?;
                found.push(serde_json::from_value::<NodeView>(reply)?);
            }
            if pretty {
                for view in &found {
                    print!("{}", pretty_view(view));
                }
            } else {
                let docs: Vec<_> = found.iter().map(inspect_doc).collect();
                println!("{}", serde_json::to_string_pretty(&docs)?);
            }
            Ok(0)
        }
        NodeCmd::Update {
            availability,
            label_add,
            label_rm,
            node,
        } => {
            let update = NodeUpdate {
                node,
                availability,
                label_add,
                label_rm,
            };
            let reply = call(
                host,
                &LocalRequest::Cluster(ClusterRequest::NodeUpdate(update)),
            )?;
            println!("{}", reply.as_str().unwrap_or_default());
            Ok(0)
        }
        NodeCmd::Rm { force, nodes } => {
            let mut code = 0;
            for name in nodes {
                match call(
                    host,
                    &LocalRequest::Cluster(ClusterRequest::NodeRm {
                        node: name.clone(),
                        force,
                    }),
                ) {
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("{}", super::error_sentence(&e));
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
    }
}

/// The fields `--format` may name, as Docker's node ls template has them.
fn row(view: &NodeView, self_id: &str) -> BTreeMap<String, serde_json::Value> {
    let mut r = BTreeMap::new();
    r.insert("ID".into(), view.node.id.clone().into());
    r.insert("Hostname".into(), view.node.hostname.clone().into());
    r.insert("Status".into(), view.state.to_string().into());
    r.insert(
        "Availability".into(),
        view.node.availability.to_string().into(),
    );
    r.insert(
        "ManagerStatus".into(),
        view.manager_status
            .map(|m| m.to_string())
            .unwrap_or_default()
            .into(),
    );
    r.insert("Self".into(), (view.node.id == self_id).into());
    r.insert("EngineVersion".into(), env!("CARGO_PKG_VERSION").into());
    r.insert("TLSStatus".into(), "Ready".into());
    r
}

fn ls(
    nodes: &[NodeView],
    self_id: &str,
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    if quiet {
        return Ok(nodes.iter().map(|v| format!("{}\n", v.node.id)).collect());
    }
    let rows: Vec<_> = nodes.iter().map(|v| row(v, self_id)).collect();
    table::format_rows(&rows, format, || {
        let cells = nodes
            .iter()
            .map(|v| {
                let id = if v.node.id == self_id {
                    format!("{} *", v.node.id)
                } else {
                    v.node.id.clone()
                };
                vec![
                    id,
                    v.node.hostname.clone(),
                    v.state.to_string(),
                    v.node.availability.to_string(),
                    v.manager_status.map(|m| m.to_string()).unwrap_or_default(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ]
            })
            .collect::<Vec<_>>();
        table::render(
            &[
                "ID",
                "HOSTNAME",
                "STATUS",
                "AVAILABILITY",
                "MANAGER STATUS",
                "ENGINE VERSION",
            ],
            &cells,
        )
    })
}

/// The JSON of `node inspect`, shaped like Docker's.
fn inspect_doc(view: &NodeView) -> serde_json::Value {
    let n = &view.node;
    let mut doc = serde_json::json!({
        "ID": n.id,
        "CreatedAt": super::rfc3339(n.created_at),
        "Spec": {
            "Labels": n.labels,
            "Role": n.role.to_string(),
            "Availability": n.availability.to_string().to_lowercase(),
        },
        "Description": {
            "Hostname": n.hostname,
            "Platform": { "Architecture": std::env::consts::ARCH, "OS": std::env::consts::OS },
            "Engine": { "EngineVersion": env!("CARGO_PKG_VERSION") },
        },
        "Status": {
            "State": view.state.to_string().to_lowercase(),
            "Addr": n.addr.to_string(),
        },
        "WireGuard": {
            "PublicKey": base64_key(&n.wg_public_key),
            "ListenPort": n.wg_port,
            "TunnelAddr": n.tunnel_addr.to_string(),
        },
    });
    if let Some(ms) = view.manager_status {
        doc["ManagerStatus"] = serde_json::json!({
            "Leader": n.leader,
            "Reachability": if ms == crate::model::ManagerStatus::Unreachable { "unreachable" } else { "reachable" },
            "Addr": format!("{}:{}", n.addr, crate::daemon::SWARM_PORT),
        });
    }
    doc
}

fn base64_key(hex_key: &str) -> String {
    use base64::Engine;
    hex::decode(hex_key)
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k))
        .unwrap_or_default()
}

/// `node inspect --pretty`, laid out as Docker's.
fn pretty_view(view: &NodeView) -> String {
    let n = &view.node;
    let mut out = format!(
        "ID:\t\t\t{}\nHostname:\t\t{}\nJoined at:\t\t{}\nStatus:\n State:\t\t\t{}\n Availability:\t\t{}\n Address:\t\t{}\n",
        n.id,
        n.hostname,
        super::rfc3339(n.created_at),
        view.state,
        n.availability,
        n.addr
    );
    if let Some(ms) = view.manager_status {
        out.push_str(&format!(
            "Manager Status:\n Address:\t\t{}:{}\n Raft Status:\t\t{}\n Leader:\t\t{}\n",
            n.addr,
            crate::daemon::SWARM_PORT,
            if ms == crate::model::ManagerStatus::Unreachable {
                "Unreachable"
            } else {
                "Reachable"
            },
            if n.leader { "Yes" } else { "No" }
        ));
    }
    out.push_str(&format!(
        "WireGuard:\n Public Key:\t\t{}\n Listen Port:\t\t{}\n Tunnel Address:\t{}\nEngine Version:\t\t{}\n",
        base64_key(&n.wg_public_key),
        n.wg_port,
        n.tunnel_addr,
        env!("CARGO_PKG_VERSION")
    ));
    out
}
