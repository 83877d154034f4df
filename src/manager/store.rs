//! The manager's store: revisioned records behind the `Store` trait (redb now,
//! etcd next). A decision is one `update`: a read-check-write closure over a
//! snapshot, committed as a compare-and-swap on the revision, run again on conflict.

#[cfg(test)]
mod fault_test;
mod redb_store;
mod txn;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::model::ApiError;

pub use redb_store::RedbStore;
pub use txn::Txn;

/// How often `update` runs a decision again before it gives up: each conflict
/// means another writer committed, so the store made progress meanwhile.
const MAX_ATTEMPTS: usize = 64;

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

/// The kinds of record: a table in redb, a key prefix in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Cluster,
    Node,
    Network,
    Endpoint,
    Service,
    Task,
}

/// One staged change: a record's new bytes, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub kind: Kind,
    pub key: String,
    pub value: Option<Vec<u8>>,
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
    /// The disk under the store failed (a full disk, a device error).
    #[error("the manager's store at {path} could not write: {cause}; free space on its disk (or repair the device) and try again")]
    Io { path: String, cause: String },
    /// The store could not be reopened after an I/O error: the daemon exits.
    #[error("the manager's store at {path} could not be reopened after an I/O error: {cause}; the daemon exits so that it is restarted")]
    Closed { path: String, cause: String },
    #[error("store record {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    /// Another writer committed after the snapshot a change was decided on.
    #[error("the store moved past revision {base} while a change was decided")]
    Conflict { base: u64 },
    #[error("the store is busy with other changes to the same swarm; try again")]
    Busy,
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::Busy | StoreError::Io { .. } | StoreError::Closed { .. } => {
                ApiError::Unavailable(err.to_string())
            }
            err => ApiError::Internal(err.to_string()),
        }
    }
}

/// How the store's disk is doing, for `info`, the metrics and the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// The last I/O error, until a write succeeds again.
    pub fault: Option<StoreFault>,
    /// I/O errors since the store was opened.
    pub io_errors: u64,
    /// The store could not be reopened: nothing can be written until the
    /// daemon restarts, so it must exit.
    pub fatal: bool,
}

/// An I/O error of the store: where, and what the disk said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFault {
    pub path: String,
    pub cause: String,
}

impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the manager's store at {} failed to write: {}; free space on its disk",
            self.path, self.cause
        )
    }
}

/// A consistent read of the store at one revision.
pub trait Snapshot {
    /// The revision this snapshot shows.
    fn revision(&self) -> u64;
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every record of a kind, ordered by key.
    fn list(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// A revisioned, watchable store: every commit is one revision.
///
/// An etcd backend fits as: `snapshot` = a range read of the prefix at one
/// revision; `commit` = a Txn that compares the revision key's value with
/// `base`, then puts the writes and `base + 1`; `subscribe` = fed by a watch
/// on the prefix (a compacted watch only wakes the subscribers, who relist).
pub trait Store: Send + Sync {
    /// A consistent read at the current revision.
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError>;
    /// Applies `writes` as revision `base + 1` if the store is still at `base`
    /// (a compare-and-swap on the revision), or fails with `Conflict`.
    /// Nothing to write commits nothing and returns `base`.
    fn commit(&self, base: u64, writes: Vec<Write>) -> Result<u64, StoreError>;
    /// A receiver that sees every new revision.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// The store's I/O faults; a backend without a disk has none.
    fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }
}

impl dyn Store + '_ {
    /// A read-only view at the current revision.
    pub fn read(&self) -> Result<Txn<'_>, StoreError> {
        Ok(Txn::new(self.snapshot()?))
    }

    /// Runs `decide` (read, check, stage writes) on a fresh snapshot and
    /// commits what it staged as one revision; when another writer committed
    /// first, decides again on the newer state. `decide` may run more than
    /// once, so it has no effect outside the transaction.
    pub fn update<T, E: From<StoreError>>(
        &self,
        mut decide: impl FnMut(&mut Txn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        for _ in 0..MAX_ATTEMPTS {
            let mut txn = self.read()?;
            let value = decide(&mut txn)?;
            let (base, writes) = txn.into_writes();
            match self.commit(base, writes) {
                Ok(_) => return Ok(value),
                Err(StoreError::Conflict { base }) => {
                    tracing::debug!(base, "store conflict; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Busy.into())
    }
}

#[cfg(test)]
mod tests;
