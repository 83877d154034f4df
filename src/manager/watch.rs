//! The watch agents long-poll: `watch(since)` waits while the store is at
//! `since`, then answers with the full state at one revision. Every answer is
//! a resync (a full list), so no revision is ever too old and no change can
//! fall into a gap; the store keeps no history to compact.

use std::collections::HashSet;
use std::time::Duration;

use super::Manager;
use crate::model::{ApiError, Node, Task};
use crate::proto::{MeshPeer, ServiceName, WatchResponse};

/// How long a watch waits for a change before answering with the same revision.
const WATCH_WAIT: Duration = Duration::from_secs(10);

impl Manager {
    /// Waits until the store moves off `since` (or a while passes), then
    /// returns the peers, networks, endpoints and `node`'s tasks of one revision. A `since`
    /// the store is not at, older or newer (a store restored from a backup),
    /// is answered at once.
    pub async fn watch(&self, node: &str, since: u64) -> Result<WatchResponse, ApiError> {
        let mut rx = self.store.subscribe();
        if *rx.borrow_and_update() == since {
            let _ = tokio::time::timeout(WATCH_WAIT, rx.changed()).await;
        }
        let view = self.store.read()?;
        let peers = view
            .nodes()?
            .into_iter()
            .filter(|n| !n.left)
            .map(|n| MeshPeer {
                endpoint: std::net::SocketAddr::new(n.addr, n.wg_port),
                node_id: n.id,
                wg_public_key: n.wg_public_key,
                tunnel_addr: n.tunnel_addr,
            })
            .collect();
        let mut networks = view.networks()?;
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let tasks = view.tasks()?;
        let nodes = view.nodes()?;
        let running_tasks = running_tasks(&tasks, &nodes);
        let services = view
            .services()?
            .into_iter()
            .map(|s| ServiceName {
                id: s.id,
                name: s.spec.name,
                endpoint_mode: s.spec.endpoint_mode,
                vips: s.virtual_ips,
                ports: s.spec.ports,
            })
            .collect();
        Ok(WatchResponse {
            revision: view.base(),
            peers,
            networks,
            endpoints: view.endpoints()?,
            tasks: tasks
                .into_iter()
                .filter(|t| t.node_id.as_deref() == Some(node))
                .collect(),
            role: view.node(node)?.map(|n| n.role),
            services,
            running_tasks,
        })
    }
}

/// The tasks DNS answers with and load balancers send to: those meant to
/// run and running, and healthy where their service has a health check
/// (`Task::takes_traffic`), on a node that is not Down.
fn running_tasks(tasks: &[Task], nodes: &[Node]) -> Vec<String> {
    let down: HashSet<&str> = nodes
        .iter()
        .filter(|n| n.down || n.left)
        .map(|n| n.id.as_str())
        .collect();
    tasks
        .iter()
        .filter(|t| t.takes_traffic())
        .filter(|t| !t.node_id.as_deref().is_some_and(|n| down.contains(n)))
        .map(|t| t.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::manager::fixture_test::manager_in;
    use crate::model::NetworkSpec;

    fn manager(dir: &tempfile::TempDir) -> Arc<Manager> {
        Arc::new(manager_in(dir, "leader", "192.168.99.100"))
    }

    fn create(m: &Manager, name: &str) {
        let spec = NetworkSpec {
            name: name.into(),
            ..Default::default()
        };
        m.create_network(spec).unwrap();
    }

    fn names(reply: &WatchResponse) -> Vec<&str> {
        reply.networks.iter().map(|n| n.name.as_str()).collect()
    }

    #[tokio::test]
    async fn a_watch_from_an_old_revision_gets_every_change_since_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(&dir);
        let first = m.watch("leader", 0).await.unwrap();
        assert_eq!(first.peers.len(), 1);
        assert_eq!(names(&first), ["ingress"]);
        create(&m, "blue");
        create(&m, "red");
        let soon = Duration::from_secs(1);
        let next = tokio::time::timeout(soon, m.watch("leader", first.revision))
            .await
            .expect("answered at once")
            .unwrap();
        assert_eq!(next.revision, first.revision + 2);
        assert_eq!(names(&next), ["blue", "ingress", "red"], "no change missed");
        let restored = tokio::time::timeout(soon, m.watch("leader", next.revision + 100))
            .await
            .expect("a revision the store is not at is answered at once")
            .unwrap();
        assert_eq!(restored.revision, next.revision);
    }

    #[tokio::test]
    async fn a_watch_at_the_current_revision_waits_for_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(&dir);
        let now = m.watch("leader", 0).await.unwrap().revision;
        let waiting = tokio::spawn({
            let m = m.clone();
            async move { m.watch("leader", now).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "nothing changed yet");
        create(&m, "blue");
        let reply = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("woken by the change")
            .unwrap()
            .unwrap();
        assert_eq!(reply.revision, now + 1);
        assert_eq!(names(&reply), ["blue", "ingress"]);
    }

    #[test]
    fn a_task_takes_traffic_only_while_running_healthy_and_on_a_node_not_down() {
        use crate::model::{HealthConfig, HealthStatus, TaskState, TaskStatus, TaskTemplate};
        let task = |id: &str, check: Option<&[&str]>, state, health| Task {
            id: id.into(),
            service_id: "svc".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: Some("n1".into()),
            spec: TaskTemplate {
                health: check.map(|test| HealthConfig {
                    test: test.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus {
                health,
                ..TaskStatus::new(state, 1, "started")
            },
            networks: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
            version: 1,
        };
        let cmd: &[&str] = &["CMD-SHELL", "test -f /tmp/ok"];
        let none: &[&str] = &["NONE"];
        use HealthStatus::{Healthy, Starting, Unhealthy};
        use TaskState::{Failed, Preparing, Running, Shutdown};
        let mut stopping = task("stopping", None, Running, None);
        stopping.desired_state = Shutdown;
        let mut on_down = task("on-a-down-node", None, Running, None);
        on_down.node_id = Some("n2".into());
        let mut on_left = task("on-a-node-that-left", None, Running, None);
        on_left.node_id = Some("n3".into());
        let tasks = [
            task("plain", None, Running, None),
            task("no-check", Some(none), Running, None),
            task("healthy", Some(cmd), Running, Some(Healthy)),
            task("not-reported-yet", Some(cmd), Running, None),
            task("starting", Some(cmd), Running, Some(Starting)),
            task("unhealthy", Some(cmd), Running, Some(Unhealthy)),
            task("preparing", None, Preparing, None),
            task("failed", Some(cmd), Failed, Some(Healthy)),
            stopping,
            on_down,
            on_left,
        ];
        let node = |id: &str, down: bool, left: bool| Node {
            id: id.into(),
            hostname: id.into(),
            role: crate::model::NodeRole::Worker,
            availability: crate::model::Availability::Active,
            addr: "192.168.99.101".parse().unwrap(),
            wg_public_key: String::new(),
            wg_port: 51820,
            tunnel_addr: "10.200.0.2".parse().unwrap(),
            leader: false,
            left,
            down,
            created_at: 1,
            labels: Default::default(),
            engine_labels: Default::default(),
            version: 1,
            updated_at: 1,
        };
        let nodes = [
            node("n1", false, false),
            node("n2", true, false),
            node("n3", false, true),
        ];
        assert_eq!(
            running_tasks(&tasks, &nodes),
            ["plain", "no-check", "healthy"]
        );
    }
}
