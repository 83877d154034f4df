//! `service inspect`: the JSON array Docker prints (with the previous spec),
//! a `--format` template, or the `--pretty` text of Docker 20.10's template.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::super::client::{path, segment, Client};
use super::super::table;
use super::flags::format_duration;
use crate::api::models::{Service, ServiceSpec};
use crate::api::{human_duration, NetworkDoc};
use crate::model::{escape, now_secs};

/// A service as inspect prints it: Docker's shape, and the spec it had
/// before its last update.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceDoc {
    #[serde(flatten)]
    pub service: Service,
    #[serde(
        rename = "PreviousSpec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_spec: Option<ServiceSpec>,
}

/// Seconds since an RFC 3339 time, as "5 minutes ago".
fn ago(time: &str, now: u64) -> String {
    let format = time::format_description::well_known::Rfc3339;
    let then = time::OffsetDateTime::parse(time, &format).map_or(0, |t| t.unix_timestamp());
    format!(
        "{} ago",
        human_duration(now.saturating_sub(then.max(0) as u64))
    )
}

/// An update or rollback config as the pretty view prints it.
struct ConfigView {
    parallelism: i64,
    delay: i64,
    failure_action: String,
    monitor: i64,
    max_failure_ratio: f64,
    order: String,
}

/// Reads the fields the update and rollback configs share.
macro_rules! config_view {
    ($config:expr) => {
        ConfigView {
            parallelism: $config.parallelism.unwrap_or(0),
            delay: $config.delay.unwrap_or(0),
            failure_action: $config
                .failure_action
                .map(|x| x.to_string())
                .unwrap_or_default(),
            monitor: $config.monitor.unwrap_or(0),
            max_failure_ratio: $config.max_failure_ratio.unwrap_or(0.0),
            order: $config.order.map(|x| x.to_string()).unwrap_or_default(),
        }
    };
}

/// The update (or rollback) config block of the pretty view.
fn config_lines(out: &mut String, title: &str, order: &str, c: ConfigView) {
    let _ = write!(out, "\n{title}:\n Parallelism:\t{}", c.parallelism);
    if c.delay > 0 {
        let _ = write!(out, "\n Delay:\t\t{}", format_duration(c.delay));
    }
    let _ = write!(out, "\n On failure:\t{}", c.failure_action);
    if c.monitor > 0 {
        let _ = write!(out, "\n Monitoring Period: {}", format_duration(c.monitor));
    }
    let ratio = c.max_failure_ratio;
    let _ = write!(out, "\n Max failure ratio: {ratio}\n {order} {}", c.order);
}

/// `service inspect --pretty`, line for line Docker 20.10's template;
/// `networks` names the network IDs the spec attaches to.
pub fn pretty(service: &Service, networks: &HashMap<String, String>, now: u64) -> String {
    let spec = service.spec.clone().unwrap_or_default();
    let task = spec.task_template.clone().unwrap_or_default();
    let container = task.container_spec.clone().unwrap_or_default();
    let mode = spec.mode.clone().unwrap_or_default();
    let mut out = String::new();
    let id = service.id.clone().unwrap_or_default();
    let _ = write!(
        out,
        "\nID:\t\t{id}\nName:\t\t{}",
        spec.name.clone().unwrap_or_default()
    );
    let mut labels: Vec<_> = spec
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if !labels.is_empty() {
        labels.sort();
        out.push_str("\nLabels:");
        for (k, v) in labels {
            let _ = write!(
                out,
                "\n {k}{}",
                if v.is_empty() { v } else { format!("={v}") }
            );
        }
    }
    out.push_str("\nService Mode:");
    if mode.global.is_some() {
        out.push_str("\tGlobal");
    } else if let Some(replicated) = &mode.replicated {
        out.push_str("\tReplicated");
        if let Some(n) = replicated.replicas {
            let _ = write!(out, "\n Replicas:\t{n}");
        }
    }
    let status = service.update_status.clone().unwrap_or_default();
    let state = status.state.map(|s| s.to_string()).unwrap_or_default();
    if !state.is_empty() {
        let _ = write!(out, "\nUpdateStatus:\n State:\t\t{state}");
        if let Some(started) = &status.started_at {
            let _ = write!(out, "\n Started:\t{}", ago(started, now));
        }
        if let Some(completed) = status
            .completed_at
            .as_ref()
            .filter(|_| state == "completed")
        {
            let _ = write!(out, "\n Completed:\t{}", ago(completed, now));
        }
        let _ = write!(
            out,
            "\n Message:\t{}",
            status.message.clone().unwrap_or_default()
        );
    }
    out.push_str("\nPlacement:");
    let placement = task.placement.clone().unwrap_or_default();
    let constraints = placement.constraints.unwrap_or_default();
    if !constraints.is_empty() {
        let _ = write!(out, "\n Constraints:\t[{}]", constraints.join(" "));
    }
    if let Some(max) = placement.max_replicas.filter(|m| *m > 0) {
        let _ = write!(out, "\n Max Replicas Per Node:   {max}");
    }
    if let Some(update) = &spec.update_config {
        let view = config_view!(update);
        config_lines(&mut out, "UpdateConfig", "Update order:     ", view);
    }
    if let Some(rollback) = &spec.rollback_config {
        let view = config_view!(rollback);
        config_lines(&mut out, "RollbackConfig", "Rollback order:   ", view);
    }
    let _ = write!(
        out,
        "\nContainerSpec:\n Image:\t\t{}",
        container.image.unwrap_or_default()
    );
    for (label, words) in [(" Args:", container.args), (" Env:", container.env)] {
        let words = words.unwrap_or_default();
        if !words.is_empty() {
            let _ = write!(out, "\n{label}\t\t");
            words.iter().for_each(|w| {
                let _ = write!(out, "{w} ");
            });
        }
    }
    if let Some(dir) = container.dir.filter(|d| !d.is_empty()) {
        let _ = write!(out, "\n Dir:\t\t{dir}");
    }
    if let Some(init) = container.init {
        let _ = write!(out, "\n Init:\t\t{init}");
    }
    if let Some(user) = container.user.filter(|u| !u.is_empty()) {
        let _ = write!(out, "\n User: {user}");
    }
    if task.resources.is_some() {
        out.push_str("\nResources:");
    }
    let attached = task.networks.unwrap_or_default();
    if !attached.is_empty() {
        out.push_str("\nNetworks:");
        for n in attached {
            let target = n.target.unwrap_or_default();
            let _ = write!(out, " {}", networks.get(&target).unwrap_or(&target));
        }
        out.push(' ');
    }
    let endpoint_mode = spec
        .endpoint_spec
        .and_then(|e| e.mode)
        .map(|m| m.to_string());
    let _ = write!(
        out,
        "\nEndpoint Mode:\t{}",
        endpoint_mode.unwrap_or_default()
    );
    let ports = service
        .endpoint
        .clone()
        .and_then(|e| e.ports)
        .unwrap_or_default();
    if !ports.is_empty() {
        out.push_str("\nPorts:");
        for p in ports {
            let text = |x: Option<String>| x.unwrap_or_default();
            let _ = write!(
                out,
                "\n PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {}",
                p.published_port.unwrap_or(0),
                text(p.protocol.map(|x| x.to_string())),
                p.target_port.unwrap_or(0),
                text(p.publish_mode.map(|x| x.to_string())),
            );
        }
        out.push(' ');
    }
    out.push('\n');
    escape_lines(&out)
}

/// Control characters in values escaped, the layout's own newlines and tabs kept.
fn escape_lines(text: &str) -> String {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            l.split('\t')
                .map(|c| escape(c).into_owned())
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect();
    lines.join("\n")
}

/// Docker's indented JSON: four spaces.
fn indented<T: Serialize>(value: &T) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut buf, formatter,
    ))?;
    Ok(String::from_utf8(buf)?)
}

/// `service inspect [--pretty|--format T] SERVICE...`: what was found, then
/// Docker's error line for each service that was not; exit 1 if any.
pub fn run(
    client: &Client,
    pretty_view: bool,
    format: Option<String>,
    names: &[String],
) -> anyhow::Result<i32> {
    if pretty_view && format.is_some() {
        anyhow::bail!("--format is incompatible with human friendly format");
    }
    let (mut found, mut errors) = (Vec::new(), Vec::new());
    for name in names {
        let url = path(
            &format!("/services/{}", segment(name)),
            &[("insertDefaults", "true")],
        );
        match client.get::<ServiceDoc>(&url) {
            Ok(doc) => found.push(doc),
            Err(e) => match e.downcast_ref::<crate::model::ApiError>() {
                Some(crate::model::ApiError::NotFound(_)) => {
                    errors.push(format!("Error: no such service: {name}"))
                }
                _ => errors.push(super::super::error_sentence(&e)),
            },
        }
    }
    if pretty_view {
        for doc in &found {
            let mut networks = HashMap::new();
            let attached = doc
                .service
                .spec
                .as_ref()
                .and_then(|s| s.task_template.as_ref())
                .and_then(|t| t.networks.clone());
            for target in attached
                .unwrap_or_default()
                .into_iter()
                .filter_map(|n| n.target)
            {
                if let Ok(net) =
                    client.get::<NetworkDoc>(&format!("/networks/{}", segment(&target)))
                {
                    networks.insert(target, net.network.name.unwrap_or_default());
                }
            }
            print!("{}", pretty(&doc.service, &networks, now_secs()));
        }
    } else if let Some(tmpl) = format {
        print!(
            "{}",
            table::template(&tmpl, &found).map_err(anyhow::Error::msg)?
        );
    } else if found.is_empty() {
        println!("[]");
    } else {
        println!("{}", indented(&found)?);
    }
    for error in &errors {
        eprintln!("{error}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
#[path = "inspect_tests.rs"]
mod tests;
