//! Tables and `--format` templates as Docker prints them: columns padded like
//! Go's tabwriter, and the `{{.Field}}` placeholders of Go templates. Every
//! value printed has its control characters escaped, so a name can neither
//! break a row nor recolour the terminal.

use crate::model::escape;

/// Renders rows under a header with columns three spaces apart.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
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
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Prints rows as `--format` asks: `json` (one object a line), a Go
/// template, or (none, or `table`) the default table `table()` draws.
pub fn format_rows<T: serde::Serialize>(
    rows: &[T],
    format: Option<&str>,
    table: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    match format {
        Some("json") => rows
            .iter()
            .map(|r| Ok(format!("{}\n", serde_json::to_string(r)?)))
            .collect(),
        Some(tmpl) if tmpl != "table" => template(tmpl, rows).map_err(|e| anyhow::anyhow!(e)),
        _ => Ok(table()),
    }
}

/// Fills a Go-style template for each row: `{{.Field}}`, nested `{{.A.B}}`,
/// `{{json .}}`, `{{json .Field}}`, `{{range .List}}...{{end}}` (inside, `.`
/// is the element), `\t` and `\n`; `table ` in front prints a header of the
/// field names. An unknown field is an error naming it.
pub fn template<T: serde::Serialize>(tmpl: &str, rows: &[T]) -> Result<String, String> {
    let (table, body) = match tmpl.strip_prefix("table ") {
        Some(rest) => (true, rest),
        None => (false, tmpl),
    };
    let body = body.replace("\\t", "\t").replace("\\n", "\n");
    let nodes = parse(&body)?;
    let mut out = String::new();
    if table {
        out.push_str(&header(&nodes));
        out.push('\n');
    }
    for row in rows {
        let value = serde_json::to_value(row).map_err(|e| e.to_string())?;
        render_nodes(&nodes, &value, &mut out)?;
        out.push('\n');
    }
    Ok(out)
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(String),
    Range(String, Vec<Node>),
}

fn parse(body: &str) -> Result<Vec<Node>, String> {
    let mut stack: Vec<(String, Vec<Node>)> = Vec::new();
    let mut nodes = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            nodes.push(Node::Text(rest[..start].to_string()));
        }
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("template parsing error: unclosed action in {body:?}"))?;
        let action = rest[start + 2..start + end].trim().to_string();
        rest = &rest[start + end + 2..];
        if let Some(expr) = action.strip_prefix("range ") {
            stack.push((expr.trim().to_string(), std::mem::take(&mut nodes)));
        } else if action == "end" {
            let (expr, outer) = stack.pop().ok_or_else(|| {
                format!("template parsing error: unexpected {{{{end}}}} in {body:?}")
            })?;
            let inner = std::mem::replace(&mut nodes, outer);
            nodes.push(Node::Range(expr, inner));
        } else {
            nodes.push(Node::Action(action));
        }
    }
    if !rest.is_empty() {
        nodes.push(Node::Text(rest.to_string()));
    }
    if !stack.is_empty() {
        return Err(format!(
            "template parsing error: {{{{range}}}} without {{{{end}}}} in {body:?}"
        ));
    }
    Ok(nodes)
}

fn render_nodes(nodes: &[Node], dot: &serde_json::Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(a) => out.push_str(&action_value(a, dot)?),
            Node::Range(expr, inner) => match lookup(expr, dot)? {
                serde_json::Value::Array(items) => {
                    for item in items {
                        render_nodes(inner, item, out)?;
                    }
                }
                serde_json::Value::Object(map) => {
                    for item in map.values() {
                        render_nodes(inner, item, out)?;
                    }
                }
                serde_json::Value::Null => {}
                other => return Err(format!("template: range can't iterate over {other}")),
            },
        }
    }
    Ok(())
}

fn lookup<'v>(expr: &str, dot: &'v serde_json::Value) -> Result<&'v serde_json::Value, String> {
    if expr == "." {
        return Ok(dot);
    }
    let path = expr.strip_prefix('.').ok_or_else(|| {
        format!("template: unsupported action {{{{{expr}}}}}: use {{{{.Field}}}}")
    })?;
    let mut value = dot;
    for field in path.split('.') {
        value = value.get(field).ok_or_else(|| {
            let fields = value
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            format!("template: can't evaluate field {field}; fields are: {fields}")
        })?;
    }
    Ok(value)
}

fn action_value(action: &str, dot: &serde_json::Value) -> Result<String, String> {
    let (json, expr) = match action.strip_prefix("json ") {
        Some(f) => (true, f.trim()),
        None => (false, action),
    };
    let value = lookup(expr, dot)?;
    Ok(match (json, value) {
        (true, v) => serde_json::to_string(v).unwrap_or_default(),
        (false, serde_json::Value::String(s)) => escape(s).into_owned(),
        (false, serde_json::Value::Null) => "<no value>".into(),
        (false, v) => v.to_string(),
    })
}

/// The header line of a `table` template: each action's field name in capitals.
fn header(nodes: &[Node]) -> String {
    let mut out = String::new();
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(a) => {
                let expr = a.strip_prefix("json ").unwrap_or(a).trim();
                let name = expr
                    .rsplit('.')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("JSON");
                out.push_str(&header_name(name));
            }
            Node::Range(..) => {}
        }
    }
    out
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
    use std::collections::BTreeMap;

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
    fn nested_fields_and_range() {
        let doc = serde_json::json!({
            "Name": "c1",
            "NetworkSettings": { "Networks": { "blue": { "IPAddress": "10.0.1.2" }, "red": { "IPAddress": "10.0.2.2" } } }
        });
        let out = template(
            "{{.Name}}:{{range .NetworkSettings.Networks}} {{.IPAddress}}{{end}}",
            &[doc],
        )
        .unwrap();
        assert_eq!(out, "c1: 10.0.1.2 10.0.2.2\n");
        assert!(template("{{range .Name}}", &[serde_json::json!({"Name": []})]).is_err());
        assert!(template("{{end}}", &[serde_json::json!({})]).is_err());
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

    #[test]
    fn control_characters_in_values_are_escaped() {
        let forged = "vm2\n\u{1b}[31mFAKE Ready Active Leader";
        let out = render(&["ID", "HOSTNAME"], &[vec!["abc".into(), forged.into()]]);
        assert_eq!(
            out,
            "ID    HOSTNAME\nabc   vm2\\n\\u{1b}[31mFAKE Ready Active Leader\n"
        );
        let mut r = row();
        r.insert("Hostname".into(), forged.into());
        let out = template("{{.Hostname}}", &[r.clone()]).unwrap();
        assert_eq!(out.lines().count(), 1, "{out:?}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
        let json = template("{{json .Hostname}}", &[r]).unwrap();
        assert_eq!(json, "\"vm2\\n\\u001b[31mFAKE Ready Active Leader\"\n");
    }
}
