//! Tables and `--format` templates as Docker prints them: columns padded like
//! Go's tabwriter, and the `{{.Field}}` placeholders of Go templates.

use std::collections::BTreeMap;

/// Renders rows under a header with columns three spaces apart.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Fills a Go-style template: `{{.Field}}`, `{{json .}}`, `{{json .Field}}`,
/// `\t` and `\n`; `table ` in front prints a header of the field names. An
/// unknown field is an error naming it.
pub fn template(
    tmpl: &str,
    rows: &[BTreeMap<String, serde_json::Value>],
) -> Result<String, String> {
    let (table, body) = match tmpl.strip_prefix("table ") {
        Some(rest) => (true, rest),
        None => (false, tmpl),
    };
    let body = body.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    if table {
        let header = fill(&body, &BTreeMap::new(), true)?;
        out.push_str(&header);
        out.push('\n');
    }
    for row in rows {
        out.push_str(&fill(&body, row, false)?);
        out.push('\n');
    }
    Ok(out)
}

fn fill(
    body: &str,
    row: &BTreeMap<String, serde_json::Value>,
    header: bool,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("template parsing error: unclosed action in {body:?}"))?;
        let action = rest[start + 2..start + end].trim();
        out.push_str(&action_value(action, row, header)?);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn action_value(
    action: &str,
    row: &BTreeMap<String, serde_json::Value>,
    header: bool,
) -> Result<String, String> {
    let (json, field) = match action.strip_prefix("json ") {
        Some(f) => (true, f.trim()),
        None => (false, action),
    };
    if field == "." {
        return Ok(if header {
            "JSON".into()
        } else {
            serde_json::to_string(row).unwrap_or_default()
        });
    }
    let name = field.strip_prefix('.').ok_or_else(|| {
        format!("template: unsupported action {{{{{action}}}}}: use {{{{.Field}}}}")
    })?;
    if header {
        return Ok(header_name(name));
    }
    let value = row.get(name).ok_or_else(|| {
        format!(
            "template: can't evaluate field {name}; fields are: {}",
            row.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    Ok(match (json, value) {
        (true, v) => serde_json::to_string(v).unwrap_or_default(),
        (false, serde_json::Value::String(s)) => s.clone(),
        (false, v) => v.to_string(),
    })
}

/// `ManagerStatus` → `MANAGER STATUS`.
fn header_name(field: &str) -> String {
    let mut out = String::new();
    let mut prev_upper = true;
    for c in field.chars() {
        if c.is_uppercase() && !prev_upper {
            out.push(' ');
        }
        prev_upper = c.is_uppercase();
        out.extend(c.to_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> BTreeMap<String, serde_json::Value> {
        let mut r = BTreeMap::new();
        r.insert("Hostname".into(), "vm1".into());
        r.insert("ManagerStatus".into(), "Leader".into());
        r.insert("Self".into(), true.into());
        r
    }

    #[test]
    fn placeholders_are_filled() {
        let out = template("{{.Hostname}} {{.ManagerStatus}} {{.Self}}", &[row()]).unwrap();
        assert_eq!(out, "vm1 Leader true\n");
    }

    #[test]
    fn table_prefix_prints_a_header_and_tabs() {
        let out = template("table {{.Hostname}}\\t{{.ManagerStatus}}", &[row()]).unwrap();
        assert_eq!(out, "HOSTNAME\tMANAGER STATUS\nvm1\tLeader\n");
    }

    #[test]
    fn json_and_unknown_fields() {
        let out = template("{{json .Hostname}}", &[row()]).unwrap();
        assert_eq!(out, "\"vm1\"\n");
        let err = template("{{.Nope}}", &[row()]).unwrap_err();
        assert!(err.contains("can't evaluate field Nope"), "{err}");
        assert!(template("{{.Hostname", &[row()]).is_err());
    }

    #[test]
    fn columns_are_padded_three_spaces() {
        let out = render(&["ID", "HOSTNAME"], &[vec!["abc *".into(), "vm1".into()]]);
        assert_eq!(out, "ID      HOSTNAME\nabc *   vm1\n");
    }
}
