//! `service ps` and `node ps`: tasks as Docker's task table prints them,
//! grouped by slot (or node for global services), newest first, the older
//! tasks of a slot indented ` \_ `.

use std::collections::{BTreeMap, HashMap};

use super::super::client::{path, segment, Client};
use super::super::table;
use super::flags::{self, natural_cmp};
use crate::api::models::{Service, Task};
use crate::api::{human_duration, InfoDoc, NodeDoc};
use crate::model::now_secs;

/// The flags both `ps` commands take.
#[derive(Debug, Default, clap::Args)]
pub struct TaskListArgs {
    /// Only display task IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (e.g. desired-state=running, node=vm2).
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Pretty-print tasks using a Go template.
    #[arg(long)]
    pub format: Option<String>,
}

/// The names the table shows for the IDs tasks carry.
#[derive(Debug, Default)]
pub struct Names {
    services: HashMap<String, String>,
    nodes: HashMap<String, String>,
}

impl Names {
    pub fn new(services: &[Service], nodes: &[NodeDoc]) -> Names {
        let services = services
            .iter()
            .filter_map(|s| Some((s.id.clone()?, s.spec.as_ref()?.name.clone()?)))
            .collect();
        let nodes = nodes
            .iter()
            .filter_map(|n| Some((n.node.id.clone()?, hostname(n)?.clone())))
            .collect();
        Names { services, nodes }
    }
}

fn hostname(node: &NodeDoc) -> Option<&String> {
    node.node.description.as_ref()?.hostname.as_ref()
}

/// "running" as "Running", as Docker's `PrettyPrint`.
fn title(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

fn unix_nanos(time: Option<&String>) -> i128 {
    let format = time::format_description::well_known::Rfc3339;
    time.and_then(|t| time::OffsetDateTime::parse(t, &format).ok())
        .map_or(0, |t| t.unix_timestamp_nanos())
}

/// A task's name as Docker's `generateTaskNames`: `web.1`, or
/// `web.<node ID>` for a global service's task.
fn task_name(task: &Task, names: &Names) -> String {
    let service_id = task.service_id.clone().unwrap_or_default();
    let service = names.services.get(&service_id).unwrap_or(&service_id);
    match task.slot {
        Some(slot) if slot != 0 => format!("{service}.{slot}"),
        _ => format!("{service}.{}", task.node_id.clone().unwrap_or_default()),
    }
}

/// The fields of a task row, as Docker's task formatter names them.
fn row(
    task: &Task,
    name: String,
    names: &Names,
    now: u64,
    trunc: bool,
) -> BTreeMap<String, String> {
    let status = task.status.clone().unwrap_or_default();
    let id = task.id.clone().unwrap_or_default();
    let mut image = task
        .spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let mut err = status.err.clone().unwrap_or_default();
    if trunc {
        image = image.split('@').next().unwrap_or_default().to_string();
        if err.chars().count() > 30 {
            err = format!("{}…", err.chars().take(29).collect::<String>());
        }
    }
    let node_id = task.node_id.clone().unwrap_or_default();
    let since = (unix_nanos(status.timestamp.as_ref()) / 1_000_000_000).max(0) as u64;
    let state = status.state.map(|s| s.to_string()).unwrap_or_default();
    let ports: Vec<String> = status
        .port_status
        .and_then(|p| p.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let protocol = p.protocol.map(|x| x.to_string()).unwrap_or_default();
            let (published, target) = (p.published_port.unwrap_or(0), p.target_port.unwrap_or(0));
            format!("*:{published}->{target}/{protocol}")
        })
        .collect();
    let fields = [
        (
            "ID",
            if trunc {
                id.chars().take(12).collect()
            } else {
                id
            },
        ),
        ("Name", name),
        ("Image", image),
        (
            "Node",
            names.nodes.get(&node_id).cloned().unwrap_or(node_id),
        ),
        (
            "DesiredState",
            title(
                &task
                    .desired_state
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            ),
        ),
        (
            "CurrentState",
            format!(
                "{} {} ago",
                title(&state),
                human_duration(now.saturating_sub(since)).to_lowercase()
            ),
        ),
        (
            "Error",
            if err.is_empty() {
                err
            } else {
                format!("\"{err}\"")
            },
        ),
        ("Ports", ports.join(",")),
    ];
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The output of a `ps`: rows in Docker's order (by name, naturally, then
/// newest first), full IDs with `-q`, the table or `--format`.
pub fn render(
    tasks: &[Task],
    names: &Names,
    now: u64,
    args: &TaskListArgs,
) -> anyhow::Result<String> {
    let mut named: Vec<(String, &Task)> = tasks.iter().map(|t| (task_name(t, names), t)).collect();
    named.sort_by(|(a, ta), (b, tb)| {
        natural_cmp(a, b).then_with(|| {
            unix_nanos(tb.created_at.as_ref()).cmp(&unix_nanos(ta.created_at.as_ref()))
        })
    });
    if args.quiet && args.format.is_none() {
        return Ok(named
            .iter()
            .map(|(_, t)| format!("{}\n", t.id.clone().unwrap_or_default()))
            .collect());
    }
    let trunc = !args.no_trunc && !args.quiet;
    let is_table = args
        .format
        .as_deref()
        .is_none_or(|f| f.starts_with("table"));
    let mut previous = None;
    let rows: Vec<BTreeMap<String, String>> = named
        .into_iter()
        .map(|(name, task)| {
            let shown = match previous.as_deref() == Some(name.as_str()) && is_table {
                true => format!(" \\_ {name}"),
                false => name.clone(),
            };
            previous = Some(name);
            row(task, shown, names, now, trunc)
        })
        .collect();
    let columns = [
        "ID",
        "Name",
        "Image",
        "Node",
        "DesiredState",
        "CurrentState",
        "Error",
        "Ports",
    ];
    table::format_rows(&rows, args.format.as_deref(), || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| columns.iter().map(|c| r[*c].clone()).collect())
            .collect();
        let header = [
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
            "PORTS",
        ];
        table::render(&header, &cells)
    })
}

type Filters = BTreeMap<String, BTreeMap<String, bool>>;

fn list_tasks(client: &Client, filters: &Filters) -> anyhow::Result<Vec<Task>> {
    let json = serde_json::to_string(filters)?;
    client.get(&path("/tasks", &[("filters", &json)]))
}

/// This node's ID, for `self`.
fn self_id(client: &Client) -> anyhow::Result<String> {
    let info: InfoDoc = client.get("/info")?;
    Ok(info.info.swarm.and_then(|s| s.node_id).unwrap_or_default())
}

/// The services `service ps` names, as Docker matches them: full ID, then
/// full name, then a unique ID prefix; the IDs found and the words for
/// those not found.
fn match_services(
    all: &[Service],
    wanted: &[String],
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let (mut ids, mut missing) = (Vec::new(), Vec::new());
    for w in wanted {
        let id = |s: &Service| s.id.clone().unwrap_or_default();
        let name = |s: &Service| s.spec.as_ref().and_then(|x| x.name.clone());
        let exact = all
            .iter()
            .find(|s| id(s) == *w)
            .or_else(|| all.iter().find(|s| name(s).as_ref() == Some(w)));
        if let Some(s) = exact {
            ids.push(id(s));
            continue;
        }
        let prefixed: Vec<String> = all
            .iter()
            .map(id)
            .filter(|i| i.starts_with(w.as_str()))
            .collect();
        match prefixed[..] {
            [] => missing.push(format!("no such service: {w}")),
            [ref one] => ids.push(one.clone()),
            _ => anyhow::bail!("multiple services found with provided prefix: {w}"),
        }
    }
    Ok((ids, missing))
}

/// `service ps SERVICE...`.
pub fn run(client: &Client, services: &[String], args: &TaskListArgs) -> anyhow::Result<i32> {
    let mut filters = flags::filters(&args.filter)?;
    let all: Vec<Service> = client.get("/services")?;
    let (ids, missing) = match_services(&all, services)?;
    if ids.is_empty() {
        anyhow::bail!(missing.join("\n"));
    }
    filters.insert(
        "service".into(),
        ids.into_iter().map(|id| (id, true)).collect(),
    );
    let nodes: Vec<NodeDoc> = client.get("/nodes")?;
    if let Some(wanted) = filters.remove("node") {
        let mut resolved = BTreeMap::new();
        for (name, on) in wanted {
            let id = match name.as_str() {
                "self" => self_id(client)?,
                _ => nodes
                    .iter()
                    .find(|n| n.node.id.as_ref() == Some(&name) || hostname(n) == Some(&name))
                    .and_then(|n| n.node.id.clone())
                    .unwrap_or(name),
            };
            resolved.insert(id, on);
        }
        filters.insert("node".into(), resolved);
    }
    let tasks = list_tasks(client, &filters)?;
    print!(
        "{}",
        render(&tasks, &Names::new(&all, &nodes), now_secs(), args)?
    );
    if !missing.is_empty() {
        anyhow::bail!(missing.join("\n"));
    }
    Ok(0)
}

/// `node ps [NODE...]` (this node without one): every error after the table.
pub fn node_ps(client: &Client, nodes: &[String], args: &TaskListArgs) -> anyhow::Result<i32> {
    let wanted = if nodes.is_empty() {
        vec!["self".to_string()]
    } else {
        nodes.to_vec()
    };
    let (mut tasks, mut errors) = (Vec::new(), Vec::new());
    for name in &wanted {
        let found = (|| -> anyhow::Result<Vec<Task>> {
            let reference = if name == "self" {
                self_id(client)?
            } else {
                name.clone()
            };
            let node: NodeDoc = client
                .get(&format!("/nodes/{}", segment(&reference)))
                .map_err(|e| super::not_found(e, "node", name))?;
            let mut filters = flags::filters(&args.filter)?;
            filters.insert(
                "node".into(),
                [(node.node.id.unwrap_or_default(), true)].into(),
            );
            list_tasks(client, &filters)
        })();
        match found {
            Ok(found) => tasks.extend(found),
            Err(e) => errors.push(super::super::error_sentence(&e)),
        }
    }
    if errors.is_empty() || !tasks.is_empty() {
        let services: Vec<Service> = client.get("/services")?;
        let all_nodes: Vec<NodeDoc> = client.get("/nodes")?;
        print!(
            "{}",
            render(&tasks, &Names::new(&services, &all_nodes), now_secs(), args)?
        );
    }
    for error in &errors {
        eprintln!("{error}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
#[path = "ps_tests.rs"]
mod tests;
