//! The Docker Engine API (v1.41) on the daemon's Unix socket: HTTP/1.1 with
//! versioned (`/v1.41/...`) and unversioned paths, Docker's JSON shapes and
//! error bodies, one handler file per resource, and swarmnet's own calls
//! under `/swarmnet/`.

mod container_docs;
mod containers;
mod exec;
mod held_ports;
mod http;
mod logs;
mod networks;
mod nodes;
mod secrets;
mod service_logs;
mod services;
mod swarm;
mod swarmnet;
mod system;
mod tasks;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{delete, get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixListener;

use super::Daemon;
use crate::api::{parse_version, API_VERSION, MIN_API_VERSION};
use crate::model::ApiError;

pub use http::Rejected;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route of the API, unversioned; `serve` strips the version prefix.
fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/init", post(swarm::init))
        .route("/swarm/join", post(swarm::join))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::update))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/nodes/{id}/update", post(nodes::update))
        .route("/services", get(services::list))
        .route("/services/create", post(services::create))
        .route(
            "/services/{id}",
            get(services::inspect).delete(services::remove),
        )
        .route("/services/{id}/update", post(services::update))
        .route("/services/{id}/logs", get(service_logs::service))
        .route("/tasks/{id}/logs", get(service_logs::task))
        .route("/tasks", get(tasks::list))
        .route("/secrets", get(secrets::list))
        .route("/secrets/create", post(secrets::create))
        .route("/configs", get(secrets::list))
        .route("/configs/create", post(secrets::create))
        .route("/tasks/{id}", get(tasks::inspect))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(containers::connect))
        .route("/networks/{id}/disconnect", post(containers::disconnect))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/logs", get(logs::logs))
        .route("/containers/{id}/attach", post(logs::attach))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}", delete(containers::remove))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/images/create", post(containers::pull))
        .route("/distribution/{name}/json", get(containers::distribution))
        .route("/swarmnet/namespaces/attach", post(swarmnet::attach))
        .route("/swarmnet/namespaces/detach", post(swarmnet::detach))
        .fallback(http::page_not_found)
        .with_state(daemon)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = router(daemon.clone());
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => conn,
                Err(e) => {
                    tracing::warn!("cannot accept an API connection: {e}");
                    continue;
                }
            },
        };
        let (app, daemon) = (app.clone(), daemon.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (app, daemon) = (app.clone(), daemon.clone());
                async move { Ok::<_, Infallible>(handle(app, daemon, req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(conn), service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!("API connection ended: {e}");
            }
        });
    }
}

/// One request: the version prefix checked and stripped, then routed.
async fn handle(app: Router, daemon: Arc<Daemon>, req: Request<Incoming>) -> Response<Body> {
    let mut req = req.map(Body::new);
    let path = req.uri().path().to_string();
    if let Some((version, rest)) = split_version(&path) {
        if let Err(e) = check_version(version) {
            daemon.metrics.engine.count(Some(&e));
            return http::error_response(&e);
        }
        let mut parts = req.uri().clone().into_parts();
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        parts.path_and_query = format!("{rest}{query}").parse().ok();
        if let Ok(uri) = hyper::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    let mut app = app;
    let response = tower_service::Service::call(&mut app, req)
        .await
        .unwrap_or_else(|never| match never {});
    let failed = response.extensions().get::<Rejected>();
    daemon.metrics.engine.count(failed.map(|Rejected(e)| e));
    response
}

/// `/v1.41/nodes` as ("1.41", "/nodes").
fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let slash = rest.find('/')?;
    let version = &rest[..slash];
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then_some((version, &rest[slash..]))
}

/// Docker's words for a version it does not serve.
fn check_version(version: &str) -> Result<(), ApiError> {
    let Some(asked) = parse_version(version) else {
        return Err(ApiError::InvalidArgument(format!(
            "invalid API version {version:?}: give MAJOR.MINOR, such as {API_VERSION}"
        )));
    };
    if Some(asked) > parse_version(API_VERSION) {
        return Err(ApiError::InvalidArgument(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if Some(asked) < parse_version(MIN_API_VERSION) {
        return Err(ApiError::InvalidArgument(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_split_off() {
        assert_eq!(split_version("/v1.41/nodes"), Some(("1.41", "/nodes")));
        assert_eq!(
            split_version("/v1.24/containers/x/json"),
            Some(("1.24", "/containers/x/json"))
        );
        assert_eq!(split_version("/nodes"), None);
        assert_eq!(split_version("/version"), None);
        assert_eq!(split_version("/v1.41"), None);
    }

    #[test]
    fn versions_outside_the_range_are_refused_in_dockers_words() {
        assert!(check_version("1.41").is_ok());
        assert!(check_version("1.24").is_ok());
        let new = check_version("1.43").unwrap_err().to_string();
        assert_eq!(
            new,
            "client version 1.43 is too new. Maximum supported API version is 1.41"
        );
        assert!(check_version("1.5")
            .unwrap_err()
            .to_string()
            .contains("too old"));
        assert!(check_version("one").is_err());
    }
}
