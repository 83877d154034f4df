//! `swarmnet network create|ls|inspect|rm`, with Docker's columns and JSON.

use std::collections::BTreeMap;

use clap::Subcommand;

use super::client::call;
use super::table;
use crate::model::{Network, NetworkSpec};
use crate::proto::{ClusterRequest, LocalRequest, NetworkDetail};

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        /// Driver to manage the network (overlay).
        #[arg(short, long, default_value = "overlay")]
        driver: String,
        /// Enable manual container attachment.
        #[arg(long)]
        attachable: bool,
        /// Subnet in CIDR format that represents a network segment.
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 gateway for the master subnet.
        #[arg(long)]
        gateway: Option<String>,
        /// Set driver specific options (mtu=N, allow-overlap).
        #[arg(short, long = "opt", value_name = "KEY=VALUE")]
        opts: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        list: super::ListArgs,
    },
    /// Display detailed information on one or more networks.
    Inspect {
        /// Format output using a Go template.
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

fn parse_opts(opts: &[String]) -> BTreeMap<String, String> {
    opts.iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (o.clone(), String::new()),
        })
        .collect()
}

fn cluster(host: &str, req: ClusterRequest) -> anyhow::Result<serde_json::Value> {
    call(host, &LocalRequest::Cluster(req))
}

pub fn run(host: &str, cmd: NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create {
            driver,
            attachable,
            subnet,
            gateway,
            opts,
            name,
        } => {
            let spec = NetworkSpec {
                name,
                driver,
                attachable,
                subnet,
                gateway,
                options: parse_opts(&opts),
            };
            let net: Network =
                serde_json::from_value(cluster(host, ClusterRequest::NetworkCreate(spec))?)?;
            println!("{}", net.id);
            Ok(0)
        }
        NetworkCmd::Ls { list } => {
            let nets: Vec<Network> =
                serde_json::from_value(cluster(host, ClusterRequest::NetworkLs)?)?;
            print!("{}", ls(&nets, list.quiet, list.format.as_deref())?);
            Ok(0)
        }
        NetworkCmd::Inspect { format, networks } => {
            let mut docs = Vec::new();
            for name in networks {
                let detail: NetworkDetail = serde_json::from_value(cluster(
                    host,
                    ClusterRequest::NetworkInspect { network: name },
                )?)?;
                docs.push(inspect_doc(&detail));
            }
            match format {
                Some(tmpl) => print!(
                    "{}",
                    table::template(&tmpl, &docs).map_err(|e| anyhow::anyhow!(e))?
                ),
                None => println!("{}", serde_json::to_string_pretty(&docs)?),
            }
            Ok(0)
        }
        NetworkCmd::Rm { networks } => {
            let mut code = 0;
            for name in networks {
                match cluster(host, ClusterRequest::NetworkRm { network: name }) {
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

/// Docker shows the first 12 characters of an ID in tables.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn ls(nets: &[Network], quiet: bool, format: Option<&str>) -> anyhow::Result<String> {
    if quiet {
        return Ok(nets.iter().map(|n| format!("{}\n", short(&n.id))).collect());
    }
    let rows: Vec<BTreeMap<String, serde_json::Value>> = nets
        .iter()
        .map(|n| {
            let mut r = BTreeMap::new();
            r.insert("ID".into(), short(&n.id).into());
            r.insert("Name".into(), n.name.clone().into());
            r.insert("Driver".into(), "overlay".into());
            r.insert("Scope".into(), "swarm".into());
            r.insert("IPv6".into(), "false".into());
            r.insert("Internal".into(), "false".into());
            r.insert("CreatedAt".into(), super::rfc3339(n.created_at).into());
            r
        })
        .collect();
    table::format_rows(&rows, format, || {
        let cells: Vec<Vec<String>> = nets
            .iter()
            .map(|n| {
                vec![
                    short(&n.id),
                    n.name.clone(),
                    "overlay".into(),
                    "swarm".into(),
                ]
            })
            .collect();
        table::render(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &cells)
    })
}

/// The JSON of `network inspect`, shaped like Docker's: `Containers` by
/// container ID (with the node each is on, which Docker leaves out), and
/// `Peers`, the nodes where the network is in use.
fn inspect_doc(detail: &NetworkDetail) -> serde_json::Value {
    let n = &detail.network;
    let mut containers = serde_json::Map::new();
    let mut peers: Vec<serde_json::Value> = Vec::new();
    for a in &detail.attached {
        let e = &a.endpoint;
        containers.insert(
            e.container_id.clone(),
            serde_json::json!({
                "Name": e.container_name,
                "EndpointID": e.id,
                "MacAddress": e.mac,
                "IPv4Address": format!("{}/{}", e.ip, n.subnet.prefix()),
                "IPv6Address": "",
                "Node": a.node_hostname,
                "Aliases": e.aliases,
            }),
        );
        let peer = serde_json::json!({ "Name": a.node_hostname, "IP": a.node_addr.to_string() });
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    let mut options = serde_json::Map::new();
    options.insert(
        "com.docker.network.driver.overlay.vxlanid_list".into(),
        n.vni.to_string().into(),
    );
    for (k, v) in &n.options {
        options.insert(k.clone(), v.clone().into());
    }
    serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": super::rfc3339(n.created_at),
        "Scope": "swarm",
        "Driver": "overlay",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [{ "Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string() }],
        },
        "Internal": false,
        "Attachable": n.attachable,
        "Ingress": n.ingress,
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": {},
        "Peers": peers,
        "VNI": n.vni,
        "MTU": n.mtu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opts_split_on_the_first_equals() {
        let opts = parse_opts(&["mtu=1300".into(), "allow-overlap".into(), "a=b=c".into()]);
        assert_eq!(opts["mtu"], "1300");
        assert_eq!(opts["allow-overlap"], "");
        assert_eq!(opts["a"], "b=c");
    }
}
