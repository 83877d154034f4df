//! `/services`: create, list (with filters and `status`), inspect, update
//! (at the read version, or back to the previous spec) and remove. The
//! shapes and the spec's reading are `api::services`'.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::held_ports;
use super::http::{json, ok_empty, Answer, Filters, JsonBody, Query};
use crate::api::models::ServiceCreateResponse;
use crate::api::services::{service_doc, service_spec, service_status, ServiceDoc};
use crate::daemon::Daemon;
use crate::model::{ApiError, Service, ServiceMode, Task};
use crate::proto::ClusterRequest;

/// Docker's service filters.
const FILTERS: [&str; 5] = ["id", "name", "label", "mode", "runtime"];

/// The values given for `key`. `Filters` answers whether any value
/// matches; a test that matches none visits them all.
pub(super) fn values(f: &Filters, key: &str) -> Vec<String> {
    let seen = RefCell::new(Vec::new());
    f.accepts(key, |v| {
        seen.borrow_mut().push(v.to_string());
        false
    });
    seen.into_inner()
}

/// Docker's `label` filter on services (and on tasks, by their service):
/// every value must match, `key` or `key=` by the key, `key=value` by both.
pub(super) fn labels_match(f: &Filters, labels: &BTreeMap<String, String>) -> bool {
    values(f, "label").iter().all(|l| match l.split_once('=') {
        Some((k, v)) if !v.is_empty() => labels.get(k).is_some_and(|have| have == v),
        Some((k, _)) => labels.contains_key(k),
        None => labels.contains_key(l),
    })
}

/// Docker's service filters: id and name (prefixes), label, mode and runtime (`container`).
fn filtered(services: Vec<Service>, f: &Filters) -> Vec<Service> {
    services
        .into_iter()
        .filter(|s| {
            f.accepts("id", |id| s.id.starts_with(id))
                && f.accepts("name", |name| s.spec.name.starts_with(name))
                && labels_match(f, &s.spec.labels)
                && f.accepts("mode", |m| {
                    m == match s.spec.mode {
                        ServiceMode::Replicated { .. } => "replicated",
                        ServiceMode::Global => "global",
                    }
                })
                && f.accepts("runtime", |r| r == "container")
        })
        .collect()
}

/// `POST /services/create`: 201 with the new service's ID. `X-Registry-Auth` is not read.
pub async fn create(
    State(d): State<Arc<Daemon>>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Answer<Response> {
    let spec = service_spec(body)?;
    held_ports::refuse_held(&d, &spec, None).await?;
    let service: Service = d.cluster_as(ClusterRequest::ServiceCreate(spec)).await?;
    let created = ServiceCreateResponse {
        id: Some(service.id),
        warnings: None,
    };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// `GET /services?filters=&status=`.
pub async fn list(State(d): State<Arc<Daemon>>, q: Query) -> Answer<Response> {
    let f = q.filters()?;
    f.only(&FILTERS)?;
    let services: Vec<Service> = d.cluster_as(ClusterRequest::ServiceLs).await?;
    let services = filtered(services, &f);
    let status = q.flag("status");
    let tasks: Vec<Task> = if status && !services.is_empty() {
        d.cluster_as(ClusterRequest::TaskLs).await?
    } else {
        Vec::new()
    };
    let docs: Vec<ServiceDoc> = services
        .iter()
        .map(|s| service_doc(s, status.then(|| service_status(s, &tasks))))
        .collect();
    json(docs)
}

/// `GET /services/{id}`: by ID, name or unique ID prefix. `insertDefaults`
/// changes nothing: a stored spec holds its defaults already.
pub async fn inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    let service: Service = d
        .cluster_as(ClusterRequest::ServiceInspect { service: id })
        .await?;
    json(service_doc(&service, None))
}

/// `rollback=previous` (what `service rollback` sends) or none.
fn rollback(q: &Query) -> Result<bool, ApiError> {
    match q.get("rollback") {
        None | Some("none") => Ok(false),
        Some("previous") => Ok(true),
        Some(other) => Err(ApiError::InvalidArgument(format!(
            "unrecognized rollback option {other}: use rollback=previous or leave it out"
        ))),
    }
}

/// `POST /services/{id}/update?version=N&rollback=`, with the service's
/// whole spec; `registryAuthFrom` and `X-Registry-Auth` are not read.
pub async fn update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Answer<Response> {
    let version = q.number::<u64>("version")?.ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "invalid service version '': give the version read from GET /services/{id}"
        ))
    })?;
    let rollback = rollback(&q)?;
    let spec = service_spec(body)?;
    let current: Service = d
        .cluster_as(ClusterRequest::ServiceInspect {
            service: id.clone(),
        })
        .await?;
    let next = match rollback {
        true => current.previous_spec.as_ref(),
        false => Some(&spec),
    };
    if let Some(next) = next {
        held_ports::refuse_held(&d, next, Some(&current.spec)).await?;
    }
    let _: Service = d
        .cluster_as(ClusterRequest::ServiceUpdate {
            service: id,
            version,
            spec,
            rollback,
        })
        .await?;
    // dockerd's ServiceUpdateResponse: `Warnings` is written even when null.
    json(serde_json::json!({ "Warnings": null }))
}

/// `DELETE /services/{id}`.
pub async fn remove(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    let _: serde_json::Value = d
        .cluster_as(ClusterRequest::ServiceRm { service: id })
        .await?;
    ok_empty()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{RestartPolicy, ServiceSpec, TaskTemplate, UpdateConfig, HOST_IMAGE};

    /// A service running `swarmnet whoami`, labelled `tier=web`.
    pub(in crate::daemon::api) fn service(id: &str, name: &str, mode: ServiceMode) -> Service {
        Service {
            id: id.into(),
            spec: ServiceSpec {
                name: name.into(),
                labels: [("tier".to_string(), "web".to_string())].into(),
                mode,
                task: TaskTemplate {
                    image: HOST_IMAGE.into(),
                    args: vec!["swarmnet".into(), "whoami".into()],
                    restart: RestartPolicy::default(),
                    ..Default::default()
                },
                update: UpdateConfig::default(),
                rollback: UpdateConfig::default(),
                endpoint_mode: "vip".into(),
                ports: Vec::new(),
            },
            previous_spec: None,
            version: 3,
            created_at_ms: 0,
            updated_at_ms: 0,
            update_status: None,
            last_batch_ms: 0,
            virtual_ips: Vec::new(),
        }
    }

    fn pick(filters: &str) -> Vec<String> {
        let services = vec![
            service("abc1", "web", ServiceMode::Replicated { replicas: 2 }),
            service("abd2", "webhook", ServiceMode::Global),
            service("xyz3", "db", ServiceMode::Replicated { replicas: 1 }),
        ];
        let q = Query::from_pairs(&[("filters", filters)]);
        filtered(services, &q.filters().unwrap())
            .into_iter()
            .map(|s| s.spec.name)
            .collect()
    }

    #[test]
    fn filters_pick_services_as_docker_does() {
        assert_eq!(pick("{}"), ["web", "webhook", "db"]);
        assert_eq!(pick(r#"{"id":["ab"]}"#), ["web", "webhook"]);
        assert_eq!(pick(r#"{"id":["abd","xyz"]}"#), ["webhook", "db"]);
        assert_eq!(pick(r#"{"name":["web"]}"#), ["web", "webhook"]);
        assert_eq!(pick(r#"{"name":{"db":true}}"#), ["db"]);
        assert_eq!(pick(r#"{"mode":["global"]}"#), ["webhook"]);
        assert_eq!(pick(r#"{"mode":["replicated"]}"#), ["web", "db"]);
        assert_eq!(pick(r#"{"label":["tier"]}"#).len(), 3);
        assert_eq!(pick(r#"{"label":["tier=web"]}"#).len(), 3);
        assert_eq!(pick(r#"{"label":["tier="]}"#).len(), 3);
        assert!(pick(r#"{"label":["tier=db"]}"#).is_empty());
        assert!(
            pick(r#"{"label":["tier=web","zone"]}"#).is_empty(),
            "every label must match"
        );
        assert_eq!(pick(r#"{"runtime":["container"]}"#).len(), 3);
        assert!(pick(r#"{"runtime":["plugin"]}"#).is_empty());
        assert_eq!(pick(r#"{"name":["web"],"mode":["global"]}"#), ["webhook"]);
    }

    #[test]
    fn an_unknown_filter_is_refused_in_dockers_words() {
        let q = Query::from_pairs(&[("filters", r#"{"node":["vm1"]}"#)]);
        let err = q.filters().unwrap().only(&FILTERS).unwrap_err();
        assert_eq!(err.to_string(), "invalid filter 'node'");
    }

    #[test]
    fn values_are_every_value_given() {
        let q = Query::from_pairs(&[("filters", r#"{"label":["a","b=c"]}"#)]);
        let f = q.filters().unwrap();
        assert_eq!(values(&f, "label"), ["a", "b=c"]);
        assert!(values(&f, "name").is_empty());
    }

    #[test]
    fn rollback_is_previous_or_none() {
        let q = |v: &str| Query::from_pairs(&[("rollback", v)]);
        assert!(!rollback(&Query::default()).unwrap());
        assert!(!rollback(&q("")).unwrap());
        assert!(!rollback(&q("none")).unwrap());
        assert!(rollback(&q("previous")).unwrap());
        assert_eq!(
            rollback(&q("last")).unwrap_err().to_string(),
            "unrecognized rollback option last: use rollback=previous or leave it out"
        );
    }
}
