//! A compose file turned into what `docker stack deploy` sends: the stack's
//! networks (`STACK_NAME`, overlay, labelled with the namespace; a
//! `STACK_default` when a service names none), the external ones that must
//! exist, and each service's ServiceSpec (`STACK_NAME`, labelled, on its
//! networks with its short name as an alias). A task runs its `entrypoint`
//! and `command` from the host's filesystem (the image `host`): a service
//! with another image and no command has nothing to run and is refused.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::compose::{
    Compose, DeployDef, HealthDef, NetworkDef, Pairs, PortDef, RolloutDef, ServiceDef, Vars,
};
use crate::api::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, HealthConfig, Ipam,
    IpamConfig, NetworkAttachmentConfig, NetworkCreateRequest, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
};
use crate::cli::service::common::ServiceFlags;
use crate::cli::service::flags::parse_duration;
use crate::cli::service::ports::parse_port;
use crate::model::HOST_IMAGE;

/// The label that marks a stack's objects with its name.
pub const NAMESPACE: &str = "com.docker.stack.namespace";
/// The label Docker puts on a stack's service: the image it was given.
const IMAGE_LABEL: &str = "com.docker.stack.image";

/// What a deploy makes sure of.
#[derive(Debug, Default)]
pub struct Plan {
    /// The stack's own networks, created when missing.
    pub networks: Vec<NetworkCreateRequest>,
    /// Networks the file says exist already.
    pub external: Vec<String>,
    /// Each service's spec, its networks named by their full names.
    pub services: Vec<ServiceSpec>,
}

/// The plan for stack `stack` from `compose`; `dir` is where `env_file`
/// paths start, `vars` gives values to `environment` keys without one.
pub fn plan(stack: &str, compose: &Compose, dir: &Path, vars: &Vars) -> Result<Plan, String> {
    // Every network a service may name, by its name in the file.
    let mut full_names: BTreeMap<String, String> = BTreeMap::new();
    let mut plan = Plan::default();
    let default = NetworkDef::default();
    let uses_default = compose.services.values().any(|s| s.networks.is_none());
    let declared = compose
        .networks
        .iter()
        .map(|(k, v)| (k.clone(), v.as_ref().unwrap_or(&default)))
        .chain(
            (uses_default && !compose.networks.contains_key("default"))
                .then(|| ("default".to_string(), &default)),
        );
    for (key, net) in declared {
        let external = net.external.as_ref().filter(|e| e.external);
        let name = match external {
            Some(e) => e.name.clone().or(net.name.clone()).unwrap_or(key.clone()),
            None => net.name.clone().unwrap_or(format!("{stack}_{key}")),
        };
        full_names.insert(key.clone(), name.clone());
        if external.is_some() {
            plan.external.push(name);
            continue;
        }
        let driver = net.driver.clone().unwrap_or("overlay".into());
        if driver != "overlay" {
            return Err(format!(
                "networks.{key}.driver {driver:?} is not supported: a stack's networks are overlay networks here; leave driver out or say overlay"
            ));
        }
        let subnets: Vec<IpamConfig> = net
            .ipam
            .iter()
            .flat_map(|i| &i.config)
            .filter_map(|c| c.subnet.clone())
            .map(|subnet| IpamConfig {
                subnet: Some(subnet),
                ..Default::default()
            })
            .collect();
        plan.networks.push(NetworkCreateRequest {
            name,
            driver: Some(driver),
            attachable: Some(net.attachable),
            labels: Some(with_namespace(stack, net.labels.as_ref())),
            ipam: (!subnets.is_empty()).then(|| Ipam {
                driver: net.ipam.as_ref().and_then(|i| i.driver.clone()),
                config: Some(subnets),
                options: None,
            }),
            ..Default::default()
        });
    }
    for (name, service) in &compose.services {
        let spec = service_spec(stack, name, service, &full_names, dir, vars)
            .map_err(|e| format!("service {name:?}: {e}"))?;
        plan.services.push(spec);
    }
    Ok(plan)
}

fn service_spec(
    stack: &str,
    name: &str,
    s: &ServiceDef,
    networks: &BTreeMap<String, String>,
    dir: &Path,
    vars: &Vars,
) -> Result<ServiceSpec, String> {
    let image = s.image.clone().unwrap_or(HOST_IMAGE.into());
    if image != HOST_IMAGE && s.command.is_none() && s.entrypoint.is_none() {
        return Err(format!(
            "image {image:?} cannot run here: swarmnet runs each task as a command from the host's filesystem (image \"host\"); give the service a command"
        ));
    }
    let deploy = s.deploy.as_ref();
    let mut service_labels: HashMap<String, String> = deploy
        .and_then(|d| d.labels.as_ref())
        .map(|p| {
            p.0.iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    service_labels.insert(NAMESPACE.into(), stack.into());
    service_labels.insert(IMAGE_LABEL.into(), image);
    let attach = match &s.networks {
        None => vec![("default".to_string(), Vec::new())],
        Some(n) => n.0.clone(),
    };
    let attachments = attach
        .into_iter()
        .map(|(key, aliases)| {
            let target = networks.get(&key).ok_or_else(|| {
                format!("network {key:?} is not declared under networks; declare it there (external: true for one that exists)")
            })?;
            Ok(NetworkAttachmentConfig {
                target: Some(target.clone()),
                aliases: Some(std::iter::once(name.to_string()).chain(aliases).collect()),
                driver_opts: None,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let ports = s
        .ports
        .iter()
        .map(port)
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let env = environment(s, dir, vars)?;
    let mut spec = ServiceSpec {
        name: Some(format!("{stack}_{name}")),
        labels: Some(service_labels),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(HOST_IMAGE.into()),
                command: s.entrypoint.as_ref().map(|w| w.0.clone()),
                args: s.command.as_ref().map(|w| w.0.clone()),
                env: (!env.is_empty()).then_some(env),
                hostname: s.hostname.clone(),
                labels: Some(with_namespace(stack, s.labels.as_ref())),
                health_check: s.healthcheck.as_ref().map(health).transpose()?,
                ..Default::default()
            }),
            placement: deploy
                .and_then(|d| d.placement.as_ref())
                .map(|p| TaskSpecPlacement {
                    constraints: (!p.constraints.is_empty()).then(|| p.constraints.clone()),
                    max_replicas: p.max_replicas_per_node.map(|n| n as i64),
                    ..Default::default()
                }),
            networks: Some(attachments),
            ..Default::default()
        }),
        mode: Some(mode(deploy)?),
        endpoint_spec: Some(EndpointSpec {
            mode: None,
            ports: (!ports.is_empty()).then_some(ports),
        }),
        ..Default::default()
    };
    flags(s, deploy)?
        .apply(&mut spec)
        .map_err(|e| e.to_string())?;
    Ok(spec)
}

/// Labels the file gives, and the stack's namespace (on networks and, as
/// Docker puts it there too, on containers).
fn with_namespace(stack: &str, labels: Option<&Pairs>) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = labels
        .iter()
        .flat_map(|p| &p.0)
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect();
    labels.insert(NAMESPACE.into(), stack.into());
    labels
}

/// A duration as Go writes them (`10s`, `1m30s`), named by its key.
fn duration(key: &str, value: &Option<String>) -> Result<Option<i64>, String> {
    value
        .as_deref()
        .map(|v| parse_duration(v).map_err(|e| format!("{key}: {e}")))
        .transpose()
}

/// The restart, update and rollback settings and the rest `service create`
/// takes as flags, from the file's keys.
fn flags(s: &ServiceDef, deploy: Option<&DeployDef>) -> Result<ServiceFlags, String> {
    let restart = deploy.and_then(|d| d.restart_policy.as_ref());
    let none = RolloutDef::default();
    let update = deploy
        .and_then(|d| d.update_config.as_ref())
        .unwrap_or(&none);
    let rollback = deploy
        .and_then(|d| d.rollback_config.as_ref())
        .unwrap_or(&none);
    let one_of = |key: &str, value: &Option<String>, allowed: &[&str]| match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(format!(
            "{key} must be one of {}, not {v:?}",
            allowed.join(", ")
        )),
        _ => Ok(value.clone()),
    };
    Ok(ServiceFlags {
        detach: true,
        stop_grace_period: duration("stop_grace_period", &s.stop_grace_period)?,
        endpoint_mode: one_of(
            "deploy.endpoint_mode",
            &deploy.and_then(|d| d.endpoint_mode.clone()),
            &["vip", "dnsrr"],
        )?,
        restart_condition: one_of(
            "deploy.restart_policy.condition",
            &restart.and_then(|r| r.condition.clone()),
            &["none", "on-failure", "any"],
        )?,
        restart_delay: duration(
            "deploy.restart_policy.delay",
            &restart.and_then(|r| r.delay.clone()),
        )?,
        restart_max_attempts: restart.and_then(|r| r.max_attempts),
        restart_window: duration(
            "deploy.restart_policy.window",
            &restart.and_then(|r| r.window.clone()),
        )?,
        update_parallelism: update.parallelism,
        update_delay: duration("deploy.update_config.delay", &update.delay)?,
        update_failure_action: one_of(
            "deploy.update_config.failure_action",
            &update.failure_action,
            &["pause", "continue", "rollback"],
        )?,
        update_monitor: duration("deploy.update_config.monitor", &update.monitor)?,
        update_max_failure_ratio: update.max_failure_ratio,
        update_order: one_of(
            "deploy.update_config.order",
            &update.order,
            &["start-first", "stop-first"],
        )?,
        rollback_parallelism: rollback.parallelism,
        rollback_delay: duration("deploy.rollback_config.delay", &rollback.delay)?,
        rollback_failure_action: one_of(
            "deploy.rollback_config.failure_action",
            &rollback.failure_action,
            &["pause", "continue"],
        )?,
        rollback_monitor: duration("deploy.rollback_config.monitor", &rollback.monitor)?,
        rollback_max_failure_ratio: rollback.max_failure_ratio,
        rollback_order: one_of(
            "deploy.rollback_config.order",
            &rollback.order,
            &["start-first", "stop-first"],
        )?,
        ..Default::default()
    })
}

/// Replicated (1 replica unless said) or global.
fn mode(deploy: Option<&DeployDef>) -> Result<ServiceSpecMode, String> {
    let replicas = deploy.and_then(|d| d.replicas);
    match deploy
        .and_then(|d| d.mode.as_deref())
        .unwrap_or("replicated")
    {
        "replicated" => Ok(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas.unwrap_or(1) as i64),
            }),
            ..Default::default()
        }),
        "global" if replicas.is_some() => {
            Err("deploy.replicas can only be used with replicated mode".into())
        }
        "global" => Ok(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }),
        other => Err(format!(
            "deploy.mode must be replicated or global, not {other:?}"
        )),
    }
}

/// The short syntax as `-p` reads it; the long one field by field.
fn port(p: &PortDef) -> Result<Vec<EndpointPortConfig>, String> {
    match p {
        PortDef::Short(text) => parse_port(text).map_err(|e| format!("ports: {text:?}: {e}")),
        PortDef::Long {
            target,
            published,
            protocol,
            mode,
        } => {
            let protocol = protocol.as_deref().unwrap_or("tcp");
            let mode = mode.as_deref().unwrap_or("ingress");
            Ok(vec![EndpointPortConfig {
                name: None,
                protocol: Some(protocol.parse().map_err(|_| {
                    format!("ports: protocol must be tcp, udp or sctp, not {protocol:?}")
                })?),
                target_port: Some(*target as i64),
                published_port: published.map(|p| p as i64),
                publish_mode: Some(match mode {
                    "ingress" => EndpointPortConfigPublishModeEnum::INGRESS,
                    "host" => EndpointPortConfigPublishModeEnum::HOST,
                    other => {
                        return Err(format!(
                            "ports: mode must be ingress or host, not {other:?}"
                        ))
                    }
                }),
            }])
        }
    }
}

/// `env_file`s first (relative to the compose file), then `environment`
/// over them; a key given without a value takes the environment's, or is
/// left out when it has none, as compose does.
fn environment(s: &ServiceDef, dir: &Path, vars: &Vars) -> Result<Vec<String>, String> {
    let mut env: Vec<(String, Option<String>)> = Vec::new();
    for file in s.env_file.iter().flat_map(|p| &p.0) {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("env_file {}: {e}", path.display()))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (l.to_string(), None),
                }),
        );
    }
    env.extend(s.environment.iter().flat_map(|p| p.0.iter().cloned()));
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in env {
        out.retain(|(k, _)| *k != key);
        if let Some(value) = value.or_else(|| vars.get(&key).map(str::to_string)) {
            out.push((key, value));
        }
    }
    Ok(out.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn health(h: &HealthDef) -> Result<HealthConfig, String> {
    if h.disable {
        return Ok(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }
    Ok(HealthConfig {
        test: h.test.as_ref().map(|t| t.0.clone()),
        interval: duration("healthcheck.interval", &h.interval)?,
        timeout: duration("healthcheck.timeout", &h.timeout)?,
        retries: h.retries.map(|r| r as i64),
        start_period: duration("healthcheck.start_period", &h.start_period)?,
        start_interval: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compose(v: serde_json::Value) -> Compose {
        super::super::compose::read(v).unwrap().0
    }

    fn planned(v: serde_json::Value) -> Result<Plan, String> {
        let vars = Vars::new([("SECRET".to_string(), "s3".to_string())], None);
        plan("vote", &compose(v), Path::new("."), &vars)
    }

    #[test]
    fn a_stack_becomes_named_labelled_networks_and_services() {
        let plan = planned(json!({
            "services": {
                "front": {"image": "host", "command": "swarmnet whoami --port 3000", "ports": ["8080:3000"],
                          "networks": {"app": {"aliases": ["www"]}}, "environment": ["A=1", "SECRET", "NOPE"]},
                "api": {"command": ["swarmnet", "whoami"], "deploy": {"replicas": 2, "labels": {"tier": "api"},
                        "update_config": {"parallelism": 1, "delay": "2s", "order": "start-first"},
                        "placement": {"constraints": ["node.role==manager"]}}},
                "db": {"command": "sleep 1000", "networks": ["shared"], "deploy": {"mode": "global"}}
            },
            "networks": {"app": {"attachable": true, "ipam": {"config": [{"subnet": "10.50.0.0/24"}]}},
                         "shared": {"external": true}}
        }))
        .unwrap();
        let names: Vec<_> = plan.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["vote_app", "vote_default"],
            "default: api names no network"
        );
        assert_eq!(plan.external, ["shared"]);
        let app = serde_json::to_value(&plan.networks[0]).unwrap();
        assert_eq!(app["Driver"], "overlay");
        assert_eq!(app["Attachable"], true);
        assert_eq!(app["Labels"][NAMESPACE], "vote");
        assert_eq!(app["IPAM"]["Config"][0]["Subnet"], "10.50.0.0/24");

        let specs: BTreeMap<String, serde_json::Value> = plan
            .services
            .iter()
            .map(|s| (s.name.clone().unwrap(), serde_json::to_value(s).unwrap()))
            .collect();
        let front = &specs["vote_front"];
        assert_eq!(front["Labels"][NAMESPACE], "vote");
        assert_eq!(
            front["TaskTemplate"]["ContainerSpec"]["Labels"],
            json!({NAMESPACE: "vote"})
        );
        assert_eq!(front["Labels"][IMAGE_LABEL], "host");
        assert_eq!(
            front["TaskTemplate"]["ContainerSpec"]["Args"],
            json!(["swarmnet", "whoami", "--port", "3000"])
        );
        assert_eq!(
            front["TaskTemplate"]["ContainerSpec"]["Env"],
            json!(["A=1", "SECRET=s3"]),
            "a key without a value takes the environment's, or is left out"
        );
        assert_eq!(
            front["TaskTemplate"]["Networks"],
            json!([{"Target": "vote_app", "Aliases": ["front", "www"]}])
        );
        assert_eq!(
            front["EndpointSpec"]["Ports"],
            json!([{"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"}])
        );
        let api = &specs["vote_api"];
        assert_eq!(api["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(api["Labels"]["tier"], "api");
        assert_eq!(api["UpdateConfig"]["Parallelism"], 1);
        assert_eq!(api["UpdateConfig"]["Delay"], 2_000_000_000i64);
        assert_eq!(api["UpdateConfig"]["Order"], "start-first");
        assert_eq!(
            api["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.role==manager"])
        );
        assert_eq!(api["TaskTemplate"]["Networks"][0]["Target"], "vote_default");
        assert_eq!(specs["vote_db"]["Mode"], json!({"Global": {}}));
    }

    #[test]
    fn what_cannot_run_or_is_not_declared_is_refused_naming_the_service() {
        let err = |v| planned(v).unwrap_err();
        assert_eq!(
            err(json!({"services": {"web": {"image": "nginx"}}})),
            "service \"web\": image \"nginx\" cannot run here: swarmnet runs each task as a command from the host's filesystem (image \"host\"); give the service a command"
        );
        assert_eq!(
            err(json!({"services": {"web": {"command": "true", "networks": ["nope"]}}})),
            "service \"web\": network \"nope\" is not declared under networks; declare it there (external: true for one that exists)"
        );
        assert_eq!(
            err(
                json!({"services": {"web": {"command": "true", "deploy": {"mode": "global", "replicas": 2}}}})
            ),
            "service \"web\": deploy.replicas can only be used with replicated mode"
        );
        assert_eq!(
            err(json!({"services": {"web": {"command": "true", "ports": ["1.2.3.4:80:80"]}}})),
            "service \"web\": ports: \"1.2.3.4:80:80\": hostip is not supported"
        );
        assert!(err(json!({"services": {"web": {"command": "true", "deploy": {"update_config": {"delay": "soon"}}}}}))
            .starts_with("service \"web\": deploy.update_config.delay: "));
        assert_eq!(
            err(json!({"services": {}, "networks": {"b": {"driver": "bridge"}}})),
            "networks.b.driver \"bridge\" is not supported: a stack's networks are overlay networks here; leave driver out or say overlay"
        );
    }
}

#[cfg(test)]
mod corpus_tests {
    use super::super::compose;
    use super::*;

    /// Each stack file of tests/stack-corpus, read and planned.
    fn planned(file: &str) -> (Plan, compose::Loaded) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/stack-corpus")
            .join(file);
        let env = [("SWARMNET".to_string(), "/usr/bin/swarmnet".to_string())];
        let loaded = compose::load(&[path], env.clone()).unwrap();
        let vars = Vars::new(env, None);
        let plan = plan("corpus", &loaded.compose, &loaded.dir, &vars).unwrap();
        (plan, loaded)
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.services
            .iter()
            .filter_map(|s| s.name.clone())
            .collect()
    }

    #[test]
    fn the_voting_app_reads_as_docker_reads_it() {
        let (plan, loaded) = planned("example-voting-app.yml");
        assert_eq!(
            names(&plan),
            [
                "corpus_db",
                "corpus_redis",
                "corpus_result",
                "corpus_visualizer",
                "corpus_vote",
                "corpus_worker"
            ]
        );
        let nets: Vec<&str> = plan.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            nets,
            ["corpus_backend", "corpus_frontend", "corpus_default"]
        );
        assert_eq!(
            loaded
                .ignored
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["depends_on", "volumes"]
        );
        let worker = serde_json::to_value(&plan.services[5]).unwrap();
        assert_eq!(worker["Labels"]["APP"], "VOTING");
        assert_eq!(worker["TaskTemplate"]["RestartPolicy"]["MaxAttempts"], 3);
        assert_eq!(
            worker["TaskTemplate"]["RestartPolicy"]["Window"],
            120_000_000_000i64
        );
        let visualizer = serde_json::to_value(&plan.services[3]).unwrap();
        assert_eq!(
            visualizer["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"],
            90_000_000_000i64
        );
        assert_eq!(
            visualizer["TaskTemplate"]["Networks"][0]["Target"], "corpus_default",
            "a service that names no network is on the stack's default one"
        );
    }

    #[test]
    fn the_traefik_example_reads_with_its_long_ports_and_labels() {
        let (plan, loaded) = planned("traefik-whoami.yml");
        assert_eq!(names(&plan), ["corpus_traefik", "corpus_whoami"]);
        assert_eq!(
            loaded
                .ignored
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["volumes"]
        );
        let traefik = serde_json::to_value(&plan.services[0]).unwrap();
        assert_eq!(traefik["EndpointSpec"]["Ports"][0]["PublishedPort"], 8000);
        let whoami = serde_json::to_value(&plan.services[1]).unwrap();
        assert_eq!(
            whoami["Mode"]["Replicated"]["Replicas"], 3,
            "the default of ${{WHOAMI_REPLICAS:-3}}"
        );
        assert_eq!(
            whoami["Labels"]["traefik.http.routers.whoami.rule"],
            "Host(`whoami.localhost`)"
        );
        assert_eq!(
            whoami["TaskTemplate"]["ContainerSpec"]["Args"],
            serde_json::json!(["/usr/bin/swarmnet", "whoami", "--port", "80"])
        );
    }
}
