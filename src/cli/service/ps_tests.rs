//! Unit tests of the task table: Docker's order, names, indentation,
//! truncation and states from a fixed task list.

use super::*;

/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200;

fn task(id: &str, slot: i64, node: &str, desired: &str, state: &str, at: &str, err: &str) -> Task {
    serde_json::from_value(serde_json::json!({
        "ID": id,
        "ServiceID": "svc1",
        "Slot": slot,
        "NodeID": node,
        "CreatedAt": format!("2024-01-01T00:00:{at}Z"),
        "DesiredState": desired,
        "Spec": {"ContainerSpec": {"Image": "host@sha256:abc"}},
        "Status": {"State": state, "Timestamp": format!("2024-01-01T00:00:{at}Z"), "Err": err},
    }))
    .unwrap()
}

fn names() -> Names {
    let services: Vec<Service> =
        serde_json::from_value(serde_json::json!([{"ID": "svc1", "Spec": {"Name": "web"}}]))
            .unwrap();
    let nodes: Vec<NodeDoc> = serde_json::from_value(serde_json::json!([
        {"ID": "node1", "Description": {"Hostname": "vm1"}},
        {"ID": "node2", "Description": {"Hostname": "vm2"}},
    ]))
    .unwrap();
    Names::new(&services, &nodes)
}

fn tasks() -> Vec<Task> {
    let failure = "task: non-zero exit (1): the process could not start";
    vec![
        task(
            "aaaaaaaaaaaaaaaaaaaaaaaaa",
            10,
            "node1",
            "running",
            "running",
            "50",
            "",
        ),
        task(
            "bbbbbbbbbbbbbbbbbbbbbbbbb",
            1,
            "node2",
            "shutdown",
            "failed",
            "10",
            failure,
        ),
        task(
            "ccccccccccccccccccccccccc",
            1,
            "node1",
            "running",
            "running",
            "20",
            "",
        ),
        task(
            "ddddddddddddddddddddddddd",
            2,
            "node2",
            "running",
            "starting",
            "55",
            "",
        ),
    ]
}

#[test]
fn tasks_are_grouped_by_slot_newest_first() {
    let out = render(&tasks(), &names(), T0 + 60, &TaskListArgs::default()).unwrap();
    let expected = "\
ID             NAME        IMAGE   NODE   DESIRED STATE   CURRENT STATE            ERROR                              PORTS
cccccccccccc   web.1       host    vm1    Running         Running 40 seconds ago
bbbbbbbbbbbb    \\_ web.1   host    vm2    Shutdown        Failed 50 seconds ago    \"task: non-zero exit (1): the …\"
dddddddddddd   web.2       host    vm2    Running         Starting 5 seconds ago
aaaaaaaaaaaa   web.10      host    vm1    Running         Running 10 seconds ago
";
    assert_eq!(out, expected);
}

#[test]
fn no_trunc_quiet_and_format() {
    let args = TaskListArgs {
        no_trunc: true,
        ..Default::default()
    };
    let out = render(&tasks(), &names(), T0 + 60, &args).unwrap();
    assert!(out.contains("ccccccccccccccccccccccccc   web.1"), "{out}");
    assert!(out.contains("host@sha256:abc"), "{out}");
    assert!(
        out.contains("\"task: non-zero exit (1): the process could not start\""),
        "{out}"
    );
    let quiet = TaskListArgs {
        quiet: true,
        ..Default::default()
    };
    let out = render(&tasks(), &names(), T0 + 60, &quiet).unwrap();
    assert_eq!(out.lines().next(), Some("ccccccccccccccccccccccccc"));
    assert_eq!(out.lines().count(), 4);
    let format = TaskListArgs {
        format: Some("{{.Name}} {{.Node}} {{.CurrentState}}".into()),
        ..Default::default()
    };
    let out = render(&tasks(), &names(), T0 + 60, &format).unwrap();
    assert_eq!(
        out.lines().take(2).collect::<Vec<_>>(),
        [
            "web.1 vm1 Running 40 seconds ago",
            "web.1 vm2 Failed 50 seconds ago"
        ],
        "no indent outside a table"
    );
}

#[test]
fn global_tasks_are_named_by_node_and_ports_shown() {
    let mut global = task(
        "eeeeeeeeeeeeeeee",
        0,
        "node2",
        "running",
        "running",
        "00",
        "",
    );
    global.status.as_mut().unwrap().port_status = serde_json::from_value(serde_json::json!(
        {"Ports": [{"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080}]}
    ))
    .unwrap();
    let args = TaskListArgs {
        format: Some("{{.Name}}|{{.Ports}}|{{.CurrentState}}".into()),
        ..Default::default()
    };
    let out = render(&[global], &names(), T0 + 90, &args).unwrap();
    assert_eq!(
        out,
        "web.node2|*:8080->3000/tcp|Running about a minute ago\n"
    );
}

#[test]
fn services_match_by_id_name_then_prefix() {
    let all: Vec<Service> = serde_json::from_value(serde_json::json!([
        {"ID": "abc123", "Spec": {"Name": "web"}},
        {"ID": "abd456", "Spec": {"Name": "api"}},
    ]))
    .unwrap();
    let wanted = ["web", "abd456", "abc", "nope"].map(String::from);
    let (ids, missing) = match_services(&all, &wanted).unwrap();
    assert_eq!(ids, ["abc123", "abd456", "abc123"]);
    assert_eq!(missing, ["no such service: nope"]);
    let err = match_services(&all, &["ab".into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "multiple services found with provided prefix: ab"
    );
}

#[test]
fn states_are_titled() {
    assert_eq!(title("running"), "Running");
    assert_eq!(title("SHUTDOWN"), "Shutdown");
    assert_eq!(title(""), "");
}

/// PORTS: the task's host-mode ports as the daemon reports them in
/// `Status.PortStatus`, joined by "," as Docker's task formatter does; a
/// task without them shows nothing.
#[test]
fn host_mode_ports_of_a_task_are_joined_as_docker_joins_them() {
    let mut t = task("f", 1, "node1", "running", "running", "00", "");
    let args = TaskListArgs {
        format: Some("[{{.Ports}}]".into()),
        ..Default::default()
    };
    assert_eq!(render(&[t.clone()], &names(), T0, &args).unwrap(), "[]\n");
    t.status.as_mut().unwrap().port_status = serde_json::from_value(serde_json::json!({"Ports": [
        {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "host"}
    ]}))
    .unwrap();
    assert_eq!(
        render(&[t], &names(), T0, &args).unwrap(),
        "[*:5353->53/udp,*:8080->3000/tcp]\n"
    );
}
