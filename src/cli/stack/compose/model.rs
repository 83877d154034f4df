//! The compose keys `docker stack deploy` reads (version 3.x), typed. Keys
//! compose knows that have no meaning here are taken out first and named
//! ("Ignoring unsupported options: build, volumes", as Docker says); a key
//! compose does not know is refused with its path, as Docker's schema
//! check does; a value of the wrong type names its key path
//! (`services.web.deploy.replicas`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

/// Keys of a service compose knows and swarmnet does nothing with.
const SERVICE_IGNORED: &[&str] = &[
    "build",
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "configs",
    "container_name",
    "credential_spec",
    "depends_on",
    "devices",
    "dns",
    "dns_search",
    "domainname",
    "expose",
    "external_links",
    "extra_hosts",
    "init",
    "ipc",
    "isolation",
    "links",
    "logging",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "read_only",
    "restart",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "volumes",
    "working_dir",
];
/// Keys of `deploy` swarmnet does nothing with.
const DEPLOY_IGNORED: &[&str] = &["resources"];
/// Keys of `deploy.placement` swarmnet does nothing with.
const PLACEMENT_IGNORED: &[&str] = &["preferences"];
/// Keys of a network swarmnet does nothing with.
const NETWORK_IGNORED: &[&str] = &["driver_opts", "internal", "enable_ipv6"];
/// Top-level keys swarmnet does nothing with.
const TOP_IGNORED: &[&str] = &["volumes", "secrets", "configs"];

/// A compose file, merged and substituted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compose {
    #[serde(default)]
    pub services: BTreeMap<String, ServiceDef>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<NetworkDef>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    pub image: Option<String>,
    pub command: Option<Words>,
    pub entrypoint: Option<Words>,
    pub environment: Option<Pairs>,
    pub env_file: Option<Paths>,
    #[serde(default)]
    pub ports: Vec<PortDef>,
    pub networks: Option<ServiceNetworks>,
    pub healthcheck: Option<HealthDef>,
    pub hostname: Option<String>,
    pub labels: Option<Pairs>,
    pub deploy: Option<DeployDef>,
    pub stop_grace_period: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployDef {
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub replicas: Option<u64>,
    pub placement: Option<PlacementDef>,
    pub endpoint_mode: Option<String>,
    pub restart_policy: Option<RestartDef>,
    pub update_config: Option<RolloutDef>,
    pub rollback_config: Option<RolloutDef>,
    pub labels: Option<Pairs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementDef {
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default, deserialize_with = "number")]
    pub max_replicas_per_node: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartDef {
    pub condition: Option<String>,
    pub delay: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub max_attempts: Option<u64>,
    pub window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutDef {
    #[serde(default, deserialize_with = "number")]
    pub parallelism: Option<u64>,
    pub delay: Option<String>,
    pub failure_action: Option<String>,
    pub monitor: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub max_failure_ratio: Option<f64>,
    pub order: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthDef {
    pub test: Option<HealthTest>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub retries: Option<u64>,
    #[serde(default, deserialize_with = "flag")]
    pub disable: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    pub driver: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub attachable: bool,
    pub ipam: Option<IpamDef>,
    pub external: Option<External>,
    pub name: Option<String>,
    pub labels: Option<Pairs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamDef {
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Vec<IpamConfigDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfigDef {
    pub subnet: Option<String>,
}

/// A number, or text that holds one: a substituted variable is text, and
/// compose reads it as the number the key takes.
fn number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + serde::de::DeserializeOwned,
{
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("must be a number, not {s:?}"))),
        v => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| D::Error::custom(format!("must be a number, not {v}"))),
    }
}

/// A boolean, or text that says one (`true`, `false`, as compose reads them).
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        v => Err(D::Error::custom(format!("must be true or false, not {v}"))),
    }
}

/// `external: true`, or the old `external: {name: x}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct External {
    pub external: bool,
    pub name: Option<String>,
}

impl TryFrom<Value> for External {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::Bool(external) => Ok(External {
                external,
                name: None,
            }),
            Value::Object(m) if m.keys().all(|k| k == "name") => Ok(External {
                external: true,
                name: m.get("name").and_then(Value::as_str).map(str::to_string),
            }),
            _ => Err("must be true, false or {name: NAME}".into()),
        }
    }
}

/// A command: a string split as a shell would (without running one), or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Words(pub Vec<String>);

impl TryFrom<Value> for Words {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::String(s) => crate::cli::service::flags::split_words(&s).map(Words),
            Value::Array(items) => strings(items).map(Words),
            _ => Err("must be a string or a list of strings".into()),
        }
    }
}

/// One path or a list of them (`env_file`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Paths(pub Vec<String>);

impl TryFrom<Value> for Paths {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::String(s) => Ok(Paths(vec![s])),
            Value::Array(items) => strings(items).map(Paths),
            _ => Err("must be a path or a list of paths".into()),
        }
    }
}

fn strings(items: Vec<Value>) -> Result<Vec<String>, String> {
    items
        .into_iter()
        .map(|i| match i {
            Value::String(s) => Ok(s),
            other => Err(format!("must list strings, not {other}")),
        })
        .collect()
}

/// `KEY=VALUE` pairs (`environment`, `labels`): a list of `KEY=VALUE` (a
/// bare `KEY` has no value), or a mapping whose values are scalars (null:
/// no value).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "Value")]
pub struct Pairs(pub Vec<(String, Option<String>)>);

impl TryFrom<Value> for Pairs {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::Array(items) => strings(items).map(|items| {
                Pairs(
                    items
                        .into_iter()
                        .map(|i| match i.split_once('=') {
                            Some((k, v)) => (k.to_string(), Some(v.to_string())),
                            None => (i, None),
                        })
                        .collect(),
                )
            }),
            Value::Object(m) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Null => Ok((k, None)),
                    Value::String(s) => Ok((k, Some(s))),
                    Value::Number(n) => Ok((k, Some(n.to_string()))),
                    Value::Bool(b) => Ok((k, Some(b.to_string()))),
                    _ => Err(format!("{k} must be a string, a number, a boolean or null")),
                })
                .collect::<Result<_, _>>()
                .map(Pairs),
            _ => Err("must be a list of KEY=VALUE or a mapping".into()),
        }
    }
}

/// A port: the short syntax (`"8080:3000/udp"`, or a target alone, as text
/// or a number), or the long one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub enum PortDef {
    Short(String),
    Long {
        target: u16,
        published: Option<u16>,
        protocol: Option<String>,
        mode: Option<String>,
    },
}

impl TryFrom<Value> for PortDef {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let number = |v: &Value, key: &str| -> Result<Option<u16>, String> {
            match v {
                Value::Null => Ok(None),
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .map(Some)
                    .ok_or(format!("{key} must be a port number (1-65535), not {n}")),
                Value::String(s) => s
                    .parse::<u16>()
                    .map(Some)
                    .map_err(|_| format!("{key} must be a port number (1-65535), not {s:?}")),
                other => Err(format!("{key} must be a port number, not {other}")),
            }
        };
        match v {
            Value::String(s) => Ok(PortDef::Short(s)),
            Value::Number(n) => Ok(PortDef::Short(n.to_string())),
            Value::Object(m) => {
                if let Some(k) = m
                    .keys()
                    .find(|k| !["target", "published", "protocol", "mode"].contains(&k.as_str()))
                {
                    return Err(format!("Additional property {k} is not allowed"));
                }
                let text = |key: &str| -> Result<Option<String>, String> {
                    match m.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s.clone())),
                        Some(other) => Err(format!("{key} must be a string, not {other}")),
                    }
                };
                Ok(PortDef::Long {
                    target: number(m.get("target").unwrap_or(&Value::Null), "target")?
                        .ok_or("target is required")?,
                    published: number(m.get("published").unwrap_or(&Value::Null), "published")?,
                    protocol: text("protocol")?,
                    mode: text("mode")?,
                })
            }
            _ => Err("must be \"PUBLISHED:TARGET[/PROTOCOL]\" or a mapping with target".into()),
        }
    }
}

/// A service's networks: names, or names with their aliases.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "Value")]
pub struct ServiceNetworks(pub Vec<(String, Vec<String>)>);

impl TryFrom<Value> for ServiceNetworks {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::Array(items) => strings(items)
                .map(|names| ServiceNetworks(names.into_iter().map(|n| (n, Vec::new())).collect())),
            Value::Object(m) => m
                .into_iter()
                .map(|(name, v)| match v {
                    Value::Null => Ok((name, Vec::new())),
                    Value::Object(attach) => {
                        if let Some(k) = attach.keys().find(|k| {
                            !["aliases", "ipv4_address", "ipv6_address"].contains(&k.as_str())
                        }) {
                            return Err(format!("{name}: Additional property {k} is not allowed"));
                        }
                        let aliases = match attach.get("aliases") {
                            None | Some(Value::Null) => Vec::new(),
                            Some(Value::Array(a)) => {
                                strings(a.clone()).map_err(|e| format!("{name}.aliases {e}"))?
                            }
                            Some(_) => return Err(format!("{name}.aliases must be a list")),
                        };
                        Ok((name, aliases))
                    }
                    _ => Err(format!("{name} must be null or a mapping")),
                })
                .collect::<Result<_, _>>()
                .map(ServiceNetworks),
            _ => Err("must be a list of network names or a mapping".into()),
        }
    }
}

/// A health check's test: a string (run by a shell) or Docker's list form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct HealthTest(pub Vec<String>);

impl TryFrom<Value> for HealthTest {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::String(s) => Ok(HealthTest(vec!["CMD-SHELL".into(), s])),
            Value::Array(items) => strings(items).map(HealthTest),
            _ => Err("must be a string or a list of strings".into()),
        }
    }
}

/// Takes out the keys swarmnet ignores (returned by name, as Docker lists
/// them) and the `x-` extensions, then reads the rest; errors name the key path.
pub fn read(mut value: Value) -> Result<(Compose, BTreeSet<String>), String> {
    let mut ignored = BTreeSet::new();
    if let Value::Object(top) = &mut value {
        // `version` says which compose format; every 3.x key is read alike.
        top.retain(|k, _| !k.starts_with("x-") && k != "version");
        take(top, TOP_IGNORED, &mut ignored);
        if let Some(Value::Object(services)) = top.get_mut("services") {
            for service in services.values_mut() {
                if let Value::Object(service) = service {
                    service.retain(|k, _| !k.starts_with("x-"));
                    take(service, SERVICE_IGNORED, &mut ignored);
                    if let Some(Value::Object(deploy)) = service.get_mut("deploy") {
                        take(deploy, DEPLOY_IGNORED, &mut ignored);
                        if let Some(Value::Object(placement)) = deploy.get_mut("placement") {
                            take(placement, PLACEMENT_IGNORED, &mut ignored);
                        }
                    }
                    for (name, attach) in service
                        .get_mut("networks")
                        .and_then(Value::as_object_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(attach) = attach.as_object_mut() {
                            if attach.remove("ipv4_address").is_some()
                                | attach.remove("ipv6_address").is_some()
                            {
                                ignored.insert(format!("networks.{name}.ipv4_address"));
                            }
                        }
                    }
                }
            }
        }
        if let Some(Value::Object(networks)) = top.get_mut("networks") {
            for network in networks.values_mut() {
                if let Value::Object(network) = network {
                    network.retain(|k, _| !k.starts_with("x-"));
                    take(network, NETWORK_IGNORED, &mut ignored);
                }
            }
        }
    } else {
        return Err("the top level must be a mapping with services".into());
    }
    let compose = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        type_error(&path, &inner)
    })?;
    Ok((compose, ignored))
}

fn take(map: &mut serde_json::Map<String, Value>, keys: &[&str], ignored: &mut BTreeSet<String>) {
    for k in keys {
        if map.remove(*k).is_some() {
            ignored.insert(k.to_string());
        }
    }
}

/// serde's words in compose's: an unknown key as Docker's schema says it,
/// a wrong type as "PATH must be ..., not ...".
fn type_error(path: &str, inner: &str) -> String {
    let at = |what: &str| match path {
        "." | "" => what.to_string(),
        p => format!("{p} {what}"),
    };
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        let parent = if parent.is_empty() || path == key {
            String::new()
        } else {
            format!("{parent} ")
        };
        return format!("{parent}Additional property {key} is not allowed");
    }
    if let Some(rest) = inner.strip_prefix("invalid type: ") {
        if let Some((got, want)) = rest.split_once(", expected ") {
            return at(&format!("must be {want}, not {got}"));
        }
    }
    at(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_with_no_meaning_here_are_named_and_the_rest_read() {
        let (compose, ignored) = read(json!({
            "version": "3.8",
            "x-common": {"a": 1},
            "volumes": {"data": {}},
            "services": {
                "web": {
                    "image": "host", "command": "swarmnet whoami --port '3000'",
                    "build": ".", "restart": "always", "x-note": 1,
                    "environment": {"A": 1, "B": null}, "ports": ["8080:3000", 53, {"target": 53, "published": "5353", "protocol": "udp", "mode": "host"}],
                    "networks": {"app": {"aliases": ["w"], "ipv4_address": "10.0.0.9"}},
                    "deploy": {"replicas": 2, "resources": {"limits": {"cpus": "0.5"}}},
                    "healthcheck": {"test": "curl -sf localhost:3000", "retries": 2}
                }
            },
            "networks": {"app": {"driver": "overlay", "internal": true, "external": {"name": "x"}}, "plain": null}
        }))
        .unwrap();
        assert_eq!(
            ignored.into_iter().collect::<Vec<_>>(),
            [
                "build",
                "internal",
                "networks.app.ipv4_address",
                "resources",
                "restart",
                "volumes"
            ]
        );
        let web = &compose.services["web"];
        assert_eq!(
            web.command.as_ref().unwrap().0,
            ["swarmnet", "whoami", "--port", "3000"]
        );
        assert_eq!(
            web.environment.as_ref().unwrap().0,
            [("A".into(), Some("1".into())), ("B".into(), None)]
        );
        assert_eq!(web.ports[1], PortDef::Short("53".into()));
        assert_eq!(
            web.ports[2],
            PortDef::Long {
                target: 53,
                published: Some(5353),
                protocol: Some("udp".into()),
                mode: Some("host".into())
            }
        );
        assert_eq!(
            web.networks.as_ref().unwrap().0,
            [("app".to_string(), vec!["w".to_string()])]
        );
        assert_eq!(
            web.healthcheck.as_ref().unwrap().test.as_ref().unwrap().0,
            ["CMD-SHELL", "curl -sf localhost:3000"]
        );
        let app = compose.networks["app"].as_ref().unwrap();
        assert_eq!(app.external.as_ref().unwrap().name.as_deref(), Some("x"));
        assert!(compose.networks["plain"].is_none());
    }

    #[test]
    fn an_unknown_key_or_a_wrong_type_names_its_path() {
        let err = |v: Value| read(v).unwrap_err();
        assert_eq!(
            err(json!({"services": {"web": {"deploy": {"replicas": "three"}}}})),
            "services.web.deploy.replicas must be a number, not \"three\""
        );
        assert_eq!(
            err(json!({"services": {"web": {"imagee": "host"}}})),
            "services.web Additional property imagee is not allowed"
        );
        assert_eq!(
            err(json!({"service": {}})),
            "Additional property service is not allowed"
        );
        assert_eq!(
            err(json!({"services": {"web": {"ports": [{"target": 70000}]}}})),
            "services.web.ports[0] target must be a port number (1-65535), not 70000"
        );
        assert_eq!(
            err(json!({"services": {"web": {"environment": "A=1"}}})),
            "services.web.environment must be a list of KEY=VALUE or a mapping"
        );
        assert_eq!(
            err(json!(["a"])),
            "the top level must be a mapping with services"
        );
    }
}
