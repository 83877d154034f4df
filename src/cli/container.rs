//! `swarmnet container run|ls|inspect|logs|exec|rm|attach|detach`, with
//! Docker's columns, JSON and words, over the API as Docker's CLI calls it
//! (create then start, logs and exec as multiplexed streams, see `stream`).

mod list;
pub(super) mod stream;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Subcommand;

use super::client::{path, segment, Client};
use super::table;
use crate::api::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerSummary,
    ContainerWaitResponse, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkingConfig,
};
use crate::api::{NamespaceAttach, NamespaceAttachment, NamespaceDetach, HOST_IMAGE};

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Create and run a new container: `run [OPTIONS] host CMD...` or `run [OPTIONS] -- CMD...`.
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
        ip: Option<Ipv4Addr>,
        /// Add network-scoped alias for the container.
        #[arg(long = "network-alias", value_name = "ALIAS")]
        aliases: Vec<String>,
        /// The image (only `host`, implied after `--`), then the command and its arguments.
        #[arg(
            value_name = "IMAGE] [CMD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
    /// Attach a network namespace made by another tool (ip netns, a container runtime) to a network.
    Attach {
        /// The network to attach to.
        #[arg(long, required = true)]
        network: String,
        /// IPv4 address on the network.
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// Add network-scoped alias for the namespace.
        #[arg(long = "network-alias", value_name = "ALIAS")]
        aliases: Vec<String>,
        /// The namespace's file, e.g. /run/netns/foo.
        netns: PathBuf,
    },
    /// Detach a namespace attached with `container attach` from a network.
    Detach {
        #[arg(long, required = true)]
        network: String,
        netns: PathBuf,
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
    /// Execute a command in a running container: `exec CONTAINER [--] CMD...`.
    Exec {
        container: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
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
fn absolute(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// The image and the command of `run`'s positionals. After `--` everything
/// is the command (the image `host` implied); clap drops that `--`, so the
/// raw argv tells: if what follows its first `--` is all the positionals,
/// none came before it.
fn image_and_cmd(positionals: Vec<String>, argv: &[String]) -> (String, Vec<String>) {
    let after_dashes = argv
        .iter()
        .position(|a| a == "--")
        .map(|at| &argv[at + 1..]);
    if after_dashes == Some(positionals.as_slice()) {
        return (HOST_IMAGE.into(), positionals);
    }
    let mut rest = positionals.into_iter();
    let image = rest.next().unwrap_or_default();
    (image, rest.collect())
}

/// The create body of `run`: `--ip` on the first network, the aliases on
/// all; without a network they go to "default", for the daemon to refuse.
fn create_body(
    image: String,
    cmd: Vec<String>,
    networks: &[String],
    ip: Option<Ipv4Addr>,
    aliases: &[String],
) -> ContainerCreateBody {
    let default = ["default".to_string()];
    let names = if networks.is_empty() {
        &default[..]
    } else {
        networks
    };
    let endpoints: HashMap<String, EndpointSettings> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ip = ip.filter(|_| i == 0);
            let settings = EndpointSettings {
                ipam_config: ip.map(|ip| EndpointIpamConfig {
                    ipv4_address: Some(ip.to_string()),
                    ..Default::default()
                }),
                aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
                ..Default::default()
            };
            (n.clone(), settings)
        })
        .collect();
    ContainerCreateBody {
        image: Some(image),
        cmd: Some(cmd),
        tty: Some(false),
        host_config: Some(HostConfig {
            network_mode: Some(names[0].clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    }
}

/// `run`: create, then start; a container that cannot start is removed
/// again, so a refused run leaves nothing.
fn run_container(
    client: &Client,
    detach: bool,
    name: Option<String>,
    body: ContainerCreateBody,
) -> anyhow::Result<i32> {
    let query: Vec<(&str, &str)> = name.iter().map(|n| ("name", n.as_str())).collect();
    let created: ContainerCreateResponse =
        client.post(&path("/containers/create", &query), &body)?;
    let id = created.id;
    if let Err(e) = client.post_empty(&format!("/containers/{id}/start"), None::<&()>) {
        let _ = client.delete(&format!("/containers/{id}?force=1"));
        return Err(e);
    }
    if detach {
        println!("{id}");
        return Ok(0);
    }
    client.block_on(stream::logs(client, &id, true))?;
    let waited: ContainerWaitResponse = client.post(&format!("/containers/{id}/wait"), &())?;
    if let Some(message) = waited.error.and_then(|e| e.message) {
        anyhow::bail!(message);
    }
    Ok(waited.status_code as i32)
}

fn inspect(client: &Client, name: &str) -> anyhow::Result<ContainerInspectResponse> {
    client.get(&format!("/containers/{}/json", segment(name)))
}

pub fn run(host: &str, cmd: ContainerCmd) -> anyhow::Result<i32> {
    let client = Client::new(host)?;
    match cmd {
        ContainerCmd::Run {
            detach,
            name,
            networks,
            ip,
            aliases,
            args,
        } => {
            let argv: Vec<String> = std::env::args().collect();
            let (image, cmd) = image_and_cmd(args, &argv);
            let body = create_body(image, cmd, &networks, ip, &aliases);
            run_container(&client, detach, name, body)
        }
        ContainerCmd::Ls { all, list } => {
            let query = if all { vec![("all", "1")] } else { vec![] };
            let summaries: Vec<ContainerSummary> = client.get(&path("/containers/json", &query))?;
            print!(
                "{}",
                list::ls(&summaries, list.quiet, list.format.as_deref())?
            );
            Ok(0)
        }
        ContainerCmd::Inspect { format, containers } => {
            let docs = containers
                .iter()
                .map(|c| inspect(&client, c))
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
            client.block_on(stream::logs(&client, &segment(&container), follow))?;
            Ok(0)
        }
        ContainerCmd::Exec { container, cmd } => {
            client.block_on(stream::exec(&client, &segment(&container), cmd))
        }
        ContainerCmd::Attach {
            network,
            ip,
            aliases,
            netns,
        } => {
            let req = NamespaceAttach {
                network,
                path: absolute(netns),
                ipv4_address: ip,
                aliases,
            };
            let a: NamespaceAttachment = client.post("/swarmnet/namespaces/attach", &req)?;
            println!("{}/{} {}", a.ip_address, a.ip_prefix_len, a.interface_name);
            Ok(0)
        }
        ContainerCmd::Detach { network, netns } => {
            let req = NamespaceDetach {
                network,
                path: absolute(netns),
            };
            client.post_empty("/swarmnet/namespaces/detach", Some(&req))?;
            Ok(0)
        }
        ContainerCmd::Rm { force, containers } => {
            let mut code = 0;
            for name in containers {
                let removed = inspect(&client, &name).and_then(|doc| {
                    let id = doc.id.unwrap_or_default();
                    client.delete(&path(
                        &format!("/containers/{id}"),
                        &[("force", if force { "1" } else { "0" })],
                    ))?;
                    Ok(doc.name.unwrap_or_default())
                });
                match removed {
                    Ok(name) => println!("{}", name.trim_start_matches('/')),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn after_dashes_the_image_is_implied() {
        let argv = strings(&["swarmnet", "container", "run", "-d", "--", "sh", "-c", "x"]);
        let (image, cmd) = image_and_cmd(strings(&["sh", "-c", "x"]), &argv);
        assert_eq!((image.as_str(), cmd), ("host", strings(&["sh", "-c", "x"])));
        let argv = strings(&[
            "swarmnet",
            "container",
            "run",
            "host",
            "--",
            "sh",
            "-c",
            "x",
        ]);
        let (image, cmd) = image_and_cmd(strings(&["host", "sh", "-c", "x"]), &argv);
        assert_eq!((image.as_str(), cmd), ("host", strings(&["sh", "-c", "x"])));
        let argv = strings(&["swarmnet", "container", "run", "nginx"]);
        let (image, cmd) = image_and_cmd(strings(&["nginx"]), &argv);
        assert_eq!((image.as_str(), cmd.len()), ("nginx", 0));
        let argv = strings(&["swarmnet", "container", "run", "--", "host", "-t", "x"]);
        let (image, cmd) = image_and_cmd(strings(&["host", "-t", "x"]), &argv);
        assert_eq!(
            (image.as_str(), cmd),
            ("host", strings(&["host", "-t", "x"])),
            "the `host` program"
        );
    }

    #[test]
    fn run_options_become_dockers_create_body() {
        let nets = strings(&["blue", "red"]);
        let body = create_body(
            "host".into(),
            strings(&["true"]),
            &nets,
            "10.20.0.50".parse().ok(),
            &strings(&["db"]),
        );
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["HostConfig"]["NetworkMode"], "blue");
        let ends = &json["NetworkingConfig"]["EndpointsConfig"];
        assert_eq!(ends["blue"]["IPAMConfig"]["IPv4Address"], "10.20.0.50");
        assert!(
            ends["red"].get("IPAMConfig").is_none(),
            "--ip is the first network's"
        );
        assert_eq!(ends["red"]["Aliases"], serde_json::json!(["db"]));
        let bare = create_body(
            "host".into(),
            strings(&["true"]),
            &[],
            "10.0.0.5".parse().ok(),
            &[],
        );
        let json = serde_json::to_value(&bare).unwrap();
        assert_eq!(json["HostConfig"]["NetworkMode"], "default");
        assert_eq!(
            json["NetworkingConfig"]["EndpointsConfig"]["default"]["IPAMConfig"]["IPv4Address"],
            "10.0.0.5"
        );
    }
}
