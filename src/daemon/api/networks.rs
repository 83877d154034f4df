//! `/networks`: list (with filters), inspect, create, remove. Connecting and
//! disconnecting containers live with the containers (`containers.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;

use super::http::{json, no_content, Answer, JsonBody, Query};
use crate::api::models::{
    Ipam, IpamConfig, Network as DockerNetwork, NetworkCreateRequest, NetworkCreateResponse,
    PeerInfo,
};
use crate::api::{rfc3339, NetworkDoc, NetworkEndpoint};
use crate::daemon::Daemon;
use crate::model::{ApiError, Network, NetworkSpec, OVERLAY};
use crate::proto::{ClusterRequest, NetworkDetail};

/// The option Docker reports a network's VXLAN identifier under.
const VXLANID_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";

/// A network in Docker's shape; `detail` adds its endpoints and peers.
pub fn network_doc(n: &Network, detail: Option<&NetworkDetail>) -> NetworkDoc {
    let mut options: HashMap<String, String> = n.options.clone().into_iter().collect();
    options.insert(VXLANID_OPTION.into(), n.vni.to_string());
    let mut containers = std::collections::BTreeMap::new();
    let mut peers: Vec<PeerInfo> = Vec::new();
    for a in detail.map(|d| d.attached.as_slice()).unwrap_or_default() {
        let e = &a.endpoint;
        containers.insert(
            e.container_id.clone(),
            NetworkEndpoint {
                name: e.container_name.clone(),
                endpoint_id: e.id.clone(),
                mac_address: e.mac.clone(),
                ipv4_address: format!("{}/{}", e.ip, n.subnet.prefix()),
                ipv6_address: String::new(),
                node: a.node_hostname.clone(),
                aliases: e.aliases.clone(),
            },
        );
        let peer = PeerInfo {
            name: Some(a.node_hostname.clone()),
            ip: Some(a.node_addr.to_string()),
        };
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    NetworkDoc {
        network: DockerNetwork {
            name: Some(n.name.clone()),
            id: Some(n.id.clone()),
            created: Some(rfc3339(n.created_at)),
            scope: Some("swarm".into()),
            driver: Some(OVERLAY.into()),
            enable_ipv4: Some(true),
            enable_ipv6: Some(false),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(n.subnet.to_string()),
                    gateway: Some(n.gateway.to_string()),
                    ..Default::default()
                }]),
                options: None,
            }),
            internal: Some(false),
            attachable: Some(n.attachable),
            ingress: Some(n.ingress),
            config_from: None,
            config_only: Some(false),
            options: Some(options),
            labels: Some(n.labels.clone().into_iter().collect()),
            peers: detail.map(|_| peers),
        },
        containers,
        vni: n.vni,
        mtu: n.mtu,
    }
}

/// Docker's network filters: name (part of it), id (prefix), driver, scope,
/// type, label (`key` or `key=value`, every one given).
fn filtered(nets: Vec<Network>, q: &Query) -> Result<Vec<Network>, ApiError> {
    let f = q.filters()?;
    f.only(&["name", "id", "driver", "scope", "type", "label"])?;
    Ok(nets
        .into_iter()
        .filter(|n| {
            f.accepts("name", |name| n.name.contains(name))
                && f.accepts("id", |id| n.id.starts_with(id))
                && f.accepts("driver", |d| d == OVERLAY)
                && f.accepts("scope", |s| s == "swarm")
                && f.accepts("type", |t| {
                    t == if n.ingress { "builtin" } else { "custom" }
                })
                && super::services::labels_match(&f, &n.labels)
        })
        .collect())
}

/// `GET /networks?filters=`.
pub async fn list(State(d): State<Arc<Daemon>>, q: Query) -> Answer<Response> {
    let nets: Vec<Network> = d.cluster_as(ClusterRequest::NetworkLs).await?;
    let docs: Vec<NetworkDoc> = filtered(nets, &q)?
        .iter()
        .map(|n| network_doc(n, None))
        .collect();
    json(docs)
}

/// `GET /networks/{id}`: by ID, name or unique ID prefix.
pub async fn inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    let detail: NetworkDetail = d
        .cluster_as(ClusterRequest::NetworkInspect { network: id })
        .await?;
    json(network_doc(&detail.network, Some(&detail)))
}

/// The spec a create request asks for: one IPv4 subnet at most, no IPv6.
fn network_spec(req: NetworkCreateRequest) -> Result<NetworkSpec, ApiError> {
    if req.enable_ipv6 == Some(true) {
        return Err(ApiError::InvalidArgument(format!(
            "network {}: IPv6 is not supported on swarmnet overlays; leave out --ipv6",
            req.name
        )));
    }
    if req.internal == Some(true) || req.config_only == Some(true) || req.ingress == Some(true) {
        return Err(ApiError::InvalidArgument(format!(
            "network {}: --internal, --config-only and --ingress are not supported; swarmnet makes the ingress network itself",
            req.name
        )));
    }
    let configs = req.ipam.and_then(|i| i.config).unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::InvalidArgument(format!(
            "network {}: {} subnets given; swarmnet networks take one --subnet",
            req.name,
            configs.len()
        )));
    }
    let config = configs.into_iter().next().unwrap_or_default();
    if config.ip_range.is_some() || config.auxiliary_addresses.is_some() {
        return Err(ApiError::InvalidArgument(format!(
            "network {}: --ip-range and --aux-address are not supported; give --subnet and --gateway",
            req.name
        )));
    }
    Ok(NetworkSpec {
        name: req.name,
        driver: req.driver.unwrap_or_default(),
        attachable: req.attachable.unwrap_or(false),
        subnet: config.subnet.filter(|s| !s.is_empty()),
        gateway: config.gateway.filter(|g| !g.is_empty()),
        options: req.options.unwrap_or_default().into_iter().collect(),
        labels: req.labels.unwrap_or_default().into_iter().collect(),
    })
}

/// `POST /networks/create`: answers the new network's ID.
pub async fn create(
    State(d): State<Arc<Daemon>>,
    JsonBody(req): JsonBody<NetworkCreateRequest>,
) -> Answer<Response> {
    let spec = network_spec(req)?;
    let net: Network = d.cluster_as(ClusterRequest::NetworkCreate(spec)).await?;
    json(NetworkCreateResponse {
        id: net.id,
        warning: String::new(),
    })
}

/// `DELETE /networks/{id}`.
pub async fn remove(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    let _: serde_json::Value = d
        .cluster_as(ClusterRequest::NetworkRm { network: id })
        .await?;
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network() -> Network {
        Network {
            id: "f3c2a1".into(),
            name: "blue".into(),
            attachable: true,
            ingress: false,
            subnet: "10.20.0.0/24".parse().unwrap(),
            gateway: "10.20.0.1".parse().unwrap(),
            vni: 4097,
            mtu: None,
            allow_overlap: false,
            from_pool: false,
            options: Default::default(),
            created_at: 0,
            labels: Default::default(),
            removing: false,
        }
    }

    /// The fields `docker network inspect` shows for an attachable overlay
    /// on dockerd 20.10, with their values for this network.
    #[test]
    fn a_network_is_shaped_as_dockers() {
        let doc = serde_json::to_value(network_doc(&network(), None)).unwrap();
        for (key, want) in [
            ("Name", serde_json::json!("blue")),
            ("Id", serde_json::json!("f3c2a1")),
            ("Scope", serde_json::json!("swarm")),
            ("Driver", serde_json::json!("overlay")),
            ("EnableIPv6", serde_json::json!(false)),
            (
                "IPAM",
                serde_json::json!({"Driver": "default", "Config": [{"Subnet": "10.20.0.0/24", "Gateway": "10.20.0.1"}]}),
            ),
            ("Internal", serde_json::json!(false)),
            ("Attachable", serde_json::json!(true)),
            ("Ingress", serde_json::json!(false)),
            ("ConfigOnly", serde_json::json!(false)),
            ("Containers", serde_json::json!({})),
            (
                "Options",
                serde_json::json!({"com.docker.network.driver.overlay.vxlanid_list": "4097"}),
            ),
            ("Labels", serde_json::json!({})),
        ] {
            assert_eq!(doc[key], want, "{key}");
        }
    }

    #[test]
    fn create_requests_map_to_a_spec_or_a_sentence() {
        let req: NetworkCreateRequest = serde_json::from_value(serde_json::json!({
            "Name": "blue", "CheckDuplicate": true, "Driver": "overlay", "Attachable": true,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.20.0.0/24"}]},
            "Options": {"mtu": "1300"}
        }))
        .unwrap();
        let spec = network_spec(req).unwrap();
        assert_eq!(spec.subnet.as_deref(), Some("10.20.0.0/24"));
        assert!(spec.attachable);
        assert_eq!(spec.options["mtu"], "1300");
        let v6 = NetworkCreateRequest {
            name: "x".into(),
            enable_ipv6: Some(true),
            ..Default::default()
        };
        assert!(network_spec(v6).unwrap_err().to_string().contains("IPv6"));
        let two = NetworkCreateRequest {
            name: "x".into(),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig::default(), IpamConfig::default()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(network_spec(two)
            .unwrap_err()
            .to_string()
            .contains("take one"));
    }

    #[test]
    fn filters_pick_networks_as_docker_does() {
        let mut ingress = network();
        ingress.name = "ingress".into();
        ingress.ingress = true;
        let pick = |filters: &str| -> Vec<String> {
            let q = Query::from_pairs(&[("filters", filters)]);
            filtered(vec![network(), ingress.clone()], &q)
                .unwrap()
                .into_iter()
                .map(|n| n.name)
                .collect()
        };
        assert_eq!(pick(r#"{"name":["lu"]}"#), ["blue"]);
        assert_eq!(pick(r#"{"type":["builtin"]}"#), ["ingress"]);
        assert_eq!(pick(r#"{"driver":["bridge"]}"#).len(), 0);
    }
}
