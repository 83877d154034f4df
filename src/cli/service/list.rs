//! `service ls`: Docker's columns (ID, NAME, MODE, REPLICAS, IMAGE,
//! PORTS), `-q`, `--filter` and `--format`, from `GET /services?status=true`.

use std::collections::BTreeMap;

use super::super::client::{path, Client};
use super::super::{table, ListArgs};
use super::flags::{self, natural_cmp};
use crate::api::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum as PublishMode, Service,
};

fn mode(s: &Service) -> &'static str {
    let mode = s
        .spec
        .as_ref()
        .and_then(|x| x.mode.clone())
        .unwrap_or_default();
    match mode {
        m if m.global.is_some() => "global",
        m if m.replicated.is_some() => "replicated",
        m if m.replicated_job.is_some() => "replicated job",
        m if m.global_job.is_some() => "global job",
        _ => "",
    }
}

/// REPLICAS: running/desired tasks as the daemon counts them.
fn replicas(s: &Service) -> String {
    let spec = s.spec.clone().unwrap_or_default();
    let replicated = spec.mode.and_then(|m| m.replicated);
    let (running, desired) = match &s.service_status {
        Some(st) => (st.running_tasks.unwrap_or(0), st.desired_tasks.unwrap_or(0)),
        None => (
            0,
            replicated
                .as_ref()
                .and_then(|r| r.replicas)
                .unwrap_or(0)
                .max(0) as u64,
        ),
    };
    let max = spec
        .task_template
        .and_then(|t| t.placement)
        .and_then(|p| p.max_replicas)
        .filter(|m| *m > 0 && replicated.is_some());
    match max {
        Some(m) => format!("{running}/{desired} (max {m} per node)"),
        None => format!("{running}/{desired}"),
    }
}

/// IMAGE, without a digest.
fn image(s: &Service) -> String {
    let image = s
        .spec
        .as_ref()
        .and_then(|x| x.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    image.split('@').next().unwrap_or_default().to_string()
}

/// A run of published ports Docker prints as one: `*:8080-8081->80-81/tcp`.
struct PortRange {
    published: (i64, i64),
    target: (i64, i64),
    protocol: String,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |(a, b): (i64, i64)| {
            if b > a {
                format!("{a}-{b}")
            } else {
                a.to_string()
            }
        };
        write!(
            f,
            "*:{}->{}/{}",
            side(self.published),
            side(self.target),
            self.protocol
        )
    }
}

/// PORTS: the ingress ports of `Endpoint.Ports` (host-mode ones are the
/// tasks', shown by `service ps`), consecutive ones grouped as Docker 20.10's
/// formatter groups them.
fn ports(s: &Service) -> String {
    let mut ports: Vec<EndpointPortConfig> = s
        .endpoint
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.publish_mode == Some(PublishMode::INGRESS))
        .filter(|p| p.published_port.unwrap_or(0) > 0)
        .collect();
    ports.sort_by_key(|p| (p.protocol.map(|x| x.to_string()), p.published_port));
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<PortRange> = None;
    for p in ports {
        let (published, target) = (p.published_port.unwrap_or(0), p.target_port.unwrap_or(0));
        let protocol = p.protocol.map(|x| x.to_string()).unwrap_or_default();
        if let Some(r) = current.as_mut() {
            let next = |a: i64, b: i64| a == b || a == b + 1;
            let is_range = r.target.1 != r.target.0;
            if r.protocol == protocol
                && next(published, r.published.1)
                && next(target, r.target.1)
                && !(is_range && target <= r.target.1)
            {
                r.published.1 = published;
                r.target.1 = target;
                continue;
            }
        }
        out.extend(current.take().map(|r| r.to_string()));
        current = Some(PortRange {
            published: (published, published),
            target: (target, target),
            protocol,
        });
    }
    out.extend(current.map(|r| r.to_string()));
    out.join(", ")
}

pub fn ls(mut services: Vec<Service>, quiet: bool, format: Option<&str>) -> anyhow::Result<String> {
    let name = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|x| x.name.clone())
            .unwrap_or_default()
    };
    services.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    let short = |s: &Service| {
        s.id.clone()
            .unwrap_or_default()
            .chars()
            .take(12)
            .collect::<String>()
    };
    if quiet && format.is_none() {
        return Ok(services.iter().map(|s| format!("{}\n", short(s))).collect());
    }
    let rows: Vec<BTreeMap<&str, String>> = services
        .iter()
        .map(|s| {
            [
                ("ID", short(s)),
                ("Name", name(s)),
                ("Mode", mode(s).to_string()),
                ("Replicas", replicas(s)),
                ("Image", image(s)),
                ("Ports", ports(s)),
            ]
            .into()
        })
        .collect();
    table::format_rows(&rows, format, || {
        let columns = ["ID", "Name", "Mode", "Replicas", "Image", "Ports"];
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| columns.iter().map(|c| r[c].clone()).collect())
            .collect();
        table::render(
            &["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"],
            &cells,
        )
    })
}

/// `service ls`.
pub fn run(client: &Client, list: &ListArgs, filter: &[String]) -> anyhow::Result<i32> {
    let filters = serde_json::to_string(&flags::filters(filter)?)?;
    let mut query = Vec::new();
    if !filter.is_empty() {
        query.push(("filters", filters.as_str()));
    }
    if !list.quiet {
        query.push(("status", "true"));
    }
    let services: Vec<Service> = client.get(&path("/services", &query))?;
    print!("{}", ls(services, list.quiet, list.format.as_deref())?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<Service> {
        serde_json::from_value(serde_json::json!([
            {
                "ID": "zzzzzzzzzzzzzzzzzzzz",
                "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 3}},
                         "TaskTemplate": {"ContainerSpec": {"Image": "host"}}},
                "Endpoint": {"Ports": [
                    {"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"}
                ]},
                "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 3}
            },
            {
                "ID": "aaaaaaaaaaaaaaaaaaaa",
                "Spec": {"Name": "agent", "Mode": {"Global": {}},
                         "TaskTemplate": {"ContainerSpec": {"Image": "host@sha256:0123"}}},
                "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 2}
            }
        ]))
        .unwrap()
    }

    #[test]
    fn services_list_as_docker() {
        let out = ls(services(), false, None).unwrap();
        assert_eq!(
            out,
            "ID             NAME    MODE         REPLICAS   IMAGE   PORTS\n\
             aaaaaaaaaaaa   agent   global       2/2        host\n\
             zzzzzzzzzzzz   web     replicated   2/3        host    *:8080->3000/tcp\n"
        );
        assert_eq!(
            ls(services(), true, None).unwrap(),
            "aaaaaaaaaaaa\nzzzzzzzzzzzz\n"
        );
        let out = ls(services(), false, Some("{{.Name}} {{.Replicas}}")).unwrap();
        assert_eq!(out, "agent 2/2\nweb 2/3\n");
    }

    #[test]
    fn replicas_without_status_and_with_a_cap() {
        let mut s = services().remove(0);
        s.service_status = None;
        assert_eq!(replicas(&s), "0/3");
        let placement = &mut s
            .spec
            .as_mut()
            .unwrap()
            .task_template
            .as_mut()
            .unwrap()
            .placement;
        placement.get_or_insert_with(Default::default).max_replicas = Some(2);
        assert_eq!(replicas(&s), "0/3 (max 2 per node)");
    }

    #[test]
    fn consecutive_ports_are_grouped() {
        let port = |p: i64, t: i64, proto: &str| serde_json::json!({"Protocol": proto, "TargetPort": t, "PublishedPort": p, "PublishMode": "ingress"});
        let s: Service = serde_json::from_value(serde_json::json!({"Endpoint": {"Ports": [
            port(81, 81, "tcp"), port(80, 80, "tcp"), port(82, 80, "tcp"),
            port(90, 80, "tcp"), port(91, 80, "tcp"), port(53, 53, "udp"),
            {"Protocol": "tcp", "TargetPort": 22, "PublishedPort": 2222, "PublishMode": "host"}
        ]}}))
        .unwrap();
        assert_eq!(
            ports(&s),
            "*:80-81->80-81/tcp, *:82->80/tcp, *:90-91->80/tcp, *:53->53/udp"
        );
    }

    /// What swarmnet's daemon sends for `-p 8080:3000 -p 9090:3000/udp
    /// --publish published=5353,target=53,mode=host`: the host-mode port is
    /// left out, as Docker's formatter leaves it out.
    #[test]
    fn only_ingress_ports_are_listed() {
        let s: Service = serde_json::from_value(serde_json::json!({"Endpoint": {"Ports": [
            {"Protocol": "udp", "TargetPort": 3000, "PublishedPort": 9090, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
            {"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"}
        ]}}))
        .unwrap();
        assert_eq!(ports(&s), "*:8080->3000/tcp, *:9090->3000/udp");
        let host: Service = serde_json::from_value(serde_json::json!({"Endpoint": {"Ports": [
            {"Protocol": "tcp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"}
        ]}}))
        .unwrap();
        assert_eq!(ports(&host), "");
        assert_eq!(ports(&Service::default()), "");
    }
}
