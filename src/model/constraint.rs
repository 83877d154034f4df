//! Placement constraints (`--constraint 'node.role==worker'`): parsed with
//! Docker's operators and keys, and matched against a node.

use std::collections::BTreeMap;

use super::{ApiError, NodeRole};

/// What a constraint looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKey {
    NodeId,
    Hostname,
    Role,
    PlatformOs,
    PlatformArch,
    NodeLabel(String),
    EngineLabel(String),
}

/// One `KEY==VALUE` or `KEY!=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: ConstraintKey,
    pub equal: bool,
    pub value: String,
}

/// The facts about a node that constraints are matched against.
#[derive(Debug, Clone, Copy)]
pub struct NodeFacts<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub role: NodeRole,
    pub labels: &'a BTreeMap<String, String>,
    pub engine_labels: &'a BTreeMap<String, String>,
}

impl Constraint {
    /// Parses one expression; the error says which part is wrong.
    pub fn parse(expr: &str) -> Result<Constraint, ApiError> {
        let bad =
            |why: String| ApiError::InvalidArgument(format!("invalid constraint {expr:?}: {why}"));
        let (at, equal) =
            match (expr.find("=="), expr.find("!=")) {
                (Some(i), None) => (i, true),
                (None, Some(i)) => (i, false),
                _ => return Err(bad(
                    "constraint expected one operator from ==, != (for example node.role==worker)"
                        .into(),
                )),
            };
        let key = expr[..at].trim();
        let value = expr[at + 2..].trim();
        if value.contains("==") || value.contains("!=") {
            return Err(bad("constraint expected one operator from ==, !=".into()));
        }
        if value.is_empty() {
            return Err(bad(format!("the value after {key} is empty")));
        }
        if !value.chars().all(|c| {
            c.is_ascii_alphanumeric() || c.is_ascii_whitespace() || ":-_.*()?+[]\\^$|/".contains(c)
        }) {
            return Err(bad(format!("value '{value}' is invalid")));
        }
        let label = |prefix: &str| {
            key.strip_prefix(prefix)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        };
        let key = match key {
            "node.id" => ConstraintKey::NodeId,
            "node.hostname" => ConstraintKey::Hostname,
            "node.role" => ConstraintKey::Role,
            "node.platform.os" => ConstraintKey::PlatformOs,
            "node.platform.arch" => ConstraintKey::PlatformArch,
            _ => match (label("node.labels."), label("engine.labels.")) {
                (Some(k), _) => ConstraintKey::NodeLabel(k),
                (_, Some(k)) => ConstraintKey::EngineLabel(k),
                _ => {
                    return Err(bad(format!(
                        "key '{key}' is invalid: use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.KEY or engine.labels.KEY"
                    )))
                }
            },
        };
        if key == ConstraintKey::Role && NodeRole::parse(&value.to_lowercase()).is_err() {
            return Err(bad(format!(
                "node.role is manager or worker, not '{value}'"
            )));
        }
        Ok(Constraint {
            key,
            equal,
            value: value.to_string(),
        })
    }

    /// True when the node satisfies it (values compare case-insensitively, as in Docker).
    pub fn matches(&self, node: &NodeFacts<'_>) -> bool {
        let role = node.role.to_string();
        let actual = match &self.key {
            ConstraintKey::NodeId => Some(node.id),
            ConstraintKey::Hostname => Some(node.hostname),
            ConstraintKey::Role => Some(role.as_str()),
            ConstraintKey::PlatformOs => Some(std::env::consts::OS),
            ConstraintKey::PlatformArch => Some(std::env::consts::ARCH),
            ConstraintKey::NodeLabel(k) => node.labels.get(k).map(String::as_str),
            ConstraintKey::EngineLabel(k) => node.engine_labels.get(k).map(String::as_str),
        };
        let same = actual.is_some_and(|a| a.eq_ignore_ascii_case(&self.value));
        same == self.equal
    }
}

/// True when every constraint holds on the node.
pub fn all_match(constraints: &[Constraint], node: &NodeFacts<'_>) -> bool {
    constraints.iter().all(|c| c.matches(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(labels: &'a BTreeMap<String, String>, role: NodeRole) -> NodeFacts<'a> {
        NodeFacts {
            id: "n1abc",
            hostname: "vm2",
            role,
            labels,
            engine_labels: labels,
        }
    }

    #[test]
    fn constraints_match_as_dockers_do() {
        let labels = BTreeMap::from([("zone".to_string(), "East".to_string())]);
        let worker = facts(&labels, NodeRole::Worker);
        let manager = facts(&labels, NodeRole::Manager);
        let holds =
            |expr: &str, node: &NodeFacts<'_>| Constraint::parse(expr).unwrap().matches(node);
        let cases: &[(&str, bool, bool)] = &[
            ("node.role==worker", true, false),
            ("node.role != worker", false, true),
            ("node.role==Manager", false, true),
            ("node.hostname==vm2", true, true),
            ("node.hostname!=vm2", false, false),
            ("node.id==n1abc", true, true),
            ("node.labels.zone==east", true, true),
            ("node.labels.zone!=east", false, false),
            ("node.labels.rack==1", false, false),
            ("node.labels.rack!=1", true, true),
            ("engine.labels.zone==east", true, true),
            ("node.platform.os==linux", true, true),
        ];
        for (expr, on_worker, on_manager) in cases {
            assert_eq!(holds(expr, &worker), *on_worker, "{expr} on a worker");
            assert_eq!(holds(expr, &manager), *on_manager, "{expr} on a manager");
        }
    }

    #[test]
    fn a_malformed_constraint_says_which_part_is_wrong() {
        let err = |expr: &str| Constraint::parse(expr).unwrap_err().to_string();
        assert!(err("node.role=worker").contains("expected one operator from ==, !="));
        assert!(err("node.role==worker==x").contains("expected one operator"));
        assert!(err("node.colour==red").contains("key 'node.colour' is invalid"));
        assert!(err("node.labels.==x").contains("key 'node.labels.' is invalid"));
        assert!(err("node.role==boss").contains("manager or worker"));
        assert!(err("node.hostname==").contains("value after node.hostname is empty"));
        assert!(err("node.hostname==a;b").contains("value 'a;b' is invalid"));
        assert!(err("x").starts_with("invalid constraint \"x\": "));
    }
}
