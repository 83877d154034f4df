//! `swarmnet network create|ls|inspect|rm`, with Docker's columns and JSON,
//! over the API as Docker's CLI calls it.

use std::collections::BTreeMap;

use clap::Subcommand;

use super::client::{segment, Client};
use super::table;
use crate::api::models::{Ipam, IpamConfig, NetworkCreateRequest, NetworkCreateResponse};
use crate::api::NetworkDoc;

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

pub fn run(host: &str, cmd: NetworkCmd) -> anyhow::Result<i32> {
    let client = Client::new(host)?;
    match cmd {
        NetworkCmd::Create {
            driver,
            attachable,
            subnet,
            gateway,
            opts,
            name,
        } => {
            let ipam = (subnet.is_some() || gateway.is_some()).then(|| Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet,
                    gateway,
                    ..Default::default()
                }]),
                options: None,
            });
            let req = NetworkCreateRequest {
                name,
                driver: Some(driver),
                attachable: Some(attachable),
                ipam,
                options: Some(parse_opts(&opts).into_iter().collect()),
                ..Default::default()
            };
            let created: NetworkCreateResponse = client.post("/networks/create", &req)?;
            println!("{}", created.id);
            Ok(0)
        }
        NetworkCmd::Ls { list } => {
            let nets: Vec<NetworkDoc> = client.get("/networks")?;
            print!("{}", ls(&nets, list.quiet, list.format.as_deref())?);
            Ok(0)
        }
        NetworkCmd::Inspect { format, networks } => {
            let docs = networks
                .iter()
                .map(|n| client.get::<serde_json::Value>(&format!("/networks/{}", segment(n))))
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
        NetworkCmd::Rm { networks } => {
            let mut code = 0;
            for name in networks {
                match client.delete(&format!("/networks/{}", segment(&name))) {
                    Ok(()) => println!("{name}"),
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

fn ls(nets: &[NetworkDoc], quiet: bool, format: Option<&str>) -> anyhow::Result<String> {
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    if quiet {
        return Ok(nets
            .iter()
            .map(|n| format!("{}\n", short(&field(&n.network.id))))
            .collect());
    }
    let rows: Vec<BTreeMap<String, serde_json::Value>> = nets
        .iter()
        .map(|d| {
            let n = &d.network;
            let mut r = BTreeMap::new();
            r.insert("ID".into(), short(&field(&n.id)).into());
            r.insert("Name".into(), field(&n.name).into());
            r.insert("Driver".into(), field(&n.driver).into());
            r.insert("Scope".into(), field(&n.scope).into());
            r.insert(
                "IPv6".into(),
                n.enable_ipv6.unwrap_or(false).to_string().into(),
            );
            r.insert(
                "Internal".into(),
                n.internal.unwrap_or(false).to_string().into(),
            );
            r.insert("CreatedAt".into(), field(&n.created).into());
            r
        })
        .collect();
    table::format_rows(&rows, format, || {
        let cells: Vec<Vec<String>> = nets
            .iter()
            .map(|d| {
                let n = &d.network;
                vec![
                    short(&field(&n.id)),
                    field(&n.name),
                    field(&n.driver),
                    field(&n.scope),
                ]
            })
            .collect();
        table::render(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &cells)
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
