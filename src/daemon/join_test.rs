//! The join flow in-process, before any namespace: a manager served on
//! loopback over mutual TLS, nodes joining it with real tokens and
//! certificates, and the rules the certificates carry.

use super::enroll;
use super::state::SwarmState;
use crate::manager::fixture_test::{serve, Fixture};
use crate::manager::{ca, tls};
use crate::model::{ApiError, AttachRequest, NetworkSpec, NodeRole};
use crate::proto::client::ManagerConn;
use crate::proto::{Attachment, ClusterRequest, ManagerRequest, SwarmView, WatchResponse};

fn token(f: &Fixture, role: NodeRole, rotate: bool) -> String {
    let view = |call| -> SwarmView {
        let reply = f.manager.cluster_call(call, f.manager.self_id()).unwrap();
        serde_json::from_value(reply).unwrap()
    };
    let mut swarm = view(ClusterRequest::SwarmInspect);
    if rotate {
        swarm = view(ClusterRequest::SwarmUpdate {
            version: swarm.version,
            rotate_worker_token: role == NodeRole::Worker,
            rotate_manager_token: role == NodeRole::Manager,
        });
    }
    match role {
        NodeRole::Worker => swarm.worker_token,
        NodeRole::Manager => swarm.manager_token,
    }
}

async fn join(f: &Fixture, token: &str) -> Result<(SwarmState, tempfile::TempDir), ApiError> {
    let dir = tempfile::tempdir().unwrap();
    let state = enroll::join(
        dir.path(),
        token,
        &f.addr.to_string(),
        Some("127.0.0.1"),
        51820,
    )
    .await?;
    Ok((state, dir))
}

async fn call(state: &SwarmState, req: ManagerRequest) -> Result<serde_json::Value, ApiError> {
    let tls = tls::client_config(&state.ca_pem, &state.cert_pem, &state.key_pem).unwrap();
    ManagerConn::connect(state.config.manager_addr, tls)
        .await?
        .call(&req)
        .await
}

fn cert_role(state: &SwarmState) -> NodeRole {
    ca::identity(&ca::pem_to_der(&state.cert_pem).unwrap())
        .unwrap()
        .1
}

#[tokio::test]
async fn a_worker_token_makes_a_worker_that_cannot_read_cluster_state() {
    let f = serve().await;
    let (worker, _dir) = join(&f, &token(&f, NodeRole::Worker, false)).await.unwrap();
    assert_eq!(worker.config.role, NodeRole::Worker);
    assert_eq!(cert_role(&worker), NodeRole::Worker);
    assert_eq!(worker.config.tunnel_addr.to_string(), "100.64.0.2");
    call(&worker, ManagerRequest::Heartbeat).await.unwrap();
    let err = call(
        &worker,
        ManagerRequest::Cluster(Box::new(ClusterRequest::NodeLs)),
    )
    .await
    .unwrap_err();
    assert_eq!(err, ApiError::not_a_manager());
    assert_eq!(f.manager.views().unwrap().len(), 2);
}

#[tokio::test]
async fn a_manager_token_makes_a_manager() {
    let f = serve().await;
    let (second, _dir) = join(&f, &token(&f, NodeRole::Manager, false))
        .await
        .unwrap();
    assert_eq!(cert_role(&second), NodeRole::Manager);
    let nodes = call(
        &second,
        ManagerRequest::Cluster(Box::new(ClusterRequest::NodeLs)),
    )
    .await
    .unwrap();
    assert_eq!(nodes["self"], second.config.node_id.as_str());
}

#[tokio::test]
async fn bad_tokens_are_refused_before_anything_is_stored() {
    let f = serve().await;
    let other = serve().await;
    let foreign = token(&other, NodeRole::Worker, false);
    let err = join(&f, &foreign).await.unwrap_err();
    assert!(
        err.to_string().contains("its CA digest does not match"),
        "{err}"
    );
    let old = token(&f, NodeRole::Worker, false);
    token(&f, NodeRole::Worker, true);
    let err = join(&f, &old).await.unwrap_err();
    assert!(err.to_string().contains("invalid join token"), "{err}");
    let err = join(&f, "SWMTKN-1-garbage").await.unwrap_err();
    assert!(matches!(err, ApiError::InvalidArgument(_)), "{err}");
    assert_eq!(f.manager.views().unwrap().len(), 1);
}

#[tokio::test]
async fn a_removed_nodes_certificate_stops_working() {
    let f = serve().await;
    let (worker, _dir) = join(&f, &token(&f, NodeRole::Worker, false)).await.unwrap();
    f.manager
        .cluster_call(
            ClusterRequest::NodeRm {
                node: worker.config.node_id.clone(),
                force: true,
            },
            f.manager.self_id(),
        )
        .unwrap();
    let err = call(&worker, ManagerRequest::Heartbeat).await.unwrap_err();
    assert!(
        matches!(err, ApiError::PermissionDenied(ref m) if m.contains("was removed from the swarm")),
        "{err}"
    );
}

#[tokio::test]
async fn a_departed_node_and_a_stolen_key_are_refused() {
    let f = serve().await;
    let (worker, _dir) = join(&f, &token(&f, NodeRole::Worker, false)).await.unwrap();
    f.manager.leave(&worker.config.node_id).unwrap();
    let err = call(&worker, ManagerRequest::Heartbeat).await.unwrap_err();
    assert!(matches!(err, ApiError::PermissionDenied(_)), "{err}");
    let (csr_pem, _key) = ca::new_csr().unwrap();
    let err = f
        .manager
        .join(
            crate::proto::JoinRequest {
                token: token(&f, NodeRole::Worker, false),
                csr_pem,
                hostname: "thief".into(),
                addr: "127.0.0.1".parse().unwrap(),
                wg_public_key: "11".repeat(32),
                wg_port: 51820,
            },
            "127.0.0.1".parse().unwrap(),
        )
        .unwrap_err()
        .error;
    assert!(
        err.to_string()
            .contains("already uses this WireGuard public key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_may_only_fetch_the_ca_and_join() {
    let f = serve().await;
    let joining = tls::joining_client_config(f.manager.ca_pem()).unwrap();
    let mut conn = ManagerConn::connect(f.addr, joining).await.unwrap();
    assert!(conn.call(&ManagerRequest::GetCa).await.is_ok());
    let err = conn.call(&ManagerRequest::Heartbeat).await.unwrap_err();
    assert!(matches!(err, ApiError::PermissionDenied(_)), "{err}");
}

fn attach_req(network: &str, container: &str, ip: Option<&str>) -> ManagerRequest {
    ManagerRequest::Attach(AttachRequest {
        network: network.into(),
        container_id: format!("id-{container}"),
        container_name: container.into(),
        aliases: vec!["db".into()],
        ip: ip.map(|ip| ip.parse().unwrap()),
    })
}

#[tokio::test]
async fn workers_attach_their_containers_and_the_watch_carries_the_endpoints() {
    let f = serve().await;
    let spec = |name: &str, attachable: bool| NetworkSpec {
        name: name.into(),
        attachable,
        subnet: Some("10.20.0.0/24".into()),
        options: [("allow-overlap".to_string(), String::new())].into(),
        ..Default::default()
    };
    f.manager.create_network(spec("blue", true)).unwrap();
    f.manager.create_network(spec("closed", false)).unwrap();
    let worker_token = token(&f, NodeRole::Worker, false);
    let (w1, _d1) = join(&f, &worker_token).await.unwrap();
    let (w2, _d2) = join(&f, &worker_token).await.unwrap();

    let first: Attachment =
        serde_json::from_value(call(&w1, attach_req("blue", "c1", None)).await.unwrap()).unwrap();
    assert_eq!(first.endpoint.ip.to_string(), "10.20.0.2");
    assert_eq!(first.endpoint.mac, "02:42:0a:14:00:02");
    assert_eq!(first.endpoint.node_id, w1.config.node_id);
    let again: Attachment =
        serde_json::from_value(call(&w1, attach_req("blue", "c1", None)).await.unwrap()).unwrap();
    assert_eq!(
        again.endpoint, first.endpoint,
        "a retried attach is the same endpoint"
    );
    let fixed: Attachment = serde_json::from_value(
        call(&w2, attach_req("blue", "c2", Some("10.20.0.50")))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(fixed.endpoint.ip.to_string(), "10.20.0.50");

    let refusals = [
        (
            attach_req("closed", "c3", None),
            "network closed not manually attachable",
        ),
        (
            attach_req("ingress", "c3", None),
            "network ingress not manually attachable",
        ),
        (attach_req("nope", "c3", None), "network nope not found"),
        (
            attach_req("blue", "c3", Some("10.20.0.50")),
            "Address already in use",
        ),
        (
            attach_req("blue", "c3", Some("10.30.0.5")),
            "does not belong",
        ),
        (
            attach_req("blue", "c1", None),
            "endpoint with name c1 already exists",
        ),
    ];
    for (req, needle) in refusals {
        let err = call(&w2, req).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }

    let watch: WatchResponse =
        serde_json::from_value(call(&w2, ManagerRequest::Watch { since: 0 }).await.unwrap())
            .unwrap();
    assert_eq!(watch.endpoints.len(), 2);
    assert_eq!(watch.networks.len(), 3, "blue, closed and ingress");

    let err = f
        .manager
        .cluster_call(
            ClusterRequest::NetworkRm {
                network: "blue".into(),
            },
            f.manager.self_id(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("has active endpoints"), "{err}");
    assert!(err.contains("c1 on "), "{err}");

    let stolen = ManagerRequest::Detach {
        endpoint_id: first.endpoint.id.clone(),
    };
    let err = call(&w2, stolen).await.unwrap_err().to_string();
    assert!(err.contains("belongs to another node"), "{err}");
    let detach = ManagerRequest::Detach {
        endpoint_id: fixed.endpoint.id.clone(),
    };
    call(&w2, detach.clone()).await.unwrap();
    call(&w2, detach).await.unwrap();
    f.manager
        .cluster_call(
            ClusterRequest::NodeRm {
                node: w1.config.node_id.clone(),
                force: true,
            },
            f.manager.self_id(),
        )
        .unwrap();
    assert!(
        f.manager.endpoints().unwrap().is_empty(),
        "node rm drops its endpoints"
    );
    f.manager
        .cluster_call(
            ClusterRequest::NetworkRm {
                network: "blue".into(),
            },
            f.manager.self_id(),
        )
        .unwrap();
}
