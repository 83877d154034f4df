//! The embedded backend: one redb file under the state directory. A snapshot
//! is a redb read transaction; a commit is a write transaction that checks the
//! revision counter it keeps next to the records, then bumps it.

use std::path::Path;

use redb::{Database, ReadTransaction, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::txn::decode;
use super::{Kind, Snapshot, Store, StoreError, Write};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const REVISION_KEY: &str = "revision";

type Def = TableDefinition<'static, &'static str, &'static [u8]>;

/// The table a kind of record lives in (the cluster record sits in `meta`).
fn table(kind: Kind) -> Def {
    match kind {
        Kind::Cluster => META,
        Kind::Node => NODES,
        Kind::Network => NETWORKS,
        Kind::Endpoint => ENDPOINTS,
    }
}

fn db_err(err: impl std::fmt::Display) -> StoreError {
    StoreError::Db(err.to_string())
}

/// The revision counter as a table holds it (0 before the first commit).
fn stored_revision(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64, StoreError> {
    meta.get(REVISION_KEY)
        .map_err(db_err)?
        .map_or(Ok(0), |value| decode(REVISION_KEY, value.value()))
}

/// The redb store, and the revision its watchers follow.
pub struct RedbStore {
    db: Database,
    revision: watch::Sender<u64>,
}

impl RedbStore {
    /// Opens (or creates) the database file, readable by its owner only.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
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
            for def in [NODES, NETWORKS, ENDPOINTS] {
                txn.open_table(def).map_err(db_err)?;
            }
            stored_revision(&txn.open_table(META).map_err(db_err)?)?
        };
        txn.commit().map_err(db_err)?;
        let (tx, _) = watch::channel(revision);
        Ok(RedbStore { db, revision: tx })
    }
}

/// A redb read transaction: every read sees the same revision.
struct RedbSnapshot {
    txn: ReadTransaction,
    revision: u64,
}

impl Snapshot for RedbSnapshot {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn get(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.txn.open_table(table(kind)).map_err(db_err)?;
        let value = table.get(key).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let table = self.txn.open_table(table(kind)).map_err(db_err)?;
        let mut records = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            if kind == Kind::Cluster && key.value() == REVISION_KEY {
                continue;
            }
            records.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok(records)
    }
}

impl Store for RedbStore {
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let revision = stored_revision(&txn.open_table(META).map_err(db_err)?)?;
        Ok(Box::new(RedbSnapshot { txn, revision }))
    }

    fn commit(&self, base: u64, writes: Vec<Write>) -> Result<u64, StoreError> {
        if writes.is_empty() {
            return Ok(base);
        }
        // redb runs one write transaction at a time: the check and the writes
        // below cannot interleave with another commit.
        let txn = self.db.begin_write().map_err(db_err)?;
        let revision = {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let current = stored_revision(&meta)?;
            if current != base {
                drop(meta);
                txn.abort().map_err(db_err)?;
                return Err(StoreError::Conflict { base });
            }
            let revision = base + 1;
            let bytes = serde_json::to_vec(&revision).expect("a number serializes");
            meta.insert(REVISION_KEY, bytes.as_slice())
                .map_err(db_err)?;
            revision
        };
        for write in writes {
            let mut table = txn.open_table(table(write.kind)).map_err(db_err)?;
            match write.value {
                Some(bytes) => table.insert(write.key.as_str(), bytes.as_slice()),
                None => table.remove(write.key.as_str()),
            }
            .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        // Commits end in revision order, but may announce out of it.
        self.revision.send_if_modified(|seen| {
            let newer = revision > *seen;
            *seen = (*seen).max(revision);
            newer
        });
        Ok(revision)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}
