//! The redb store on a disk that fills up: one write fails with ENOSPC, the
//! store reopens, and once space is freed writes work again without a restart;
//! a store that cannot be reopened says it is fatal.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{Builder, DatabaseError, StorageBackend};

use super::{Kind, RedbStore, Store, StoreError, Write};

/// A file whose writes fail with "No space left on device" while `full` is set.
#[derive(Debug)]
struct Disk {
    file: FileBackend,
    full: Arc<AtomicBool>,
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        self.file.read(offset, len)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.no_space()?;
        self.file.set_len(len)
    }

    fn sync_data(&self, eventual: bool) -> Result<(), io::Error> {
        self.no_space()?;
        self.file.sync_data(eventual)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.no_space()?;
        self.file.write(offset, data)
    }
}

impl Disk {
    fn no_space(&self) -> Result<(), io::Error> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(nix::libc::ENOSPC));
        }
        Ok(())
    }
}

/// A store on a `Disk`; `unopenable` makes every reopen fail.
fn store(path: &Path, full: Arc<AtomicBool>, unopenable: Arc<AtomicBool>) -> RedbStore {
    let file = path.to_path_buf();
    let open = move || {
        if unopenable.load(Ordering::SeqCst) {
            return Err(DatabaseError::Storage(redb::StorageError::Io(
                io::Error::from_raw_os_error(nix::libc::EIO),
            )));
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&file)?;
        let disk = Disk {
            file: FileBackend::new(f)?,
            full: full.clone(),
        };
        Builder::new().create_with_backend(disk)
    };
    RedbStore::open_with(path, Box::new(open)).unwrap()
}

fn put(store: &RedbStore, key: &str) -> Result<u64, StoreError> {
    let base = store.snapshot()?.revision();
    let write = Write {
        kind: Kind::Node,
        key: key.into(),
        value: Some(b"{}".to_vec()),
    };
    store.commit(base, vec![write])
}

#[test]
fn a_full_disk_is_reported_and_writes_resume_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.redb");
    let full = Arc::new(AtomicBool::new(false));
    let store = store(&path, full.clone(), Arc::default());
    assert_eq!(put(&store, "a").unwrap(), 1);
    assert_eq!(store.health().fault, None);

    full.store(true, Ordering::SeqCst);
    for key in ["b", "c"] {
        let err = put(&store, key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "the manager's store at {} could not write: ",
                path.display()
            )),
            "{err}"
        );
        assert!(err.contains("No space left on device"), "{err}");
        assert!(
            err.ends_with("free space on its disk (or repair the device) and try again"),
            "{err}"
        );
    }
    let health = store.health();
    let fault = health.fault.expect("a fault while the disk is full");
    assert_eq!(fault.path, path.display().to_string());
    assert!(
        fault.cause.contains("No space left on device"),
        "{}",
        fault.cause
    );
    assert!(health.io_errors >= 2, "{}", health.io_errors);
    assert!(!health.fatal);

    full.store(false, Ordering::SeqCst);
    assert_eq!(
        put(&store, "d").unwrap(),
        2,
        "writes work again without a restart"
    );
    assert_eq!(store.health().fault, None);
    let snap = store.snapshot().unwrap();
    assert!(snap.get(Kind::Node, "a").unwrap().is_some());
    assert!(snap.get(Kind::Node, "b").unwrap().is_none());
    assert!(snap.get(Kind::Node, "d").unwrap().is_some());
}

#[test]
fn a_store_that_cannot_be_reopened_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.redb");
    let full = Arc::new(AtomicBool::new(false));
    let unopenable = Arc::new(AtomicBool::new(false));
    let store = store(&path, full.clone(), unopenable.clone());
    put(&store, "a").unwrap();
    full.store(true, Ordering::SeqCst);
    unopenable.store(true, Ordering::SeqCst);
    let err = put(&store, "b").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "the manager's store at {} could not be reopened after an I/O error: ",
            path.display()
        )),
        "{err}"
    );
    assert!(store.health().fatal);
    full.store(false, Ordering::SeqCst);
    assert!(put(&store, "c").is_err(), "a fatal store stays closed");
}
