//! Docker's `ServiceSpec` read into swarmnet's: every field swarmnet acts
//! on is carried over, the empty and default values the docker CLI always
//! sends are accepted, and anything else is refused with one sentence that
//! names the field (and the docker flag that sets it).

#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod port_tests;
#[cfg(test)]
pub(super) mod tests;

use std::collections::HashMap;

use crate::api::models;
use crate::model::{
    is_host_image, ApiError, FailureAction, HealthConfig, PortConfig, RestartCondition,
    RestartPolicy, ServiceMode, ServiceNetwork, ServiceSpec, TaskTemplate, UpdateConfig,
    UpdateOrder, HOST_IMAGE,
};

/// The spec a create or update body asks for, checked (`ServiceSpec::check`).
pub fn service_spec(body: serde_json::Value) -> Result<ServiceSpec, ApiError> {
    if body.is_null() {
        return Err(ApiError::InvalidArgument(
            "the request body is empty: send the service's ServiceSpec as JSON".into(),
        ));
    }
    check_port_words(&body)?;
    let docker: models::ServiceSpec =
        serde_json::from_value(go_field_names(body)).map_err(|e| {
            ApiError::InvalidArgument(format!("the request body is not a valid ServiceSpec: {e}"))
        })?;
    let spec = from_docker(docker)?;
    spec.check()?;
    Ok(spec)
}

/// Go reads JSON keys in any case; the one key the docker CLI spells
/// differently from Docker's schema is `Healthcheck` (schema: `HealthCheck`).
fn go_field_names(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(c) = body
        .pointer_mut("/TaskTemplate/ContainerSpec")
        .and_then(serde_json::Value::as_object_mut)
    {
        if let Some(health) = c.remove("Healthcheck") {
            c.insert("HealthCheck".into(), health);
        }
    }
    body
}

fn from_docker(d: models::ServiceSpec) -> Result<ServiceSpec, ApiError> {
    let t = d.task_template.unwrap_or_default();
    refuse_task_extras(&t)?;
    let c = t.container_spec.unwrap_or_default();
    refuse_container_extras(&c)?;
    let image = c.image.unwrap_or_default();
    let networks = t
        .networks
        .filter(|n| !n.is_empty())
        .or(d.networks)
        .unwrap_or_default()
        .into_iter()
        .map(network)
        .collect::<Result<_, _>>()?;
    let endpoint = d.endpoint_spec.unwrap_or_default();
    Ok(ServiceSpec {
        name: d.name.unwrap_or_default(),
        labels: d.labels.unwrap_or_default().into_iter().collect(),
        mode: mode(d.mode.unwrap_or_default())?,
        task: TaskTemplate {
            image: if is_host_image(&image) {
                HOST_IMAGE.into()
            } else {
                image
            },
            command: c.command.unwrap_or_default(),
            args: c.args.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            container_labels: c.labels.clone().unwrap_or_default().into_iter().collect(),
            hostname: c.hostname.clone().unwrap_or_default(),
            stop_grace_ms: millis(
                "TaskTemplate.ContainerSpec.StopGracePeriod",
                c.stop_grace_period,
            )?,
            networks,
            constraints: t
                .placement
                .as_ref()
                .and_then(|p| p.constraints.clone())
                .unwrap_or_default(),
            max_replicas: max_replicas(t.placement.as_ref().and_then(|p| p.max_replicas))?,
            restart: restart(t.restart_policy)?,
            force_update: t.force_update.unwrap_or(0),
            health: health(c.health_check)?,
            endpoint: None,
        },
        update: rollout("UpdateConfig", d.update_config.map(Rollout::from))?,
        rollback: rollout("RollbackConfig", d.rollback_config.map(Rollout::from))?,
        endpoint_mode: match endpoint.mode {
            Some(models::EndpointSpecModeEnum::DNSRR) => "dnsrr",
            _ => "vip",
        }
        .into(),
        ports: endpoint
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(port)
            .collect::<Result<_, _>>()?,
    })
}

/// `Placement.MaxReplicas`: none or 0 is no limit.
fn max_replicas(n: Option<i64>) -> Result<u64, ApiError> {
    u64::try_from(n.unwrap_or(0)).map_err(|_| {
        ApiError::InvalidArgument(format!(
            "TaskTemplate.Placement.MaxReplicas {} is negative: give 0 (no limit) or more",
            n.unwrap_or(0)
        ))
    })
}

/// A refusal: `field` (set by `flag`) is something swarmnet does not do.
fn unsupported(field: &str, flag: &str) -> ApiError {
    ApiError::InvalidArgument(format!(
        "{field} ({flag}) is not supported: swarmnet runs each task as a command from the host's filesystem in its own network namespace, without the rest of a container; leave it out"
    ))
}

/// The first field of `given` (under `prefix`) that is set, refused.
fn refuse_first(prefix: &str, given: &[(bool, &str, &str)]) -> Result<(), ApiError> {
    match given.iter().find(|(set, ..)| *set) {
        Some((_, field, flag)) => Err(unsupported(&format!("{prefix}{field}"), flag)),
        None => Ok(()),
    }
}

fn list<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn map<V>(v: &Option<HashMap<String, V>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn text(v: &Option<String>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn number(v: Option<i64>) -> bool {
    v.unwrap_or(0) != 0
}

fn refuse_task_extras(t: &models::TaskSpec) -> Result<(), ApiError> {
    let placement = t.placement.clone().unwrap_or_default();
    let resources = t.resources.as_ref().is_some_and(|r| {
        r.limits
            .as_ref()
            .is_some_and(|l| number(l.nano_cpus) || number(l.memory_bytes) || number(l.pids))
            || r.reservations.as_ref().is_some_and(|x| {
                number(x.nano_cpus) || number(x.memory_bytes) || list(&x.generic_resources)
            })
            || r.swap_bytes.is_some()
            || r.memory_swappiness.is_some()
    });
    let log_driver = t
        .log_driver
        .as_ref()
        .is_some_and(|l| text(&l.name) || map(&l.options));
    refuse_first(
        "TaskTemplate.",
        &[
            (t.plugin_spec.is_some(), "PluginSpec", "a plugin"),
            (
                t.network_attachment_spec.is_some(),
                "NetworkAttachmentSpec",
                "an attachment task",
            ),
            (
                !matches!(t.runtime.as_deref(), None | Some("") | Some("container")),
                "Runtime",
                "a runtime other than container",
            ),
            (
                resources,
                "Resources",
                "--limit-cpu, --limit-memory, --limit-pids, --reserve-cpu, --reserve-memory, --generic-resource",
            ),
            (
                list(&placement.preferences),
                "Placement.Preferences",
                "--placement-pref",
            ),
            (log_driver, "LogDriver", "--log-driver, --log-opt"),
        ],
    )
}

fn refuse_container_extras(c: &models::TaskSpecContainerSpec) -> Result<(), ApiError> {
    let dns = c
        .dns_config
        .as_ref()
        .is_some_and(|d| list(&d.nameservers) || list(&d.search) || list(&d.options));
    let privileges = c
        .privileges
        .as_ref()
        .is_some_and(|p| *p != models::TaskSpecContainerSpecPrivileges::default());
    let isolation = !matches!(
        c.isolation,
        None | Some(models::TaskSpecContainerSpecIsolationEnum::DEFAULT)
            | Some(models::TaskSpecContainerSpecIsolationEnum::EMPTY)
    );
    refuse_first(
        "TaskTemplate.ContainerSpec.",
        &[
            (text(&c.dir), "Dir", "--workdir"),
            (text(&c.user), "User", "--user"),
            (list(&c.groups), "Groups", "--group"),
            (privileges, "Privileges", "--credential-spec"),
            (c.tty == Some(true), "TTY", "--tty"),
            (c.open_stdin == Some(true), "OpenStdin", "an open stdin"),
            (c.read_only == Some(true), "ReadOnly", "--read-only"),
            (list(&c.mounts), "Mounts", "--mount"),
            (text(&c.stop_signal), "StopSignal", "--stop-signal"),
            (
                c.health_check
                    .as_ref()
                    .is_some_and(|h| number(h.start_interval)),
                "HealthCheck.StartInterval",
                "--health-start-interval",
            ),
            (list(&c.hosts), "Hosts", "--host"),
            (dns, "DNSConfig", "--dns, --dns-search, --dns-option"),
            (list(&c.secrets), "Secrets", "--secret"),
            (list(&c.configs), "Configs", "--config"),
            (number(c.oom_score_adj), "OomScoreAdj", "--oom-score-adj"),
            (isolation, "Isolation", "--isolation"),
            (c.init == Some(true), "Init", "--init"),
            (map(&c.sysctls), "Sysctls", "--sysctl"),
            (list(&c.capability_add), "CapabilityAdd", "--cap-add"),
            (list(&c.capability_drop), "CapabilityDrop", "--cap-drop"),
            (list(&c.ulimits), "Ulimits", "--ulimit"),
        ],
    )
}

/// Replicated (1 replica when not said) or global; jobs are refused.
fn mode(m: models::ServiceSpecMode) -> Result<ServiceMode, ApiError> {
    if m.replicated_job.is_some() {
        return Err(jobs("Mode.ReplicatedJob", "replicated-job"));
    }
    if m.global_job.is_some() {
        return Err(jobs("Mode.GlobalJob", "global-job"));
    }
    match (m.replicated, m.global) {
        (Some(_), Some(_)) => Err(ApiError::InvalidArgument(
            "Mode.Replicated and Mode.Global are both given: replicas can only be used with replicated mode; give one of them".into(),
        )),
        (None, Some(_)) => Ok(ServiceMode::Global),
        (Some(r), None) => Ok(ServiceMode::Replicated {
            replicas: count("Mode.Replicated.Replicas", r.replicas)?.unwrap_or(1),
        }),
        (None, None) => Ok(ServiceMode::Replicated { replicas: 1 }),
    }
}

fn jobs(field: &str, mode: &str) -> ApiError {
    ApiError::InvalidArgument(format!(
        "{field} (--mode {mode}) is not supported: swarmnet runs services, not jobs; use --mode replicated or --mode global"
    ))
}

/// A whole number Docker sends as signed; a negative one is refused by name.
fn count(field: &str, value: Option<i64>) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| {
            u64::try_from(v).map_err(|_| {
                ApiError::InvalidArgument(format!("{field} must be 0 or more, not {v}"))
            })
        })
        .transpose()
}

/// A duration in Docker's nanoseconds, as milliseconds; a negative one is refused by name.
fn millis(field: &str, nanos: Option<i64>) -> Result<Option<u64>, ApiError> {
    nanos
        .map(|ns| {
            u64::try_from(ns).map(|ns| ns / 1_000_000).map_err(|_| {
                ApiError::InvalidArgument(format!("{field} must not be negative (it is {ns} ns)"))
            })
        })
        .transpose()
}

/// `--health-*` (Docker's `HealthConfig`, durations in nanoseconds); an
/// empty one is none. Negative numbers are refused in swarmkit's words.
fn health(h: Option<models::HealthConfig>) -> Result<Option<HealthConfig>, ApiError> {
    let Some(h) = h.filter(|h| *h != models::HealthConfig::default()) else {
        return Ok(None);
    };
    let duration = |field: &str, ns: Option<i64>| {
        u64::try_from(ns.unwrap_or(0)).map_err(|_| {
            ApiError::InvalidArgument(format!(
                "ContainerSpec: {field} in HealthConfig cannot be less than 1ms"
            ))
        })
    };
    Ok(Some(HealthConfig {
        test: h.test.unwrap_or_default(),
        interval_ns: duration("Interval", h.interval)?,
        timeout_ns: duration("Timeout", h.timeout)?,
        start_period_ns: duration("StartPeriod", h.start_period)?,
        retries: u64::try_from(h.retries.unwrap_or(0)).map_err(|_| {
            ApiError::InvalidArgument(
                "ContainerSpec: Retries in HealthConfig cannot be negative".into(),
            )
        })?,
    }))
}

/// `--restart-*`; what is left out keeps the default (any, 5 s, no limit, no window).
fn restart(p: Option<models::TaskSpecRestartPolicy>) -> Result<RestartPolicy, ApiError> {
    use models::TaskSpecRestartPolicyConditionEnum as C;
    let d = RestartPolicy::default();
    let Some(p) = p else { return Ok(d) };
    Ok(RestartPolicy {
        condition: match p.condition {
            None | Some(C::EMPTY) => d.condition,
            Some(C::ANY) => RestartCondition::Any,
            Some(C::ON_FAILURE) => RestartCondition::OnFailure,
            Some(C::NONE) => RestartCondition::None,
        },
        delay_ms: millis("TaskTemplate.RestartPolicy.Delay", p.delay)?.unwrap_or(d.delay_ms),
        max_attempts: count("TaskTemplate.RestartPolicy.MaxAttempts", p.max_attempts)?
            .unwrap_or(d.max_attempts),
        window_ms: millis("TaskTemplate.RestartPolicy.Window", p.window)?.unwrap_or(d.window_ms),
    })
}

/// `UpdateConfig` and `RollbackConfig` alike (the schema gives them two types).
struct Rollout {
    parallelism: Option<i64>,
    delay: Option<i64>,
    failure_action: Option<String>,
    monitor: Option<i64>,
    max_failure_ratio: Option<f64>,
    order: Option<String>,
}

impl From<models::ServiceSpecUpdateConfig> for Rollout {
    fn from(u: models::ServiceSpecUpdateConfig) -> Self {
        Rollout {
            parallelism: u.parallelism,
            delay: u.delay,
            failure_action: u.failure_action.map(|a| a.to_string()),
            monitor: u.monitor,
            max_failure_ratio: u.max_failure_ratio,
            order: u.order.map(|o| o.to_string()),
        }
    }
}

impl From<models::ServiceSpecRollbackConfig> for Rollout {
    fn from(u: models::ServiceSpecRollbackConfig) -> Self {
        Rollout {
            parallelism: u.parallelism,
            delay: u.delay,
            failure_action: u.failure_action.map(|a| a.to_string()),
            monitor: u.monitor,
            max_failure_ratio: u.max_failure_ratio,
            order: u.order.map(|o| o.to_string()),
        }
    }
}

/// `--update-*` or `--rollback-*`; what is left out (or 0 for the monitor) keeps the default.
fn rollout(field: &str, u: Option<Rollout>) -> Result<UpdateConfig, ApiError> {
    let d = UpdateConfig::default();
    let Some(u) = u else { return Ok(d) };
    let named = |what: &str| format!("{field}.{what}");
    let word = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(UpdateConfig {
        parallelism: count(&named("Parallelism"), u.parallelism)?.unwrap_or(d.parallelism),
        delay_ms: millis(&named("Delay"), u.delay)?.unwrap_or(d.delay_ms),
        failure_action: word(u.failure_action)
            .map(|a| FailureAction::parse(&a))
            .transpose()?
            .unwrap_or(d.failure_action),
        monitor_ms: millis(&named("Monitor"), u.monitor)?
            .filter(|&ms| ms > 0)
            .unwrap_or(d.monitor_ms),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(d.max_failure_ratio),
        order: word(u.order)
            .map(|o| UpdateOrder::parse(&o))
            .transpose()?
            .unwrap_or(d.order),
    })
}

fn network(n: models::NetworkAttachmentConfig) -> Result<ServiceNetwork, ApiError> {
    if map(&n.driver_opts) {
        return Err(ApiError::InvalidArgument(
            "TaskTemplate.Networks.DriverOpts (--network name=...,driver-opt=...) is not supported: swarmnet's overlay driver takes no options per attachment; leave driver-opt out".into(),
        ));
    }
    let target = n.target.filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::InvalidArgument(
            "TaskTemplate.Networks has a network without a Target: give each network's name or ID"
                .into(),
        )
    })?;
    Ok(ServiceNetwork {
        target,
        aliases: n.aliases.unwrap_or_default(),
    })
}

/// A published port as given: 0 or none for the published port is "assign
/// one"; numbers out of range are refused here (the model holds `u16`s),
/// the rest by `ServiceSpec::check`.
fn port(p: models::EndpointPortConfig) -> Result<PortConfig, ApiError> {
    let target = p.target_port.unwrap_or(0);
    let published = p.published_port.unwrap_or(0);
    let word = |s: Option<String>, default: &str| {
        s.filter(|s| !s.is_empty())
            .unwrap_or_else(|| default.into())
    };
    Ok(PortConfig {
        protocol: word(p.protocol.map(|x| x.to_string()), "tcp"),
        target: u16::try_from(target).map_err(|_| PortConfig::bad_target(target))?,
        published: Some(
            u16::try_from(published).map_err(|_| PortConfig::bad_published(published))?,
        )
        .filter(|&p| p > 0),
        mode: word(p.publish_mode.map(|x| x.to_string()), "ingress"),
    })
}

/// A protocol or publish mode Docker's schema does not know, refused in the
/// model's words before the typed reading (which would only say "unknown variant").
fn check_port_words(body: &serde_json::Value) -> Result<(), ApiError> {
    let ports = body
        .pointer("/EndpointSpec/Ports")
        .and_then(serde_json::Value::as_array);
    for p in ports.into_iter().flatten() {
        let target = p
            .get("TargetPort")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        let word = |key: &str| p.get(key).and_then(serde_json::Value::as_str);
        if let Some(protocol) = word("Protocol").filter(|w| !w.is_empty()) {
            PortConfig::check_protocol(protocol, target)?;
        }
        if let Some(mode) = word("PublishMode").filter(|w| !w.is_empty()) {
            PortConfig::check_mode(mode, target)?;
        }
    }
    Ok(())
}
