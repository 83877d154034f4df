//! `/containers`: create, start, list, inspect, wait, kill, remove (logs in
//! `logs.rs`, shapes in `container_docs.rs`); connecting containers to
//! networks; and the one image, `host`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nix::sys::signal::Signal;

use super::container_docs::{self, create_request, is_host_image, no_such_image};
use super::http::{json, no_content, stream_response, Answer, JsonBody, Query};
use crate::api::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerWaitExitError, ContainerWaitResponse,
    CreateImageInfo, NetworkConnectRequest, NetworkDisconnectRequest,
};
use crate::daemon::containers::{ContainerView, RunState};
use crate::daemon::networking::Started;
use crate::daemon::Daemon;
use crate::manager::now_secs;
use crate::model::ApiError;

/// How often `wait` looks at the container.
const WAIT_EVERY: Duration = Duration::from_millis(100);
/// How long `wait` gives the shim to record the exit code of a process that ended.
const EXIT_CODE_GRACE: Duration = Duration::from_secs(5);

/// `POST /containers/create?name=` with a ContainerCreateBody (201).
pub async fn create(
    State(d): State<Arc<Daemon>>,
    q: Query,
    JsonBody(body): JsonBody<ContainerCreateBody>,
) -> Answer<Response> {
    let req = create_request(body)?;
    let name = q.get("name").map(|n| n.trim_start_matches('/').to_string());
    let id = d.create_container(name, req.cmd, req.networks)?;
    let created = ContainerCreateResponse {
        id,
        warnings: Vec::new(),
    };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// `POST /containers/{id}/start`: 204, or 304 when it is running already.
pub async fn start(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    match d.start_container(&id).await? {
        Started::Now => no_content(),
        Started::Already => Ok(StatusCode::NOT_MODIFIED.into_response()),
    }
}

/// Docker's container filters: id (prefix), name (part), status, network,
/// label, ancestor, health (`starting`, `healthy`, `unhealthy`, `none`).
fn filtered(views: Vec<ContainerView>, q: &Query) -> Result<Vec<ContainerView>, ApiError> {
    let f = q.filters()?;
    f.only(&[
        "id", "name", "status", "network", "label", "ancestor", "health",
    ])?;
    let health = |v: &ContainerView| v.health_status().map_or("none", |h| h.as_str());
    let status = |v: &ContainerView| match v.state {
        RunState::Created => "created",
        RunState::Running => "running",
        RunState::Exited => "exited",
    };
    Ok(views
        .into_iter()
        .filter(|v| {
            let c = &v.container;
            let networks: Vec<&str> = c
                .networks
                .iter()
                .flat_map(|a| [a.network_name.as_str(), a.network_id.as_str()])
                .chain(v.asked.iter().map(|n| n.network.as_str()))
                .collect();
            f.accepts("id", |id| c.id.starts_with(id))
                && f.accepts("name", |n| c.name.contains(n.trim_start_matches('/')))
                && f.accepts("status", |s| s == status(v))
                && f.accepts("network", |n| networks.contains(&n))
                && f.accepts("label", |_| false)
                && f.accepts("ancestor", is_host_image)
                && f.accepts("health", |h| h == health(v))
        })
        .collect())
}

/// `GET /containers/json?all=&filters=`; a status filter lists stopped ones too, as Docker's.
pub async fn list(State(d): State<Arc<Daemon>>, q: Query) -> Answer<Response> {
    let by_status = !q.filters()?.accepts("status", |_| false);
    let all = q.flag("all") || by_status;
    let views = filtered(d.containers.list(all), &q)?;
    let now = now_secs();
    json(
        views
            .iter()
            .map(|v| container_docs::summary(v, now))
            .collect::<Vec<_>>(),
    )
}

/// `GET /containers/{id}/json`.
pub async fn inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    json(container_docs::inspect(&d.containers.find(&id)?))
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    NotRunning,
    NextExit,
    Removed,
}

fn condition(q: &Query) -> Result<Condition, ApiError> {
    match q.get("condition") {
        None | Some("not-running") => Ok(Condition::NotRunning),
        Some("next-exit") => Ok(Condition::NextExit),
        Some("removed") => Ok(Condition::Removed),
        Some(other) => Err(ApiError::InvalidArgument(format!(
            "invalid condition: {other:?}"
        ))),
    }
}

/// `POST /containers/{id}/wait?condition=`: answers at once (as dockerd,
/// so a client can start the container meanwhile) and sends the body when
/// the container has stopped (not-running), stops after running
/// (next-exit) or is gone (removed).
pub async fn wait(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
) -> Answer<Response> {
    let condition = condition(&q)?;
    let first = d.containers.find(&id)?;
    let ended = futures::stream::once(async move {
        let mut line = serde_json::to_vec(&wait_for(&d, first, condition).await)?;
        line.push(b'\n');
        Ok::<_, serde_json::Error>(line)
    });
    Ok(stream_response(
        "application/json",
        Body::from_stream(ended),
    ))
}

async fn wait_for(d: &Daemon, first: ContainerView, condition: Condition) -> ContainerWaitResponse {
    let id = first.container.id;
    let mut ran = first.state != RunState::Exited;
    let mut last_code = first.exit_code.unwrap_or(0);
    let mut ended_at: Option<Instant> = None;
    let answer = |code: i32, error: Option<String>| ContainerWaitResponse {
        status_code: code.into(),
        error: error.map(|message| ContainerWaitExitError {
            message: Some(message),
        }),
    };
    loop {
        let view = match d.containers.find(&id) {
            Ok(view) => view,
            Err(ApiError::NotFound(_)) if condition == Condition::Removed => {
                return answer(last_code, None)
            }
            Err(e) => return answer(-1, Some(e.to_string())),
        };
        ran |= view.state != RunState::Exited;
        last_code = view.exit_code.unwrap_or(last_code);
        let done = match condition {
            Condition::NotRunning => view.state != RunState::Running,
            Condition::NextExit => ran && view.state == RunState::Exited,
            Condition::Removed => false,
        };
        if done {
            if view.state == RunState::Created {
                return answer(0, None);
            }
            if let Some(code) = view.exit_code {
                return answer(code, None);
            }
            let since = *ended_at.get_or_insert_with(Instant::now);
            if since.elapsed() > EXIT_CODE_GRACE {
                let message = format!(
                    "container {id} ended but its exit code was not recorded; see its shim.log"
                );
                return answer(-1, Some(message));
            }
        }
        tokio::time::sleep(WAIT_EVERY).await;
    }
}

/// A signal as Docker takes it: "KILL", "SIGKILL" or "9".
fn parse_signal(s: &str) -> Result<Signal, ApiError> {
    let bad = || ApiError::InvalidArgument(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = match upper.starts_with("SIG") {
        true => upper,
        false => format!("SIG{upper}"),
    };
    name.parse().map_err(|_| bad())
}

/// `POST /containers/{id}/kill?signal=` (SIGKILL unless given).
pub async fn kill(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
) -> Answer<Response> {
    let signal = parse_signal(q.get("signal").unwrap_or("SIGKILL"))?;
    d.containers.kill(&id, signal)?;
    no_content()
}

/// `DELETE /containers/{id}?force=`.
pub async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
) -> Answer<Response> {
    d.remove_container(&id, q.flag("force")).await?;
    no_content()
}

/// `GET /distribution/{name}/json`: the built-in image's descriptor, so the
/// docker client pins `host` to a digest (as it pins registry images) instead
/// of warning that it cannot; any other image is not there.
pub async fn distribution(Path(name): Path<String>) -> Answer<Response> {
    if !is_host_image(&name) {
        return Err(no_such_image(&name).into());
    }
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(b"swarmnet built-in image host"));
    json(serde_json::json!({
        "Descriptor": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": format!("sha256:{digest}"),
            "size": 0,
        },
        "Platforms": [{
            "architecture": super::system::arch(),
            "os": std::env::consts::OS,
        }],
    }))
}

/// `POST /images/create?fromImage=&tag=`: `host` is always there; any other image is refused.
pub async fn pull(q: Query) -> Answer<Response> {
    let image = q.get("fromImage").unwrap_or_default();
    let tag = q.get("tag").unwrap_or("latest");
    let named = format!("{image}:{tag}");
    if !is_host_image(&named) {
        return Err(no_such_image(&named).into());
    }
    let status = CreateImageInfo {
        status: Some(format!("Status: Image is up to date for {named}")),
        ..Default::default()
    };
    let mut line = serde_json::to_vec(&status).map_err(ApiError::internal)?;
    line.push(b'\n');
    Ok(stream_response("application/json", Body::from(line)))
}

/// `POST /networks/{id}/connect` {Container, EndpointConfig}.
pub async fn connect(
    State(d): State<Arc<Daemon>>,
    Path(network): Path<String>,
    JsonBody(req): JsonBody<NetworkConnectRequest>,
) -> Answer<Response> {
    let endpoint = req.endpoint_config.unwrap_or_default();
    let ip = container_docs::endpoint_ip(&endpoint)?;
    let aliases = endpoint.aliases.unwrap_or_default();
    d.connect_container(network, &req.container, ip, aliases)
        .await?;
    super::http::ok_empty()
}

/// `POST /networks/{id}/disconnect` {Container, Force}.
pub async fn disconnect(
    State(d): State<Arc<Daemon>>,
    Path(network): Path<String>,
    JsonBody(req): JsonBody<NetworkDisconnectRequest>,
) -> Answer<Response> {
    d.disconnect_container(network, &req.container).await?;
    super::http::ok_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_read_as_dockers() {
        assert_eq!(parse_signal("SIGKILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(
            parse_signal("FOO").unwrap_err().to_string(),
            "Invalid signal: FOO"
        );
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn wait_conditions_are_dockers() {
        let q = |c: &str| Query::from_pairs(&[("condition", c)]);
        assert_eq!(condition(&Query::default()).unwrap(), Condition::NotRunning);
        assert_eq!(condition(&q("next-exit")).unwrap(), Condition::NextExit);
        assert_eq!(condition(&q("removed")).unwrap(), Condition::Removed);
        assert!(condition(&q("soon")).is_err());
    }
}
