//! `swarmnet service create|inspect|logs|ls|ps|rm|rollback|scale|update`,
//! with Docker 20.10's flags, columns, progress and words, over the API as
//! Docker's CLI calls it; each command's own logic is in `service/`.

pub(super) mod common;
mod converge;
mod create;
pub(super) mod flags;
mod health;
mod inspect;
pub(super) mod list;
mod logs;
pub(super) mod networks;
pub(super) mod ports;
mod progress;
pub(super) mod ps;
mod update;

use clap::Subcommand;

use super::client::{path, segment, Client};
use crate::api::models::{Service, ServiceSpec};
use crate::model::ApiError;

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Create a new service: `create [OPTIONS] IMAGE [COMMAND] [ARG...]`.
    Create(Box<create::CreateArgs>),
    /// Display detailed information on one or more services.
    Inspect {
        /// Format the output using the given Go template.
        #[arg(short, long)]
        format: Option<String>,
        /// Print the information in a human friendly format.
        #[arg(long)]
        pretty: bool,
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// Fetch the logs of a service or task.
    Logs(logs::LogsArgs),
    /// List services.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        list: super::ListArgs,
        /// Filter output based on conditions provided (e.g. name=web, mode=global).
        #[arg(short, long, value_name = "KEY=VALUE")]
        filter: Vec<String>,
    },
    /// List the tasks of one or more services.
    Ps {
        #[command(flatten)]
        list: ps::TaskListArgs,
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// Remove one or more services.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// Revert changes to a service's configuration.
    Rollback {
        /// Exit immediately instead of waiting for the service to converge.
        #[arg(short, long)]
        detach: bool,
        /// Suppress progress output.
        #[arg(short, long)]
        quiet: bool,
        service: String,
    },
    /// Scale one or multiple replicated services: `scale SERVICE=REPLICAS...`.
    Scale {
        /// Exit immediately instead of waiting for the service to converge.
        #[arg(short, long)]
        detach: bool,
        #[arg(required = true, value_name = "SERVICE=REPLICAS")]
        scales: Vec<String>,
    },
    /// Update a service.
    Update(Box<update::UpdateArgs>),
}

pub fn run(host: &str, cmd: ServiceCmd) -> anyhow::Result<i32> {
    let client = Client::new(host)?;
    match cmd {
        ServiceCmd::Create(args) => create::run(&client, *args),
        ServiceCmd::Inspect {
            format,
            pretty,
            services,
        } => inspect::run(&client, pretty, format, &services),
        ServiceCmd::Logs(args) => logs::run(&client, args),
        ServiceCmd::Ls { list, filter } => list::run(&client, &list, &filter),
        ServiceCmd::Ps { list, services } => ps::run(&client, &services, &list),
        ServiceCmd::Rm { services } => rm(&client, &services),
        ServiceCmd::Rollback {
            detach,
            quiet,
            service,
        } => rollback(&client, &service, detach, quiet),
        ServiceCmd::Scale { detach, scales } => scale(&client, &scales, detach),
        ServiceCmd::Update(args) => update::run(&client, *args),
    }
}

/// Whether the daemon answered 404.
fn is_not_found(err: &anyhow::Error) -> bool {
    matches!(err.downcast_ref::<ApiError>(), Some(ApiError::NotFound(_)))
}

/// A 404 in the words of Docker's client: "No such service: web".
fn not_found(err: anyhow::Error, kind: &str, name: &str) -> anyhow::Error {
    match is_not_found(&err) {
        true => anyhow::anyhow!("No such {kind}: {name}"),
        false => err,
    }
}

/// A service by ID, name or ID prefix, as the daemon finds it.
fn get(client: &Client, name: &str) -> anyhow::Result<Service> {
    client
        .get(&format!("/services/{}", segment(name)))
        .map_err(|e| not_found(e, "service", name))
}

/// `POST /services/{id}/update` with `spec` at the version `service` was
/// read at (a concurrent change makes it fail rather than be lost).
fn post_update(
    client: &Client,
    service: &Service,
    spec: &ServiceSpec,
    rollback: bool,
) -> anyhow::Result<()> {
    let id = service.id.clone().unwrap_or_default();
    let version = service
        .version
        .as_ref()
        .and_then(|v| v.index)
        .unwrap_or(0)
        .to_string();
    let mut query = vec![("version", version.as_str())];
    if rollback {
        query.push(("rollback", "previous"));
    }
    client.post_empty(
        &path(&format!("/services/{}/update", segment(&id)), &query),
        Some(spec),
    )
}

/// `service rm`: each one removed is named; each failure is Docker's error
/// line, after trying them all.
fn rm(client: &Client, services: &[String]) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in services {
        match client.delete(&format!("/services/{}", segment(name))) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", super::error_sentence(&not_found(e, "service", name)));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `service rollback`: the current spec posted back with
/// `rollback=previous`; the daemon swaps in the previous one.
fn rollback(client: &Client, name: &str, detach: bool, quiet: bool) -> anyhow::Result<i32> {
    let service = get(client, name)?;
    post_update(
        client,
        &service,
        &service.spec.clone().unwrap_or_default(),
        true,
    )?;
    println!("{name}");
    if !detach {
        converge::wait(client, name, quiet)?;
    }
    Ok(0)
}

/// A `SERVICE=REPLICAS` argument: the service and its count, or Docker's
/// words for a bad count (an `Err` inside); a missing `=` is a usage error.
fn parse_scale(arg: &str) -> anyhow::Result<(String, Result<u64, String>)> {
    let Some((service, count)) = arg.split_once('=') else {
        anyhow::bail!(
            "Invalid scale specifier '{arg}'.\nSee 'swarmnet service scale --help'.\n\nUsage:  swarmnet service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\nScale one or multiple replicated services"
        );
    };
    let replicas = flags::parse_uint(count)
        .map_err(|e| format!("{service}: invalid replicas value {count}: {e}"));
    Ok((service.to_string(), replicas))
}

/// The spec `scale` sends: the service's own with the new count, which only
/// a replicated service has.
fn scaled(service: &Service, replicas: u64) -> anyhow::Result<ServiceSpec> {
    let mut spec = service.spec.clone().unwrap_or_default();
    match spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
        Some(replicated) => replicated.replicas = Some(replicas as i64),
        None => anyhow::bail!("scale can only be used with replicated or replicated-job mode"),
    }
    Ok(spec)
}

/// `service scale web=5 api=2`: each service scaled in turn, then (unless
/// `-d`) each watched until it converges; every failure is reported at the end.
fn scale(client: &Client, args: &[String], detach: bool) -> anyhow::Result<i32> {
    let parsed = args
        .iter()
        .map(|a| parse_scale(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut errors = Vec::new();
    let mut scaled_ones = Vec::new();
    for (name, replicas) in parsed {
        let replicas = match replicas {
            Ok(n) => n,
            Err(words) => {
                errors.push(words);
                continue;
            }
        };
        let done = get(client, &name)
            .and_then(|service| post_update(client, &service, &scaled(&service, replicas)?, false));
        match done {
            Ok(()) => {
                println!("{name} scaled to {replicas}");
                scaled_ones.push(name);
            }
            Err(e) => errors.push(format!("{name}: {}", without_prefix(&e))),
        }
    }
    if !detach {
        for name in scaled_ones {
            if let Err(e) = converge::wait(client, &name, false) {
                errors.push(format!("{name}: {}", without_prefix(&e)));
            }
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(errors.join("\n"));
    }
    Ok(0)
}

/// An error as Docker's client words it after `SERVICE: `: the daemon's
/// errors keep "Error response from daemon: ", the client's own have no prefix.
fn without_prefix(err: &anyhow::Error) -> String {
    let sentence = super::error_sentence(err);
    match sentence.strip_prefix("Error: ") {
        Some(rest) if !rest.starts_with("No such ") => rest.to_string(),
        _ => sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_arguments_parse_in_dockers_words() {
        let (name, n) = parse_scale("web=5").unwrap();
        assert_eq!((name.as_str(), n), ("web", Ok(5)));
        let (_, bad) = parse_scale("web=x").unwrap();
        assert_eq!(
            bad,
            Err(
                "web: invalid replicas value x: strconv.ParseUint: parsing \"x\": invalid syntax"
                    .into()
            )
        );
        let (_, negative) = parse_scale("web=-1").unwrap();
        assert!(negative.unwrap_err().contains("invalid replicas value -1"));
        let err = parse_scale("web").unwrap_err().to_string();
        assert!(err.starts_with("Invalid scale specifier 'web'.\n"), "{err}");
    }

    #[test]
    fn only_replicated_services_scale() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "ID": "s1", "Version": {"Index": 7},
            "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 1}}}
        }))
        .unwrap();
        let spec = scaled(&service, 5).unwrap();
        assert_eq!(
            serde_json::to_value(spec).unwrap()["Mode"],
            serde_json::json!({"Replicated": {"Replicas": 5}})
        );
        let global: Service = serde_json::from_value(serde_json::json!({
            "ID": "s2", "Spec": {"Name": "agent", "Mode": {"Global": {}}}
        }))
        .unwrap();
        assert_eq!(
            scaled(&global, 2).unwrap_err().to_string(),
            "scale can only be used with replicated or replicated-job mode"
        );
    }

    #[test]
    fn errors_after_a_service_name_keep_dockers_prefixes() {
        let missing = not_found(
            anyhow::Error::new(ApiError::NotFound("x".into())),
            "service",
            "web",
        );
        assert_eq!(without_prefix(&missing), "Error: No such service: web");
        let daemon = anyhow::Error::new(ApiError::Conflict("update out of sequence".into()));
        assert_eq!(
            without_prefix(&daemon),
            "Error response from daemon: update out of sequence"
        );
        let client =
            anyhow::anyhow!("scale can only be used with replicated or replicated-job mode");
        assert_eq!(
            without_prefix(&client),
            "scale can only be used with replicated or replicated-job mode"
        );
    }
}
