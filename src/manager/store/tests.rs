//! The store's contract, on the redb backend: revisions, compare-and-swap
//! commits, consistent snapshots, and decisions run again on conflict.

use std::sync::{Arc, Barrier};

use super::*;
use crate::model::{Availability, Node, NodeRole};

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        hostname: format!("host-{id}"),
        role: NodeRole::Worker,
        availability: Availability::Active,
        addr: "192.168.99.101".parse().unwrap(),
        wg_public_key: "00".repeat(32),
        wg_port: 51820,
        tunnel_addr: "100.64.0.2".parse().unwrap(),
        leader: false,
        left: false,
        down: false,
        created_at: 1,
        labels: Default::default(),
        engine_labels: Default::default(),
        version: 0,
        updated_at: 0,
    }
}

fn open(dir: &tempfile::TempDir) -> Box<dyn Store> {
    Box::new(RedbStore::open(&dir.path().join("swarm.redb")).unwrap())
}

fn revision(store: &dyn Store) -> u64 {
    store.read().unwrap().base()
}

fn put(store: &dyn Store, n: Node) {
    store
        .update(|tx| tx.put_node(&n).map_err(ApiError::from))
        .unwrap();
}

#[test]
fn nodes_persist_across_reopen_and_carry_their_write_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        assert_eq!(revision(&*store), 0);
        put(&*store, node("a"));
        put(&*store, node("b"));
        store
            .update(|tx| {
                tx.remove_node("a");
                Ok::<_, ApiError>(())
            })
            .unwrap();
        assert_eq!(revision(&*store), 3);
    }
    let store = open(&dir);
    assert_eq!(revision(&*store), 3);
    assert_eq!(*store.subscribe().borrow(), 3, "watchers resume from it");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("swarm.redb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the store holds the CA key");
    let b = Node {
        version: 2,
        ..node("b")
    };
    let view = store.read().unwrap();
    assert_eq!(view.nodes().unwrap(), vec![b.clone()]);
    assert_eq!(view.node("b").unwrap(), Some(b));
    assert!(view.node("a").unwrap().is_none());
}

#[test]
fn a_commit_on_a_stale_revision_is_a_conflict_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut first = store.read().unwrap();
    let mut second = store.read().unwrap();
    first.put_node(&node("a")).unwrap();
    second.put_node(&node("b")).unwrap();
    let (base, writes) = first.into_writes();
    assert_eq!(store.commit(base, writes).unwrap(), 1);
    let (base, writes) = second.into_writes();
    assert!(matches!(
        store.commit(base, writes),
        Err(StoreError::Conflict { base: 0 })
    ));
    assert_eq!(revision(&*store), 1);
    let ids: Vec<_> = store.read().unwrap().nodes().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].id, "a");
    assert_eq!(store.commit(1, Vec::new()).unwrap(), 1, "nothing to write");
}

#[test]
fn a_snapshot_keeps_its_revision_while_others_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(&*store, node("a"));
    let view = store.read().unwrap();
    put(&*store, node("b"));
    assert_eq!(view.base(), 1);
    assert_eq!(view.nodes().unwrap().len(), 1);
    assert_eq!(store.read().unwrap().nodes().unwrap().len(), 2);
}

#[test]
fn a_transaction_reads_its_own_staged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(&*store, node("a"));
    let mut tx = store.read().unwrap();
    tx.remove_node("a");
    tx.put_node(&node("c")).unwrap();
    assert!(tx.node("a").unwrap().is_none());
    let nodes = tx.nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!((nodes[0].id.as_str(), nodes[0].version), ("c", 2));
    assert!(tx.networks().unwrap().is_empty(), "other kinds are apart");
}

#[test]
fn watchers_see_new_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rx = store.subscribe();
    assert!(!rx.has_changed().unwrap());
    put(&*store, node("a"));
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 1);
}

#[test]
fn a_decision_that_lost_a_race_is_made_again_on_the_newer_state() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::from(open(&dir));
    let barrier = Arc::new(Barrier::new(2));
    // Each writer counts the nodes it sees and adds one named by that count:
    // without a retry on conflict both would see 0 and one write would be lost.
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut runs = 0;
                store
                    .update(|tx| {
                        runs += 1;
                        let seen = tx.nodes()?.len();
                        if runs == 1 {
                            barrier.wait();
                        }
                        tx.put_node(&node(&seen.to_string()))?;
                        Ok::<_, ApiError>(())
                    })
                    .unwrap();
                runs
            })
        })
        .collect();
    let runs: Vec<usize> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut ids: Vec<String> = store
        .read()
        .unwrap()
        .nodes()
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["0", "1"]);
    assert_eq!(runs.iter().sum::<usize>(), 3, "the loser decided twice");
}

#[test]
fn cluster_round_trips_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(store.read().unwrap().cluster().unwrap().is_none());
    let cluster = Cluster {
        id: "c".into(),
        created_at: 5,
        ca_cert_pem: "cert".into(),
        ca_key_pem: "key".into(),
        worker_token: "w".into(),
        manager_token: "m".into(),
        mesh_subnet: "100.64.0.0/16".parse().unwrap(),
        pool: Default::default(),
        version: 0,
        updated_at: 0,
    };
    store
        .update(|tx| tx.put_cluster(&cluster).map_err(ApiError::from))
        .unwrap();
    let stored = store.read().unwrap().cluster().unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(
        Cluster {
            version: 0,
            ..stored
        },
        cluster
    );
}
