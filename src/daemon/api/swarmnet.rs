//! swarmnet's own calls, under `/swarmnet/`: namespaces made by other tools
//! (`ip netns add`, a container runtime) attached to and detached from networks.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::http::{json, no_content, Answer, JsonBody};
use crate::api::{NamespaceAttach, NamespaceAttachment, NamespaceDetach};
use crate::daemon::Daemon;

/// `POST /swarmnet/namespaces/attach`: answers the interface the namespace got.
pub async fn attach(
    State(d): State<Arc<Daemon>>,
    JsonBody(req): JsonBody<NamespaceAttach>,
) -> Answer<Response> {
    let a = d
        .attach_namespace(req.network, req.path, req.ipv4_address, req.aliases)
        .await?;
    json(NamespaceAttachment {
        ip_address: a.ip,
        ip_prefix_len: a.prefix_len,
        interface_name: a.ifname,
    })
}

/// `POST /swarmnet/namespaces/detach`.
pub async fn detach(
    State(d): State<Arc<Daemon>>,
    JsonBody(req): JsonBody<NamespaceDetach>,
) -> Answer<Response> {
    d.detach_namespace(req.network, req.path).await?;
    no_content()
}
