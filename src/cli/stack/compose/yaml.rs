//! A compose file's text as a JSON value, read by yaml-rust2's event parser
//! (YAML 1.2: plain scalars resolve by the core schema, quoted ones stay
//! strings): aliases are expanded, `<<` merge keys applied as compose
//! applies them, mapping keys become strings. A syntax error names its
//! line and column; a file whose aliases would expand past `MAX_NODES`
//! nodes (the "billion laughs") is refused before it takes the memory.

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// The most nodes a file may hold with its aliases expanded.
const MAX_NODES: usize = 1_000_000;

/// The first document of `text` (`file` names it in errors); a file with
/// no document is an empty mapping.
pub fn load(text: &str, file: &str) -> Result<Value, String> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let parsed = parser.load(&mut builder, true);
    if let Some((error, mark)) = builder.error {
        return Err(format!(
            "{file}: line {}, column {}: {error}",
            mark.line(),
            mark.col() + 1
        ));
    }
    if let Err(e) = parsed {
        return Err(format!(
            "{file}: line {}, column {}: {}",
            e.marker().line(),
            e.marker().col() + 1,
            e.info()
        ));
    }
    match builder.documents.len() {
        0 => Ok(Value::Object(Map::new())),
        1 => Ok(builder.documents.remove(0)),
        n => Err(format!(
            "{file} holds {n} YAML documents; a compose file is one document"
        )),
    }
}

/// A node being built: a sequence, or a mapping with its pending key.
enum Open {
    Seq(Vec<Value>, usize, usize),
    Map(Map<String, Value>, Option<String>, Vec<Value>, usize, usize),
}

#[derive(Default)]
struct Builder {
    documents: Vec<Value>,
    stack: Vec<Open>,
    /// Each anchor's node and its size in nodes.
    anchors: std::collections::HashMap<usize, (Value, usize)>,
    nodes: usize,
    error: Option<(String, Marker)>,
}

impl Builder {
    /// Places a finished node in its parent (or as a document).
    fn place(&mut self, value: Value, mark: Marker) {
        match self.stack.last_mut() {
            None => self.documents.push(value),
            Some(Open::Seq(items, ..)) => items.push(value),
            Some(Open::Map(map, key, merges, ..)) => match key.take() {
                None => match key_text(&value) {
                    Some(k) => *key = Some(k),
                    None => {
                        self.error = Some(("a mapping key must be a scalar".into(), mark));
                    }
                },
                Some(k) if k == "<<" => match value {
                    Value::Object(_) => merges.push(value),
                    Value::Array(items) if items.iter().all(Value::is_object) => {
                        merges.extend(items)
                    }
                    _ => {
                        self.error = Some((
                            "a merge key (<<) takes a mapping or a list of mappings".into(),
                            mark,
                        ))
                    }
                },
                Some(k) => {
                    if map.contains_key(&k) {
                        self.error = Some((format!("mapping key {k:?} already defined"), mark));
                    }
                    map.insert(k, value);
                }
            },
        }
    }

    fn count(&mut self, n: usize, mark: Marker) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.error = Some((
                format!("the file expands to more than {MAX_NODES} nodes (through its aliases)"),
                mark,
            ));
            return false;
        }
        true
    }

    fn finish(&mut self, value: Value, anchor: usize, start: usize, mark: Marker) {
        if anchor > 0 {
            let size = self.nodes - start;
            self.anchors.insert(anchor, (value.clone(), size));
        }
        self.place(value, mark);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let start = self.nodes;
                if !self.count(1, mark) {
                    return;
                }
                let value = match (style, tag) {
                    (TScalarStyle::Plain, None) => scalar(Yaml::from_str(&text), text),
                    (TScalarStyle::Plain, Some(tag)) if tag.suffix != "str" => {
                        scalar(Yaml::from_str(&text), text)
                    }
                    _ => Value::String(text),
                };
                self.finish(value, anchor, start, mark);
            }
            Event::SequenceStart(anchor, _) => {
                let start = self.nodes;
                if self.count(1, mark) {
                    self.stack.push(Open::Seq(Vec::new(), anchor, start));
                }
            }
            Event::MappingStart(anchor, _) => {
                let start = self.nodes;
                if self.count(1, mark) {
                    self.stack
                        .push(Open::Map(Map::new(), None, Vec::new(), anchor, start));
                }
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq(items, anchor, start)) = self.stack.pop() {
                    self.finish(Value::Array(items), anchor, start, mark);
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(mut map, _, merges, anchor, start)) = self.stack.pop() {
                    // Keys of the mapping win; of the merged ones, the first given.
                    for merged in merges {
                        if let Value::Object(entries) = merged {
                            for (k, v) in entries {
                                map.entry(k).or_insert(v);
                            }
                        }
                    }
                    self.finish(Value::Object(map), anchor, start, mark);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some((value, size)) => {
                    if self.count(size, mark) {
                        self.place(value, mark);
                    }
                }
                None => self.error = Some(("an alias to no anchor".into(), mark)),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// A plain scalar by the core schema; what JSON cannot hold (NaN, the
/// infinities) stays text.
fn scalar(yaml: Yaml, text: String) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(text), Value::Number),
        _ => Value::String(text),
    }
}

/// A mapping key as text: compose's keys are strings, and a number or a
/// boolean used as one (a port, `true`) is taken as its text.
fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_resolve_by_the_core_schema_and_quoted_ones_stay_text() {
        let text = r#"
services:
  web:
    replicas: 3
    ratio: 0.5
    on: true
    off: "false"
    empty:
    tilde: ~
    port: "8080"
    octal: 0o17
    text: !!str 42
    version: 3.8
"#;
        assert_eq!(
            load(text, "f.yml").unwrap(),
            json!({"services": {"web": {
                "replicas": 3, "ratio": 0.5, "on": true, "off": "false", "empty": null,
                "tilde": null, "port": "8080", "octal": 15, "text": "42", "version": 3.8
            }}})
        );
    }

    #[test]
    fn aliases_expand_and_merge_keys_fill_in_what_the_mapping_lacks() {
        let text = r#"
x-common: &common
  restart: always
  labels: {team: a}
x-more: &more
  restart: never
  hostname: h
services:
  web:
    <<: [*common, *more]
    labels: {team: b}
  db:
    <<: *common
    list: &l [1, 2]
    again: *l
"#;
        let v = load(text, "f.yml").unwrap();
        assert_eq!(
            v["services"]["web"],
            json!({"restart": "always", "hostname": "h", "labels": {"team": "b"}})
        );
        assert_eq!(v["services"]["db"]["again"], json!([1, 2]));
        assert_eq!(v["services"]["db"]["restart"], "always");
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let err = load("services:\n  web:\n    image: [a\n", "stack.yml").unwrap_err();
        assert!(err.starts_with("stack.yml: line 4, column 1:"), "{err}");
        let err = load("a: 1\na: 2\n", "stack.yml").unwrap_err();
        assert_eq!(
            err,
            "stack.yml: line 2, column 4: mapping key \"a\" already defined"
        );
        let err = load("a: *nothing\n", "stack.yml").unwrap_err();
        assert!(err.starts_with("stack.yml: line 1, column 4:"), "{err}");
        let err = load("a: 1\n---\nb: 2\n", "stack.yml").unwrap_err();
        assert_eq!(
            err,
            "stack.yml holds 2 YAML documents; a compose file is one document"
        );
        assert_eq!(load("", "stack.yml").unwrap(), json!({}));
    }

    #[test]
    fn a_billion_laughs_is_refused_before_it_expands() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = load(&text, "laughs.yml").unwrap_err();
        assert!(err.contains("expands to more than 1000000 nodes"), "{err}");
    }
}
