//! `swarmnet stack deploy|ls|services|rm`: a compose file deployed as
//! services and networks through the API, as Docker's CLI does it: the file
//! is read here (`compose/`), turned into specs (`convert.rs`), and every
//! object carries the label `com.docker.stack.namespace`, which is how a
//! stack's objects are found again (by the docker CLI too).

pub(super) mod compose;
mod convert;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::client::{path, segment, Client};
use super::service::ps::TaskListArgs;
use crate::api::models::{NetworkCreateResponse, Service, ServiceCreateResponse, TaskState};
use convert::NAMESPACE;

#[derive(Debug, clap::Subcommand)]
pub enum StackCmd {
    /// Deploy a new stack or update an existing stack.
    #[command(alias = "up")]
    Deploy {
        /// Path to a Compose file, or "-" to read from stdin (several are merged in order).
        #[arg(
            short = 'c',
            long = "compose-file",
            required = true,
            value_name = "FILE"
        )]
        compose_files: Vec<PathBuf>,
        /// Prune services that are no longer referenced.
        #[arg(long)]
        prune: bool,
        stack: String,
    },
    /// List stacks.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        format: Option<String>,
    },
    /// List the services in the stack.
    Services {
        #[command(flatten)]
        list: super::ListArgs,
        stack: String,
    },
    /// List the tasks in the stack.
    Ps {
        #[command(flatten)]
        list: TaskListArgs,
        stack: String,
    },
    /// Remove one or more stacks.
    #[command(alias = "remove", alias = "down")]
    Rm {
        /// Do not wait for the stack's tasks to stop (its networks go once
        /// they have).
        #[arg(short, long)]
        detach: bool,
        #[arg(required = true, value_name = "STACK")]
        stacks: Vec<String>,
    },
}

pub fn run(host: &str, cmd: StackCmd) -> anyhow::Result<i32> {
    let client = Client::new(host)?;
    match cmd {
        StackCmd::Deploy {
            compose_files,
            prune,
            stack,
        } => deploy(&client, &stack, &compose_files, prune),
        StackCmd::Ls { format } => ls(&client, format.as_deref()),
        StackCmd::Services { list, stack } => {
            check_name(&stack)?;
            if stack_services(&client, &stack)?.is_empty() {
                anyhow::bail!("Nothing found in stack: {stack}");
            }
            super::service::list::run(&client, &list, &[label_filter(&stack)])
        }
        StackCmd::Ps { list, stack } => {
            check_name(&stack)?;
            let services: Vec<String> = stack_services(&client, &stack)?
                .into_iter()
                .filter_map(|s| s.spec.and_then(|s| s.name))
                .collect();
            if services.is_empty() {
                anyhow::bail!("nothing found in stack: {stack}");
            }
            super::service::ps::run(&client, &services, &list)
        }
        StackCmd::Rm { detach, stacks } => rm(&client, &stacks, detach),
    }
}

/// A stack's name becomes the prefix of its objects' names.
fn check_name(stack: &str) -> anyhow::Result<()> {
    let ok = stack
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && stack
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        anyhow::bail!(
            "invalid stack name {stack:?}: use letters, digits, \"_\", \".\" and \"-\", starting with a letter or a digit"
        );
    }
    Ok(())
}

fn label_filter(stack: &str) -> String {
    format!("label={NAMESPACE}={stack}")
}

fn filters_query(stack: &str) -> String {
    let filters = serde_json::json!({ "label": { format!("{NAMESPACE}={stack}"): true } });
    filters.to_string()
}

fn stack_services(client: &Client, stack: &str) -> anyhow::Result<Vec<Service>> {
    client.get(&path("/services", &[("filters", &filters_query(stack))]))
}

/// Docker's `stack deploy`: everything read and checked first (the files,
/// the external networks), then the stack's networks made, its services
/// created or updated (an unchanged one is left as it is), and with
/// `--prune` the services it no longer has removed. When a step fails,
/// what this deploy created is removed again.
fn deploy(client: &Client, stack: &str, files: &[PathBuf], prune: bool) -> anyhow::Result<i32> {
    check_name(stack)?;
    let loaded = compose::load(files, std::env::vars()).map_err(anyhow::Error::msg)?;
    for name in &loaded.unset {
        eprintln!("The {name:?} variable is not set. Defaulting to a blank string.");
    }
    if !loaded.ignored.is_empty() {
        let names: Vec<&str> = loaded.ignored.iter().map(String::as_str).collect();
        eprintln!("Ignoring unsupported options: {}", names.join(", "));
    }
    let dot_env = std::fs::read_to_string(loaded.dir.join(".env")).ok();
    let vars = compose::Vars::new(std::env::vars(), dot_env.as_deref());
    let plan =
        convert::plan(stack, &loaded.compose, &loaded.dir, &vars).map_err(anyhow::Error::msg)?;
    for name in &plan.external {
        if client
            .get::<serde_json::Value>(&format!("/networks/{}", segment(name)))
            .is_err()
        {
            anyhow::bail!(
                "network {name:?} is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed"
            );
        }
    }
    let mut made = Made::default();
    match apply(client, stack, plan, prune, &mut made) {
        Ok(()) => Ok(0),
        Err(e) => {
            made.undo(client);
            Err(e)
        }
    }
}

/// What one deploy created, removed again if it fails.
#[derive(Default)]
struct Made {
    networks: Vec<String>,
    services: Vec<String>,
}

impl Made {
    fn undo(&self, client: &Client) {
        for id in self.services.iter().rev() {
            let _ = client.delete(&format!("/services/{}", segment(id)));
        }
        for id in self.networks.iter().rev() {
            let _ = client.delete(&format!("/networks/{}", segment(id)));
        }
    }
}

fn apply(
    client: &Client,
    stack: &str,
    plan: convert::Plan,
    prune: bool,
    made: &mut Made,
) -> anyhow::Result<()> {
    let existing: Vec<serde_json::Value> =
        client.get(&path("/networks", &[("filters", &filters_query(stack))]))?;
    let have: Vec<&str> = existing.iter().filter_map(|n| n["Name"].as_str()).collect();
    for network in plan.networks {
        if have.contains(&network.name.as_str()) {
            continue;
        }
        println!("Creating network {}", network.name);
        let created: NetworkCreateResponse = client.post("/networks/create", &network)?;
        made.networks.push(created.id);
    }
    let current: HashMap<String, Service> = stack_services(client, stack)?
        .into_iter()
        .filter_map(|s| Some((s.spec.as_ref()?.name.clone()?, s)))
        .collect();
    let mut wanted = Vec::new();
    for mut spec in plan.services {
        let name = spec.name.clone().unwrap_or_default();
        super::service::networks::resolve(client, &mut spec)?;
        match current.get(&name) {
            Some(service) => {
                let id = service.id.clone().unwrap_or_default();
                let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
                println!("Updating service {name} (id: {id})");
                let query = version.to_string();
                let _: serde_json::Value = client
                    .post(
                        &path(
                            &format!("/services/{}/update", segment(&id)),
                            &[("version", &query)],
                        ),
                        &spec,
                    )
                    .map_err(|e| failed("update", &name, &e))?;
            }
            None => {
                println!("Creating service {name}");
                let created: ServiceCreateResponse = client
                    .post("/services/create", &spec)
                    .map_err(|e| failed("create", &name, &e))?;
                made.services.push(created.id.unwrap_or_default());
            }
        }
        wanted.push(name);
    }
    if prune {
        for (name, service) in &current {
            if !wanted.contains(name) {
                println!("Removing service {name}");
                client.delete(&format!(
                    "/services/{}",
                    segment(service.id.as_deref().unwrap_or(name))
                ))?;
            }
        }
    }
    Ok(())
}

/// Docker's words for a service the daemon refused, naming it.
fn failed(what: &str, service: &str, err: &anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "failed to {what} service {service}: {}",
        super::error_sentence(err)
    )
}

/// `stack ls`: each stack with its number of services, by name.
fn ls(client: &Client, format: Option<&str>) -> anyhow::Result<i32> {
    let services: Vec<Service> = client.get(&path(
        "/services",
        &[(
            "filters",
            &serde_json::json!({ "label": { NAMESPACE: true } }).to_string(),
        )],
    ))?;
    let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
    for s in &services {
        if let Some(name) = s
            .spec
            .as_ref()
            .and_then(|s| s.labels.as_ref())
            .and_then(|l| l.get(NAMESPACE))
        {
            *stacks.entry(name.clone()).or_default() += 1;
        }
    }
    let rows: Vec<serde_json::Value> = stacks
        .iter()
        .map(|(name, n)| {
            serde_json::json!({"Name": name, "Services": n.to_string(), "Orchestrator": "Swarm", "Namespace": ""})
        })
        .collect();
    match format {
        Some(tmpl) => print!(
            "{}",
            super::table::template(tmpl, &rows).map_err(anyhow::Error::msg)?
        ),
        None => {
            let lines: Vec<Vec<String>> = stacks
                .iter()
                .map(|(name, n)| vec![name.clone(), n.to_string(), "Swarm".into()])
                .collect();
            print!(
                "{}",
                super::table::render(&["NAME", "SERVICES", "ORCHESTRATOR"], &lines)
            );
        }
    }
    Ok(0)
}

/// How long `stack rm` waits for a stack's tasks to stop.
const RM_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits until no task of the services `ids` (removed) is still running or
/// stopping, as Docker 23+'s `stack rm` waits; an error after `RM_WAIT`.
fn wait_for_tasks(client: &Client, stack: &str, ids: &[String]) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + RM_WAIT;
    let by_name = serde_json::json!({ "name": { format!("{stack}_"): true } }).to_string();
    loop {
        let tasks: Vec<crate::api::models::Task> =
            client.get(&path("/tasks", &[("filters", &by_name)]))?;
        let stopping = tasks
            .iter()
            .filter(|t| t.service_id.as_ref().is_some_and(|s| ids.contains(s)))
            .filter(|t| {
                let state = t.status.as_ref().and_then(|s| s.state);
                !matches!(
                    state,
                    Some(
                        TaskState::COMPLETE
                            | TaskState::SHUTDOWN
                            | TaskState::FAILED
                            | TaskState::REJECTED
                            | TaskState::ORPHANED
                            | TaskState::REMOVE
                    )
                )
            })
            .count();
        if stopping == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{stopping} task(s) of stack {stack} still stopping after {} s; `swarmnet stack ps {stack}` shows them",
                RM_WAIT.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `stack rm`: each stack's services, then (once their tasks have stopped,
/// as Docker 23+ waits, unless `--detach`) the networks it made, by label;
/// a stack with nothing is said so, and the others are still removed.
fn rm(client: &Client, stacks: &[String], detach: bool) -> anyhow::Result<i32> {
    let mut code = 0;
    for stack in stacks {
        check_name(stack)?;
        let services = stack_services(client, stack)?;
        let networks: Vec<serde_json::Value> =
            client.get(&path("/networks", &[("filters", &filters_query(stack))]))?;
        if services.is_empty() && networks.is_empty() {
            eprintln!("Nothing found in stack: {stack}");
            continue;
        }
        let mut names: Vec<(String, String)> = services
            .iter()
            .map(|s| {
                let name = s
                    .spec
                    .as_ref()
                    .and_then(|s| s.name.clone())
                    .unwrap_or_default();
                (name, s.id.clone().unwrap_or_default())
            })
            .collect();
        names.sort();
        let ids: Vec<String> = names.iter().map(|(_, id)| id.clone()).collect();
        for (name, id) in names {
            println!("Removing service {name}");
            if let Err(e) = client.delete(&format!("/services/{}", segment(&id))) {
                eprintln!("Failed to remove service {id}: {e}");
                code = 1;
            }
        }
        if !detach {
            if let Err(e) = wait_for_tasks(client, stack, &ids) {
                eprintln!("{e}");
                code = 1;
            }
        }
        for network in &networks {
            let name = network["Name"].as_str().unwrap_or_default();
            let id = network["Id"].as_str().unwrap_or(name);
            println!("Removing network {name}");
            if let Err(e) = client.delete(&format!("/networks/{}", segment(id))) {
                eprintln!("Failed to remove network {id}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}
