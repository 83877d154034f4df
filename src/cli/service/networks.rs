//! `--network` values as Docker 20.10's `NetworkOpt` reads them (a bare name,
//! or `name=app,alias=web` as one CSV record), and the networks of a spec:
//! named by ID for `create`, edited by `update --network-add|--network-rm`
//! as Docker's `updateNetworks` edits them.

use std::collections::HashMap;

use super::super::client::{segment, Client};
use crate::api::models::{NetworkAttachmentConfig, ServiceSpec};
use crate::api::NetworkDoc;

/// Whether Docker reads `value` (a `--network` or `--publish` value) in the
/// long syntax: its pattern `\w+=\w+(,\w+=\w+)*`, unanchored, matches
/// wherever an `=` stands between two word characters.
pub(super) fn long_syntax(value: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    value
        .as_bytes()
        .windows(3)
        .any(|w| word(w[0]) && w[1] == b'=' && word(w[2]))
}

/// A CSV error in Go's `encoding/csv` words, at a 1-based byte column.
fn csv_error(column: usize, what: &str) -> String {
    format!("parse error on line 1, column {column}: {what}")
}

/// The first record of `value` as Go's `encoding/csv` reads it: fields split
/// at commas; a field in double quotes may hold commas, and `""` for a quote;
/// any other quote is an error.
fn csv_record(value: &str) -> Result<Vec<String>, String> {
    const MISSING_QUOTE: &str = "extraneous or missing \" in quoted-field";
    let bytes = value.as_bytes();
    let mut fields = Vec::new();
    let mut at = 0;
    loop {
        if bytes.get(at) != Some(&b'"') {
            let end = value[at..]
                .find([',', '\n'])
                .map_or(value.len(), |i| at + i);
            let field = &value[at..end];
            if let Some(j) = field.find('"') {
                return Err(csv_error(at + j + 1, "bare \" in non-quoted field"));
            }
            fields.push(field.to_string());
            match bytes.get(end) {
                Some(b',') => at = end + 1,
                _ => return Ok(fields),
            }
            continue;
        }
        let mut field = String::new();
        at += 1;
        loop {
            let Some(i) = value[at..].find('"') else {
                return Err(csv_error(value.len() + 1, MISSING_QUOTE));
            };
            field.push_str(&value[at..at + i]);
            at += i + 1;
            match bytes.get(at) {
                Some(b'"') => {
                    field.push('"');
                    at += 1;
                }
                Some(b',') => {
                    at += 1;
                    break;
                }
                None | Some(b'\n') => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(_) => return Err(csv_error(at, MISSING_QUOTE)),
            }
        }
        fields.push(field);
    }
}

/// A `--network` (or `--network-add`) value as Docker 20.10's
/// `NetworkOpt.Set` reads it: a network's name or ID, or the long syntax
/// `name=app,alias=web,alias=www,driver-opt=key=value`, each field trimmed
/// and lowercased as Docker does; an error in Docker's words.
pub fn parse_network(value: &str) -> Result<NetworkAttachmentConfig, String> {
    if !long_syntax(value) {
        return Ok(NetworkAttachmentConfig {
            target: Some(value.to_string()),
            ..Default::default()
        });
    }
    let (mut target, mut aliases, mut driver_opts) = (String::new(), Vec::new(), HashMap::new());
    for field in csv_record(value)? {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((key, val)) if !key.trim().is_empty() => (key.trim(), val.trim()),
            _ => return Err(format!("invalid field {field}")),
        };
        match key {
            "name" => target = val.to_string(),
            "alias" => aliases.push(val.to_string()),
            "driver-opt" => {
                let (k, v) = val
                    .split_once('=')
                    .filter(|(k, _)| !k.trim().is_empty())
                    .ok_or("invalid key value pair format in driver options")?;
                driver_opts.insert(k.trim().to_string(), v.trim().to_string());
            }
            other => return Err(format!("invalid field key {other}")),
        }
    }
    if target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok(NetworkAttachmentConfig {
        target: Some(target),
        aliases: (!aliases.is_empty()).then_some(aliases),
        driver_opts: (!driver_opts.is_empty()).then_some(driver_opts),
    })
}

/// A network's ID, from its name, ID or ID prefix as the daemon finds it.
fn network_id(client: &Client, name: &str) -> anyhow::Result<String> {
    let doc: NetworkDoc = client
        .get(&format!("/networks/{}", segment(name)))
        .map_err(|e| super::not_found(e, "network", name))?;
    Ok(doc.network.id.unwrap_or_default())
}

/// Names the spec's networks by ID, sorted by it, as Docker's CLI sends them.
pub fn resolve(client: &Client, spec: &mut ServiceSpec) -> anyhow::Result<()> {
    let networks = spec
        .task_template
        .as_mut()
        .and_then(|t| t.networks.as_mut());
    if let Some(networks) = networks {
        for network in networks.iter_mut() {
            let name = network.target.clone().unwrap_or_default();
            network.target = Some(network_id(client, &name)?);
        }
        networks.sort_by(|a, b| a.target.cmp(&b.target));
    }
    Ok(())
}

/// `update --network-add` and `--network-rm` with their networks named by
/// ID: each added one kept with the name it was given (for the error).
#[derive(Debug, Default)]
pub struct NetworkEdit {
    pub add: Vec<(String, NetworkAttachmentConfig)>,
    pub rm: Vec<String>,
}

/// The edit the flags ask for, every network looked up (an unknown one is
/// Docker's error, before anything changes).
pub fn resolve_edit(
    client: &Client,
    add: &[NetworkAttachmentConfig],
    rm: &[String],
) -> anyhow::Result<NetworkEdit> {
    let rm = rm
        .iter()
        .map(|name| network_id(client, name))
        .collect::<anyhow::Result<_>>()?;
    let add = add
        .iter()
        .map(|network| {
            let given = network.target.clone().unwrap_or_default();
            let id = network_id(client, &given)?;
            let resolved = NetworkAttachmentConfig {
                target: Some(id),
                ..network.clone()
            };
            Ok((given, resolved))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(NetworkEdit { add, rm })
}

/// The spec's networks as Docker's `updateNetworks` leaves them: the old
/// `Spec.Networks` moved into the task template, removed ones dropped, added
/// ones appended (one already attached is an error, and leaves the spec
/// as it was), sorted by ID.
pub fn edit(spec: &mut ServiceSpec, edit: &NetworkEdit) -> anyhow::Result<()> {
    let task = spec.task_template.get_or_insert_with(Default::default);
    let mut networks = task
        .networks
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| spec.networks.clone())
        .unwrap_or_default();
    networks.retain(|n| !edit.rm.iter().any(|id| n.target.as_ref() == Some(id)));
    for (given, network) in &edit.add {
        if networks.iter().any(|n| n.target == network.target) {
            anyhow::bail!("service is already attached to network {given}");
        }
        networks.push(network.clone());
    }
    networks.sort_by(|a, b| a.target.cmp(&b.target));
    task.networks = Some(networks).filter(|n| !n.is_empty());
    spec.networks = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(n: &NetworkAttachmentConfig) -> serde_json::Value {
        serde_json::to_value(n).unwrap()
    }

    #[test]
    fn a_bare_name_or_id_is_the_target() {
        for value in [
            "app",
            "k3mx0f7v9z1n8q2w4e6r5t1y0",
            "my-net.1",
            "a=-b",
            "name=",
        ] {
            let n = parse_network(value).unwrap();
            assert_eq!(json(&n), serde_json::json!({ "Target": value }), "{value}");
        }
    }

    #[test]
    fn the_long_syntax_gives_target_aliases_and_driver_opts() {
        let n = parse_network("name=app,alias=x,alias=y").unwrap();
        assert_eq!(
            json(&n),
            serde_json::json!({ "Target": "app", "Aliases": ["x", "y"] })
        );
        let n = parse_network(" Name = App , ALIAS=Web").unwrap();
        assert_eq!(
            json(&n),
            serde_json::json!({ "Target": "app", "Aliases": ["web"] }),
            "trimmed and lowercased, as Docker does"
        );
        let n = parse_network("name=app").unwrap();
        assert_eq!(json(&n), serde_json::json!({ "Target": "app" }));
        let n = parse_network("name=app,driver-opt=com.docker.network.mtu=1400").unwrap();
        assert_eq!(
            json(&n),
            serde_json::json!({ "Target": "app", "DriverOpts": { "com.docker.network.mtu": "1400" } })
        );
        let n = parse_network(r#"name=app,"alias=a,b""#).unwrap();
        assert_eq!(n.aliases, Some(vec!["a,b".to_string()]), "a quoted field");
    }

    #[test]
    fn bad_long_values_get_dockers_words() {
        for (value, words) in [
            ("name=app,colour=red", "invalid field key colour"),
            ("target=app", "invalid field key target"),
            ("name=app,ip=10.0.0.5", "invalid field key ip"),
            ("name=app,alias", "invalid field alias"),
            ("name=app,=x", "invalid field =x"),
            ("alias=x", "network name/id is not specified"),
            ("name=,alias=x", "network name/id is not specified"),
            (
                "name=app,driver-opt=x",
                "invalid key value pair format in driver options",
            ),
            (
                "name=app,al\"ias=x",
                "parse error on line 1, column 12: bare \" in non-quoted field",
            ),
            (
                "name=app,\"alias=x",
                "parse error on line 1, column 18: extraneous or missing \" in quoted-field",
            ),
            (
                "\"name=app\"x,alias=y",
                "parse error on line 1, column 10: extraneous or missing \" in quoted-field",
            ),
        ] {
            assert_eq!(parse_network(value).unwrap_err(), words, "{value}");
        }
    }

    #[test]
    fn csv_fields_split_as_gos_reader() {
        assert_eq!(csv_record("a=1,b=2").unwrap(), ["a=1", "b=2"]);
        assert_eq!(csv_record(r#""a=""q""",b"#).unwrap(), ["a=\"q\"", "b"]);
        assert_eq!(csv_record("a=1,").unwrap(), ["a=1", ""]);
        assert_eq!(csv_record("a=1\nb=2").unwrap(), ["a=1"], "one record");
    }

    fn attached(targets: &[(&str, &[&str])]) -> Vec<NetworkAttachmentConfig> {
        targets
            .iter()
            .map(|(t, aliases)| NetworkAttachmentConfig {
                target: Some(t.to_string()),
                aliases: (!aliases.is_empty())
                    .then(|| aliases.iter().map(|a| a.to_string()).collect()),
                driver_opts: None,
            })
            .collect()
    }

    fn spec_with(networks: Vec<NetworkAttachmentConfig>) -> ServiceSpec {
        ServiceSpec {
            task_template: Some(crate::api::models::TaskSpec {
                networks: Some(networks),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn update_adds_and_removes_networks_sorted_by_id() {
        let mut spec = spec_with(attached(&[("id9", &["web"]), ("id5", &[])]));
        let add = attached(&[("id7", &["api", "www"])]).remove(0);
        let change = NetworkEdit {
            add: vec![("back".into(), add)],
            rm: vec!["id5".into()],
        };
        edit(&mut spec, &change).unwrap();
        let networks = spec.task_template.unwrap().networks.unwrap();
        assert_eq!(
            networks,
            attached(&[("id7", &["api", "www"]), ("id9", &["web"])])
        );
    }

    #[test]
    fn update_refuses_a_network_already_attached_and_empties_to_none() {
        let mut spec = spec_with(attached(&[("id9", &[])]));
        let again = NetworkEdit {
            add: vec![("app".into(), attached(&[("id9", &["x"])]).remove(0))],
            rm: Vec::new(),
        };
        assert_eq!(
            edit(&mut spec, &again).unwrap_err().to_string(),
            "service is already attached to network app"
        );
        assert_eq!(spec, spec_with(attached(&[("id9", &[])])), "unchanged");
        let swap = NetworkEdit {
            add: again.add.clone(),
            rm: vec!["id9".into()],
        };
        let mut replaced = spec_with(attached(&[("id9", &[])]));
        edit(&mut replaced, &swap).unwrap();
        assert_eq!(
            replaced.task_template.unwrap().networks.unwrap(),
            attached(&[("id9", &["x"])]),
            "removed, then added back with its alias"
        );
        let rm_all = NetworkEdit {
            add: Vec::new(),
            rm: vec!["id9".into()],
        };
        edit(&mut spec, &rm_all).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert!(json["TaskTemplate"].get("Networks").is_none(), "{json}");
    }

    #[test]
    fn update_moves_the_old_spec_networks_into_the_task_template() {
        let mut spec = ServiceSpec {
            networks: Some(attached(&[("id3", &["old"])])),
            ..Default::default()
        };
        edit(&mut spec, &NetworkEdit::default()).unwrap();
        assert_eq!(spec.networks, None);
        assert_eq!(
            spec.task_template.unwrap().networks.unwrap(),
            attached(&[("id3", &["old"])])
        );
    }
}
