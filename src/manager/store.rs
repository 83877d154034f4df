//! The manager's store: an embedded redb database under the state directory,
//! revisioned (every change bumps one counter) and watchable, so agents can
//! follow changes from the revision they last saw.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::sync::watch;

use crate::model::{Endpoint, Network, Node};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const REVISION_KEY: &str = "revision";
const CLUSTER_KEY: &str = "cluster";

/// What `swarm init` creates once: the CA, the join tokens, the mesh subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub created_at: u64,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub worker_token: String,
    pub manager_token: String,
    /// The node mesh's subnet, e.g. 100.64.0.0/16.
    pub mesh_subnet: ipnetwork::Ipv4Network,
    /// The default address pool overlay subnets are cut from.
    #[serde(default)]
    pub pool: super::ipam::Pool,
    /// The store revision of the last change, Docker's `Version.Index`.
    #[serde(default)]
    pub version: u64,
    /// Unix seconds of the last change (a token rotation).
    #[serde(default)]
    pub updated_at: u64,
}

/// Errors of the store; they name the object involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("store I/O failed: {0}")]
    Db(String),
    #[error("store record {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

fn db_err(err: impl std::fmt::Display) -> StoreError {
    StoreError::Db(err.to_string())
}

/// The revisioned, watchable store.
pub struct Store {
    db: Database,
    revision: watch::Sender<u64>,
}

impl Store {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // It holds the CA's key and the join tokens.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Db(format!("cannot make {} private: {e}", path.display())))?;
        let txn = db.begin_write().map_err(db_err)?;
        let revision = {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            txn.open_table(NODES).map_err(db_err)?;
            txn.open_table(NETWORKS).map_err(db_err)?;
            txn.open_table(ENDPOINTS).map_err(db_err)?;
            let current = meta
                .get(REVISION_KEY)
                .map_err(db_err)?
                .map(|value| decode::<u64>(REVISION_KEY, value.value()))
                .transpose()?;
            match current {
                Some(revision) => revision,
                None => {
                    meta.insert(REVISION_KEY, b"0".as_slice()).map_err(db_err)?;
                    0
                }
            }
        };
        txn.commit().map_err(db_err)?;
        let (tx, _) = watch::channel(revision);
        Ok(Store { db, revision: tx })
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    /// A receiver that sees every new revision.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    pub fn cluster(&self) -> Result<Option<Cluster>, StoreError> {
        self.get(META, CLUSTER_KEY)
    }

    /// Writes the cluster record; its version becomes the new revision.
    pub fn put_cluster(&self, cluster: &Cluster) -> Result<u64, StoreError> {
        let mut cluster = cluster.clone();
        self.write(|txn, revision| {
            cluster.version = revision;
            put(&mut open(txn, META)?, CLUSTER_KEY, &cluster)
        })
    }

    pub fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        self.list(NODES)
    }

    pub fn node(&self, id: &str) -> Result<Option<Node>, StoreError> {
        self.get(NODES, id)
    }

    /// Inserts or replaces a node; its version becomes the new revision, which is returned.
    pub fn put_node(&self, node: &Node) -> Result<u64, StoreError> {
        let mut node = node.clone();
        self.write(|txn, revision| {
            node.version = revision;
            put(&mut open(txn, NODES)?, &node.id, &node)
        })
    }

    /// Removes a node; returns the new revision, or None if it was not there.
    pub fn remove_node(&self, id: &str) -> Result<Option<u64>, StoreError> {
        self.remove(NODES, id)
    }

    pub fn networks(&self) -> Result<Vec<Network>, StoreError> {
        self.list(NETWORKS)
    }

    /// Inserts or replaces a network; returns the new revision.
    pub fn put_network(&self, network: &Network) -> Result<u64, StoreError> {
        self.write(|txn, _| put(&mut open(txn, NETWORKS)?, &network.id, network))
    }

    /// Removes a network; returns the new revision, or None if it was not there.
    pub fn remove_network(&self, id: &str) -> Result<Option<u64>, StoreError> {
        self.remove(NETWORKS, id)
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.list(ENDPOINTS)
    }

    /// Inserts or replaces an endpoint; returns the new revision.
    pub fn put_endpoint(&self, endpoint: &Endpoint) -> Result<u64, StoreError> {
        self.write(|txn, _| put(&mut open(txn, ENDPOINTS)?, &endpoint.id, endpoint))
    }

    /// Removes endpoints in one change; returns the new revision.
    pub fn remove_endpoints(&self, ids: &[&str]) -> Result<u64, StoreError> {
        self.write(|txn, _| {
            let mut table = open(txn, ENDPOINTS)?;
            for id in ids {
                table.remove(*id).map_err(db_err)?;
            }
            Ok(())
        })
    }

    fn list<T: DeserializeOwned>(
        &self,
        def: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(def).map_err(db_err)?;
        let mut items = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            items.push(decode(key.value(), value.value())?);
        }
        Ok(items)
    }

    fn remove(
        &self,
        def: TableDefinition<'static, &'static str, &'static [u8]>,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        if self.get::<serde_json::Value>(def, id)?.is_none() {
            return Ok(None);
        }
        self.write(|txn, _| open(txn, def)?.remove(id).map(|_| ()).map_err(db_err))
            .map(Some)
    }

    fn get<T: DeserializeOwned>(
        &self,
        def: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(def).map_err(db_err)?;
        let value = table.get(key).map_err(db_err)?;
        value.map(|v| decode(key, v.value())).transpose()
    }

    /// Runs `change` in one write transaction that also bumps the revision
    /// (given to `change`, so what it writes can carry it).
    fn write(
        &self,
        change: impl FnOnce(&redb::WriteTransaction, u64) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let revision = self.revision() + 1;
        change(&txn, revision)?;
        put(&mut open(&txn, META)?, REVISION_KEY, &revision)?;
        txn.commit().map_err(db_err)?;
        self.revision.send_replace(revision);
        Ok(revision)
    }
}

fn open<'t>(
    txn: &'t redb::WriteTransaction,
    def: TableDefinition<'static, &'static str, &'static [u8]>,
) -> Result<redb::Table<'t, &'static str, &'static [u8]>, StoreError> {
    txn.open_table(def).map_err(db_err)
}

fn put<T: Serialize>(
    table: &mut redb::Table<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })?;
    table.insert(key, bytes.as_slice()).map_err(db_err)?;
    Ok(())
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Availability, NodeRole};

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
            created_at: 1,
            labels: Default::default(),
            version: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn nodes_persist_across_reopen_and_bump_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swarm.redb");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.revision(), 0);
            assert_eq!(store.put_node(&node("a")).unwrap(), 1);
            assert_eq!(store.put_node(&node("b")).unwrap(), 2);
            assert_eq!(store.remove_node("a").unwrap(), Some(3));
            assert_eq!(store.remove_node("a").unwrap(), None);
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.revision(), 3);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the store holds the CA key");
        let b = Node {
            version: 2,
            ..node("b")
        };
        assert_eq!(store.nodes().unwrap(), vec![b.clone()]);
        assert_eq!(
            store.node("b").unwrap(),
            Some(b),
            "its version is its write's revision"
        );
        assert!(store.node("a").unwrap().is_none());
    }

    #[test]
    fn watchers_see_new_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut rx = store.subscribe();
        assert!(!rx.has_changed().unwrap());
        store.put_node(&node("a")).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
    }

    #[test]
    fn cluster_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(store.cluster().unwrap().is_none());
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
        let revision = store.put_cluster(&cluster).unwrap();
        let stored = store.cluster().unwrap().unwrap();
        assert_eq!(stored.version, revision);
        assert_eq!(
            Cluster {
                version: 0,
                ..stored
            },
            cluster
        );
    }
}
