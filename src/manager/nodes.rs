//! Pure rules about nodes: liveness, name resolution, removal, and mesh
//! address allocation.

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::model::{ApiError, ManagerStatus, Node, NodeRole, NodeState, NodeView};
use crate::proto::NodeUpdate;

use super::DOWN_AFTER;

/// The node with its status as of `now`, given its last heartbeat.
pub fn view(node: Node, last_beat: Option<Instant>, now: Instant) -> NodeView {
    let alive = last_beat.is_some_and(|t| now.duration_since(t) < DOWN_AFTER);
    let state = if alive && !node.left {
        NodeState::Ready
    } else {
        NodeState::Down
    };
    let manager_status = match node.role {
        NodeRole::Worker => None,
        NodeRole::Manager if node.leader => Some(ManagerStatus::Leader),
        NodeRole::Manager if state == NodeState::Ready => Some(ManagerStatus::Reachable),
        NodeRole::Manager => Some(ManagerStatus::Unreachable),
    };
    let last_heartbeat =
        last_beat.map(|t| super::now_secs().saturating_sub(now.duration_since(t).as_secs()));
    NodeView {
        node,
        state,
        manager_status,
        last_heartbeat,
    }
}

/// Finds a node by full ID, hostname, or unique ID prefix, as Docker does.
pub fn resolve<'a>(views: &'a [NodeView], name: &str) -> Result<&'a NodeView, ApiError> {
    crate::model::find(
        views,
        name,
        "node",
        |v| &v.node.id,
        |v| &v.node.hostname,
        || ApiError::NotFound(format!("No such node: {name}")),
    )
}

/// Docker's rules for `node rm`.
pub fn check_removable(view: &NodeView, self_id: &str, force: bool) -> Result<(), ApiError> {
    if view.node.id == self_id {
        return Err(ApiError::FailedPrecondition(format!(
            "node {} is the leader of the swarm and can't be removed; run \"swarmnet swarm leave --force\" on it to end the swarm",
            view.node.hostname
        )));
    }
    if view.state == NodeState::Ready && !force {
        return Err(ApiError::FailedPrecondition(format!(
            "node {} is not down and can't be removed; run \"swarmnet swarm leave\" on it first, or use --force",
            view.node.hostname
        )));
    }
    Ok(())
}

/// Applies `node update` to a node, or says what is wrong and changes nothing.
pub fn apply_update(node: &mut Node, update: &NodeUpdate, managers: usize) -> Result<(), ApiError> {
    if update.version != node.version {
        return Err(ApiError::InvalidArgument(format!(
            "update out of sequence: node {} is at version {}, not {}; read it again and retry",
            node.hostname, node.version, update.version
        )));
    }
    if update.role != node.role {
        check_role_change(node, update.role, managers)?;
    }
    if let Some(key) = update.labels.keys().find(|k| k.is_empty()) {
        return Err(ApiError::InvalidArgument(format!(
            "invalid label {key:?}: a label needs a key (key=value)"
        )));
    }
    node.labels = update.labels.clone();
    node.availability = update.availability;
    node.role = update.role;
    Ok(())
}

/// Promote and demote, with Docker's refusals. `managers` counts the
/// managers now. The leader holds the store and stays a manager until
/// several managers share it (etcd).
fn check_role_change(node: &Node, role: NodeRole, managers: usize) -> Result<(), ApiError> {
    if role == NodeRole::Worker && node.role == NodeRole::Manager {
        if managers <= 1 {
            return Err(ApiError::FailedPrecondition(
                "attempting to demote the last manager of the swarm".into(),
            ));
        }
        if node.leader {
            return Err(ApiError::FailedPrecondition(format!(
                "node {} is the leader, which holds the swarm's store: it cannot be demoted while the store lives on one manager; demote the other managers instead",
                node.hostname
            )));
        }
    }
    Ok(())
}

/// The lowest host address of the subnet not in `used`.
pub fn free_tunnel_addr(subnet: ipnetwork::Ipv4Network, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let network = u32::from(subnet.network());
    let size = 1u64 << (32 - u32::from(subnet.prefix()));
    (1..size.saturating_sub(1))
        .map(|offset| Ipv4Addr::from(network + offset as u32))
        .find(|addr| !used.contains(addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Availability;
    use std::time::Duration;

    fn node(id: &str, host: &str, role: NodeRole, leader: bool) -> Node {
        Node {
            id: id.into(),
            hostname: host.into(),
            role,
            availability: Availability::Active,
            addr: "192.168.99.100".parse().unwrap(),
            wg_public_key: String::new(),
            wg_port: 51820,
            tunnel_addr: "100.64.0.1".parse().unwrap(),
            leader,
            left: false,
            down: false,
            created_at: 0,
            labels: Default::default(),
            engine_labels: Default::default(),
            version: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn updates_replace_the_spec_at_the_current_version_or_change_nothing() {
        let mut n = node("a", "vm1", NodeRole::Worker, false);
        n.version = 7;
        let update = |version, labels: &[(&str, &str)], role| NodeUpdate {
            node: "vm1".into(),
            version,
            role,
            availability: Availability::Drain,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        apply_update(&mut n, &update(7, &[("zone", "a")], NodeRole::Worker), 1).unwrap();
        assert_eq!(n.labels["zone"], "a");
        assert_eq!(n.availability, Availability::Drain);
        let before = n.clone();
        for (bad, needle) in [
            (update(6, &[], NodeRole::Worker), "update out of sequence"),
            (update(7, &[("", "x")], NodeRole::Worker), "needs a key"),
        ] {
            let err = apply_update(&mut n, &bad, 1).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert_eq!(n, before);
        }
    }

    #[test]
    fn promote_and_demote_keep_a_manager_and_the_leader() {
        let role = |version, role| NodeUpdate {
            node: "vm".into(),
            version,
            role,
            availability: Availability::Active,
            labels: Default::default(),
        };
        let mut worker = node("b", "vm2", NodeRole::Worker, false);
        apply_update(&mut worker, &role(0, NodeRole::Manager), 1).unwrap();
        assert_eq!(worker.role, NodeRole::Manager, "promoted");
        apply_update(&mut worker, &role(0, NodeRole::Worker), 2).unwrap();
        assert_eq!(
            worker.role,
            NodeRole::Worker,
            "demoted while another manager stays"
        );
        let mut last = node("a", "vm1", NodeRole::Manager, false);
        let err = apply_update(&mut last, &role(0, NodeRole::Worker), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "attempting to demote the last manager of the swarm"
        );
        let mut leader = node("a", "vm1", NodeRole::Manager, true);
        let err = apply_update(&mut leader, &role(0, NodeRole::Worker), 2).unwrap_err();
        assert!(err.to_string().contains("is the leader"), "{err}");
        assert_eq!(leader.role, NodeRole::Manager);
    }

    #[test]
    fn status_follows_heartbeats() {
        let now = Instant::now();
        let fresh = view(node("a", "vm1", NodeRole::Worker, false), Some(now), now);
        assert_eq!(fresh.state, NodeState::Ready);
        assert_eq!(fresh.manager_status, None);
        let stale = view(
            node("a", "vm1", NodeRole::Manager, false),
            Some(now),
            now + DOWN_AFTER + Duration::from_millis(1),
        );
        assert_eq!(stale.state, NodeState::Down);
        assert_eq!(stale.manager_status, Some(ManagerStatus::Unreachable));
        let never = view(node("a", "vm1", NodeRole::Manager, true), None, now);
        assert_eq!(never.state, NodeState::Down);
        assert_eq!(never.manager_status, Some(ManagerStatus::Leader));
        let mut gone = node("a", "vm1", NodeRole::Worker, false);
        gone.left = true;
        assert_eq!(view(gone, Some(now), now).state, NodeState::Down);
    }

    #[test]
    fn resolve_by_id_hostname_or_prefix() {
        let now = Instant::now();
        let views: Vec<_> = [("abc1", "vm1"), ("abd2", "vm2")]
            .into_iter()
            .map(|(id, h)| view(node(id, h, NodeRole::Worker, false), None, now))
            .collect();
        assert_eq!(resolve(&views, "abc1").unwrap().node.hostname, "vm1");
        assert_eq!(resolve(&views, "vm2").unwrap().node.id, "abd2");
        assert_eq!(resolve(&views, "abd").unwrap().node.id, "abd2");
        assert!(matches!(
            resolve(&views, "ab"),
            Err(ApiError::InvalidArgument(_))
        ));
        assert_eq!(
            resolve(&views, "vm9"),
            Err(ApiError::NotFound("No such node: vm9".into()))
        );
    }

    #[test]
    fn a_ready_node_needs_force_and_the_leader_cannot_go() {
        let now = Instant::now();
        let ready = view(node("b", "vm2", NodeRole::Worker, false), Some(now), now);
        assert!(check_removable(&ready, "a", false).is_err());
        assert!(check_removable(&ready, "a", true).is_ok());
        let down = view(node("b", "vm2", NodeRole::Worker, false), None, now);
        assert!(check_removable(&down, "a", false).is_ok());
        let leader = view(node("a", "vm1", NodeRole::Manager, true), Some(now), now);
        assert!(check_removable(&leader, "a", true).is_err());
    }

    #[test]
    fn tunnel_addresses_fill_the_lowest_gap() {
        let subnet = "100.64.0.0/30".parse().unwrap();
        let a: Ipv4Addr = "100.64.0.1".parse().unwrap();
        let b: Ipv4Addr = "100.64.0.2".parse().unwrap();
        assert_eq!(free_tunnel_addr(subnet, &[]), Some(a));
        assert_eq!(free_tunnel_addr(subnet, &[a]), Some(b));
        assert_eq!(free_tunnel_addr(subnet, &[b]), Some(a));
        assert_eq!(free_tunnel_addr(subnet, &[a, b]), None);
    }
}
