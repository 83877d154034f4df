//! The Docker Engine API as swarmnet speaks it: the version, the wire shapes
//! (Docker's own schema from bollard-stubs, plus swarmnet's few additions),
//! and how errors map to HTTP statuses. No I/O: the daemon serves it
//! (`daemon::api`), the CLI calls it (`cli::client`).

use serde::{Deserialize, Serialize};

use crate::model::ApiError;

pub mod services;

pub use bollard_stubs::models;

/// The API version served: what Debian's docker client 20.10 speaks.
pub const API_VERSION: &str = "1.41";
/// The oldest API version accepted, as dockerd 20.10's minimum.
pub const MIN_API_VERSION: &str = "1.12";
/// The one image there is: a container runs a command from the host's filesystem.
pub use crate::model::HOST_IMAGE;

/// "1.41" as (1, 41), for comparing versions.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The HTTP status Docker answers an error of this kind with.
pub fn status_of(err: &ApiError) -> u16 {
    match err {
        ApiError::InvalidArgument(_) | ApiError::FailedPrecondition(_) => 400,
        ApiError::PermissionDenied(_) => 403,
        ApiError::NotFound(_) => 404,
        ApiError::Conflict(_) => 409,
        ApiError::Unavailable(_) => 503,
        ApiError::Internal(_) => 500,
    }
}

/// The error a client rebuilds from a status and Docker's `{"message": ...}`.
pub fn error_from_status(status: u16, message: String) -> ApiError {
    match status {
        400 | 413 => ApiError::InvalidArgument(message),
        403 => ApiError::PermissionDenied(message),
        404 => ApiError::NotFound(message),
        409 => ApiError::Conflict(message),
        503 => ApiError::Unavailable(message),
        _ => ApiError::Internal(message),
    }
}

/// A Unix time as RFC 3339, as Docker writes times.
pub fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Docker's "5 seconds", "About a minute", "3 days" (go-units' HumanDuration).
pub fn human_duration(secs: u64) -> String {
    let hours = (secs + 1800) / 3600;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 14 => format!("{} days", hours / 24),
        _ if hours < 24 * 60 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 730 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// `GET /info`: Docker's shape, and this node's address on the mesh.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InfoDoc {
    #[serde(flatten)]
    pub info: models::SystemInfo,
    #[serde(
        rename = "TunnelAddr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tunnel_addr: Option<String>,
}

/// Docker's error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// A node as `GET /nodes` gives it: Docker's shape, and the node's place in
/// the WireGuard mesh (a field Docker does not have; its clients ignore it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeDoc {
    #[serde(flatten)]
    pub node: models::Node,
    #[serde(rename = "WireGuard", default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireGuardInfo>,
}

/// A node's WireGuard identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireGuardInfo {
    /// Base64, as `wg show` prints keys.
    pub public_key: String,
    pub listen_port: u16,
    pub tunnel_addr: String,
}

/// A network as `GET /networks/{id}` gives it: Docker's shape, with the node
/// of each endpoint and the network's VXLAN identifier and MTU.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkDoc {
    #[serde(flatten)]
    pub network: models::Network,
    #[serde(rename = "Containers", default)]
    pub containers: std::collections::BTreeMap<String, NetworkEndpoint>,
    #[serde(rename = "VNI", default)]
    pub vni: u32,
    #[serde(rename = "MTU", default)]
    pub mtu: Option<u32>,
}

/// One endpoint in `network inspect`'s Containers, with its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkEndpoint {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
    pub node: String,
    pub aliases: Vec<String>,
}

/// `POST /swarmnet/namespaces/attach`: a namespace made by another tool onto a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamespaceAttach {
    pub network: String,
    /// The namespace's file, absolute (e.g. /run/netns/foo).
    pub path: std::path::PathBuf,
    #[serde(rename = "IPv4Address", default)]
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `POST /swarmnet/namespaces/detach`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamespaceDetach {
    pub network: String,
    pub path: std::path::PathBuf,
}

/// The interface a namespace got on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamespaceAttachment {
    #[serde(rename = "IPAddress")]
    pub ip_address: std::net::Ipv4Addr,
    pub ip_prefix_len: u8,
    pub interface_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(parse_version("1.9") < parse_version("1.41"));
        assert!(parse_version(API_VERSION) < parse_version("1.43"));
        assert_eq!(parse_version("x.41"), None);
        assert_eq!(parse_version("141"), None);
    }

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(5000), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(21 * 86400), "3 weeks");
        assert_eq!(human_duration(800 * 86400), "2 years");
    }

    #[test]
    fn errors_round_trip_through_their_status() {
        for err in [
            ApiError::InvalidArgument("a".into()),
            ApiError::NotFound("b".into()),
            ApiError::Conflict("c".into()),
            ApiError::PermissionDenied("d".into()),
            ApiError::Unavailable("e".into()),
            ApiError::Internal("f".into()),
        ] {
            let back = error_from_status(status_of(&err), err.to_string());
            assert_eq!(back, err);
        }
    }
}
