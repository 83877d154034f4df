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
    /// Remove a published port by its target port.
    #[arg(long = "publish-rm", value_name = "TARGET")]
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

/// Whether `rm` (a `--publish-rm` value) names port `p`: same target,
/// protocol (none is tcp) and mode (none is ingress), as Docker matches.
fn removes(rm: &EndpointPortConfig, p: &EndpointPortConfig) -> bool {
    let protocol = |x: &EndpointPortConfig| match x.protocol {
        None | Some(EndpointPortConfigProtocolEnum::EMPTY) => EndpointPortConfigProtocolEnum::TCP,
        Some(other) => other,
    };
    let mode = |x: &EndpointPortConfig| match x.publish_mode {
        None | Some(EndpointPortConfigPublishModeEnum::EMPTY) => {
            EndpointPortConfigPublishModeEnum::INGRESS
        }
        Some(other) => other,
    };
    rm.target_port == p.target_port && protocol(rm) == protocol(p) && mode(rm) == mode(p)
}

/// The published ports as Docker's `updatePorts` leaves them: duplicates
/// and removed ones dropped, new ones added, sorted by their key.
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
    let mut ports: Vec<EndpointPortConfig> = existing
        .iter()
        .filter(|p| !rm.iter().any(|r| removes(r, p)))
        .cloned()
        .collect();
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
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        update: UpdateArgs,
    }

    fn edit(spec: serde_json::Value, argv: &[&str]) -> anyhow::Result<serde_json::Value> {
        let args = Cli::try_parse_from(std::iter::once("update").chain(argv.iter().copied()))
            .unwrap()
            .update;
        let spec: ServiceSpec = serde_json::from_value(spec).unwrap();
        Ok(serde_json::to_value(edit_spec(spec, &args)?).unwrap())
    }

    fn web() -> serde_json::Value {
        serde_json::json!({
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "host", "Args": ["sleep", "1"], "Env": ["A=1", "B=2"]},
                "Placement": {"Constraints": ["node.role==worker", "node.hostname!=vm3"]},
                "ForceUpdate": 2
            },
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"}]}
        })
    }

    #[test]
    fn constraints_are_added_removed_and_sorted() {
        let out = edit(
            web(),
            &[
                "--constraint-add",
                "node.hostname!=vm2",
                "--constraint-rm",
                "node.role==worker",
                "web",
            ],
        )
        .unwrap();
        assert_eq!(
            out["TaskTemplate"]["Placement"]["Constraints"],
            serde_json::json!(["node.hostname!=vm2", "node.hostname!=vm3"])
        );
    }

    #[test]
    fn env_args_image_and_force() {
        let out = edit(
            web(),
            &[
                "--env-add",
                "B=3",
                "--env-add",
                "C=4",
                "--env-rm",
                "A",
                "--args",
                "whoami --port '3 000'",
                "--image",
                "host:latest",
                "--force",
                "web",
            ],
        )
        .unwrap();
        let container = &out["TaskTemplate"]["ContainerSpec"];
        assert_eq!(container["Env"], serde_json::json!(["B=3", "C=4"]));
        assert_eq!(
            container["Args"],
            serde_json::json!(["whoami", "--port", "3 000"])
        );
        assert_eq!(container["Image"], "host:latest");
        assert_eq!(out["TaskTemplate"]["ForceUpdate"], 3);
        let untouched = edit(web(), &["web"]).unwrap();
        assert_eq!(untouched, web(), "no flags, no change");
    }

    #[test]
    fn replicas_configs_and_ports() {
        let out = edit(
            web(),
            &[
                "--replicas",
                "5",
                "--update-parallelism",
                "2",
                "--update-failure-action",
                "rollback",
                "--publish-rm",
                "3000",
                "--publish-add",
                "9090:80",
                "--restart-max-attempts",
                "3",
                "web",
            ],
        )
        .unwrap();
        assert_eq!(out["Mode"]["Replicated"]["Replicas"], 5);
        assert_eq!(out["UpdateConfig"]["Parallelism"], 2);
        assert_eq!(out["UpdateConfig"]["FailureAction"], "rollback");
        assert_eq!(out["UpdateConfig"]["Order"], "stop-first");
        assert!(out.get("RollbackConfig").is_none());
        assert_eq!(
            out["EndpointSpec"]["Ports"],
            serde_json::json!([{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 9090, "PublishMode": "ingress"}])
        );
        assert_eq!(out["TaskTemplate"]["RestartPolicy"]["MaxAttempts"], 3);
        let mut global = web();
        global["Mode"] = serde_json::json!({"Global": {}});
        let err = edit(global, &["--replicas", "2", "web"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "replicas can only be used with replicated mode"
        );
    }

    #[test]
    fn network_flags_take_dockers_long_form() {
        let args = Cli::try_parse_from([
            "update",
            "--network-add",
            "name=app,alias=api",
            "--network-rm",
            "old",
            "web",
        ])
        .unwrap()
        .update;
        assert_eq!(
            serde_json::to_value(&args.network_add).unwrap(),
            serde_json::json!([{"Target": "app", "Aliases": ["api"]}])
        );
        assert_eq!(args.network_rm, ["old"]);
        let bad = Cli::try_parse_from(["update", "--network-add", "name=app,ip=10.0.0.9", "web"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("invalid field key ip"), "{bad}");
    }

    #[test]
    fn ports_keep_one_of_each_and_sort() {
        let same = |p: &str| ports::parse_port(p).unwrap();
        let current = [same("8080:3000"), same("8080:3000"), same("7070:70")].concat();
        let out = edit_ports(current, &["8080:3000".into()], &[]).unwrap();
        let keys: Vec<String> = out.iter().map(port_key).collect();
        assert_eq!(keys, ["7070:70/tcp/ingress", "8080:3000/tcp/ingress"]);
    }
}
