//! What every handler shares: Docker's error bodies, request bodies read
//! with a bound and a deadline, query parameters as Docker reads them
//! (booleans, `filters`), and JSON replies.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{status_of, ErrorBody};
use crate::model::ApiError;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Marks a response as an error, for the metrics.
#[derive(Clone)]
pub struct Rejected(pub ApiError);

/// Docker's error reply: the status, and `{"message": "..."}`.
pub fn error_response(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(status_of(err)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_with_status(err, status)
}

fn error_with_status(err: &ApiError, status: StatusCode) -> Response {
    let mut response = (
        status,
        axum::Json(ErrorBody {
            message: err.to_string(),
        }),
    )
        .into_response();
    response.extensions_mut().insert(Rejected(err.clone()));
    response
}

/// A handler's error, answered in Docker's form; a body over the bound is 413.
pub enum Failure {
    Api(ApiError),
    TooLarge(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => error_response(&e),
            Failure::TooLarge(e) => error_with_status(&e, StatusCode::PAYLOAD_TOO_LARGE),
        }
    }
}

/// What handlers return.
pub type Answer<T> = Result<T, Failure>;

/// A JSON reply (200).
pub fn json<T: Serialize>(value: T) -> Answer<Response> {
    Ok(axum::Json(value).into_response())
}

/// An empty reply: 204 No Content, as Docker answers a start or a removal.
pub fn no_content() -> Answer<Response> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An empty 200, as Docker answers a swarm join or leave.
pub fn ok_empty() -> Answer<Response> {
    Ok(StatusCode::OK.into_response())
}

/// Docker's answer to a path it does not know.
pub async fn page_not_found() -> Response {
    error_response(&ApiError::NotFound("page not found".into()))
}

/// A JSON request body, bounded in size and time; an empty body reads as `T::default()`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonBody<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(T::default()));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            Failure::Api(ApiError::InvalidArgument(format!(
                "the request body is not valid JSON for this call: {e}"
            )))
        })
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes within the body deadline.
async fn read_body(body: Body) -> Result<bytes::Bytes, Failure> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => Err(Failure::Api(ApiError::InvalidArgument(format!(
            "the request body did not arrive within {} s",
            BODY_TIMEOUT.as_secs()
        )))),
        Ok(Err(_)) => Err(Failure::TooLarge(ApiError::InvalidArgument(format!(
            "the request body is over {MAX_BODY} bytes: send a smaller one"
        )))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// The query parameters, read as Docker reads them.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
            .map(|pairs| Query(pairs.into_iter().collect()))
            .map_err(|e| {
                Failure::Api(ApiError::InvalidArgument(format!(
                    "invalid query string {raw:?}: {e}"
                )))
            })
    }
}

impl Query {
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Query {
        Query(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// A parameter's value, if given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Docker's boolean: anything but "", "0", "no", "false" or "none" is true.
    pub fn flag(&self, key: &str) -> bool {
        let v = self.0.get(key).map(|v| v.trim().to_lowercase());
        !matches!(
            v.as_deref(),
            None | Some("") | Some("0") | Some("no") | Some("false") | Some("none")
        )
    }

    /// A number parameter; an unparsable one is refused with its name.
    pub fn number<N: std::str::FromStr>(&self, key: &str) -> Result<Option<N>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::InvalidArgument(format!("invalid value for {key}: {v:?} is not a number"))
            }),
        }
    }

    /// `filters`, in either of the forms Docker clients send:
    /// `{"name":["a"]}` or `{"name":{"a":true}}`.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        let Some(raw) = self.get("filters") else {
            return Ok(Filters::default());
        };
        let bad = |e: String| ApiError::InvalidArgument(format!("invalid filters {raw:?}: {e}"));
        let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(bad("expected a JSON object".into()));
        };
        let mut filters = BTreeMap::new();
        for (key, values) in map {
            let list = match values {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>(),
                serde_json::Value::Object(set) => Some(
                    set.into_iter()
                        .filter(|(_, on)| on.as_bool() == Some(true))
                        .map(|(k, _)| k)
                        .collect(),
                ),
                _ => None,
            };
            let list = list.ok_or_else(|| bad(format!("the values of {key:?} must be strings")))?;
            filters.insert(key, list);
        }
        Ok(Filters(filters))
    }
}

/// Docker's list filters: a key matches when any of its values does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Refuses keys this list does not filter on, in Docker's words.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(ApiError::InvalidArgument(format!("invalid filter '{key}'"))),
            None => Ok(()),
        }
    }

    /// True when `key` is not given, or one of its values satisfies `matches`.
    pub fn accepts(&self, key: &str, matches: impl Fn(&str) -> bool) -> bool {
        self.0
            .get(key)
            .is_none_or(|values| values.iter().any(|v| matches(v)))
    }
}

/// A raw body reply with a content type (logs, streams).
pub fn stream_response(content_type: &'static str, body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_dockers() {
        let q = Query::from_pairs(&[
            ("a", "1"),
            ("b", "true"),
            ("c", "0"),
            ("d", "False"),
            ("e", ""),
        ]);
        assert!(q.flag("a") && q.flag("b"));
        assert!(!q.flag("c") && !q.flag("d") && !q.flag("e") && !q.flag("missing"));
    }

    #[test]
    fn filters_take_both_of_dockers_forms() {
        let old = Query::from_pairs(&[("filters", r#"{"role":{"manager":true}}"#)]);
        let new = Query::from_pairs(&[("filters", r#"{"role":["manager"]}"#)]);
        for q in [old, new] {
            let f = q.filters().unwrap();
            assert!(f.accepts("role", |v| v == "manager"));
            assert!(!f.accepts("role", |v| v == "worker"));
            assert!(f.accepts("name", |_| false), "an absent key accepts all");
            assert!(f.only(&["role"]).is_ok());
            assert_eq!(
                f.only(&["name"]).unwrap_err().to_string(),
                "invalid filter 'role'"
            );
        }
        let bad = Query::from_pairs(&[("filters", "[1]")]);
        assert!(bad.filters().is_err());
        let bad = Query::from_pairs(&[("filters", r#"{"role":[1]}"#)]);
        assert!(bad.filters().is_err());
    }

    #[test]
    fn numbers_are_checked() {
        let q = Query::from_pairs(&[("version", "12"), ("bad", "x")]);
        assert_eq!(q.number::<u64>("version").unwrap(), Some(12));
        assert_eq!(q.number::<u64>("missing").unwrap(), None);
        assert!(q.number::<u64>("bad").is_err());
    }
}
