//! A manager served over mutual TLS on loopback, for in-process tests of its
//! API (the join flow in daemon::join_test, strangers in guest_test).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api::{self, ApiCounters};
use super::ca::NodeCert;
use super::{tls, InitParams, Manager};

/// A new cluster in `dir` whose leader, node "leader", is `hostname` at
/// `addr`; with the leader's certificate.
pub fn init_in(dir: &tempfile::TempDir, hostname: &str, addr: &str) -> (Manager, NodeCert) {
    let params = InitParams {
        node_id: "leader".into(),
        hostname: hostname.into(),
        addr: addr.parse().unwrap(),
        wg_public_key: "11".repeat(32),
        wg_port: 51820,
        mesh_subnet: "100.64.0.0/16".parse().unwrap(),
        pool: Default::default(),
    };
    Manager::init(dir.path(), params).unwrap()
}

/// A new cluster in `dir` (see [`init_in`]).
pub fn manager_in(dir: &tempfile::TempDir, hostname: &str, addr: &str) -> Manager {
    init_in(dir, hostname, addr).0
}

/// A running manager and where it listens; it stops when dropped.
pub struct Fixture {
    pub manager: Arc<Manager>,
    pub counters: Arc<ApiCounters>,
    pub addr: std::net::SocketAddr,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// A fresh cluster whose leader is "leader" at 127.0.0.1, its API served on a free port.
pub async fn serve() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (manager, cert) = init_in(&dir, "leader", "127.0.0.1");
    let manager = Arc::new(manager);
    let server = tls::server_config(manager.ca_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(ApiCounters::default());
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(api::serve(
        listener,
        server.into(),
        manager.clone(),
        counters.clone(),
        stop_rx,
    ));
    Fixture {
        manager,
        counters,
        addr,
        _stop: stop,
        _dir: dir,
    }
}
