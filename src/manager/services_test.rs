//! Services in an in-process manager: create, schedule (tasks get their
//! addresses), report, update at the read version, roll back, remove; and
//! the refusals that change nothing.

use super::fixture_test::manager_in;
use super::Manager;
use crate::model::{
    NetworkSpec, Service, ServiceMode, ServiceNetwork, ServiceSpec, Task, TaskState, TaskStatus,
    TaskTemplate, UpdateConfig, INGRESS_SBOX,
};
use crate::proto::{ClusterRequest, TaskReport, TaskUpdate};

pub(super) fn spec(name: &str, replicas: u64, networks: &[&str]) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        labels: Default::default(),
        mode: ServiceMode::Replicated { replicas },
        task: TaskTemplate {
            image: "host".into(),
            args: vec!["swarmnet".into(), "whoami".into()],
            networks: networks
                .iter()
                .map(|n| ServiceNetwork {
                    target: n.to_string(),
                    aliases: Vec::new(),
                })
                .collect(),
            ..Default::default()
        },
        update: UpdateConfig::default(),
        rollback: UpdateConfig::default(),
        endpoint_mode: "vip".into(),
        ports: Vec::new(),
    }
}

pub(super) fn call<T: serde::de::DeserializeOwned>(
    m: &Manager,
    req: ClusterRequest,
) -> Result<T, String> {
    m.cluster_call(req, m.self_id())
        .map(|v| serde_json::from_value(v).unwrap())
        .map_err(|e| e.to_string())
}

fn tasks(m: &Manager) -> Vec<Task> {
    call(m, ClusterRequest::TaskLs).unwrap()
}

pub(super) fn services(m: &Manager) -> Vec<Service> {
    call(m, ClusterRequest::ServiceLs).unwrap()
}

#[test]
fn a_service_is_scheduled_reported_updated_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_in(&dir, "leader", "192.168.99.100");
    let net = NetworkSpec {
        name: "app".into(),
        subnet: Some("10.30.0.0/24".into()),
        ..Default::default()
    };
    m.create_network(net).unwrap();
    let web: Service = call(&m, ClusterRequest::ServiceCreate(spec("web", 2, &["app"]))).unwrap();
    assert_eq!(
        web.spec.task.networks[0].target.len(),
        25,
        "names become IDs"
    );
    let pass = m.schedule().unwrap();
    assert_eq!(pass.created, 2);
    let placed = tasks(&m);
    assert!(placed
        .iter()
        .all(|t| t.node_id.as_deref() == Some(m.self_id())));
    assert!(placed.iter().all(|t| t.status.state == TaskState::Assigned));
    let ips: Vec<_> = placed
        .iter()
        .map(|t| t.networks[0].ip.to_string())
        .collect();
    assert_eq!(web.virtual_ips.len(), 1);
    assert_eq!(
        web.virtual_ips[0].ip.to_string(),
        "10.30.0.2",
        "the VIP comes first"
    );
    assert!(
        ips.contains(&"10.30.0.3".to_string()) && ips.contains(&"10.30.0.4".to_string()),
        "tasks never take the VIP: {ips:?}"
    );
    let task_endpoints = m
        .endpoints()
        .unwrap()
        .into_iter()
        .filter(|e| e.container_id != INGRESS_SBOX)
        .count();
    assert_eq!(
        task_endpoints, 2,
        "one endpoint per task and network (besides the node's ingress leg)"
    );
    assert_eq!(m.schedule().unwrap().created, 0, "nothing more to do");

    // Reports move a task forward only, from its own node only.
    let running = |t: &Task| TaskUpdate {
        task_id: t.id.clone(),
        status: TaskStatus::new(TaskState::Running, 1, "started"),
    };
    let report = TaskReport {
        updates: placed.iter().map(running).collect(),
    };
    let err = m.task_report("someone-else", report.clone()).unwrap_err();
    assert!(
        err.to_string()
            .contains("is not assigned to node someone-else"),
        "{err}"
    );
    m.task_report(m.self_id(), report).unwrap();
    let back = TaskReport {
        updates: vec![TaskUpdate {
            task_id: placed[0].id.clone(),
            status: TaskStatus::new(TaskState::Preparing, 2, "preparing"),
        }],
    };
    m.task_report(m.self_id(), back).unwrap();
    assert!(tasks(&m)
        .iter()
        .all(|t| t.status.state == TaskState::Running));

    // An update at a stale version changes nothing; at the read one it rolls out.
    let mut green = web.spec.clone();
    green.task.env = vec!["COLOUR=green".into()];
    let stale = ClusterRequest::ServiceUpdate {
        service: "web".into(),
        version: web.version - 1,
        spec: green.clone(),
        rollback: false,
    };
    let err = call::<Service>(&m, stale).unwrap_err();
    assert!(err.starts_with("update out of sequence"), "{err}");
    assert_eq!(services(&m)[0].spec, web.spec);
    let now = services(&m)[0].clone();
    let updated: Service = call(
        &m,
        ClusterRequest::ServiceUpdate {
            service: "web".into(),
            version: now.version,
            spec: green,
            rollback: false,
        },
    )
    .unwrap();
    assert_eq!(updated.previous_spec.as_ref(), Some(&web.spec));
    assert_eq!(updated.update_status.unwrap().message, "update in progress");
    m.schedule().unwrap();
    let shut = tasks(&m)
        .into_iter()
        .filter(|t| t.desired_state == TaskState::Shutdown)
        .count();
    assert_eq!(shut, 1, "parallelism 1: one old task at a time");

    // Rollback brings the first spec back.
    let now = services(&m)[0].clone();
    let back: Service = call(
        &m,
        ClusterRequest::ServiceUpdate {
            service: web.id.clone(),
            version: now.version,
            spec: now.spec.clone(),
            rollback: true,
        },
    )
    .unwrap();
    assert_eq!(back.spec, web.spec);
    assert_eq!(
        back.update_status.unwrap().message,
        "manually requested rollback"
    );

    // Removal: the tasks go, and their addresses with them.
    call::<String>(
        &m,
        ClusterRequest::ServiceRm {
            service: "web".into(),
        },
    )
    .unwrap();
    for _ in 0..3 {
        m.schedule().unwrap();
    }
    let left: Vec<Task> = tasks(&m)
        .into_iter()
        .filter(|t| !t.status.state.is_terminal())
        .collect();
    assert_eq!(
        left.len(),
        3,
        "the two first tasks and the update's new one run until their node stops them"
    );
    assert!(
        left.iter().all(|t| t.desired_state == TaskState::Remove),
        "{left:?}"
    );
}

#[test]
fn bad_service_calls_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_in(&dir, "leader", "192.168.99.100");
    let _: Service = call(&m, ClusterRequest::ServiceCreate(spec("web", 1, &[]))).unwrap();
    let before = services(&m);
    let refused = |req: ClusterRequest| call::<serde_json::Value>(&m, req).unwrap_err();
    let cases = [
        (
            ClusterRequest::ServiceCreate(spec("web", 1, &[])),
            "service web already exists",
        ),
        (
            ClusterRequest::ServiceCreate(spec("a", 1, &["nope"])),
            "network nope not found",
        ),
        (
            ClusterRequest::ServiceCreate(spec("a", 1, &["ingress"])),
            "ingress network carries published ports only",
        ),
        (
            ClusterRequest::ServiceInspect {
                service: "nope".into(),
            },
            "service nope not found",
        ),
        (
            ClusterRequest::ServiceRm {
                service: "nope".into(),
            },
            "service nope not found",
        ),
        (
            ClusterRequest::ServiceUpdate {
                service: "web".into(),
                version: before[0].version,
                spec: before[0].spec.clone(),
                rollback: true,
            },
            "does not have a previous spec",
        ),
        (
            ClusterRequest::ServiceUpdate {
                service: "web".into(),
                version: before[0].version,
                spec: ServiceSpec {
                    mode: ServiceMode::Global,
                    ..before[0].spec.clone()
                },
                rollback: false,
            },
            "service mode change is not allowed",
        ),
        (
            ClusterRequest::ServiceUpdate {
                service: "web".into(),
                version: before[0].version,
                spec: spec("renamed", 1, &[]),
                rollback: false,
            },
            "renaming services is not supported",
        ),
    ];
    for (req, needle) in cases {
        let err = refused(req);
        assert!(err.contains(needle), "{err} lacks {needle}");
    }
    assert_eq!(services(&m), before, "nothing changed");
}

#[tokio::test]
async fn a_down_nodes_tasks_leave_dns_and_the_balancers_and_come_back_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = manager_in(&dir, "leader", "192.168.99.100");
    let mut global = spec("agent", 0, &[]);
    global.mode = ServiceMode::Global;
    call::<Service>(&m, ClusterRequest::ServiceCreate(global)).unwrap();
    m.schedule().unwrap();
    let placed = tasks(&m);
    assert_eq!(placed.len(), 1);
    let report = TaskReport {
        updates: vec![TaskUpdate {
            task_id: placed[0].id.clone(),
            status: TaskStatus::new(TaskState::Running, 1, "started"),
        }],
    };
    m.task_report(m.self_id(), report).unwrap();
    async fn running(m: &Manager) -> Vec<String> {
        m.watch(m.self_id(), 0).await.unwrap().running_tasks
    }
    assert_eq!(running(&m).await, [placed[0].id.clone()]);

    // Silence for longer than DOWN_AFTER, past the grace of a fresh start.
    let long_ago = std::time::Instant::now() - super::DOWN_AFTER * 2;
    m.started = long_ago;
    m.heartbeats
        .lock()
        .unwrap()
        .insert(m.self_id().to_string(), long_ago);
    m.schedule().unwrap();
    assert!(
        running(&m).await.is_empty(),
        "a Down node's task takes no traffic"
    );
    let kept = tasks(&m);
    assert_eq!(kept.len(), 1, "a global task stays on its Down node");
    assert_eq!(kept[0].desired_state, TaskState::Running);

    m.heartbeat(m.self_id());
    m.schedule().unwrap();
    assert_eq!(
        running(&m).await,
        [placed[0].id.clone()],
        "back with its node"
    );
}

#[test]
fn an_update_to_the_spec_the_service_has_changes_nothing_not_even_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_in(&dir, "leader", "192.168.99.100");
    let mut web = spec("web", 2, &[]);
    web.ports = vec![crate::model::PortConfig {
        protocol: "tcp".into(),
        target: 3000,
        published: None,
        mode: "ingress".into(),
    }];
    let created: Service = call(&m, ClusterRequest::ServiceCreate(web.clone())).unwrap();
    let same = ClusterRequest::ServiceUpdate {
        service: "web".into(),
        version: created.version,
        spec: web.clone(),
        rollback: false,
    };
    let again: Service = call(&m, same).unwrap();
    assert_eq!(
        again.version, created.version,
        "the assigned port counts as the same"
    );
    assert_eq!(services(&m)[0].version, created.version);
    assert!(services(&m)[0].previous_spec.is_none());
    web.task.env = vec!["A=1".into()];
    let changed = ClusterRequest::ServiceUpdate {
        service: "web".into(),
        version: created.version,
        spec: web,
        rollback: false,
    };
    let next: Service = call(&m, changed).unwrap();
    assert!(next.version > created.version);
}

#[tokio::test]
async fn a_network_whose_tasks_are_only_stopping_goes_for_users_at_once_and_for_nodes_once_they_stopped(
) {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_in(&dir, "leader", "192.168.99.100");
    let app = NetworkSpec {
        name: "app".into(),
        ..Default::default()
    };
    m.create_network(app).unwrap();
    call::<Service>(&m, ClusterRequest::ServiceCreate(spec("web", 1, &["app"]))).unwrap();
    m.schedule().unwrap();
    let placed = tasks(&m);
    let report = |state: TaskState| TaskReport {
        updates: placed
            .iter()
            .map(|t| TaskUpdate {
                task_id: t.id.clone(),
                status: TaskStatus::new(state, 2, state.as_str()),
            })
            .collect(),
    };
    m.task_report(m.self_id(), report(TaskState::Running))
        .unwrap();
    let err = m.remove_network("app").unwrap_err().to_string();
    assert!(err.contains("has active endpoints (web.1."), "{err}");

    // Its service goes: the network is gone for users at once...
    call::<String>(
        &m,
        ClusterRequest::ServiceRm {
            service: "web".into(),
        },
    )
    .unwrap();
    m.remove_network("app").unwrap();
    assert!(m.networks().unwrap().iter().all(|n| n.name != "app"));
    assert!(m.network_detail("app").is_err());
    let on_nodes = |w: &crate::proto::WatchResponse| w.networks.iter().any(|n| n.name == "app");
    assert!(
        on_nodes(&m.watch(m.self_id(), 0).await.unwrap()),
        "...but its node keeps it while the task stops"
    );
    // ...and for its nodes once the task has stopped.
    m.schedule().unwrap();
    m.task_report(m.self_id(), report(TaskState::Shutdown))
        .unwrap();
    m.schedule().unwrap();
    assert!(!on_nodes(&m.watch(m.self_id(), 0).await.unwrap()));
}
