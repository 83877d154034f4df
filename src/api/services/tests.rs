//! Services and tasks as dockerd 20.10 answers
//! `GET /services/{id}?insertDefaults=true` and `GET /tasks` (fields
//! swarmnet has no value for left out).

use serde_json::json;

use super::spec::tests::{web_spec, APP};
use super::*;
use crate::model::{PortConfig, TaskAttachment, TaskStatus, UpdateStatus};

#[test]
fn times_are_written_as_go_writes_them() {
    assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    assert_eq!(rfc3339_ms(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
    assert_eq!(rfc3339_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339_ms(u64::MAX), "1970-01-01T00:00:00Z", "never empty");
}

fn web_service() -> Service {
    let mut previous = web_spec();
    previous.mode = ServiceMode::Replicated { replicas: 2 };
    Service {
        id: "9mnpnzenvg8p8tdbtq4wvbkcz".into(),
        spec: web_spec(),
        previous_spec: Some(previous),
        version: 19,
        created_at_ms: 1_700_000_000_123,
        updated_at_ms: 1_700_000_060_500,
        update_status: Some(UpdateStatus {
            state: UpdateState::Completed,
            started_at_ms: 1_700_000_060_000,
            completed_at_ms: Some(1_700_000_075_000),
            message: "update completed".into(),
        }),
        last_batch_ms: 0,
        virtual_ips: Vec::new(),
    }
}

/// The spec part of dockerd's answer for `web` with `replicas`.
fn web_spec_json(replicas: u64) -> serde_json::Value {
    let rollout = json!({
        "Parallelism": 1,
        "FailureAction": "pause",
        "Monitor": 5_000_000_000u64,
        "MaxFailureRatio": 0.0,
        "Order": "stop-first"
    });
    json!({
        "Name": "web",
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "host",
                "Args": ["swarmnet", "whoami", "--port", "3000"],
                "Env": ["A=1"]
            },
            "RestartPolicy": { "Condition": "on-failure", "Delay": 2_000_000_000u64, "MaxAttempts": 0 },
            "Placement": { "Constraints": ["node.role==worker"] },
            "Networks": [{ "Target": APP }],
            "ForceUpdate": 0
        },
        "Mode": { "Replicated": { "Replicas": replicas } },
        "UpdateConfig": rollout,
        "RollbackConfig": rollout,
        "EndpointSpec": { "Mode": "vip" }
    })
}

#[test]
fn a_service_is_shaped_as_dockers() {
    let doc = serde_json::to_value(service_doc(&web_service(), None)).unwrap();
    let docker = json!({
        "ID": "9mnpnzenvg8p8tdbtq4wvbkcz",
        "Version": { "Index": 19 },
        "CreatedAt": "2023-11-14T22:13:20.123Z",
        "UpdatedAt": "2023-11-14T22:14:20.5Z",
        "Spec": web_spec_json(3),
        "PreviousSpec": web_spec_json(2),
        "Endpoint": { "Spec": { "Mode": "vip" } },
        "UpdateStatus": {
            "State": "completed",
            "StartedAt": "2023-11-14T22:14:20Z",
            "CompletedAt": "2023-11-14T22:14:35Z",
            "Message": "update completed"
        }
    });
    assert_eq!(doc, docker);
    let back: ServiceDoc = serde_json::from_value(doc).unwrap();
    assert!(back.previous_spec.is_some());
}

fn web_task(id: &str, slot: u64, desired: TaskState, state: TaskState) -> Task {
    Task {
        id: id.into(),
        service_id: "9mnpnzenvg8p8tdbtq4wvbkcz".into(),
        service_name: "web".into(),
        slot,
        node_id: Some("n1vtm4s4jz4a3clqgvdzf6i4k".into()),
        spec: web_spec().task,
        spec_version: 19,
        desired_state: desired,
        status: TaskStatus::new(state, 1_700_000_001_250, "started"),
        networks: Vec::new(),
        created_at_ms: 1_700_000_000_200,
        updated_at_ms: 1_700_000_001_250,
        version: 25,
    }
}

#[test]
fn a_task_is_shaped_as_dockers() {
    let mut task = web_task(
        "0qy7j1ah1mhj8x5tmbbgxdbf5",
        1,
        TaskState::Running,
        TaskState::Running,
    );
    task.status.container_id = Some("5c0b3e2a".repeat(8));
    task.status.pid = Some(4242);
    task.networks = vec![TaskAttachment {
        network_id: APP.into(),
        endpoint_id: "e1".into(),
        ip: "10.0.1.5".parse().unwrap(),
        prefix_len: 24,
    }];
    let doc = serde_json::to_value(task_doc(&task)).unwrap();
    let docker = json!({
        "ID": "0qy7j1ah1mhj8x5tmbbgxdbf5",
        "Version": { "Index": 25 },
        "CreatedAt": "2023-11-14T22:13:20.2Z",
        "UpdatedAt": "2023-11-14T22:13:21.25Z",
        "Labels": {},
        "Spec": web_spec_json(3)["TaskTemplate"],
        "ServiceID": "9mnpnzenvg8p8tdbtq4wvbkcz",
        "Slot": 1,
        "NodeID": "n1vtm4s4jz4a3clqgvdzf6i4k",
        "Status": {
            "Timestamp": "2023-11-14T22:13:21.25Z",
            "State": "running",
            "Message": "started",
            "ContainerStatus": { "ContainerID": "5c0b3e2a".repeat(8), "PID": 4242, "ExitCode": 0 }
        },
        "DesiredState": "running",
        "NetworksAttachments": [{ "Network": { "ID": APP }, "Addresses": ["10.0.1.5/24"] }]
    });
    assert_eq!(doc, docker);
    let back: TaskDoc = serde_json::from_value(doc).unwrap();
    assert_eq!(back.networks_attachments.len(), 1);
}

#[test]
fn a_pending_global_task_leaves_out_what_it_does_not_have() {
    let mut task = web_task("t2", 0, TaskState::Running, TaskState::Pending);
    task.node_id = None;
    task.status.message = String::new();
    task.status.err = Some("no suitable node (1 node not available for new tasks)".into());
    let doc = serde_json::to_value(task_doc(&task)).unwrap();
    for absent in ["Slot", "NodeID", "Name", "NetworksAttachments"] {
        assert!(doc.get(absent).is_none(), "{absent}");
    }
    assert_eq!(
        doc["Status"],
        json!({
            "Timestamp": "2023-11-14T22:13:21.25Z",
            "State": "pending",
            "Err": "no suitable node (1 node not available for new tasks)"
        })
    );
}

#[test]
fn service_status_counts_tasks_as_docker_does() {
    let mut web = web_service();
    let tasks = vec![
        web_task("a", 1, TaskState::Running, TaskState::Running),
        web_task("b", 2, TaskState::Running, TaskState::Starting),
        web_task("c", 3, TaskState::Shutdown, TaskState::Running),
        web_task("d", 1, TaskState::Shutdown, TaskState::Failed),
    ];
    let status = |s: &Service| serde_json::to_value(service_status(s, &tasks)).unwrap();
    assert_eq!(
        status(&web),
        json!({ "RunningTasks": 1, "DesiredTasks": 3, "CompletedTasks": 0 })
    );
    web.spec.mode = ServiceMode::Global;
    assert_eq!(
        status(&web),
        json!({ "RunningTasks": 1, "DesiredTasks": 2, "CompletedTasks": 0 })
    );
    web.id = "other".into();
    assert_eq!(
        status(&web),
        json!({ "RunningTasks": 0, "DesiredTasks": 0, "CompletedTasks": 0 })
    );
    let listed =
        serde_json::to_value(service_doc(&web, Some(service_status(&web, &tasks)))).unwrap();
    assert_eq!(listed["ServiceStatus"]["DesiredTasks"], 0);
}

/// `docker service inspect` of `web -p 8080:3000 -p 3001 --publish
/// published=5353,target=53,protocol=udp,mode=host` on network `app`: the
/// ports in the spec, in `Endpoint.Spec` and in `Endpoint.Ports` (the
/// assigned 30000 included), beside the VIP.
#[test]
fn published_ports_show_where_docker_shows_them() {
    let mut web = web_service();
    web.previous_spec = None;
    web.spec.ports = vec![
        PortConfig {
            protocol: "tcp".into(),
            target: 3000,
            published: Some(8080),
            mode: "ingress".into(),
        },
        PortConfig {
            protocol: "tcp".into(),
            target: 3001,
            published: Some(30000),
            mode: "ingress".into(),
        },
        PortConfig {
            protocol: "udp".into(),
            target: 53,
            published: Some(5353),
            mode: "host".into(),
        },
    ];
    web.virtual_ips = vec![crate::model::VirtualIp {
        network_id: APP.into(),
        ip: "10.0.1.2".parse().unwrap(),
        prefix_len: 24,
    }];
    let doc = serde_json::to_value(service_doc(&web, None)).unwrap();
    let ports = json!([
        { "Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress" },
        { "Protocol": "tcp", "TargetPort": 3001, "PublishedPort": 30000, "PublishMode": "ingress" },
        { "Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host" }
    ]);
    assert_eq!(
        doc["Endpoint"],
        json!({
            "Spec": { "Mode": "vip", "Ports": ports },
            "Ports": ports,
            "VirtualIPs": [{ "NetworkID": APP, "Addr": "10.0.1.2/24" }]
        })
    );
    assert_eq!(doc["Spec"]["EndpointSpec"]["Ports"], ports);
    let back: ServiceDoc = serde_json::from_value(doc).unwrap();
    let shown = back.service.endpoint.unwrap().ports.unwrap();
    assert_eq!(shown[2].published_port, Some(5353));
}

/// `service ps` shows a task's host-mode ports (`Status.PortStatus`) once
/// it has run; ingress ports, and a task that never ran, show none.
#[test]
fn a_task_shows_its_host_mode_ports() {
    let mut web = web_service();
    web.spec.ports = vec![
        PortConfig {
            protocol: "tcp".into(),
            target: 3000,
            published: Some(8080),
            mode: "ingress".into(),
        },
        PortConfig {
            protocol: "udp".into(),
            target: 53,
            published: Some(5353),
            mode: "host".into(),
        },
        PortConfig {
            protocol: "tcp".into(),
            target: 22,
            published: None,
            mode: "host".into(),
        },
    ];
    let running = web_task("a", 1, TaskState::Running, TaskState::Running);
    let doc = serde_json::to_value(task_doc_in(&running, Some(&web))).unwrap();
    assert_eq!(
        doc["Status"]["PortStatus"],
        json!({ "Ports": [{ "Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host" }] })
    );
    let shut = web_task("b", 1, TaskState::Shutdown, TaskState::Shutdown);
    let doc = serde_json::to_value(task_doc_in(&shut, Some(&web))).unwrap();
    assert!(
        doc["Status"]["PortStatus"].is_object(),
        "kept, as Docker keeps it"
    );
    let pending = web_task("c", 1, TaskState::Running, TaskState::Pending);
    let doc = serde_json::to_value(task_doc_in(&pending, Some(&web))).unwrap();
    assert!(doc["Status"].get("PortStatus").is_none());
    web.spec.ports.remove(1);
    let doc = serde_json::to_value(task_doc_in(&running, Some(&web))).unwrap();
    assert!(
        doc["Status"].get("PortStatus").is_none(),
        "no host-mode port with a number"
    );
    let doc = serde_json::to_value(task_doc_in(&running, None)).unwrap();
    assert_eq!(doc, serde_json::to_value(task_doc(&running)).unwrap());
}
