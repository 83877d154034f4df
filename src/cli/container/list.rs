//! `container ls`: Docker's columns, `-q` and `--format` over the API's summaries.

use super::super::table;
use crate::api::models::ContainerSummary;
use crate::api::{human_duration, rfc3339};
use crate::model::now_secs;

/// The COMMAND column: quoted, cut at 20 characters.
fn command(s: &ContainerSummary) -> String {
    let full = s.command.clone().unwrap_or_default();
    let short: String = full.chars().take(20).collect();
    if short.len() < full.len() {
        format!("\"{short}…\"")
    } else {
        format!("\"{full}\"")
    }
}

pub fn ls(
    summaries: &[ContainerSummary],
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    let short = |s: &ContainerSummary| {
        s.id.clone()
            .unwrap_or_default()
            .chars()
            .take(12)
            .collect::<String>()
    };
    if quiet {
        return Ok(summaries
            .iter()
            .map(|s| format!("{}\n", short(s)))
            .collect());
    }
    let rows: Vec<serde_json::Value> = summaries
        .iter()
        .map(|s| {
            let created = s.created.unwrap_or(0).max(0) as u64;
            let mut networks: Vec<&str> = s
                .network_settings
                .iter()
                .flat_map(|n| n.networks.iter().flat_map(|m| m.keys()))
                .map(String::as_str)
                .collect();
            networks.sort();
            let names = s.names.clone().unwrap_or_default();
            let state = s.state.map(|st| st.to_string()).unwrap_or_default();
            serde_json::json!({
                "ID": short(s),
                "Image": s.image.clone().unwrap_or_default(),
                "Command": command(s),
                "CreatedAt": rfc3339(created),
                "RunningFor": format!("{} ago", human_duration(now_secs().saturating_sub(created))),
                "Status": s.status.clone().unwrap_or_default(),
                "State": state,
                "Ports": "",
                "Names": names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
                "Networks": networks.join(","),
            })
        })
        .collect();
    table::format_rows(&rows, format, || {
        let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
        let columns = [
            "ID",
            "Image",
            "Command",
            "RunningFor",
            "Status",
            "Ports",
            "Names",
        ];
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| columns.iter().map(|k| field(r, k)).collect())
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
