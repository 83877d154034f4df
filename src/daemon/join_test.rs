//! The join flow in-process, before any namespace: a manager served on
//! loopback over mutual TLS, nodes joining it with real tokens and
//! certificates, and the rules the certificates carry.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::state::SwarmState;
use super::swarm;
use crate::manager::client::ManagerConn;
use crate::manager::{api, ca, tls, InitParams, Manager};
use crate::model::{ApiError, NodeRole};
use crate::proto::{ClusterRequest, ManagerRequest};

struct Fixture {
    manager: Arc<Manager>,
    addr: String,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn manager() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (manager, cert) = Manager::init(
        dir.path(),
        InitParams {
            node_id: crate::model::random_id(),
            hostname: "leader".into(),
            addr: "127.0.0.1".parse().unwrap(),
            wg_public_key: "11".repeat(32),
            wg_port: 51820,
            mesh_subnet: "100.64.0.0/16".parse().unwrap(),
            pool: Default::default(),
        },
    )
    .unwrap();
    let manager = Arc::new(manager);
    let server = tls::server_config(manager.ca_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(api::serve(
        listener,
        server.into(),
        manager.clone(),
        Arc::new(Metrics::default()),
        stop_rx,
    ));
    Fixture {
        manager,
        addr,
        _stop: stop,
        _dir: dir,
    }
}

fn token(f: &Fixture, role: NodeRole, rotate: bool) -> String {
    let reply = f
        .manager
        .cluster_call(
            ClusterRequest::JoinToken { role, rotate },
            f.manager.self_id(),
        )
        .unwrap();
    reply.as_str().unwrap().to_string()
}

async fn join(f: &Fixture, token: &str) -> Result<(SwarmState, tempfile::TempDir), ApiError> {
    let dir = tempfile::tempdir().unwrap();
    let state = swarm::join(dir.path(), token, &f.addr, Some("127.0.0.1"), 51820).await?;
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
    let f = manager().await;
    let (worker, _dir) = join(&f, &token(&f, NodeRole::Worker, false)).await.unwrap();
    assert_eq!(worker.config.role, NodeRole::Worker);
    assert_eq!(cert_role(&worker), NodeRole::Worker);
    assert_eq!(worker.config.tunnel_addr.to_string(), "100.64.0.2");
    call(&worker, ManagerRequest::Heartbeat).await.unwrap();
    let err = call(&worker, ManagerRequest::Cluster(ClusterRequest::NodeLs))
        .await
        .unwrap_err();
    assert_eq!(err, ApiError::not_a_manager());
    assert_eq!(f.manager.views().unwrap().len(), 2);
}

#[tokio::test]
async fn a_manager_token_makes_a_manager() {
    let f = manager().await;
    let (second, _dir) = join(&f, &token(&f, NodeRole::Manager, false))
        .await
        .unwrap();
    assert_eq!(cert_role(&second), NodeRole::Manager);
    let nodes = call(&second, ManagerRequest::Cluster(ClusterRequest::NodeLs))
        .await
        .unwrap();
    assert_eq!(nodes["self"], second.config.node_id.as_str());
}

#[tokio::test]
async fn bad_tokens_are_refused_before_anything_is_stored() {
    let f = manager().await;
    let other = manager().await;
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
    let f = manager().await;
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
    let f = manager().await;
    let (worker, _dir) = join(&f, &token(&f, NodeRole::Worker, false)).await.unwrap();
    f.manager.leave(&worker.config.node_id).unwrap();
    let err = call(&worker, ManagerRequest::Heartbeat).await.unwrap_err();
    assert!(matches!(err, ApiError::PermissionDenied(_)), "{err}");
    let (csr_pem, _key) = ca::new_csr().unwrap();
    let err = f
        .manager
        .join(crate::proto::JoinRequest {
            token: token(&f, NodeRole::Worker, false),
            csr_pem,
            hostname: "thief".into(),
            addr: "127.0.0.1".parse().unwrap(),
            wg_public_key: "11".repeat(32),
            wg_port: 51820,
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already uses this WireGuard public key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_may_only_fetch_the_ca_and_join() {
    let f = manager().await;
    let joining = tls::joining_client_config(f.manager.ca_pem()).unwrap();
    let mut conn = ManagerConn::connect(f.addr.parse().unwrap(), joining)
        .await
        .unwrap();
    assert!(conn.call(&ManagerRequest::GetCa).await.is_ok());
    let err = conn.call(&ManagerRequest::Heartbeat).await.unwrap_err();
    assert!(matches!(err, ApiError::PermissionDenied(_)), "{err}");
}
