//! Containers in Docker's shapes, field for field as dockerd 20.10 answers
//! them (`ContainerSummary`, `ContainerInspectResponse`), and a create body
//! read into what swarmnet can run: the `host` image, a command, networks.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::api::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, EndpointIpamConfig,
    EndpointSettings, Health, HealthStatusEnum, HealthcheckResult, HostConfig, NetworkSettings,
};
use crate::api::services::rfc3339_ms;
use crate::api::{human_duration, rfc3339, HOST_IMAGE};
use crate::daemon::containers::{ContainerView, NetRequest, RunState};
use crate::model::{ApiError, HealthStatus};

/// Docker's time for "never" (a Go zero time).
const NEVER: &str = "0001-01-01T00:00:00Z";
/// The network mode of a container on no network, as Docker names it.
const DEFAULT_NETWORK: &str = "default";

/// The one sentence for any image but `host`.
pub fn no_such_image(image: &str) -> ApiError {
    ApiError::InvalidArgument(format!(
        "image {image:?} is not available: swarmnet has no images and runs commands from the host's filesystem, so use the built-in image host, as in \"docker run host CMD...\""
    ))
}

pub use crate::model::is_host_image;

/// What a create body asks swarmnet to run.
#[derive(Debug, PartialEq)]
pub struct CreateRequest {
    pub cmd: Vec<String>,
    pub networks: Vec<NetRequest>,
}

fn unsupported(what: &str) -> ApiError {
    ApiError::InvalidArgument(format!(
        "{what} is not supported: a swarmnet container is a host command in its own network, mount and UTS namespaces"
    ))
}

/// Reads `POST /containers/create`: the image must be `host`, the command is
/// Entrypoint then Cmd, and the networks are the network mode (eth0) then the
/// other endpoints by name, each with its address and aliases.
pub fn create_request(body: ContainerCreateBody) -> Result<CreateRequest, ApiError> {
    let image = body.image.unwrap_or_default();
    if !is_host_image(&image) {
        return Err(no_such_image(&image));
    }
    let nonempty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let set = |v: &Option<String>| v.as_ref().is_some_and(|v| !v.is_empty());
    if body.tty == Some(true) {
        return Err(unsupported("a TTY (-t)"));
    }
    if body.open_stdin == Some(true) {
        return Err(unsupported("keeping stdin open (-i)"));
    }
    if nonempty(&body.env) {
        return Err(unsupported("setting the environment (-e)"));
    }
    if set(&body.user) {
        return Err(unsupported("running as another user (-u)"));
    }
    if set(&body.working_dir) {
        return Err(unsupported("a working directory (-w)"));
    }
    let host = body.host_config.unwrap_or_default();
    if host.auto_remove == Some(true) {
        return Err(unsupported("removing the container when it exits (--rm)"));
    }
    if host.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(unsupported(
            "publishing a port (-p); publish it with a service instead,",
        ));
    }
    if nonempty(&host.binds) || host.mounts.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(unsupported("mounting a volume (-v, --mount)"));
    }
    let mut cmd = body.entrypoint.unwrap_or_default();
    cmd.extend(body.cmd.unwrap_or_default());
    if cmd.is_empty() {
        return Err(ApiError::InvalidArgument("No command specified".into()));
    }
    let endpoints = body
        .networking_config
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default();
    let networks = network_requests(host, endpoints)?;
    Ok(CreateRequest { cmd, networks })
}

/// The networks of a create body, eth0 (the network mode) first.
fn network_requests(
    host: HostConfig,
    endpoints: HashMap<String, EndpointSettings>,
) -> Result<Vec<NetRequest>, ApiError> {
    let mode = host.network_mode.unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    if !mode.is_empty() {
        names.push(mode.clone());
    }
    let mut rest: Vec<String> = endpoints.keys().filter(|k| **k != mode).cloned().collect();
    rest.sort();
    names.extend(rest);
    let mut networks = Vec::new();
    for name in names {
        let endpoint = endpoints.get(&name).cloned().unwrap_or_default();
        let ip = endpoint_ip(&endpoint)?;
        let aliases: Vec<String> = endpoint
            .aliases
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        if name == "host" || name.starts_with("container:") {
            return Err(unsupported(&format!("network mode {name:?}")));
        }
        if matches!(name.as_str(), DEFAULT_NETWORK | "bridge" | "none") {
            if ip.is_some() {
                return Err(ApiError::InvalidArgument(
                    "user specified IP address is supported on user defined networks only: add --network NAME".into(),
                ));
            }
            if !aliases.is_empty() {
                return Err(ApiError::InvalidArgument(
                    "network-scoped alias is supported only for containers in user defined networks: add --network NAME".into(),
                ));
            }
            continue;
        }
        networks.push(NetRequest {
            network: name,
            ip,
            aliases,
        });
    }
    Ok(networks)
}

/// The IPv4 address an endpoint asks for, if any.
pub fn endpoint_ip(endpoint: &EndpointSettings) -> Result<Option<Ipv4Addr>, ApiError> {
    let asked = endpoint
        .ipam_config
        .as_ref()
        .and_then(|c| c.ipv4_address.clone())
        .filter(|ip| !ip.is_empty());
    asked
        .map(|ip| {
            ip.parse()
                .map_err(|_| ApiError::InvalidArgument(format!("invalid IPv4 address: {ip}")))
        })
        .transpose()
}

/// `ps`'s Status: "Created", "Up 5 seconds", "Up 5 seconds (healthy)",
/// "Exited (0) 3 seconds ago".
pub fn status_line(v: &ContainerView, now: u64) -> String {
    match v.state {
        RunState::Created => "Created".into(),
        RunState::Running => {
            let up = format!("Up {}", human_duration(now.saturating_sub(started(v))));
            match v.health_status() {
                Some(HealthStatus::Starting) => format!("{up} (health: starting)"),
                Some(h) => format!("{up} ({})", h.as_str()),
                None => up,
            }
        }
        RunState::Exited => {
            let code = v.exit_code.unwrap_or(-1);
            match v.finished_at {
                Some(t) => format!(
                    "Exited ({code}) {} ago",
                    human_duration(now.saturating_sub(t))
                ),
                None => format!("Exited ({code})"),
            }
        }
    }
}

/// `State.Health` as Docker shows it (see `ContainerView::health_status`).
fn health(v: &ContainerView) -> Option<Health> {
    let (h, status) = (v.health.as_ref()?, v.health_status()?);
    Some(Health {
        status: Some(match status {
            HealthStatus::Starting => HealthStatusEnum::STARTING,
            HealthStatus::Healthy => HealthStatusEnum::HEALTHY,
            HealthStatus::Unhealthy => HealthStatusEnum::UNHEALTHY,
        }),
        failing_streak: Some(i64::try_from(h.failing_streak).unwrap_or(i64::MAX)),
        log: Some(
            h.log
                .iter()
                .map(|r| HealthcheckResult {
                    start: Some(rfc3339_ms(r.start_ms)),
                    end: Some(rfc3339_ms(r.end_ms)),
                    exit_code: Some(r.exit_code.into()),
                    output: Some(r.output.clone()),
                })
                .collect(),
        ),
    })
}

fn started(v: &ContainerView) -> u64 {
    match v.container.started {
        0 => v.container.created,
        t => t,
    }
}

/// The network mode: the first network, or Docker's "default".
fn network_mode(v: &ContainerView) -> String {
    v.container
        .networks
        .first()
        .map(|a| a.network_name.clone())
        .or_else(|| v.asked.first().map(|n| n.network.clone()))
        .unwrap_or_else(|| DEFAULT_NETWORK.into())
}

/// Each network's endpoint, by network name; a created container's are
/// what it asked for, without addresses yet.
fn endpoints(v: &ContainerView) -> HashMap<String, EndpointSettings> {
    let c = &v.container;
    let dns_names = vec![c.name.clone(), c.id[..12].to_string()];
    let mut map: HashMap<String, EndpointSettings> = c
        .networks
        .iter()
        .map(|a| {
            let e = EndpointSettings {
                aliases: Some(a.aliases.clone()),
                network_id: Some(a.network_id.clone()),
                endpoint_id: Some(a.endpoint_id.clone()),
                gateway: Some(a.gateway.to_string()),
                ip_address: Some(a.ip.to_string()),
                ip_prefix_len: Some(a.prefix_len.into()),
                ipv6_gateway: Some(String::new()),
                global_ipv6_address: Some(String::new()),
                global_ipv6_prefix_len: Some(0),
                mac_address: Some(a.mac.clone()),
                dns_names: Some(dns_names.clone()),
                ..Default::default()
            };
            (a.network_name.clone(), e)
        })
        .collect();
    for n in &v.asked {
        let e = EndpointSettings {
            ipam_config: n.ip.map(|ip| EndpointIpamConfig {
                ipv4_address: Some(ip.to_string()),
                ..Default::default()
            }),
            aliases: Some(n.aliases.clone()),
            ..Default::default()
        };
        map.insert(n.network.clone(), e);
    }
    map
}

fn summary_state(s: RunState) -> ContainerSummaryStateEnum {
    match s {
        RunState::Created => ContainerSummaryStateEnum::CREATED,
        RunState::Running => ContainerSummaryStateEnum::RUNNING,
        RunState::Exited => ContainerSummaryStateEnum::EXITED,
    }
}

/// A container as `GET /containers/json` lists it.
pub fn summary(v: &ContainerView, now: u64) -> ContainerSummary {
    let c = &v.container;
    ContainerSummary {
        id: Some(c.id.clone()),
        names: Some(vec![format!("/{}", c.name)]),
        image: Some(HOST_IMAGE.into()),
        image_id: Some(HOST_IMAGE.into()),
        command: Some(c.cmd.join(" ")),
        created: Some(c.created as i64),
        ports: Some(Vec::new()),
        labels: Some(HashMap::new()),
        state: Some(summary_state(v.state)),
        status: Some(status_line(v, now)),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(network_mode(v)),
            annotations: None,
        }),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(endpoints(v)),
        }),
        mounts: Some(Vec::new()),
        ..Default::default()
    }
}

/// A container as `GET /containers/{id}/json` shows it.
pub fn inspect(v: &ContainerView) -> ContainerInspectResponse {
    let c = &v.container;
    let running = v.state == RunState::Running;
    let dir = v
        .log_path
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    let path_of = |p: std::path::PathBuf| Some(p.to_string_lossy().into_owned());
    let state = ContainerState {
        status: Some(match v.state {
            RunState::Created => ContainerStateStatusEnum::CREATED,
            RunState::Running => ContainerStateStatusEnum::RUNNING,
            RunState::Exited => ContainerStateStatusEnum::EXITED,
        }),
        running: Some(running),
        paused: Some(false),
        restarting: Some(false),
        oom_killed: Some(false),
        dead: Some(false),
        pid: Some(if running { c.process.pid.into() } else { 0 }),
        exit_code: Some(v.exit_code.unwrap_or(0).into()),
        error: Some(String::new()),
        started_at: Some(match v.state {
            RunState::Created => NEVER.into(),
            _ => rfc3339(started(v)),
        }),
        finished_at: Some(v.finished_at.map(rfc3339).unwrap_or_else(|| NEVER.into())),
        health: health(v),
    };
    ContainerInspectResponse {
        id: Some(c.id.clone()),
        created: Some(rfc3339(c.created)),
        path: c.cmd.first().cloned(),
        args: Some(c.cmd.get(1..).unwrap_or_default().to_vec()),
        state: Some(state),
        image: Some(HOST_IMAGE.into()),
        resolv_conf_path: path_of(dir.join("resolv.conf")),
        hostname_path: Some(String::new()),
        hosts_path: path_of(dir.join("hosts")),
        log_path: path_of(v.log_path.clone()),
        name: Some(format!("/{}", c.name)),
        restart_count: Some(0),
        driver: Some(String::new()),
        platform: Some(std::env::consts::OS.into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        host_config: Some(HostConfig {
            network_mode: Some(network_mode(v)),
            ..Default::default()
        }),
        mounts: Some(Vec::new()),
        config: Some(ContainerConfig {
            hostname: Some(c.hostname().to_string()),
            domainname: Some(String::new()),
            user: Some(String::new()),
            attach_stdin: Some(false),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            tty: Some(false),
            open_stdin: Some(false),
            stdin_once: Some(false),
            env: Some(Vec::new()),
            cmd: Some(c.cmd.clone()),
            image: Some(HOST_IMAGE.into()),
            working_dir: Some(String::new()),
            labels: Some(HashMap::new()),
            ..Default::default()
        }),
        network_settings: Some(NetworkSettings {
            sandbox_id: Some(String::new()),
            sandbox_key: path_of(c.netns.clone()),
            ports: Some(HashMap::new()),
            networks: Some(endpoints(v)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "container_docs_tests.rs"]
mod tests;
