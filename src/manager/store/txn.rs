//! A transaction as the manager sees it: typed reads of one snapshot (and of
//! its own staged writes), and staged writes that `Store::update` commits
//! together as the next revision.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Serialize};

use super::{Cluster, Kind, Snapshot, StoreError, Write};
use crate::model::{Endpoint, Network, Node, Service, Task};

/// The cluster record's key under `Kind::Cluster`.
const CLUSTER_KEY: &str = "cluster";

/// Reads at one revision, and the writes that will make the next.
pub struct Txn<'s> {
    snapshot: Box<dyn Snapshot + 's>,
    staged: BTreeMap<(Kind, String), Option<Vec<u8>>>,
}

impl<'s> Txn<'s> {
    pub fn new(snapshot: Box<dyn Snapshot + 's>) -> Txn<'s> {
        Txn {
            snapshot,
            staged: BTreeMap::new(),
        }
    }

    /// The revision the reads show.
    pub fn base(&self) -> u64 {
        self.snapshot.revision()
    }

    /// The revision the writes will carry, Docker's `Version.Index`.
    pub fn revision(&self) -> u64 {
        self.base() + 1
    }

    /// The snapshot's revision and the staged writes, in key order.
    pub fn into_writes(self) -> (u64, Vec<Write>) {
        let base = self.base();
        let writes = self
            .staged
            .into_iter()
            .map(|((kind, key), value)| Write { kind, key, value })
            .collect();
        (base, writes)
    }

    pub fn cluster(&self) -> Result<Option<Cluster>, StoreError> {
        self.get(Kind::Cluster, CLUSTER_KEY)
    }

    /// Stages the cluster record; its version becomes this transaction's revision.
    pub fn put_cluster(&mut self, cluster: &Cluster) -> Result<(), StoreError> {
        let cluster = Cluster {
            version: self.revision(),
            ..cluster.clone()
        };
        self.put(Kind::Cluster, CLUSTER_KEY, &cluster)
    }

    pub fn node(&self, id: &str) -> Result<Option<Node>, StoreError> {
        self.get(Kind::Node, id)
    }

    pub fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        self.list(Kind::Node)
    }

    /// Stages a node; its version becomes this transaction's revision.
    pub fn put_node(&mut self, node: &Node) -> Result<(), StoreError> {
        let node = Node {
            version: self.revision(),
            ..node.clone()
        };
        self.put(Kind::Node, &node.id, &node)
    }

    pub fn remove_node(&mut self, id: &str) {
        self.delete(Kind::Node, id);
    }

    pub fn networks(&self) -> Result<Vec<Network>, StoreError> {
        self.list(Kind::Network)
    }

    pub fn put_network(&mut self, network: &Network) -> Result<(), StoreError> {
        self.put(Kind::Network, &network.id, network)
    }

    pub fn remove_network(&mut self, id: &str) {
        self.delete(Kind::Network, id);
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.list(Kind::Endpoint)
    }

    pub fn put_endpoint(&mut self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.put(Kind::Endpoint, &endpoint.id, endpoint)
    }

    pub fn remove_endpoint(&mut self, id: &str) {
        self.delete(Kind::Endpoint, id);
    }

    pub fn services(&self) -> Result<Vec<Service>, StoreError> {
        self.list(Kind::Service)
    }

    /// Stages a service; its version becomes this transaction's revision.
    pub fn put_service(&mut self, service: &Service) -> Result<(), StoreError> {
        let service = Service {
            version: self.revision(),
            ..service.clone()
        };
        self.put(Kind::Service, &service.id, &service)
    }

    pub fn remove_service(&mut self, id: &str) {
        self.delete(Kind::Service, id);
    }

    pub fn tasks(&self) -> Result<Vec<Task>, StoreError> {
        self.list(Kind::Task)
    }

    /// Stages a task; its version becomes this transaction's revision.
    pub fn put_task(&mut self, task: &Task) -> Result<(), StoreError> {
        let task = Task {
            version: self.revision(),
            ..task.clone()
        };
        self.put(Kind::Task, &task.id, &task)
    }

    pub fn remove_task(&mut self, id: &str) {
        self.delete(Kind::Task, id);
    }

    fn get<T: DeserializeOwned>(&self, kind: Kind, key: &str) -> Result<Option<T>, StoreError> {
        let bytes = match self.staged.get(&(kind, key.to_string())) {
            Some(staged) => staged.clone(),
            None => self.snapshot.get(kind, key)?,
        };
        bytes.map(|b| decode(key, &b)).transpose()
    }

    fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, StoreError> {
        let mut records: BTreeMap<String, Option<Vec<u8>>> = self
            .snapshot
            .list(kind)?
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .collect();
        let staged = self
            .staged
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind);
        for ((_, key), value) in staged {
            records.insert(key.clone(), value.clone());
        }
        records
            .iter()
            .filter_map(|(key, value)| value.as_ref().map(|v| decode(key, v)))
            .collect()
    }

    fn put<T: Serialize>(&mut self, kind: Kind, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
            key: key.to_string(),
            source,
        })?;
        self.staged.insert((kind, key.to_string()), Some(bytes));
        Ok(())
    }

    fn delete(&mut self, kind: Kind, key: &str) {
        self.staged.insert((kind, key.to_string()), None);
    }
}

pub(super) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}
