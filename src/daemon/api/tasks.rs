//! `/tasks`: list, with Docker's task filters (services and nodes named as
//! a user names them), and inspect. The shapes are `api::services`'.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;

use super::http::{json, Answer, Filters, Query};
use super::nodes::NodeList;
use super::services::{labels_match, values};
use crate::api::services::{task_doc_in, TaskDoc};
use crate::daemon::Daemon;
use crate::model::{find, ApiError, NodeView, Service, Task, TaskState};
use crate::proto::ClusterRequest;

/// Docker's task filters; `_up-to-date` is the one the docker CLI's progress bar uses.
const FILTERS: [&str; 8] = [
    "id",
    "name",
    "service",
    "node",
    "label",
    "desired-state",
    "_up-to-date",
    "runtime",
];

/// The IDs of the services (or nodes) a filter names; one that names none is Docker's 404.
fn resolve<T>(
    f: &Filters,
    key: &str,
    items: &[T],
    id: impl Fn(&T) -> &str + Copy,
    name: impl Fn(&T) -> &str + Copy,
) -> Result<Vec<String>, ApiError> {
    values(f, key)
        .iter()
        .map(|v| {
            find(items, v, key, id, name, || {
                ApiError::NotFound(format!("{key} {v} not found"))
            })
            .map(|item| id(item).to_string())
        })
        .collect()
}

/// The `desired-state` values, checked as Docker checks them (any case; `allocated` is a state too).
fn desired_states(f: &Filters) -> Result<Vec<String>, ApiError> {
    values(f, "desired-state")
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let lower = s.to_lowercase();
            if TaskState::parse(&lower).is_some() || lower == "allocated" {
                Ok(lower)
            } else {
                Err(ApiError::InvalidArgument(format!(
                    "Invalid desired-state filter: '{s}'"
                )))
            }
        })
        .collect()
}

/// Docker's task filters: id (prefix), name (prefix of `web.1.<id>`),
/// service and node (resolved), label (the service's), desired-state,
/// `_up-to-date` (the task runs its service's current template) and runtime.
fn filtered(
    tasks: Vec<Task>,
    services: &[Service],
    nodes: &[NodeView],
    f: &Filters,
) -> Result<Vec<Task>, ApiError> {
    let service_ids = resolve(f, "service", services, |s| &s.id, |s| &s.spec.name)?;
    let node_ids = resolve(f, "node", nodes, |n| &n.node.id, |n| &n.node.hostname)?;
    let desired = desired_states(f)?;
    let up_to_date = !values(f, "_up-to-date").is_empty();
    let no_labels = BTreeMap::new();
    let service_of = |t: &Task| services.iter().find(|s| s.id == t.service_id);
    Ok(tasks
        .into_iter()
        .filter(|t| {
            f.accepts("id", |id| t.id.starts_with(id))
                && f.accepts("name", |name| t.name().starts_with(name))
                && (service_ids.is_empty() || service_ids.contains(&t.service_id))
                && (node_ids.is_empty() || t.node_id.as_ref().is_some_and(|n| node_ids.contains(n)))
                && (desired.is_empty() || desired.iter().any(|d| d == t.desired_state.as_str()))
                && labels_match(f, service_of(t).map_or(&no_labels, |s| &s.spec.labels))
                && (!up_to_date || service_of(t).is_some_and(|s| s.spec.is_current(&t.spec)))
                && f.accepts("runtime", |r| r == "container" || r.is_empty())
        })
        .collect())
}

/// `GET /tasks?filters=`.
pub async fn list(State(d): State<Arc<Daemon>>, q: Query) -> Answer<Response> {
    let f = q.filters()?;
    f.only(&FILTERS)?;
    let given = |key: &str| !values(&f, key).is_empty();
    let tasks: Vec<Task> = d.cluster_as(ClusterRequest::TaskLs).await?;
    // Also for the host-mode ports `service ps` shows.
    let services: Vec<Service> = d.cluster_as(ClusterRequest::ServiceLs).await?;
    let nodes = if given("node") {
        d.cluster_as::<NodeList>(ClusterRequest::NodeLs)
            .await?
            .nodes
    } else {
        Vec::new()
    };
    let docs: Vec<TaskDoc> = filtered(tasks, &services, &nodes, &f)?
        .iter()
        .map(|t| task_doc_in(t, services.iter().find(|s| s.id == t.service_id)))
        .collect();
    json(docs)
}

/// `GET /tasks/{id}`: by ID or unique ID prefix.
pub async fn inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    let task: Task = d
        .cluster_as(ClusterRequest::TaskInspect { task: id })
        .await?;
    let services: Vec<Service> = d.cluster_as(ClusterRequest::ServiceLs).await?;
    json(task_doc_in(
        &task,
        services.iter().find(|s| s.id == task.service_id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::api::services::tests::service;
    use crate::model::{Availability, Node, NodeRole, NodeState, ServiceMode, TaskStatus};

    fn task(id: &str, service: &Service, slot: u64, node: &str, desired: TaskState) -> Task {
        Task {
            id: id.into(),
            service_id: service.id.clone(),
            service_name: service.spec.name.clone(),
            slot,
            node_id: Some(node.into()),
            spec: service.spec.task.clone(),
            spec_version: service.version,
            desired_state: desired,
            status: TaskStatus::new(TaskState::Running, 0, "started"),
            networks: Vec::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
        }
    }

    fn node(id: &str, hostname: &str) -> NodeView {
        NodeView {
            node: Node {
                id: id.into(),
                hostname: hostname.into(),
                role: NodeRole::Worker,
                availability: Availability::Active,
                addr: "192.168.99.101".parse().unwrap(),
                wg_public_key: String::new(),
                wg_port: 51820,
                tunnel_addr: "100.64.0.2".parse().unwrap(),
                leader: false,
                left: false,
                down: false,
                created_at: 0,
                labels: BTreeMap::new(),
                engine_labels: Default::default(),
                version: 1,
                updated_at: 0,
            },
            state: NodeState::Ready,
            manager_status: None,
            last_heartbeat: None,
        }
    }

    struct Fixture {
        services: Vec<Service>,
        nodes: Vec<NodeView>,
        tasks: Vec<Task>,
    }

    /// `web` (replicated, updated since task t1 was made) and `db` (global, labelled `tier=db`).
    fn fixture() -> Fixture {
        let mut web = service("svcweb1", "web", ServiceMode::Replicated { replicas: 2 });
        let mut db = service("svcdb2", "db", ServiceMode::Global);
        db.spec.labels = [("tier".to_string(), "db".to_string())].into();
        let tasks = vec![
            task("t1", &web, 1, "nodeaaa", TaskState::Shutdown),
            {
                web.spec.task.force_update = 1;
                task("t2", &web, 1, "nodeaaa", TaskState::Running)
            },
            task("t3", &web, 2, "nodebbb", TaskState::Running),
            task("t4", &db, 0, "nodebbb", TaskState::Running),
        ];
        db.spec.task.env = vec!["A=2".into()];
        Fixture {
            services: vec![web, db],
            nodes: vec![node("nodeaaa", "vm1"), node("nodebbb", "vm2")],
            tasks,
        }
    }

    fn pick(filters: &str) -> Result<Vec<String>, ApiError> {
        let fx = fixture();
        let q = Query::from_pairs(&[("filters", filters)]);
        let f = q.filters()?;
        f.only(&FILTERS)?;
        Ok(filtered(fx.tasks, &fx.services, &fx.nodes, &f)?
            .into_iter()
            .map(|t| t.id)
            .collect())
    }

    #[test]
    fn filters_pick_tasks_as_docker_does() {
        assert_eq!(pick("{}").unwrap(), ["t1", "t2", "t3", "t4"]);
        assert_eq!(pick(r#"{"id":["t1","t4"]}"#).unwrap(), ["t1", "t4"]);
        assert_eq!(pick(r#"{"name":["web.1"]}"#).unwrap(), ["t1", "t2"]);
        assert_eq!(pick(r#"{"name":["web.2.t3"]}"#).unwrap(), ["t3"]);
        assert_eq!(pick(r#"{"name":["db.nodebbb"]}"#).unwrap(), ["t4"]);
        assert_eq!(
            pick(r#"{"desired-state":["running"]}"#).unwrap(),
            ["t2", "t3", "t4"]
        );
        assert_eq!(pick(r#"{"desired-state":["Shutdown"]}"#).unwrap(), ["t1"]);
        assert!(pick(r#"{"desired-state":["allocated"]}"#)
            .unwrap()
            .is_empty());
        assert_eq!(pick(r#"{"label":["tier=db"]}"#).unwrap(), ["t4"]);
        assert_eq!(pick(r#"{"label":["tier"]}"#).unwrap().len(), 4);
        assert_eq!(pick(r#"{"runtime":["container"]}"#).unwrap().len(), 4);
        assert!(pick(r#"{"runtime":["plugin"]}"#).unwrap().is_empty());
    }

    #[test]
    fn services_and_nodes_are_named_as_a_user_names_them() {
        for web in ["web", "svcweb1", "svcw"] {
            let filters = format!(r#"{{"service":["{web}"]}}"#);
            assert_eq!(pick(&filters).unwrap(), ["t1", "t2", "t3"], "{web}");
        }
        assert_eq!(pick(r#"{"service":["web","db"]}"#).unwrap().len(), 4);
        for vm2 in ["vm2", "nodebbb", "nodeb"] {
            let filters = format!(r#"{{"node":["{vm2}"]}}"#);
            assert_eq!(pick(&filters).unwrap(), ["t3", "t4"], "{vm2}");
        }
        assert_eq!(
            pick(r#"{"service":["web"],"node":["vm1"],"desired-state":["running"]}"#).unwrap(),
            ["t2"]
        );
        assert_eq!(
            pick(r#"{"service":["cache"]}"#).unwrap_err(),
            ApiError::NotFound("service cache not found".into())
        );
        assert_eq!(
            pick(r#"{"node":["vm9"]}"#).unwrap_err(),
            ApiError::NotFound("node vm9 not found".into())
        );
    }

    #[test]
    fn up_to_date_tasks_run_their_services_current_template() {
        assert_eq!(
            pick(r#"{"service":["web"],"_up-to-date":{"true":true}}"#).unwrap(),
            ["t2", "t3"]
        );
        assert!(
            pick(r#"{"service":["db"],"_up-to-date":["true"]}"#)
                .unwrap()
                .is_empty(),
            "db's template changed after t4 was made"
        );
    }

    #[test]
    fn bad_filters_are_refused_in_dockers_words() {
        assert_eq!(
            pick(r#"{"colour":["red"]}"#).unwrap_err().to_string(),
            "invalid filter 'colour'"
        );
        assert_eq!(
            pick(r#"{"desired-state":["sleeping"]}"#)
                .unwrap_err()
                .to_string(),
            "Invalid desired-state filter: 'sleeping'"
        );
    }
}
