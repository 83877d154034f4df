//! `swarmnet node ls|inspect|ps|update|promote|demote|rm`, with Docker's
//! columns, templates and words, over the API as Docker's CLI calls it.

use std::collections::BTreeMap;

use clap::Subcommand;

use super::client::{path, segment, Client};
use super::table;
use crate::api::models::{NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum};
use crate::api::{InfoDoc, NodeDoc};
use crate::model::Availability;

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
    /// List tasks running on one or more nodes, defaults to current node.
    Ps {
        #[command(flatten)]
        list: super::service::ps::TaskListArgs,
        #[arg(value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Promote one or more nodes to manager in the swarm.
    Promote {
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Demote one or more nodes from manager in the swarm.
    Demote {
        #[arg(required = true, value_name = "NODE")]
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
    let client = Client::new(host)?;
    match cmd {
        NodeCmd::Ls { list } => {
            let nodes: Vec<NodeDoc> = client.get("/nodes")?;
            let info: InfoDoc = client.get("/info")?;
            let self_id = info.info.swarm.and_then(|s| s.node_id).unwrap_or_default();
            print!(
                "{}",
                ls(&nodes, &self_id, list.quiet, list.format.as_deref())?
            );
            Ok(0)
        }
        NodeCmd::Inspect { pretty, nodes } => {
            let found = nodes
                .iter()
                .map(|name| client.get::<NodeDoc>(&format!("/nodes/{}", segment(name))))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if pretty {
                for doc in &found {
                    print!("{}", pretty_view(doc));
                }
            } else {
                println!("{}", serde_json::to_string_pretty(&found)?);
            }
            Ok(0)
        }
        NodeCmd::Ps { list, nodes } => super::service::ps::node_ps(&client, &nodes, &list),
        NodeCmd::Promote { nodes } => change_role(&client, &nodes, NodeSpecRoleEnum::MANAGER),
        NodeCmd::Demote { nodes } => change_role(&client, &nodes, NodeSpecRoleEnum::WORKER),
        NodeCmd::Update {
            availability,
            label_add,
            label_rm,
            node,
        } => {
            let doc: NodeDoc = client.get(&format!("/nodes/{}", segment(&node)))?;
            let version = doc.node.version.and_then(|v| v.index).unwrap_or_default();
            let spec = updated_spec(
                doc.node.spec.unwrap_or_default(),
                availability,
                &label_add,
                &label_rm,
            )?;
            let id = doc.node.id.unwrap_or_default();
            let version = version.to_string();
            client.post_empty(
                &path(&format!("/nodes/{id}/update"), &[("version", &version)]),
                Some(&spec),
            )?;
            println!("{node}");
            Ok(0)
        }
        NodeCmd::Rm { force, nodes } => {
            let mut code = 0;
            for name in nodes {
                let force = if force { "1" } else { "0" };
                match client.delete(&path(
                    &format!("/nodes/{}", segment(&name)),
                    &[("force", force)],
                )) {
                    Ok(()) => println!("{name}"),
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

/// What `promote` (to manager) or `demote` (to worker) prints for a node:
/// Docker's words when the role changed, or was already that.
fn role_words(role: NodeSpecRoleEnum, node: &str, already: bool) -> String {
    match (role, already) {
        (NodeSpecRoleEnum::MANAGER, false) => {
            format!("Node {node} promoted to a manager in the swarm.")
        }
        (NodeSpecRoleEnum::MANAGER, true) => format!("Node {node} is already a manager."),
        (_, false) => format!("Manager {node} demoted in the swarm."),
        (_, true) => format!("Node {node} is already a worker."),
    }
}

/// `node promote|demote`: each node's spec posted back with the new role at
/// the version it was read at, stopping at the first error as Docker does.
fn change_role(client: &Client, nodes: &[String], role: NodeSpecRoleEnum) -> anyhow::Result<i32> {
    for name in nodes {
        let doc: NodeDoc = client.get(&format!("/nodes/{}", segment(name)))?;
        let id = doc.node.id.clone().unwrap_or_default();
        let mut spec = doc.node.spec.clone().unwrap_or_default();
        if spec.role == Some(role) {
            println!("{}", role_words(role, &id, true));
            continue;
        }
        spec.role = Some(role);
        let version = doc
            .node
            .version
            .and_then(|v| v.index)
            .unwrap_or_default()
            .to_string();
        let update = path(&format!("/nodes/{id}/update"), &[("version", &version)]);
        client.post_empty(&update, Some(&spec))?;
        println!("{}", role_words(role, name, false));
    }
    Ok(0)
}

/// The spec `node update` sends: the node's own, with the flags applied as
/// Docker's CLI applies them (a label to remove must be there).
fn updated_spec(
    mut spec: NodeSpec,
    availability: Option<Availability>,
    label_add: &[String],
    label_rm: &[String],
) -> anyhow::Result<NodeSpec> {
    let mut labels = spec.labels.take().unwrap_or_default();
    for pair in label_add {
        let (key, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        labels.insert(key.to_string(), value.to_string());
    }
    for key in label_rm {
        if labels.remove(key).is_none() {
            anyhow::bail!("key {key} doesn't exist in node's labels");
        }
    }
    spec.labels = Some(labels);
    if let Some(a) = availability {
        spec.availability = Some(match a {
            Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
            Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
            Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
        });
    }
    Ok(spec)
}

/// "ready" as "Ready", as Docker's tables print states.
fn title(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// What the table shows of a node: status, availability, manager status.
fn columns(doc: &NodeDoc) -> (String, String, String) {
    let n = &doc.node;
    let state = n
        .status
        .as_ref()
        .and_then(|s| s.state)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let availability = n
        .spec
        .as_ref()
        .and_then(|s| s.availability)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let manager = match &n.manager_status {
        None => String::new(),
        Some(m) if m.leader == Some(true) => "Leader".into(),
        Some(m) => title(&m.reachability.map(|r| r.to_string()).unwrap_or_default()),
    };
    (title(&state), title(&availability), manager)
}

fn hostname(doc: &NodeDoc) -> String {
    doc.node
        .description
        .as_ref()
        .and_then(|d| d.hostname.clone())
        .unwrap_or_default()
}

fn engine_version(doc: &NodeDoc) -> String {
    doc.node
        .description
        .as_ref()
        .and_then(|d| d.engine.as_ref())
        .and_then(|e| e.engine_version.clone())
        .unwrap_or_default()
}

/// The fields `--format` may name, as Docker's node ls template has them.
fn row(doc: &NodeDoc, self_id: &str) -> BTreeMap<String, serde_json::Value> {
    let id = doc.node.id.clone().unwrap_or_default();
    let (status, availability, manager) = columns(doc);
    let mut r = BTreeMap::new();
    r.insert("Self".into(), (id == self_id).into());
    r.insert("ID".into(), id.into());
    r.insert("Hostname".into(), hostname(doc).into());
    r.insert("Status".into(), status.into());
    r.insert("Availability".into(), availability.into());
    r.insert("ManagerStatus".into(), manager.into());
    r.insert("EngineVersion".into(), engine_version(doc).into());
    r.insert("TLSStatus".into(), "Ready".into());
    r
}

fn ls(
    nodes: &[NodeDoc],
    self_id: &str,
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    let id = |d: &NodeDoc| d.node.id.clone().unwrap_or_default();
    if quiet {
        return Ok(nodes.iter().map(|d| format!("{}\n", id(d))).collect());
    }
    let rows: Vec<_> = nodes.iter().map(|d| row(d, self_id)).collect();
    table::format_rows(&rows, format, || {
        let cells = nodes
            .iter()
            .map(|d| {
                let shown = if id(d) == self_id {
                    format!("{} *", id(d))
                } else {
                    id(d)
                };
                let (status, availability, manager) = columns(d);
                vec![
                    shown,
                    hostname(d),
                    status,
                    availability,
                    manager,
                    engine_version(d),
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

/// `node inspect --pretty`, laid out as Docker's.
fn pretty_view(doc: &NodeDoc) -> String {
    let n = &doc.node;
    let (status, availability, _) = columns(doc);
    let addr = n
        .status
        .as_ref()
        .and_then(|s| s.addr.clone())
        .unwrap_or_default();
    let mut out = format!(
        "ID:\t\t\t{}\nHostname:\t\t{}\nJoined at:\t\t{}\nStatus:\n State:\t\t\t{}\n Availability:\t\t{}\n Address:\t\t{}\n",
        n.id.clone().unwrap_or_default(),
        hostname(doc),
        n.created_at.clone().unwrap_or_default(),
        status,
        availability,
        addr
    );
    if let Some(ms) = &n.manager_status {
        out.push_str(&format!(
            "Manager Status:\n Address:\t\t{}\n Raft Status:\t\t{}\n Leader:\t\t{}\n",
            ms.addr.clone().unwrap_or_default(),
            title(&ms.reachability.map(|r| r.to_string()).unwrap_or_default()),
            if ms.leader == Some(true) { "Yes" } else { "No" }
        ));
    }
    if let Some(wg) = &doc.wireguard {
        out.push_str(&format!(
            "WireGuard:\n Public Key:\t\t{}\n Listen Port:\t\t{}\n Tunnel Address:\t{}\n",
            wg.public_key, wg.listen_port, wg.tunnel_addr
        ));
    }
    out.push_str(&format!("Engine Version:\t\t{}\n", engine_version(doc)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_apply_flags_as_dockers_cli() {
        let spec = NodeSpec {
            labels: Some([("zone".to_string(), "a".to_string())].into()),
            ..Default::default()
        };
        let out = updated_spec(
            spec.clone(),
            Some(Availability::Drain),
            &["ssd".into()],
            &["zone".into()],
        )
        .unwrap();
        let labels = out.labels.unwrap();
        assert_eq!(labels.get("ssd").map(String::as_str), Some(""));
        assert!(!labels.contains_key("zone"));
        assert_eq!(out.availability, Some(NodeSpecAvailabilityEnum::DRAIN));
        let err = updated_spec(spec, None, &[], &["nope".into()]).unwrap_err();
        assert_eq!(err.to_string(), "key nope doesn't exist in node's labels");
    }

    #[test]
    fn role_changes_in_dockers_words() {
        let manager = NodeSpecRoleEnum::MANAGER;
        let worker = NodeSpecRoleEnum::WORKER;
        assert_eq!(
            role_words(manager, "vm2", false),
            "Node vm2 promoted to a manager in the swarm."
        );
        assert_eq!(
            role_words(manager, "abc", true),
            "Node abc is already a manager."
        );
        assert_eq!(
            role_words(worker, "vm1", false),
            "Manager vm1 demoted in the swarm."
        );
        assert_eq!(
            role_words(worker, "abc", true),
            "Node abc is already a worker."
        );
    }

    #[test]
    fn states_print_capitalised() {
        assert_eq!(title("ready"), "Ready");
        assert_eq!(title("reachable"), "Reachable");
        assert_eq!(title(""), "");
    }
}
