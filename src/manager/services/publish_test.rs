//! Publishing a port on a running service, and unpublishing it, in an
//! in-process manager: the update rolls the tasks out, the new ones join
//! ingress (or no longer do), and the service has a VIP on ingress while it
//! publishes through the routing mesh, as Docker's `Endpoint.VirtualIPs` has.

use super::super::fixture_test::manager_in;
use super::super::services_test::{call, services, spec};
use super::super::Manager;
use crate::model::{NetworkSpec, PortConfig, Service, Task, TaskState, TaskStatus, INGRESS_SBOX};
use crate::proto::{ClusterRequest, TaskReport, TaskUpdate};

/// Updates web's ports at the version it is at.
fn publish(m: &Manager, ports: Vec<PortConfig>) -> Service {
    let now = services(m).remove(0);
    let spec = crate::model::ServiceSpec {
        ports,
        ..now.spec.clone()
    };
    let update = ClusterRequest::ServiceUpdate {
        service: "web".into(),
        version: now.version,
        spec,
        rollback: false,
    };
    call(m, update).unwrap()
}

/// Schedules, and reports every task on its way (stopped or running) as a
/// node would, until nothing changes; the tasks meant to run.
fn settle(m: &Manager) -> Vec<Task> {
    for _ in 0..10 {
        m.schedule().unwrap();
        let tasks: Vec<Task> = call(m, ClusterRequest::TaskLs).unwrap();
        let updates: Vec<TaskUpdate> = tasks
            .iter()
            .filter_map(|t| {
                let next = match t.desired_state {
                    TaskState::Running => TaskState::Running,
                    TaskState::Ready => TaskState::Ready,
                    _ => TaskState::Shutdown,
                };
                (t.status.state < next).then(|| TaskUpdate {
                    task_id: t.id.clone(),
                    status: TaskStatus::new(next, 1, next.as_str()),
                })
            })
            .collect();
        if updates.is_empty() {
            return tasks
                .into_iter()
                .filter(|t| t.desired_state == TaskState::Running)
                .collect();
        }
        m.task_report(m.self_id(), TaskReport { updates }).unwrap();
    }
    panic!("the tasks do not settle")
}

/// The networks of a task, by name.
fn networks(m: &Manager, t: &Task) -> Vec<String> {
    let names = |id: &str| m.network_detail(id).unwrap().network.name;
    t.networks.iter().map(|a| names(&a.network_id)).collect()
}

/// The networks of web's VIPs, by name.
fn vip_networks(m: &Manager) -> Vec<String> {
    let web = services(m).remove(0);
    let names = |id: &str| m.network_detail(id).unwrap().network.name;
    web.virtual_ips
        .iter()
        .map(|v| names(&v.network_id))
        .collect()
}

#[test]
fn publishing_rolls_the_tasks_onto_ingress_with_a_vip_there_and_unpublishing_off_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_in(&dir, "leader", "192.168.99.100");
    let app = NetworkSpec {
        name: "app".into(),
        ..Default::default()
    };
    m.create_network(app).unwrap();
    let _: Service = call(&m, ClusterRequest::ServiceCreate(spec("web", 2, &["app"]))).unwrap();
    let first = settle(&m);
    assert!(first.iter().all(|t| networks(&m, t) == ["app"]));
    assert_eq!(vip_networks(&m), ["app"]);

    let port = PortConfig::test(Some(8080), 3000, "tcp", "ingress");
    let web = publish(&m, vec![port]);
    assert_eq!(
        web.update_status.map(|s| s.message).as_deref(),
        Some("update in progress"),
        "a new port rolls the tasks out"
    );
    assert_eq!(vip_networks(&m), ["ingress", "app"], "ingress first");
    let published = settle(&m);
    assert_eq!(published.len(), 2);
    for t in &published {
        assert!(first.iter().all(|f| f.id != t.id), "{} is new", t.id);
        assert_eq!(networks(&m, t), ["app", "ingress"]);
    }
    let ingress_vip = services(&m)[0].virtual_ips[0].ip;
    let on_ingress: Vec<_> = m
        .endpoints()
        .unwrap()
        .into_iter()
        .filter(|e| m.network_detail(&e.network_id).unwrap().network.ingress)
        .collect();
    assert!(on_ingress.iter().all(|e| e.ip != ingress_vip));
    assert!(on_ingress.iter().any(|e| e.container_id == INGRESS_SBOX));

    // A host-mode port alone: on ingress still (where the node reaches its
    // own tasks), but no VIP there, as Docker has it. (Without a published
    // number, so both tasks fit on the one node.)
    publish(&m, vec![PortConfig::test(None, 3000, "tcp", "host")]);
    assert_eq!(vip_networks(&m), ["app"]);
    let host_mode = settle(&m);
    assert!(host_mode
        .iter()
        .all(|t| networks(&m, t) == ["app", "ingress"]));
    assert!(host_mode
        .iter()
        .all(|t| published.iter().all(|p| p.id != t.id)));

    publish(&m, Vec::new());
    let unpublished = settle(&m);
    assert!(unpublished.iter().all(|t| networks(&m, t) == ["app"]));
    assert!(
        m.endpoints().unwrap().iter().all(|e| !m
            .network_detail(&e.network_id)
            .unwrap()
            .network
            .ingress),
        "nothing left on ingress, the node's leg neither"
    );
}
