//! `/secrets` and `/configs`: swarmnet keeps neither, so their lists are
//! empty (the docker CLI's `stack rm` and `stack deploy` look for a stack's
//! secrets and configs by label and find none), and creating one is refused
//! with a sentence that says so.

use axum::response::Response;

use super::http::{json, Answer, Query};
use crate::model::ApiError;

/// Docker's filters on secrets and configs.
const FILTERS: [&str; 4] = ["id", "name", "label", "names"];

/// `GET /secrets` and `GET /configs`: none, whatever the filters ask.
pub async fn list(q: Query) -> Answer<Response> {
    q.filters()?.only(&FILTERS)?;
    json(Vec::<serde_json::Value>::new())
}

/// `POST /secrets/create` and `POST /configs/create`.
pub async fn create() -> Answer<Response> {
    Err(ApiError::InvalidArgument(
        "secrets and configs are not supported: swarmnet runs each task as a command from the host's filesystem, which reads its files from there; leave secrets and configs out of the service or stack".into(),
    )
    .into())
}
