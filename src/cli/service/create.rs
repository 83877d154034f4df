//! `service create`: its flags turned into the ServiceSpec Docker 20.10's
//! `opts.ToService` sends, networks named by ID, then the progress.

use std::collections::HashMap;

use super::super::client::Client;
use super::common::ServiceFlags;
use super::converge;
use super::{flags, networks, ports};
use crate::api::models::{
    EndpointSpec, Limit, NetworkAttachmentConfig, ResourceObject, ServiceCreateResponse,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecDnsConfig, TaskSpecPlacement, TaskSpecResources,
};

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Service name.
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode (replicated or global).
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Network attachments: a name, or `name=NET,alias=ALIAS...`.
    #[arg(long = "network", value_name = "NETWORK", value_parser = networks::parse_network)]
    pub networks: Vec<NetworkAttachmentConfig>,
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
    /// Container hostname (Docker's placeholders such as {{.Node.Hostname}} allowed).
    #[arg(long)]
    pub hostname: Option<String>,
    #[command(flatten)]
    pub flags: ServiceFlags,
    /// The image (only `host`), then the command and its arguments.
    #[arg(
        value_name = "IMAGE",
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
/// still named as given (see [`networks::resolve`]).
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
        .map(|p| ports::parse_port(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?
        .concat();
    let networks = args.networks.clone();
    let mut spec = ServiceSpec {
        name: args.name.clone(),
        labels: Some(flags::labels(&args.labels)?.into_iter().collect()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image),
                hostname: args.hostname.clone(),
                args: (!cmd_args.is_empty()).then_some(cmd_args),
                env: (!env.is_empty()).then_some(env),
                init: Some(false),
                dns_config: Some(TaskSpecContainerSpecDnsConfig::default()),
                health_check: args.flags.health.to_config()?,
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

/// `service create`: prints the new service's ID, then its progress.
pub fn run(client: &Client, args: CreateArgs) -> anyhow::Result<i32> {
    let mut spec = to_spec(&args)?;
    networks::resolve(client, &mut spec)?;
    let created: ServiceCreateResponse = client.post("/services/create", &spec)?;
    for warning in created.warnings.unwrap_or_default() {
        eprintln!("{warning}");
    }
    let id = created.id.unwrap_or_default();
    println!("{id}");
    if !args.flags.detach {
        converge::wait(client, &id, args.flags.quiet)?;
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
    fn health_flags_go_into_the_container_spec() {
        let args = parse(&[
            "--health-cmd",
            "test -f /tmp/ok-$(hostname)",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "host",
        ]);
        let json = serde_json::to_value(to_spec(&args).unwrap()).unwrap();
        assert_eq!(
            json["TaskTemplate"]["ContainerSpec"]["HealthCheck"],
            serde_json::json!({"Test": ["CMD-SHELL", "test -f /tmp/ok-$(hostname)"],
                "Interval": 1_000_000_000i64, "Retries": 2})
        );
        let plain = serde_json::to_value(to_spec(&parse(&["host"])).unwrap()).unwrap();
        assert!(plain["TaskTemplate"]["ContainerSpec"]
            .get("HealthCheck")
            .is_none());
        let both = parse(&["--no-healthcheck", "--health-cmd", "true", "host"]);
        assert_eq!(
            to_spec(&both).unwrap_err().to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
    }

    #[test]
    fn networks_take_dockers_long_form_with_aliases() {
        let args = parse(&[
            "--network",
            "back",
            "--network",
            "name=app,alias=x,alias=y",
            "host",
        ]);
        let json = serde_json::to_value(to_spec(&args).unwrap()).unwrap();
        assert_eq!(
            json["TaskTemplate"]["Networks"],
            serde_json::json!([{"Target": "back"}, {"Target": "app", "Aliases": ["x", "y"]}])
        );
        let bad = Cli::try_parse_from(["create", "--network", "name=app,colour=red", "host"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("invalid field key colour"), "{bad}");
        let unnamed = Cli::try_parse_from(["create", "--network", "alias=x", "host"])
            .unwrap_err()
            .to_string();
        assert!(
            unnamed.contains("network name/id is not specified"),
            "{unnamed}"
        );
    }

    #[test]
    fn published_ports_take_both_of_dockers_forms() {
        let args = parse(&[
            "-p",
            "8080:3000",
            "-p",
            "8081:3000/udp",
            "--publish",
            "published=5353,target=53,protocol=udp,mode=host",
            "-p",
            "3001",
            "host",
        ]);
        let json = serde_json::to_value(to_spec(&args).unwrap()).unwrap();
        assert_eq!(
            json["EndpointSpec"],
            serde_json::json!({"Mode": "vip", "Ports": [
                {"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"},
                {"Protocol": "udp", "TargetPort": 3000, "PublishedPort": 8081, "PublishMode": "ingress"},
                {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
                {"Protocol": "tcp", "TargetPort": 3001, "PublishMode": "ingress"}
            ]})
        );
        let err = to_spec(&parse(&["-p", "8080:3000/icmp", "host"])).unwrap_err();
        assert_eq!(err.to_string(), "Invalid proto: icmp");
        let dnsrr = parse(&["--endpoint-mode", "dnsrr", "-p", "8080:3000", "host"]);
        assert!(
            to_spec(&dnsrr).is_ok(),
            "as Docker's CLI: the daemon refuses dnsrr with an ingress port"
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
