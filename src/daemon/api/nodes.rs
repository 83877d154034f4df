//! `/nodes`: list (with filters), inspect, update (at the read version), remove.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;

use super::http::{json, ok_empty, Answer, JsonBody, Query};
use crate::api::models::{
    EngineDescription, ManagerStatus as DockerManagerStatus, Node, NodeDescription, NodeSpec,
    NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState as DockerNodeState, NodeStatus,
    ObjectVersion, Platform, Reachability,
};
use crate::api::{rfc3339, NodeDoc, WireGuardInfo};
use crate::daemon::Daemon;
use crate::model::{
    ApiError, Availability, ManagerStatus, NodeRole, NodeState, NodeView, SWARM_PORT,
};
use crate::proto::{ClusterRequest, NodeUpdate};

/// A node in Docker's shape, with its WireGuard identity.
pub fn node_doc(view: &NodeView) -> NodeDoc {
    let n = &view.node;
    let manager_status = view.manager_status.map(|ms| DockerManagerStatus {
        leader: Some(ms == ManagerStatus::Leader),
        reachability: Some(match ms {
            ManagerStatus::Unreachable => Reachability::UNREACHABLE,
            _ => Reachability::REACHABLE,
        }),
        addr: Some(format!("{}:{SWARM_PORT}", n.addr)),
    });
    NodeDoc {
        node: Node {
            id: Some(n.id.clone()),
            version: Some(ObjectVersion {
                index: Some(n.version),
            }),
            created_at: Some(rfc3339(n.created_at)),
            updated_at: Some(rfc3339(n.updated_at.max(n.created_at))),
            spec: Some(NodeSpec {
                name: None,
                labels: Some(n.labels.clone().into_iter().collect()),
                role: Some(match n.role {
                    NodeRole::Manager => NodeSpecRoleEnum::MANAGER,
                    NodeRole::Worker => NodeSpecRoleEnum::WORKER,
                }),
                availability: Some(match n.availability {
                    Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
                    Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
                    Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
                }),
            }),
            description: Some(NodeDescription {
                hostname: Some(n.hostname.clone()),
                platform: Some(Platform {
                    architecture: Some(std::env::consts::ARCH.into()),
                    os: Some(std::env::consts::OS.into()),
                }),
                engine: Some(EngineDescription {
                    engine_version: Some(env!("CARGO_PKG_VERSION").into()),
                    labels: (!n.engine_labels.is_empty())
                        .then(|| n.engine_labels.clone().into_iter().collect()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: Some(match view.state {
                    NodeState::Ready => DockerNodeState::READY,
                    NodeState::Down => DockerNodeState::DOWN,
                }),
                message: None,
                addr: Some(n.addr.to_string()),
            }),
            manager_status,
        },
        wireguard: Some(WireGuardInfo {
            public_key: base64_key(&n.wg_public_key),
            listen_port: n.wg_port,
            tunnel_addr: n.tunnel_addr.to_string(),
        }),
    }
}

/// A hex key as base64, as `wg` prints keys.
fn base64_key(hex_key: &str) -> String {
    use base64::Engine;
    hex::decode(hex_key)
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k))
        .unwrap_or_default()
}

/// Docker's node filters: id (prefix), name (hostname prefix), role, membership, node.label.
fn filtered(views: Vec<NodeView>, q: &Query) -> Result<Vec<NodeView>, ApiError> {
    let f = q.filters()?;
    f.only(&["id", "name", "role", "membership", "node.label", "label"])?;
    Ok(views
        .into_iter()
        .filter(|v| {
            let n = &v.node;
            f.accepts("id", |id| n.id.starts_with(id))
                && f.accepts("name", |name| n.hostname.starts_with(name))
                && f.accepts("role", |role| role == n.role.to_string())
                && f.accepts("membership", |m| {
                    m == if n.left { "pending" } else { "accepted" }
                })
                && f.accepts("node.label", |l| label_matches(&n.labels, l))
                && f.accepts("label", |l| label_matches(&n.labels, l))
        })
        .collect())
}

/// `key` or `key=value` against a node's labels.
fn label_matches(labels: &std::collections::BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

/// The manager's answer to `NodeLs`.
#[derive(serde::Deserialize)]
pub(super) struct NodeList {
    pub nodes: Vec<NodeView>,
}

/// `GET /nodes?filters=`.
pub async fn list(State(d): State<Arc<Daemon>>, q: Query) -> Answer<Response> {
    let list: NodeList = d.cluster_as(ClusterRequest::NodeLs).await?;
    let docs: Vec<NodeDoc> = filtered(list.nodes, &q)?.iter().map(node_doc).collect();
    json(docs)
}

/// `GET /nodes/{id}`: by ID, hostname or unique ID prefix.
pub async fn inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    let view: NodeView = d
        .cluster_as(ClusterRequest::NodeInspect { node: id })
        .await?;
    json(node_doc(&view))
}

/// `DELETE /nodes/{id}?force=`.
pub async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
) -> Answer<Response> {
    let _: serde_json::Value = d
        .cluster_as(ClusterRequest::NodeRm {
            node: id,
            force: q.flag("force"),
        })
        .await?;
    ok_empty()
}

/// The update a `NodeSpec` asks for; what it leaves out keeps its value.
fn node_update(id: String, version: u64, spec: NodeSpec, now: &NodeView) -> NodeUpdate {
    NodeUpdate {
        node: id,
        version,
        role: match spec.role {
            Some(NodeSpecRoleEnum::MANAGER) => NodeRole::Manager,
            Some(NodeSpecRoleEnum::WORKER) => NodeRole::Worker,
            _ => now.node.role,
        },
        availability: match spec.availability {
            Some(NodeSpecAvailabilityEnum::ACTIVE) => Availability::Active,
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            _ => now.node.availability,
        },
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// `POST /nodes/{id}/update?version=N` with the node's whole spec.
pub async fn update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
    JsonBody(spec): JsonBody<NodeSpec>,
) -> Answer<Response> {
    let version = q.number::<u64>("version")?.ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "invalid node version '': give the version read from GET /nodes/{id}"
        ))
    })?;
    let now: NodeView = d
        .cluster_as(ClusterRequest::NodeInspect { node: id.clone() })
        .await?;
    let update = node_update(id, version, spec, &now);
    let _: String = d.cluster_as(ClusterRequest::NodeUpdate(update)).await?;
    ok_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Node as ModelNode;

    fn view(id: &str, host: &str, role: NodeRole, leader: bool) -> NodeView {
        NodeView {
            node: ModelNode {
                id: id.into(),
                hostname: host.into(),
                role,
                availability: Availability::Active,
                addr: "192.168.99.100".parse().unwrap(),
                wg_public_key: hex::encode([1u8; 32]),
                wg_port: 51820,
                tunnel_addr: "100.64.0.1".parse().unwrap(),
                leader,
                left: false,
                down: false,
                created_at: 0,
                labels: [("zone".to_string(), "a".to_string())].into(),
                engine_labels: Default::default(),
                version: 9,
                updated_at: 0,
            },
            state: NodeState::Ready,
            manager_status: leader.then_some(ManagerStatus::Leader),
            last_heartbeat: None,
        }
    }

    /// The shape of a leader node as dockerd 20.10 answers `GET /nodes/{id}`
    /// (fields swarmnet has no value for left out).
    #[test]
    fn a_leader_is_shaped_as_dockers() {
        let doc =
            serde_json::to_value(node_doc(&view("n1", "vm1", NodeRole::Manager, true))).unwrap();
        let docker = serde_json::json!({
            "ID": "n1",
            "Version": { "Index": 9 },
            "CreatedAt": "1970-01-01T00:00:00Z",
            "UpdatedAt": "1970-01-01T00:00:00Z",
            "Spec": { "Labels": { "zone": "a" }, "Role": "manager", "Availability": "active" },
            "Description": {
                "Hostname": "vm1",
                "Platform": { "Architecture": std::env::consts::ARCH, "OS": "linux" },
                "Engine": { "EngineVersion": env!("CARGO_PKG_VERSION") }
            },
            "Status": { "State": "ready", "Addr": "192.168.99.100" },
            "ManagerStatus": { "Leader": true, "Reachability": "reachable", "Addr": "192.168.99.100:2377" },
            "WireGuard": {
                "PublicKey": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
                "ListenPort": 51820,
                "TunnelAddr": "100.64.0.1"
            }
        });
        assert_eq!(doc, docker);
        let back: NodeDoc = serde_json::from_value(doc).unwrap();
        assert_eq!(
            back.node.description.unwrap().hostname.as_deref(),
            Some("vm1")
        );
    }

    #[test]
    fn filters_pick_nodes_as_docker_does() {
        let views = || {
            vec![
                view("abc", "vm1", NodeRole::Manager, true),
                view("abd", "vm2", NodeRole::Worker, false),
            ]
        };
        let pick = |filters: &str| -> Vec<String> {
            let q = Query::from_pairs(&[("filters", filters)]);
            filtered(views(), &q)
                .unwrap()
                .into_iter()
                .map(|v| v.node.hostname)
                .collect()
        };
        assert_eq!(pick(r#"{"role":["worker"]}"#), ["vm2"]);
        assert_eq!(pick(r#"{"name":["vm1"]}"#), ["vm1"]);
        assert_eq!(pick(r#"{"id":["ab"]}"#), ["vm1", "vm2"]);
        assert_eq!(pick(r#"{"membership":{"accepted":true}}"#), ["vm1", "vm2"]);
        assert_eq!(pick(r#"{"node.label":["zone=a"]}"#).len(), 2);
        assert!(pick(r#"{"node.label":["zone=b"]}"#).is_empty());
        let q = Query::from_pairs(&[("filters", r#"{"colour":["red"]}"#)]);
        assert!(filtered(views(), &q).is_err());
    }

    #[test]
    fn a_spec_without_a_field_keeps_it() {
        let now = view("abd", "vm2", NodeRole::Worker, false);
        let spec = NodeSpec {
            availability: Some(NodeSpecAvailabilityEnum::DRAIN),
            ..Default::default()
        };
        let u = node_update("vm2".into(), 9, spec, &now);
        assert_eq!(u.role, NodeRole::Worker);
        assert_eq!(u.availability, Availability::Drain);
        assert!(u.labels.is_empty(), "labels are replaced by the spec's");
    }
}
