//! `swarmnet container run|ls|inspect|logs|exec|rm`, with Docker's columns,
//! JSON and words. `exec` and `logs` act on this host directly (as root),
//! after asking the daemon which process and which log the container has.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use clap::Subcommand;

use super::client::call;
use super::table;
use crate::daemon::containers::{ContainerView, NetAttachment};
use crate::manager::now_secs;
use crate::proto::LocalRequest;

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Create and run a new container.
    Run {
        /// Run the container in the background and print its ID.
        #[arg(short, long)]
        detach: bool,
        /// Assign a name to the container (also its hostname).
        #[arg(long)]
        name: Option<String>,
        /// Connect the container to a network (repeat for more: eth0, eth1, ...).
        #[arg(long = "network", alias = "net", value_name = "NETWORK")]
        networks: Vec<String>,
        /// IPv4 address on the first network (e.g., 10.20.0.50).
        #[arg(long)]
        ip: Option<std::net::Ipv4Addr>,
        /// Add network-scoped alias for the container.
        #[arg(long = "network-alias", value_name = "ALIAS")]
        aliases: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Attach a network namespace made by another tool (ip netns, a container runtime) to a network.
    Attach {
        /// The network to attach to.
        #[arg(long, required = true)]
        network: String,
        /// IPv4 address on the network.
        #[arg(long)]
        ip: Option<std::net::Ipv4Addr>,
        /// Add network-scoped alias for the namespace.
        #[arg(long = "network-alias", value_name = "ALIAS")]
        aliases: Vec<String>,
        /// The namespace's file, e.g. /run/netns/foo.
        netns: std::path::PathBuf,
    },
    /// Detach a namespace attached with `container attach` from a network.
    Detach {
        #[arg(long, required = true)]
        network: String,
        netns: std::path::PathBuf,
    },
    /// List containers.
    #[command(alias = "ps")]
    Ls {
        /// Show all containers (default shows just running).
        #[arg(short, long)]
        all: bool,
        #[command(flatten)]
        list: super::ListArgs,
    },
    /// Display detailed information on one or more containers.
    Inspect {
        /// Format output using a Go template.
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Fetch the logs of a container.
    Logs {
        /// Follow log output.
        #[arg(short, long)]
        follow: bool,
        container: String,
    },
    /// Execute a command in a running container.
    Exec {
        container: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Remove one or more containers.
    Rm {
        /// Force the removal of a running container.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// The path as the daemon must see it: absolute, links resolved (a path
/// that does not exist is left for the daemon to refuse in its words).
fn absolute(path: std::path::PathBuf) -> std::path::PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

fn inspect(host: &str, name: &str) -> anyhow::Result<ContainerView> {
    Ok(serde_json::from_value(call(
        host,
        &LocalRequest::ContainerInspect {
            name: name.to_string(),
        },
    )?)?)
}

pub fn run(host: &str, cmd: ContainerCmd) -> anyhow::Result<i32> {
    match cmd {
        ContainerCmd::Run {
            detach,
            name,
            networks,
            ip,
            aliases,
            cmd,
        } => {
            let req = LocalRequest::ContainerRun {
                name,
                cmd,
                networks,
                ip,
                aliases,
            };
            let view: ContainerView = serde_json::from_value(call(host, &req)?)?;
            if detach {
                println!("{}", view.container.id);
                return Ok(0);
            }
            follow_logs(host, &view.container.id)
        }
        ContainerCmd::Ls { all, list } => {
            let views: Vec<ContainerView> =
                serde_json::from_value(call(host, &LocalRequest::ContainerLs { all })?)?;
            print!("{}", ls(&views, list.quiet, list.format.as_deref())?);
            Ok(0)
        }
        ContainerCmd::Inspect { format, containers } => {
            let docs = containers
                .iter()
                .map(|c| inspect(host, c).map(|v| inspect_doc(&v)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            match format {
                Some(tmpl) => print!(
                    "{}",
                    table::template(&tmpl, &docs).map_err(|e| anyhow::anyhow!(e))?
                ),
                None => println!("{}", serde_json::to_string_pretty(&docs)?),
            }
            Ok(0)
        }
        ContainerCmd::Logs { follow, container } => {
            if follow {
                follow_logs(host, &container)?;
            } else {
                let view = inspect(host, &container)?;
                std::io::stdout().write_all(&std::fs::read(&view.log_path).unwrap_or_default())?;
            }
            Ok(0)
        }
        ContainerCmd::Exec { container, cmd } => {
            let view = inspect(host, &container)?;
            if !view.running {
                anyhow::bail!("container {} is not running", view.container.id);
            }
            crate::agent::runtime::exec(&view.container.process, &cmd)
        }
        ContainerCmd::Attach {
            network,
            ip,
            aliases,
            netns,
        } => {
            let req = LocalRequest::NamespaceAttach {
                network,
                netns: absolute(netns),
                ip,
                aliases,
            };
            let a: NetAttachment = serde_json::from_value(call(host, &req)?)?;
            println!("{}/{} {}", a.ip, a.prefix_len, a.ifname);
            Ok(0)
        }
        ContainerCmd::Detach { network, netns } => {
            let netns = absolute(netns);
            call(host, &LocalRequest::NamespaceDetach { network, netns })?;
            Ok(0)
        }
        ContainerCmd::Rm { force, containers } => {
            let mut code = 0;
            for name in containers {
                match call(host, &LocalRequest::ContainerRm { name, force }) {
                    Ok(removed) => println!("{}", removed.as_str().unwrap_or_default()),
                    Err(e) => {
                        eprintln!("{}", super::error_sentence(&e));
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
    }
}

/// Prints the log as it grows until the container ends; returns its exit code.
fn follow_logs(host: &str, name: &str) -> anyhow::Result<i32> {
    let mut offset = 0u64;
    // The shim records the exit code just after the process ends.
    let mut ended_at: Option<std::time::Instant> = None;
    loop {
        let view = inspect(host, name)?;
        if let Ok(mut file) = std::fs::File::open(&view.log_path) {
            file.seek(SeekFrom::Start(offset))?;
            let mut chunk = Vec::new();
            offset += file.read_to_end(&mut chunk)? as u64;
            std::io::stdout().write_all(&chunk)?;
            std::io::stdout().flush()?;
        }
        if let Some(code) = view.exit_code {
            return Ok(code);
        }
        if !view.running {
            let since = *ended_at.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > Duration::from_secs(5) {
                anyhow::bail!(
                    "container {name} ended but its exit code was not recorded; see its shim.log"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(if view.running { 200 } else { 20 }));
    }
}

/// Docker's "2 minutes ago" style.
fn human_duration(secs: u64) -> String {
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

fn status(v: &ContainerView) -> String {
    if v.running {
        format!(
            "Up {}",
            human_duration(now_secs().saturating_sub(v.container.created))
        )
    } else {
        format!("Exited ({})", v.exit_code.unwrap_or(-1))
    }
}

fn command(v: &ContainerView) -> String {
    let full = v.container.cmd.join(" ");
    let short: String = full.chars().take(20).collect();
    if short.len() < full.len() {
        format!("\"{}…\"", short)
    } else {
        format!("\"{full}\"")
    }
}

fn ls(views: &[ContainerView], quiet: bool, format: Option<&str>) -> anyhow::Result<String> {
    let short = |v: &ContainerView| v.container.id.chars().take(12).collect::<String>();
    if quiet {
        return Ok(views.iter().map(|v| format!("{}\n", short(v))).collect());
    }
    let rows: Vec<serde_json::Value> = views
        .iter()
        .map(|v| {
            serde_json::json!({
                "ID": short(v),
                "Image": "",
                "Command": command(v),
                "CreatedAt": super::rfc3339(v.container.created),
                "RunningFor": format!("{} ago", human_duration(now_secs().saturating_sub(v.container.created))),
                "Status": status(v),
                "State": if v.running { "running" } else { "exited" },
                "Ports": "",
                "Names": v.container.name,
                "Networks": v
                    .container
                    .networks
                    .iter()
                    .map(|a| a.network_name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            })
        })
        .collect();
    table::format_rows(&rows, format, || {
        let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                [
                    "ID",
                    "Image",
                    "Command",
                    "RunningFor",
                    "Status",
                    "Ports",
                    "Names",
                ]
                .iter()
                .map(|k| field(r, k))
                .collect()
            })
            .collect();
        table::render(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ],
            &cells,
        )
    })
}

/// The JSON of `container inspect`, shaped like Docker's.
fn inspect_doc(v: &ContainerView) -> serde_json::Value {
    let c = &v.container;
    let mut networks = serde_json::Map::new();
    for a in &c.networks {
        networks.insert(
            a.network_name.clone(),
            serde_json::json!({
                "Aliases": a.aliases,
                "NetworkID": a.network_id,
                "EndpointID": a.endpoint_id,
                "Gateway": a.gateway.to_string(),
                "IPAddress": a.ip.to_string(),
                "IPPrefixLen": a.prefix_len,
                "MacAddress": a.mac,
                "DNSNames": [c.name.clone(), c.id[..12].to_string()],
                "InterfaceName": a.ifname,
                "MTU": a.mtu,
            }),
        );
    }
    serde_json::json!({
        "Id": c.id,
        "Created": super::rfc3339(c.created),
        "Path": c.cmd.first(),
        "Args": c.cmd.get(1..).unwrap_or_default(),
        "State": {
            "Status": if v.running { "running" } else { "exited" },
            "Running": v.running,
            "Pid": if v.running { c.process.pid } else { 0 },
            "ExitCode": v.exit_code.unwrap_or(0),
        },
        "Name": format!("/{}", c.name),
        "LogPath": v.log_path,
        "Config": { "Hostname": c.name, "Cmd": c.cmd },
        "NetworkSettings": {
            "SandboxKey": c.netns,
            "Networks": networks,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(5000), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
