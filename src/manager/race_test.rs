//! Two writers racing for one thing, on real redb in a temp dir: a gate holds
//! both decisions after their reads until both have read, so each decides on
//! the same revision; exactly one may win, and the other gets the user's error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use tokio::sync::watch;

use super::fixture_test::manager_in;
use super::store::{Snapshot, Store, StoreError, Write};
use super::Manager;
use crate::model::{ApiError, AttachRequest, NetworkSpec};
use crate::proto::JoinRequest;

/// A store whose next two snapshots wait for each other.
struct Gate {
    inner: Box<dyn Store>,
    held: AtomicUsize,
    barrier: Barrier,
}

impl Store for Gate {
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let snapshot = self.inner.snapshot()?;
        let hold = |n: usize| n.checked_sub(1);
        if self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, hold)
            .is_ok()
        {
            self.barrier.wait();
        }
        Ok(snapshot)
    }

    fn commit(&self, base: u64, writes: Vec<Write>) -> Result<u64, StoreError> {
        self.inner.commit(base, writes)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.subscribe()
    }
}

fn manager(dir: &tempfile::TempDir) -> Manager {
    manager_in(dir, "leader", "192.168.99.100")
}

/// Runs `a` and `b` on two threads whose store reads meet before either writes.
fn race<T: Send>(
    manager: Manager,
    a: impl FnOnce(&Manager) -> T + Send,
    b: impl FnOnce(&Manager) -> T + Send,
) -> (Manager, T, T) {
    let gate = Gate {
        inner: manager.store,
        held: AtomicUsize::new(2),
        barrier: Barrier::new(2),
    };
    let manager = Manager {
        store: Box::new(gate),
        ..manager
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(|| a(&manager));
        let y = s.spawn(|| b(&manager));
        (x.join().unwrap(), y.join().unwrap())
    });
    (manager, x, y)
}

/// Exactly one of two results is Ok; returns it and the other's error.
fn one_wins<T>(x: Result<T, ApiError>, y: Result<T, ApiError>) -> (T, ApiError) {
    match (x, y) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        (Ok(_), Ok(_)) => panic!("both writers won"),
        (Err(a), Err(b)) => panic!("both writers lost: {a}; {b}"),
    }
}

fn network(name: &str, subnet: Option<&str>) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        attachable: true,
        subnet: subnet.map(Into::into),
        ..Default::default()
    }
}

fn attach(container: &str) -> AttachRequest {
    AttachRequest {
        network: "blue".into(),
        container_id: container.into(),
        container_name: container.into(),
        aliases: Vec::new(),
        ip: None,
    }
}

/// Joins a worker with `key`; returns its tunnel address.
fn join(m: &Manager, token: &str, key: &str, hostname: &str) -> Result<String, ApiError> {
    let (csr_pem, _key) = super::ca::new_csr().unwrap();
    let joined = m.join(
        JoinRequest {
            token: token.into(),
            csr_pem,
            hostname: hostname.into(),
            addr: "192.168.99.101".parse().unwrap(),
            wg_public_key: key.into(),
            wg_port: 51820,
        },
        "192.168.99.101".parse().unwrap(),
    )?;
    Ok(joined.tunnel_addr.to_string())
}

#[test]
fn two_attaches_for_the_last_free_address() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    // 10.30.0.0/29: .1 is the gateway, .2 to .6 are for endpoints.
    m.create_network(network("blue", Some("10.30.0.0/29")))
        .unwrap();
    for i in 0..4 {
        m.attach("leader", attach(&format!("c{i}"))).unwrap();
    }
    let (m, x, y) = race(
        m,
        |m| m.attach("leader", attach("a")),
        |m| m.attach("leader", attach("b")),
    );
    let (won, lost) = one_wins(x, y);
    assert_eq!(won.endpoint.ip.to_string(), "10.30.0.6");
    assert!(matches!(lost, ApiError::FailedPrecondition(_)), "{lost:?}");
    assert!(
        lost.to_string()
            .starts_with("no available IPv4 addresses on this network's address pools: blue"),
        "{lost}"
    );
    let mut ips: Vec<_> = m.endpoints().unwrap().iter().map(|e| e.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 5, "one endpoint per address");
}

#[test]
fn two_networks_with_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let (m, x, y) = race(
        manager(&dir),
        |m| m.create_network(network("blue", None)),
        |m| m.create_network(network("blue", None)),
    );
    let (_, lost) = one_wins(x, y);
    assert_eq!(
        lost,
        ApiError::Conflict("network with name blue already exists".into())
    );
    let names: Vec<_> = m.networks().unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["blue", "ingress"]);
}

#[test]
fn two_networks_at_once_take_different_subnets_and_vnis() {
    let dir = tempfile::tempdir().unwrap();
    let (_, x, y) = race(
        manager(&dir),
        |m| m.create_network(network("red", None)),
        |m| m.create_network(network("green", None)),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_ne!(x.subnet, y.subnet);
    assert_ne!(x.vni, y.vni);
}

#[test]
fn two_joins_with_the_same_wireguard_key() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let token = m.swarm_view().unwrap().worker_token;
    let key = "22".repeat(32);
    let (m, x, y) = race(
        m,
        |m| join(m, &token, &key, "vm2"),
        |m| join(m, &token, &key, "vm3"),
    );
    let (_, lost) = one_wins(x, y);
    assert_eq!(
        lost,
        ApiError::InvalidArgument(
            "another node already uses this WireGuard public key; each node makes its own".into()
        )
    );
    assert_eq!(m.views().unwrap().len(), 2);
}

#[test]
fn two_joins_at_once_take_different_tunnel_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let token = m.swarm_view().unwrap().worker_token;
    let (_, x, y) = race(
        m,
        |m| join(m, &token, &"22".repeat(32), "vm2"),
        |m| join(m, &token, &"33".repeat(32), "vm3"),
    );
    let mut addrs = [x.unwrap(), y.unwrap()];
    addrs.sort();
    assert_eq!(addrs, ["100.64.0.2", "100.64.0.3"]);
}
