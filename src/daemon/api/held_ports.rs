//! Before a service publishes a port, every Ready node is asked what holds
//! it already (`daemon::listeners`): a port something listens on, on any
//! node, is refused naming the node and the process, and nothing changes.
//! Docker does not look: its DNAT takes the port over from whatever
//! listens there. Only ports the service does not publish yet are asked
//! about, so an update never trips over the service's own. A node that
//! cannot answer is logged and passed over: it is not a reason to refuse.

use std::sync::Arc;

use super::nodes::NodeList;
use crate::daemon::listeners::{self, Listener, PortQuery};
use crate::daemon::{peers, Daemon};
use crate::model::{ApiError, NodeState, ServiceSpec};
use crate::proto::ClusterRequest;

/// Refuses `spec` when a port it would newly publish (against `before`,
/// the spec it replaces) is held on a Ready node.
pub(super) async fn refuse_held(
    d: &Arc<Daemon>,
    spec: &ServiceSpec,
    before: Option<&ServiceSpec>,
) -> Result<(), ApiError> {
    let ports = new_ports(spec, before);
    if ports.is_empty() {
        return Ok(());
    }
    let nodes: NodeList = d.cluster_as(ClusterRequest::NodeLs).await?;
    let (self_id, tls) = d.node_identity().await?;
    let mut ready: Vec<_> = nodes
        .nodes
        .into_iter()
        .filter(|v| v.state == NodeState::Ready)
        .map(|v| v.node)
        .collect();
    ready.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let asks = ready.iter().map(|node| {
        let (ports, tls) = (ports.clone(), tls.clone());
        let here = node.id == self_id;
        let addr = node.tunnel_addr;
        async move {
            if here {
                tokio::task::spawn_blocking(move || listeners::holding(&ports))
                    .await
                    .map_err(|e| ApiError::Internal(format!("the port reader failed: {e}")))
            } else {
                peers::node_listeners(addr, tls, ports).await
            }
        }
    });
    let answers = futures::future::join_all(asks).await;
    for (node, answer) in ready.iter().zip(answers) {
        match answer {
            Ok(held) => {
                if let Some(first) = held.first() {
                    return Err(held_error(&node.hostname, first));
                }
            }
            Err(e) => tracing::warn!(
                node = %node.hostname,
                "cannot tell whether the ports to publish are free there: {e}"
            ),
        }
    }
    Ok(())
}

fn held_error(node: &str, held: &Listener) -> ApiError {
    ApiError::InvalidArgument(format!(
        "port {}/{} is already in use on node {node} by {held}; stop it there, or publish another port",
        held.addr.port(),
        held.protocol
    ))
}

/// The published ports of `spec` (TCP and UDP) that `before` does not publish.
fn new_ports(spec: &ServiceSpec, before: Option<&ServiceSpec>) -> Vec<PortQuery> {
    let mut ports: Vec<PortQuery> = spec
        .ports
        .iter()
        .filter(|p| matches!(p.protocol.as_str(), "tcp" | "udp"))
        .filter_map(|p| {
            Some(PortQuery {
                port: p.published?,
                protocol: p.protocol.clone(),
            })
        })
        .filter(|q| {
            !before
                .into_iter()
                .flat_map(|b| &b.ports)
                .any(|p| p.published == Some(q.port) && p.protocol == q.protocol)
        })
        .collect();
    ports.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortConfig, ServiceMode};

    fn spec(ports: &[(Option<u16>, &str, &str)]) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            labels: Default::default(),
            mode: ServiceMode::Replicated { replicas: 1 },
            task: Default::default(),
            update: Default::default(),
            rollback: Default::default(),
            endpoint_mode: "vip".into(),
            ports: ports
                .iter()
                .map(|(published, protocol, mode)| PortConfig {
                    protocol: protocol.to_string(),
                    target: 3000,
                    published: *published,
                    mode: mode.to_string(),
                })
                .collect(),
        }
    }

    fn numbers(ports: &[PortQuery]) -> Vec<(u16, &str)> {
        ports
            .iter()
            .map(|p| (p.port, p.protocol.as_str()))
            .collect()
    }

    #[test]
    fn only_ports_the_service_does_not_publish_yet_are_asked_about() {
        let now = spec(&[
            (Some(8080), "tcp", "ingress"),
            (Some(8080), "udp", "ingress"),
            (Some(9090), "tcp", "host"),
            (None, "tcp", "host"),
            (Some(7000), "sctp", "ingress"),
            (Some(8080), "tcp", "host"),
        ]);
        assert_eq!(
            numbers(&new_ports(&now, None)),
            [(8080, "tcp"), (8080, "udp"), (9090, "tcp")],
            "TCP and UDP ports once each, host mode too"
        );
        let before = spec(&[(Some(8080), "tcp", "ingress")]);
        assert_eq!(
            numbers(&new_ports(&now, Some(&before))),
            [(8080, "udp"), (9090, "tcp")]
        );
        assert!(new_ports(&before, Some(&before)).is_empty());
    }

    #[test]
    fn a_held_port_is_refused_naming_the_node_and_the_process() {
        let held = Listener {
            protocol: "tcp".into(),
            addr: "0.0.0.0:8080".parse().unwrap(),
            pid: Some(42),
            command: Some("nc".into()),
        };
        assert_eq!(
            held_error("vm2", &held).to_string(),
            "port 8080/tcp is already in use on node vm2 by nc (pid 42) listening on 0.0.0.0:8080; stop it there, or publish another port"
        );
    }
}
