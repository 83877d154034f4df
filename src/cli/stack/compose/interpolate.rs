//! Variables in a compose file's values, as compose substitutes them:
//! `$VAR` and `${VAR}`, `${VAR:-default}` (unset or empty) and
//! `${VAR-default}` (unset), `${VAR:?error}` and `${VAR?error}`,
//! `${VAR:+alt}` and `${VAR+alt}`, `$$` for a `$`; a default may hold
//! variables itself. An unset variable with no default is blank, with a
//! warning as compose gives. Keys are never substituted, values only.
//! The variables are the environment's, then a `.env` file's beside the
//! compose file (the environment wins).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Where variables come from.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

impl Vars {
    /// The environment's variables over `dot_env`'s (a `.env` file's text).
    pub fn new(env: impl IntoIterator<Item = (String, String)>, dot_env: Option<&str>) -> Vars {
        let mut values: BTreeMap<String, String> = dot_env.map(parse_dot_env).unwrap_or_default();
        values.extend(env);
        Vars { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// `KEY=VALUE` lines; `#` comments and blank lines skipped, an `export `
/// before the key allowed, one pair of quotes around the value taken off.
fn parse_dot_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (key, value) = l.split_once('=')?;
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(value);
            Some((key.trim().to_string(), unquoted.to_string()))
        })
        .collect()
}

/// Substitutes every string value of `value`; errors name the value's path.
/// Returns the names of variables that were unset and taken as blank.
pub fn interpolate(value: &mut Value, vars: &Vars) -> Result<BTreeSet<String>, String> {
    let mut unset = BTreeSet::new();
    walk(value, vars, &mut String::new(), &mut unset)?;
    Ok(unset)
}

fn walk(
    value: &mut Value,
    vars: &Vars,
    path: &mut String,
    unset: &mut BTreeSet<String>,
) -> Result<(), String> {
    match value {
        Value::String(s) => {
            *s = substitute(s, vars, unset).map_err(|e| match path.is_empty() {
                true => e,
                false => format!("{path}: {e}"),
            })?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, vars, path, unset)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(v, vars, path, unset)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// One string with its variables substituted.
pub fn substitute(s: &str, vars: &Vars, unset: &mut BTreeSet<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing(body).ok_or_else(|| {
                format!("invalid template \"{s}\": a \"${{\" is not closed; write \"$$\" for a literal \"$\"")
            })?;
            out.push_str(&braced(&body[..end], s, vars, unset)?);
            rest = &body[end + 1..];
        } else if after.starts_with(is_name_start) {
            let len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            let name = &after[..len];
            out.push_str(lookup(name, vars, unset));
            rest = &after[len..];
        } else {
            return Err(format!(
                "invalid template \"{s}\": \"$\" must begin a variable; write \"$$\" for a literal \"$\""
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Where the `}` that closes a `${` is in `body` (nested `${...}` skipped).
fn closing(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup<'a>(name: &str, vars: &'a Vars, unset: &mut BTreeSet<String>) -> &'a str {
    vars.get(name).unwrap_or_else(|| {
        unset.insert(name.to_string());
        ""
    })
}

/// `NAME`, `NAME:-word`, `NAME-word`, `NAME:?word`, `NAME?word`,
/// `NAME:+word`, `NAME+word`.
fn braced(
    body: &str,
    whole: &str,
    vars: &Vars,
    unset: &mut BTreeSet<String>,
) -> Result<String, String> {
    let len = body.find(|c: char| !is_name(c)).unwrap_or(body.len());
    let (name, op) = body.split_at(len);
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(format!(
            "invalid template \"{whole}\": \"${{{body}}}\" names no variable"
        ));
    }
    let value = vars.get(name);
    let (colon, op) = match op.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    // With a colon, an empty value counts as unset.
    let set = value.is_some_and(|v| !colon || !v.is_empty());
    let Some(kind) = op.chars().next() else {
        return match colon {
            true => Err(format!(
                "invalid template \"{whole}\": \"${{{body}}}\" has a \":\" but no \"-\", \"?\" or \"+\" after it"
            )),
            false => Ok(lookup(name, vars, unset).to_string()),
        };
    };
    let word = &op[1..];
    match kind {
        '-' if set => Ok(value.unwrap_or_default().to_string()),
        '-' => substitute(word, vars, unset),
        '?' if set => Ok(value.unwrap_or_default().to_string()),
        '?' => Err(format!(
            "required variable {name} is missing a value: {}",
            substitute(word, vars, unset)?
        )),
        '+' if set => substitute(word, vars, unset),
        '+' => Ok(String::new()),
        _ => Err(format!(
            "invalid template \"{whole}\": \"${{{body}}}\" is not a substitution compose knows"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        Vars::new(
            [("TAG", "v2"), ("EMPTY", "")].map(|(k, v)| (k.to_string(), v.to_string())),
            Some("# settings\nexport PORT=8080\nTAG=from-dot-env\nNAME=\"web app\"\n\n"),
        )
    }

    fn sub(s: &str) -> Result<String, String> {
        substitute(s, &vars(), &mut BTreeSet::new())
    }

    #[test]
    fn variables_defaults_and_dollars_are_substituted_as_compose_does() {
        assert_eq!(sub("app:$TAG").unwrap(), "app:v2", "the environment wins");
        assert_eq!(sub("${PORT}:3000").unwrap(), "8080:3000", "from .env");
        assert_eq!(sub("${NAME}").unwrap(), "web app", "quotes taken off");
        assert_eq!(sub("${EMPTY:-x} ${EMPTY-x}").unwrap(), "x ");
        assert_eq!(sub("${NOPE:-x} ${NOPE-x}").unwrap(), "x x");
        assert_eq!(sub("${NOPE:-${TAG}-b}").unwrap(), "v2-b", "nested");
        assert_eq!(
            sub("${TAG:+set} ${EMPTY:+set} ${EMPTY+set}").unwrap(),
            "set  set"
        );
        assert_eq!(sub("$$TAG costs $$5").unwrap(), "$TAG costs $5");
        assert_eq!(sub("${TAG:?needed}").unwrap(), "v2");
        let mut unset = BTreeSet::new();
        assert_eq!(
            substitute("a${NOPE}b$NOPE2", &vars(), &mut unset).unwrap(),
            "ab"
        );
        assert_eq!(unset, BTreeSet::from(["NOPE".into(), "NOPE2".into()]));
    }

    #[test]
    fn required_and_malformed_variables_are_refused_with_where_they_are() {
        assert_eq!(
            sub("${NOPE:?set NOPE to the tag}").unwrap_err(),
            "required variable NOPE is missing a value: set NOPE to the tag"
        );
        assert_eq!(
            sub("${EMPTY?x}").unwrap(),
            "",
            "without a colon, empty is set"
        );
        assert!(sub("${TAG").unwrap_err().contains("is not closed"));
        assert!(sub("costs $5").unwrap_err().contains("write \"$$\""));
        assert!(sub("${:-x}").unwrap_err().contains("names no variable"));
        assert!(sub("${TAG:}").unwrap_err().contains("has a \":\""));
        assert!(sub("${TAG:x}").unwrap_err().contains("not a substitution"));
        let mut file =
            json!({"services": {"web": {"ports": ["${PORT}:3000", "${NOPE:?no port}"]}}});
        assert_eq!(
            interpolate(&mut file, &vars()).unwrap_err(),
            "services.web.ports[1]: required variable NOPE is missing a value: no port"
        );
    }

    #[test]
    fn only_values_are_substituted() {
        let mut file = json!({"services": {"$TAG": {"image": "app:${TAG}", "replicas": 3}}});
        assert!(interpolate(&mut file, &vars()).unwrap().is_empty());
        assert_eq!(
            file,
            json!({"services": {"$TAG": {"image": "app:v2", "replicas": 3}}})
        );
    }
}
