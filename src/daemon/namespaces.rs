//! Namespaces made by other tools (`ip netns add`, a container runtime) and
//! attached with `container attach --network N PATH`: one record per
//! namespace under `<state dir>/namespaces/`, listing its interfaces.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::containers::NetAttachment;
use crate::model::ApiError;

/// A namespace this host attached to networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRecord {
    pub path: PathBuf,
    pub networks: Vec<NetAttachment>,
}

impl NsRecord {
    /// The namespace's name on networks: its file name, as `ip netns` shows it.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// The next free interface name: eth0, eth1, ... after the ones it has.
    pub fn next_ifname(&self) -> String {
        (0..)
            .map(|i| format!("eth{i}"))
            .find(|name| !self.networks.iter().any(|a| &a.ifname == name))
            .expect("an unbounded range has a free name")
    }
}

/// The records, one JSON file each.
pub struct Namespaces {
    root: PathBuf,
}

impl Namespaces {
    pub fn new(state_dir: &Path) -> Namespaces {
        Namespaces {
            root: state_dir.join("namespaces"),
        }
    }

    fn file(&self, path: &Path) -> PathBuf {
        let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
        self.root
            .join(format!("{}.json", &hex::encode(digest)[..16]))
    }

    pub fn all(&self) -> Vec<NsRecord> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect()
    }

    /// Forgets namespaces that are gone (deleted with `ip netns del`, or their
    /// process ended without a detach): their interfaces went with them, and
    /// the agent then gives their endpoints back. Returns the paths forgotten.
    pub fn prune(&self) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        for record in self.all() {
            if crate::netlink::netns::is_namespace(&record.path) {
                continue;
            }
            if std::fs::remove_file(self.file(&record.path)).is_ok() {
                tracing::info!(netns = %record.path.display(), "namespace gone: its attachments are dropped");
                gone.push(record.path);
            }
        }
        gone
    }

    /// The record of the namespace at `path`, or a fresh one.
    pub fn get(&self, path: &Path) -> NsRecord {
        std::fs::read(self.file(path))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| NsRecord {
                path: path.to_path_buf(),
                networks: Vec::new(),
            })
    }

    /// Writes the record, or removes it when it has no network left.
    pub fn put(&self, record: &NsRecord) -> Result<(), ApiError> {
        let file = self.file(&record.path);
        let written = if record.networks.is_empty() {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let bytes = serde_json::to_vec_pretty(record).map_err(ApiError::internal)?;
            let tmp = file.with_extension("json.tmp");
            std::fs::create_dir_all(&self.root)
                .and_then(|_| std::fs::write(&tmp, bytes))
                .and_then(|_| std::fs::rename(&tmp, &file))
        };
        written.map_err(|e| {
            ApiError::Internal(format!(
                "cannot record the networks of namespace {}: {e}",
                record.path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(ifname: &str) -> NetAttachment {
        NetAttachment {
            network_id: "n".into(),
            network_name: "blue".into(),
            endpoint_id: "e".into(),
            ifname: ifname.into(),
            ip: "10.0.0.2".parse().unwrap(),
            prefix_len: 24,
            gateway: "10.0.0.1".parse().unwrap(),
            mac: "02:42:0a:00:00:02".into(),
            mtu: 1370,
            aliases: vec![],
        }
    }

    #[test]
    fn records_round_trip_and_go_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Namespaces::new(dir.path());
        let path = Path::new("/run/netns/foo");
        let mut rec = reg.get(path);
        assert_eq!(rec.name(), "foo");
        assert_eq!(rec.next_ifname(), "eth0");
        rec.networks.push(attachment("eth0"));
        reg.put(&rec).unwrap();
        assert_eq!(reg.get(path), rec);
        assert_eq!(reg.get(path).next_ifname(), "eth1");
        assert_eq!(reg.all(), vec![rec.clone()]);
        assert_eq!(
            reg.prune(),
            vec![path.to_path_buf()],
            "no such namespace here"
        );
        assert!(reg.all().is_empty());
        let live = Path::new("/proc/self/ns/net");
        let mut rec = reg.get(live);
        rec.networks.push(attachment("eth0"));
        reg.put(&rec).unwrap();
        assert!(reg.prune().is_empty(), "a live namespace stays");
        rec.networks.clear();
        reg.put(&rec).unwrap();
        assert!(reg.all().is_empty());
    }
}
