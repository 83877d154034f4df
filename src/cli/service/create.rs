//! `service create`: its flags turned into the ServiceSpec Docker 20.10's
//! `opts.ToService` sends, and the flags `create` and `update` share (with
//! the edits both make to a spec's restart policy and update configs).

use std::collections::HashMap;

use super::super::client::{segment, Client};
use super::flags::{self, parse_duration, parse_replicas};
use super::progress;
use crate::api::models::{
    EndpointSpec, Limit, NetworkAttachmentConfig, ResourceObject, ServiceCreateResponse,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecUpdateConfig, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecDnsConfig,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use crate::api::NetworkDoc;

/// Swarm's default restart delay and update monitor period (5 s).
const FIVE_SECONDS: i64 = 5_000_000_000;

/// The flags `service create` and `service update` share (Docker's `addServiceFlags`).
#[derive(Debug, Default, clap::Args)]
pub struct ServiceFlags {
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Number of tasks.
    #[arg(long, value_parser = parse_replicas, allow_hyphen_values = true)]
    pub replicas: Option<u64>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_grace_period: Option<i64>,
    /// Endpoint mode (vip or dnsrr).
    #[arg(long, value_parser = ["vip", "dnsrr"])]
    pub endpoint_mode: Option<String>,
    /// Restart when condition is met ("none", "on-failure", "any").
    #[arg(long, value_parser = ["none", "on-failure", "any"])]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub restart_delay: Option<i64>,
    /// Maximum number of restarts before giving up.
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub restart_window: Option<i64>,
    /// Maximum number of tasks updated simultaneously (0 to update all at once).
    #[arg(long)]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub update_delay: Option<i64>,
    /// Action on update failure ("pause", "continue", "rollback").
    #[arg(long, value_parser = ["pause", "continue", "rollback"])]
    pub update_failure_action: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub update_monitor: Option<i64>,
    /// Failure rate to tolerate during an update.
    #[arg(long)]
    pub update_max_failure_ratio: Option<f64>,
    /// Update order ("start-first", "stop-first").
    #[arg(long, value_parser = ["start-first", "stop-first"])]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once).
    #[arg(long)]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub rollback_delay: Option<i64>,
    /// Action on rollback failure ("pause", "continue").
    #[arg(long, value_parser = ["pause", "continue"])]
    pub rollback_failure_action: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub rollback_monitor: Option<i64>,
    /// Failure rate to tolerate during a rollback.
    #[arg(long)]
    pub rollback_max_failure_ratio: Option<f64>,
    /// Rollback order ("start-first", "stop-first").
    #[arg(long, value_parser = ["start-first", "stop-first"])]
    pub rollback_order: Option<String>,
}

/// What the `--update-*` (or `--rollback-*`) flags set.
struct ConfigEdit<'a> {
    parallelism: Option<u64>,
    delay: Option<i64>,
    failure_action: Option<&'a str>,
    monitor: Option<i64>,
    max_failure_ratio: Option<f64>,
    order: Option<&'a str>,
}

/// An update config with the flags that were given applied, starting from
/// swarm's defaults when there was none (Docker's `updateConfigFromDefaults`);
/// untouched without such flags.
macro_rules! edit_config {
    ($name:ident, $config:ident) => {
        fn $name(current: Option<$config>, edit: &ConfigEdit) -> anyhow::Result<Option<$config>> {
            let given = edit.parallelism.is_some()
                || edit.delay.is_some()
                || edit.failure_action.is_some()
                || edit.monitor.is_some()
                || edit.max_failure_ratio.is_some()
                || edit.order.is_some();
            if !given {
                return Ok(current);
            }
            let mut c = current.unwrap_or_else(|| $config {
                parallelism: Some(1),
                failure_action: "pause".parse().ok(),
                monitor: Some(FIVE_SECONDS),
                max_failure_ratio: Some(0.0),
                order: "stop-first".parse().ok(),
                ..Default::default()
            });
            c.parallelism = edit.parallelism.map(|p| p as i64).or(c.parallelism);
            c.delay = edit.delay.or(c.delay);
            c.monitor = edit.monitor.or(c.monitor);
            c.max_failure_ratio = edit.max_failure_ratio.or(c.max_failure_ratio);
            if let Some(action) = edit.failure_action {
                c.failure_action = Some(action.parse().map_err(anyhow::Error::msg)?);
            }
            if let Some(order) = edit.order {
                c.order = Some(order.parse().map_err(anyhow::Error::msg)?);
            }
            Ok(Some(c))
        }
    };
}

edit_config!(edit_update_config, ServiceSpecUpdateConfig);
edit_config!(edit_rollback_config, ServiceSpecRollbackConfig);

impl ServiceFlags {
    /// Applies the shared flags to a spec, as both `create` and Docker's
    /// `updateService` do: restart policy, update and rollback configs,
    /// entrypoint, stop grace period and endpoint mode.
    pub fn apply(&self, spec: &mut ServiceSpec) -> anyhow::Result<()> {
        let task = spec.task_template.get_or_insert_with(Default::default);
        let container = task.container_spec.get_or_insert_with(Default::default);
        if let Some(entrypoint) = &self.entrypoint {
            container.command = Some(flags::split_words(entrypoint).map_err(anyhow::Error::msg)?);
        }
        container.stop_grace_period = self.stop_grace_period.or(container.stop_grace_period);
        task.restart_policy = self.restart(task.restart_policy.take())?;
        let update = ConfigEdit {
            parallelism: self.update_parallelism,
            delay: self.update_delay,
            failure_action: self.update_failure_action.as_deref(),
            monitor: self.update_monitor,
            max_failure_ratio: self.update_max_failure_ratio,
            order: self.update_order.as_deref(),
        };
        spec.update_config = edit_update_config(spec.update_config.take(), &update)?;
        let rollback = ConfigEdit {
            parallelism: self.rollback_parallelism,
            delay: self.rollback_delay,
            failure_action: self.rollback_failure_action.as_deref(),
            monitor: self.rollback_monitor,
            max_failure_ratio: self.rollback_max_failure_ratio,
            order: self.rollback_order.as_deref(),
        };
        spec.rollback_config = edit_rollback_config(spec.rollback_config.take(), &rollback)?;
        if let Some(mode) = &self.endpoint_mode {
            let endpoint = spec.endpoint_spec.get_or_insert_with(Default::default);
            endpoint.mode = Some(mode.parse().map_err(anyhow::Error::msg)?);
        }
        Ok(())
    }

    /// The restart policy with the `--restart-*` flags applied, from swarm's
    /// default (any, 5 s, no limit) when there was none.
    fn restart(
        &self,
        current: Option<TaskSpecRestartPolicy>,
    ) -> anyhow::Result<Option<TaskSpecRestartPolicy>> {
        let given = self.restart_condition.is_some()
            || self.restart_delay.is_some()
            || self.restart_max_attempts.is_some()
            || self.restart_window.is_some();
        if !given {
            return Ok(current);
        }
        let mut policy = current.unwrap_or(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
            delay: Some(FIVE_SECONDS),
            max_attempts: Some(0),
            window: None,
        });
        if let Some(condition) = &self.restart_condition {
            policy.condition = Some(condition.parse().map_err(anyhow::Error::msg)?);
        }
        policy.delay = self.restart_delay.or(policy.delay);
        policy.max_attempts = self
            .restart_max_attempts
            .map(|n| n as i64)
            .or(policy.max_attempts);
        policy.window = self.restart_window.or(policy.window);
        Ok(Some(policy))
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Service name.
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode (replicated or global).
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Network attachments.
    #[arg(long = "network", value_name = "NETWORK")]
    pub networks: Vec<String>,
    /// Placement constraints.
    #[arg(long = "constraint", value_name = "EXPR")]
    pub constraints: Vec<String>,
    /// Set environment variables.
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Service labels.
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Publish a port as a node port.
    #[arg(short, long, value_name = "PUBLISHED:TARGET")]
    pub publish: Vec<String>,
    #[command(flatten)]
    pub flags: ServiceFlags,
    /// The image (only `host`), then the command and its arguments.
    #[arg(
        value_name = "IMAGE] [COMMAND] [ARG",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// The environment as Docker's `makeEnv` builds it: in order, a later
/// value of a key replacing an earlier one.
fn environment(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut env: Vec<String> = Vec::new();
    for value in values {
        let entry = flags::env_entry(value)?;
        let key = flags::env_key(&entry).to_string();
        env.retain(|e| e == &entry || !e.starts_with(&format!("{key}=")));
        env.push(entry);
    }
    Ok(env)
}

/// The spec `service create` sends, shaped as Docker 20.10's: networks are
/// still named as given (see [`resolve_networks`]).
pub fn to_spec(args: &CreateArgs) -> anyhow::Result<ServiceSpec> {
    let mode = match args.mode.as_str() {
        "replicated" => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: args.flags.replicas.map(|n| n as i64),
            }),
            ..Default::default()
        },
        "global" if args.flags.replicas.is_some() => {
            anyhow::bail!("replicas can only be used with replicated or replicated-job mode")
        }
        "global" => ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        },
        other => anyhow::bail!("Unknown mode: {other}, only replicated and global supported"),
    };
    let mut rest = args.args.iter().cloned();
    let image = rest.next().unwrap_or_default();
    let cmd_args: Vec<String> = rest.collect();
    let env = environment(&args.env)?;
    let ports = args
        .publish
        .iter()
        .map(|p| flags::parse_port(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?
        .concat();
    let networks: Vec<NetworkAttachmentConfig> = args
        .networks
        .iter()
        .map(|n| NetworkAttachmentConfig {
            target: Some(n.clone()),
            ..Default::default()
        })
        .collect();
    let mut spec = ServiceSpec {
        name: args.name.clone(),
        labels: Some(flags::labels(&args.labels)?.into_iter().collect()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image),
                args: (!cmd_args.is_empty()).then_some(cmd_args),
                env: (!env.is_empty()).then_some(env),
                init: Some(false),
                dns_config: Some(TaskSpecContainerSpecDnsConfig::default()),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit::default()),
                reservations: Some(ResourceObject::default()),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: (!args.constraints.is_empty()).then(|| args.constraints.clone()),
                ..Default::default()
            }),
            force_update: Some(0),
            networks: (!networks.is_empty()).then_some(networks),
            ..Default::default()
        }),
        mode: Some(mode),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(crate::api::models::EndpointSpecModeEnum::VIP),
            ports: (!ports.is_empty()).then_some(ports),
        }),
        ..Default::default()
    };
    args.flags.apply(&mut spec)?;
    Ok(spec)
}

/// Names the spec's networks by ID, sorted, as Docker's CLI sends them.
fn resolve_networks(client: &Client, spec: &mut ServiceSpec) -> anyhow::Result<()> {
    let networks = spec
        .task_template
        .as_mut()
        .and_then(|t| t.networks.as_mut());
    for network in networks.into_iter().flatten() {
        let name = network.target.clone().unwrap_or_default();
        let doc: NetworkDoc = client
            .get(&format!("/networks/{}", segment(&name)))
            .map_err(|e| super::not_found(e, "network", &name))?;
        network.target = doc.network.id;
    }
    if let Some(networks) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.networks.as_mut())
    {
        networks.sort_by(|a, b| a.target.cmp(&b.target));
    }
    Ok(())
}

/// `service create`: prints the new service's ID, then its progress.
pub fn run(client: &Client, args: CreateArgs) -> anyhow::Result<i32> {
    let mut spec = to_spec(&args)?;
    resolve_networks(client, &mut spec)?;
    let created: ServiceCreateResponse = client.post("/services/create", &spec)?;
    for warning in created.warnings.unwrap_or_default() {
        eprintln!("{warning}");
    }
    let id = created.id.unwrap_or_default();
    println!("{id}");
    if !args.flags.detach {
        progress::wait(client, &id, args.flags.quiet)?;
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
        create: CreateArgs,
    }

    fn parse(argv: &[&str]) -> CreateArgs {
        Cli::try_parse_from(std::iter::once("create").chain(argv.iter().copied()))
            .unwrap()
            .create
    }

    #[test]
    fn flags_become_dockers_service_spec() {
        let args = parse(&[
            "--name",
            "web",
            "--replicas",
            "3",
            "-p",
            "8080:3000",
            "--network",
            "appnet",
            "--constraint",
            "node.role==worker",
            "-e",
            "A=1",
            "-e",
            "A=2",
            "-l",
            "tier=front",
            "host",
            "swarmnet",
            "whoami",
            "--port",
            "3000",
        ]);
        let json = serde_json::to_value(to_spec(&args).unwrap()).unwrap();
        let expected = serde_json::json!({
            "Name": "web",
            "Labels": {"tier": "front"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "host",
                    "Args": ["swarmnet", "whoami", "--port", "3000"],
                    "Env": ["A=2"],
                    "Init": false,
                    "DNSConfig": {}
                },
                "Resources": {"Limits": {}, "Reservations": {}},
                "Placement": {"Constraints": ["node.role==worker"]},
                "ForceUpdate": 0,
                "Networks": [{"Target": "appnet"}]
            },
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {
                "Mode": "vip",
                "Ports": [{"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"}]
            }
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn policies_start_from_swarms_defaults() {
        let args = parse(&[
            "--mode",
            "global",
            "--restart-condition",
            "on-failure",
            "--update-delay",
            "10s",
            "--rollback-order",
            "start-first",
            "--stop-grace-period",
            "1m30s",
            "--endpoint-mode",
            "dnsrr",
            "--entrypoint",
            "sh -c",
            "host",
        ]);
        let json = serde_json::to_value(to_spec(&args).unwrap()).unwrap();
        assert_eq!(json["Mode"], serde_json::json!({"Global": {}}));
        assert_eq!(
            json["TaskTemplate"]["RestartPolicy"],
            serde_json::json!({"Condition": "on-failure", "Delay": 5_000_000_000i64, "MaxAttempts": 0})
        );
        assert_eq!(
            json["UpdateConfig"],
            serde_json::json!({"Parallelism": 1, "Delay": 10_000_000_000i64, "FailureAction": "pause",
                "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0.0, "Order": "stop-first"})
        );
        assert_eq!(json["RollbackConfig"]["Order"], "start-first");
        let container = &json["TaskTemplate"]["ContainerSpec"];
        assert_eq!(container["StopGracePeriod"], 90_000_000_000i64);
        assert_eq!(container["Command"], serde_json::json!(["sh", "-c"]));
        assert!(container.get("Args").is_none());
        assert_eq!(json["EndpointSpec"]["Mode"], "dnsrr");
        let replicas = parse(&["--replicas", "2", "host"]);
        assert_eq!(
            serde_json::to_value(to_spec(&replicas).unwrap()).unwrap()["Mode"],
            serde_json::json!({"Replicated": {"Replicas": 2}})
        );
    }

    #[test]
    fn contradictions_are_refused_before_any_request() {
        let err = to_spec(&parse(&["--mode", "global", "--replicas", "2", "host"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "replicas can only be used with replicated or replicated-job mode"
        );
        let err = to_spec(&parse(&["--mode", "job", "host"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unknown mode: job, only replicated and global supported"
        );
        let no_replicas = to_spec(&parse(&["host"])).unwrap();
        assert_eq!(
            serde_json::to_value(no_replicas.mode).unwrap(),
            serde_json::json!({"Replicated": {}})
        );
        let negative = Cli::try_parse_from(["create", "--replicas", "-1", "host"]).unwrap_err();
        assert!(
            negative.to_string().contains("cannot be negative"),
            "{negative}"
        );
        assert!(
            Cli::try_parse_from(["create", "--name", "web"]).is_err(),
            "IMAGE is required"
        );
        assert!(to_spec(&parse(&["-p", "x:y", "host"])).is_err());
    }
}
