//! The embedded backend: one redb file under the state directory. A snapshot
//! is a redb read transaction; a commit is a write transaction that checks the
//! revision counter it keeps next to the records, then bumps it. After an I/O
//! error redb refuses every later write until the file is reopened, so the
//! store reopens it and tries once more. A reopen that finds the disk still
//! full is tried again at the next call; any other failure to reopen is fatal.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadTransaction, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::txn::decode;
use super::{Kind, Snapshot, Store, StoreError, StoreFault, StoreHealth, Write};

/// How long a reopen waits for snapshots still holding the old file to end.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const REVISION_KEY: &str = "revision";

type Def = TableDefinition<'static, &'static str, &'static [u8]>;

/// The table a kind of record lives in (the cluster record sits in `meta`).
fn table(kind: Kind) -> Def {
    match kind {
        Kind::Cluster => META,
        Kind::Node => NODES,
        Kind::Network => NETWORKS,
        Kind::Endpoint => ENDPOINTS,
        Kind::Service => SERVICES,
        Kind::Task => TASKS,
    }
}

/// A redb error as the store's: an I/O error (or redb's "a previous I/O error
/// occurred") is `Io`, which makes the store reopen the file.
fn db_err(err: impl Into<redb::Error>) -> StoreError {
    match err.into() {
        redb::Error::Io(e) => StoreError::Io {
            path: String::new(),
            cause: e.to_string(),
        },
        e @ redb::Error::PreviousIo => StoreError::Io {
            path: String::new(),
            cause: e.to_string(),
        },
        e => StoreError::Db(e.to_string()),
    }
}

/// A full disk or quota: it passes once space is freed.
fn no_space(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(nix::libc::ENOSPC) | Some(nix::libc::EDQUOT)
    )
}

/// Opens the database file; a test opens it through a faulty disk.
pub type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>;

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
    path: String,
    open: Opener,
    /// `None` while the file is being reopened, or after a reopen failed.
    db: RwLock<Option<Database>>,
    /// Held while the file is closed and opened again: one reopen at a time.
    reopening: Mutex<()>,
    /// A snapshot's read met an I/O error: reopen before the next call.
    poisoned: AtomicBool,
    revision: watch::Sender<u64>,
    health: Mutex<StoreHealth>,
}

impl RedbStore {
    /// Opens (or creates) the database file, readable by its owner only.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let file = path.to_path_buf();
        RedbStore::open_with(path, Box::new(move || Database::create(&file)))
    }

    /// Opens the database with `open`, which is called again to reopen it.
    pub fn open_with(path: &Path, open: Opener) -> Result<RedbStore, StoreError> {
        let db = open().map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // It holds the CA's key and the join tokens.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Db(format!("cannot make {} private: {e}", path.display())))?;
        let txn = db.begin_write().map_err(db_err)?;
        let revision = {
            for def in [NODES, NETWORKS, ENDPOINTS, SERVICES, TASKS] {
                txn.open_table(def).map_err(db_err)?;
            }
            stored_revision(&txn.open_table(META).map_err(db_err)?)?
        };
        txn.commit().map_err(db_err)?;
        let (tx, _) = watch::channel(revision);
        Ok(RedbStore {
            path: path.display().to_string(),
            open,
            db: RwLock::new(Some(db)),
            reopening: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            revision: tx,
            health: Mutex::new(StoreHealth::default()),
        })
    }

    /// Runs `op` on the database; on an I/O error, records the fault,
    /// reopens the file and runs `op` once more.
    fn with_db<T>(&self, op: impl Fn(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self.attempt(&op) {
            Err(StoreError::Io { cause, .. }) => {
                self.record_fault(cause);
                self.reopen()?;
                self.attempt(&op).map_err(|e| match e {
                    StoreError::Io { path, cause } => StoreError::Io {
                        path,
                        cause: self.record_fault(cause),
                    },
                    e => e,
                })
            }
            other => other,
        }
    }

    /// One try of `op` (opening the file first if a reopen waits for
    /// space), with this store's path in an I/O error.
    fn attempt<T>(
        &self,
        op: &impl Fn(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.poisoned.swap(false, Ordering::SeqCst) {
            self.reopen()?;
        }
        if self.db.read().expect("store lock").is_none() {
            let _one = self.reopening.lock().expect("reopen lock");
            if self.db.read().expect("store lock").is_none() {
                self.open_again()?;
            }
        }
        let slot = self.db.read().expect("store lock");
        let Some(db) = slot.as_ref() else {
            return Err(self.closed("another call closed it meanwhile"));
        };
        op(db).map_err(|e| match e {
            StoreError::Io { cause, .. } => StoreError::Io {
                path: self.path.clone(),
                cause,
            },
            e => e,
        })
    }

    fn closed(&self, cause: impl std::fmt::Display) -> StoreError {
        StoreError::Closed {
            path: self.path.clone(),
            cause: cause.to_string(),
        }
    }

    /// Counts and logs an I/O error, and returns its cause: redb's "a previous
    /// I/O error occurred" keeps the cause of the error it follows.
    fn record_fault(&self, cause: String) -> String {
        let mut health = self.health.lock().expect("health lock");
        health.io_errors += 1;
        let cause = match &health.fault {
            Some(fault) if cause == redb::Error::PreviousIo.to_string() => fault.cause.clone(),
            _ => cause,
        };
        health.fault = Some(StoreFault {
            path: self.path.clone(),
            cause: cause.clone(),
        });
        tracing::error!(path = %self.path, %cause, "the store could not read or write; reopening it");
        cause
    }

    /// Closes the file and opens it again.
    fn reopen(&self) -> Result<(), StoreError> {
        let _one = self.reopening.lock().expect("reopen lock");
        drop(self.db.write().expect("store lock").take());
        self.open_again()
    }

    /// Opens the closed file, waiting a moment for snapshots that still hold
    /// the old one. A disk still full leaves it closed for the next call to
    /// try; any other failure is fatal.
    fn open_again(&self) -> Result<(), StoreError> {
        if self.health.lock().expect("health lock").fatal {
            return Err(self.closed("it could not be reopened before"));
        }
        let deadline = Instant::now() + REOPEN_WAIT;
        let result = loop {
            match (self.open)() {
                Err(DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other,
            }
        };
        match result {
            Ok(db) => {
                *self.db.write().expect("store lock") = Some(db);
                tracing::warn!(path = %self.path, "the store was reopened after an I/O error");
                Ok(())
            }
            Err(DatabaseError::Storage(redb::StorageError::Io(e))) if no_space(&e) => {
                let cause = self.record_fault(e.to_string());
                Err(StoreError::Io {
                    path: self.path.clone(),
                    cause,
                })
            }
            Err(e) => {
                self.health.lock().expect("health lock").fatal = true;
                tracing::error!(path = %self.path, cause = %e, "the store could not be reopened; the daemon must restart");
                Err(self.closed(e))
            }
        }
    }
}

/// A redb read transaction: every read sees the same revision. Its pages are
/// read lazily, so a read may be the first to meet an earlier I/O error: it
/// marks the store for a reopen at the next call.
struct RedbSnapshot<'s> {
    txn: ReadTransaction,
    revision: u64,
    store: &'s RedbStore,
}

impl RedbSnapshot<'_> {
    fn checked<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        result.map_err(|e| match e {
            StoreError::Io { cause, .. } => {
                self.store.poisoned.store(true, Ordering::SeqCst);
                StoreError::Io {
                    path: self.store.path.clone(),
                    cause: self.store.record_fault(cause),
                }
            }
            e => e,
        })
    }

    fn read(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.txn.open_table(table(kind)).map_err(db_err)?;
        let value = table.get(key).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn read_all(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
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

impl Snapshot for RedbSnapshot<'_> {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn get(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.checked(self.read(kind, key))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.checked(self.read_all(kind))
    }
}

impl Store for RedbStore {
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(db_err)?;
            let revision = stored_revision(&txn.open_table(META).map_err(db_err)?)?;
            let snapshot = RedbSnapshot {
                txn,
                revision,
                store: self,
            };
            Ok(Box::new(snapshot) as Box<dyn Snapshot>)
        })
    }

    fn commit(&self, base: u64, writes: Vec<Write>) -> Result<u64, StoreError> {
        if writes.is_empty() {
            return Ok(base);
        }
        let revision = self.with_db(|db| write(db, base, &writes))?;
        let mut health = self.health.lock().expect("health lock");
        if let Some(fault) = health.fault.take() {
            tracing::info!(path = %fault.path, "the store writes again");
        }
        drop(health);
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

    fn health(&self) -> StoreHealth {
        self.health.lock().expect("health lock").clone()
    }
}

/// One write transaction: the compare-and-swap on the revision, the writes.
fn write(db: &Database, base: u64, writes: &[Write]) -> Result<u64, StoreError> {
    // redb runs one write transaction at a time: the check and the writes
    // below cannot interleave with another commit.
    let txn = db.begin_write().map_err(db_err)?;
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
        match &write.value {
            Some(bytes) => table.insert(write.key.as_str(), bytes.as_slice()).map(drop),
            None => table.remove(write.key.as_str()).map(drop),
        }
        .map_err(db_err)?;
    }
    txn.commit().map_err(db_err)?;
    Ok(revision)
}
