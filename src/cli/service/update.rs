//! `service update`: the service's spec read back, edited as Docker 20.10's
//! `updateService` edits it, and posted at the version it was read at.

use super::super::client::Client;
use super::common::ServiceFlags;
use super::converge;
use super::flags::{self, env_key};
use super::{networks, ports};
use crate::api::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    NetworkAttachmentConfig, ServiceSpec,
};

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Service image tag.
    #[arg(long)]
    pub image: Option<String>,
    /// Service command args.
    #[arg(long, value_name = "COMMAND")]
    pub args: Option<String>,
    /// Force update even if no changes require it.
    #[arg(long)]
    pub force: bool,
    /// Add or update an environment variable.
    #[arg(long = "env-add", value_name = "KEY=VALUE")]
    pub env_add: Vec<String>,
    /// Remove an environment variable.
    #[arg(long = "env-rm", value_name = "KEY")]
    pub env_rm: Vec<String>,
    /// Add or update a service label.
    #[arg(long = "label-add", value_name = "KEY=VALUE")]
    pub label_add: Vec<String>,
    /// Remove a label by its key.
    #[arg(long = "label-rm", value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Add or update a placement constraint.
    #[arg(long = "constraint-add", value_name = "EXPR")]
    pub constraint_add: Vec<String>,
    /// Remove a constraint.
    #[arg(long = "constraint-rm", value_name = "EXPR")]
    pub constraint_rm: Vec<String>,
    /// Add or update a published port.
    #[arg(long = "publish-add", value_name = "PUBLISHED:TARGET")]
    pub publish_add: Vec<String>,
    /// Remove a published port by its target port (as Docker), or by its
    /// published port when no port has that target: `8080`, `8080/udp`, `target=3000,mode=host`.
    #[arg(long = "publish-rm", value_name = "PORT")]
    pub publish_rm: Vec<String>,
    /// Add a network: a name, or `name=NET,alias=ALIAS...`.
    #[arg(long = "network-add", value_name = "NETWORK", value_parser = networks::parse_network)]
    pub network_add: Vec<NetworkAttachmentConfig>,
    /// Remove a network.
    #[arg(long = "network-rm", value_name = "NETWORK")]
    pub network_rm: Vec<String>,
    #[command(flatten)]
    pub flags: ServiceFlags,
    pub service: String,
}

/// The environment with `--env-rm` keys dropped and `--env-add` entries
/// replacing those of the same key (in place) or appended.
fn edit_env(env: Vec<String>, add: &[String], rm: &[String]) -> anyhow::Result<Vec<String>> {
    let mut env: Vec<String> = env
        .into_iter()
        .filter(|e| !rm.iter().any(|k| k == env_key(e)))
        .collect();
    for value in add {
        let entry = flags::env_entry(value)?;
        let key = env_key(&entry).to_string();
        match env.iter_mut().find(|e| env_key(e) == key) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }
    Ok(env)
}

/// Docker's key for a published port: `8080:3000/tcp/ingress`.
fn port_key(p: &EndpointPortConfig) -> String {
    format!(
        "{}:{}/{}/{}",
        p.published_port.unwrap_or(0),
        p.target_port.unwrap_or(0),
        p.protocol.map(|x| x.to_string()).unwrap_or_default(),
        p.publish_mode.map(|x| x.to_string()).unwrap_or_default()
    )
}

fn protocol(x: &EndpointPortConfig) -> EndpointPortConfigProtocolEnum {
    match x.protocol {
        None | Some(EndpointPortConfigProtocolEnum::EMPTY) => EndpointPortConfigProtocolEnum::TCP,
        Some(other) => other,
    }
}

/// Whether `rm` (a `--publish-rm` value) names port `p`: same target,
/// protocol (none is tcp) and mode (none is ingress), as Docker matches.
fn removes(rm: &EndpointPortConfig, p: &EndpointPortConfig) -> bool {
    let mode = |x: &EndpointPortConfig| match x.publish_mode {
        None | Some(EndpointPortConfigPublishModeEnum::EMPTY) => {
            EndpointPortConfigPublishModeEnum::INGRESS
        }
        Some(other) => other,
    };
    rm.target_port == p.target_port && protocol(rm) == protocol(p) && mode(rm) == mode(p)
}

/// Whether a bare `--publish-rm 8080[/udp]` names port `p` by its published
/// port (and protocol, in either mode): what `-p 8080:3000` gave, so the
/// number the user knows it by. Docker has no such reading; swarmnet falls
/// back on it only when no port has that target.
fn removes_published(rm: &EndpointPortConfig, p: &EndpointPortConfig) -> bool {
    rm.published_port.is_none()
        && p.published_port.is_some()
        && p.published_port == rm.target_port
        && protocol(rm) == protocol(p)
}

/// The published ports as Docker's `updatePorts` leaves them: duplicates
/// and removed ones dropped (see [`removes`], [`removes_published`]), new
/// ones added, sorted by their key.
fn edit_ports(
    current: Vec<EndpointPortConfig>,
    add: &[String],
    rm: &[String],
) -> anyhow::Result<Vec<EndpointPortConfig>> {
    let parse = |values: &[String]| -> anyhow::Result<Vec<EndpointPortConfig>> {
        let parsed: Result<Vec<_>, String> = values.iter().map(|v| ports::parse_port(v)).collect();
        Ok(parsed.map_err(anyhow::Error::msg)?.concat())
    };
    let (add, rm) = (parse(add)?, parse(rm)?);
    let mut existing: Vec<EndpointPortConfig> = Vec::new();
    for p in current {
        if !existing.iter().any(|e| port_key(e) == port_key(&p)) {
            existing.push(p);
        }
    }
    let by_target = |r: &EndpointPortConfig| existing.iter().any(|p| removes(r, p));
    let gone = |p: &EndpointPortConfig| {
        rm.iter()
            .any(|r| removes(r, p) || (!by_target(r) && removes_published(r, p)))
    };
    let mut ports: Vec<EndpointPortConfig> =
        existing.iter().filter(|p| !gone(p)).cloned().collect();
    for p in add {
        if !existing.iter().any(|e| port_key(e) == port_key(&p)) {
            ports.push(p);
        }
    }
    ports.sort_by_key(port_key);
    Ok(ports)
}

/// The spec `service update` sends: the service's own with the flags
/// applied in the order Docker's `updateService` applies them.
pub fn edit_spec(mut spec: ServiceSpec, args: &UpdateArgs) -> anyhow::Result<ServiceSpec> {
    if !args.label_add.is_empty() || !args.label_rm.is_empty() {
        let mut labels = spec.labels.take().unwrap_or_default();
        for key in &args.label_rm {
            labels.remove(key);
        }
        labels.extend(flags::labels(&args.label_add)?);
        spec.labels = Some(labels);
    }
    let task = spec.task_template.get_or_insert_with(Default::default);
    let container = task.container_spec.get_or_insert_with(Default::default);
    if let Some(image) = &args.image {
        container.image = Some(image.clone());
    }
    if let Some(words) = &args.args {
        container.args = Some(flags::split_words(words).map_err(anyhow::Error::msg)?);
    }
    if !args.env_add.is_empty() || !args.env_rm.is_empty() {
        let env = container.env.take().unwrap_or_default();
        container.env = Some(edit_env(env, &args.env_add, &args.env_rm)?);
    }
    args.flags.health.edit(container)?;
    if !args.constraint_add.is_empty() || !args.constraint_rm.is_empty() {
        let placement = task.placement.get_or_insert_with(Default::default);
        let mut constraints = placement.constraints.take().unwrap_or_default();
        constraints.extend(args.constraint_add.iter().cloned());
        constraints.retain(|c| !args.constraint_rm.contains(c));
        constraints.sort();
        placement.constraints = Some(constraints);
    }
    if args.force {
        task.force_update = Some(task.force_update.unwrap_or(0) + 1);
    }
    if let Some(replicas) = args.flags.replicas {
        match spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
            Some(replicated) => replicated.replicas = Some(replicas as i64),
            None => anyhow::bail!("replicas can only be used with replicated mode"),
        }
    }
    if !args.publish_add.is_empty() || !args.publish_rm.is_empty() {
        let endpoint = spec.endpoint_spec.get_or_insert_with(Default::default);
        let ports = endpoint.ports.take().unwrap_or_default();
        endpoint.ports = Some(edit_ports(ports, &args.publish_add, &args.publish_rm)?);
    }
    args.flags.apply(&mut spec)?;
    Ok(spec)
}

/// `service update`: prints the service as named, then its progress. The
/// networks added and removed are looked up first, as Docker's
/// `updateNetworks` does, so an unknown one changes nothing.
pub fn run(client: &Client, args: UpdateArgs) -> anyhow::Result<i32> {
    let service = super::get(client, &args.service)?;
    let mut spec = edit_spec(service.spec.clone().unwrap_or_default(), &args)?;
    if !args.network_add.is_empty() || !args.network_rm.is_empty() {
        let change = networks::resolve_edit(client, &args.network_add, &args.network_rm)?;
        networks::edit(&mut spec, &change)?;
    }
    super::post_update(client, &service, &spec, false)?;
    println!("{}", args.service);
    if !args.flags.detach {
        converge::wait(client, &args.service, args.flags.quiet)?;
    }
    Ok(0)
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
