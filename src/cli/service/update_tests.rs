//! Unit tests of `service update`: the spec edits Docker's `updateService` makes.

use super::*;
use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    update: UpdateArgs,
}

fn edit(spec: serde_json::Value, argv: &[&str]) -> anyhow::Result<serde_json::Value> {
    let args = Cli::try_parse_from(std::iter::once("update").chain(argv.iter().copied()))
        .unwrap()
        .update;
    let spec: ServiceSpec = serde_json::from_value(spec).unwrap();
    Ok(serde_json::to_value(edit_spec(spec, &args)?).unwrap())
}

fn web() -> serde_json::Value {
    serde_json::json!({
        "Name": "web",
        "TaskTemplate": {
            "ContainerSpec": {"Image": "host", "Args": ["sleep", "1"], "Env": ["A=1", "B=2"]},
            "Placement": {"Constraints": ["node.role==worker", "node.hostname!=vm3"]},
            "ForceUpdate": 2
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        "EndpointSpec": {"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"}]}
    })
}

#[test]
fn constraints_are_added_removed_and_sorted() {
    let out = edit(
        web(),
        &[
            "--constraint-add",
            "node.hostname!=vm2",
            "--constraint-rm",
            "node.role==worker",
            "web",
        ],
    )
    .unwrap();
    assert_eq!(
        out["TaskTemplate"]["Placement"]["Constraints"],
        serde_json::json!(["node.hostname!=vm2", "node.hostname!=vm3"])
    );
}

#[test]
fn env_args_image_and_force() {
    let out = edit(
        web(),
        &[
            "--env-add",
            "B=3",
            "--env-add",
            "C=4",
            "--env-rm",
            "A",
            "--args",
            "whoami --port '3 000'",
            "--image",
            "host:latest",
            "--force",
            "web",
        ],
    )
    .unwrap();
    let container = &out["TaskTemplate"]["ContainerSpec"];
    assert_eq!(container["Env"], serde_json::json!(["B=3", "C=4"]));
    assert_eq!(
        container["Args"],
        serde_json::json!(["whoami", "--port", "3 000"])
    );
    assert_eq!(container["Image"], "host:latest");
    assert_eq!(out["TaskTemplate"]["ForceUpdate"], 3);
    let untouched = edit(web(), &["web"]).unwrap();
    assert_eq!(untouched, web(), "no flags, no change");
}

#[test]
fn replicas_configs_and_ports() {
    let out = edit(
        web(),
        &[
            "--replicas",
            "5",
            "--update-parallelism",
            "2",
            "--update-failure-action",
            "rollback",
            "--publish-rm",
            "3000",
            "--publish-add",
            "9090:80",
            "--restart-max-attempts",
            "3",
            "web",
        ],
    )
    .unwrap();
    assert_eq!(out["Mode"]["Replicated"]["Replicas"], 5);
    assert_eq!(out["UpdateConfig"]["Parallelism"], 2);
    assert_eq!(out["UpdateConfig"]["FailureAction"], "rollback");
    assert_eq!(out["UpdateConfig"]["Order"], "stop-first");
    assert!(out.get("RollbackConfig").is_none());
    assert_eq!(
        out["EndpointSpec"]["Ports"],
        serde_json::json!([{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 9090, "PublishMode": "ingress"}])
    );
    assert_eq!(out["TaskTemplate"]["RestartPolicy"]["MaxAttempts"], 3);
    let mut global = web();
    global["Mode"] = serde_json::json!({"Global": {}});
    let err = edit(global, &["--replicas", "2", "web"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "replicas can only be used with replicated mode"
    );
}

#[test]
fn network_flags_take_dockers_long_form() {
    let args = Cli::try_parse_from([
        "update",
        "--network-add",
        "name=app,alias=api",
        "--network-rm",
        "old",
        "web",
    ])
    .unwrap()
    .update;
    assert_eq!(
        serde_json::to_value(&args.network_add).unwrap(),
        serde_json::json!([{"Target": "app", "Aliases": ["api"]}])
    );
    assert_eq!(args.network_rm, ["old"]);
    let bad = Cli::try_parse_from(["update", "--network-add", "name=app,ip=10.0.0.9", "web"])
        .unwrap_err()
        .to_string();
    assert!(bad.contains("invalid field key ip"), "{bad}");
}

fn ports(current: &[&str], add: &[&str], rm: &[&str]) -> Vec<String> {
    let current = current
        .iter()
        .map(|p| ports::parse_port(p).unwrap())
        .collect::<Vec<_>>()
        .concat();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    edit_ports(current, &strings(add), &strings(rm))
        .unwrap()
        .iter()
        .map(port_key)
        .collect()
}

/// `--publish-rm` as Docker reads it (by target port, protocol and
/// mode), and by the published port when no port has that target.
#[test]
fn publish_rm_takes_the_target_or_the_published_port() {
    let web = ["8080:3000", "8081:3000/udp", "9090:8080"];
    assert_eq!(
        ports(&web, &[], &["8080"]),
        ["8080:3000/tcp/ingress", "8081:3000/udp/ingress"],
        "Docker's reading first: 9090:8080 has target 8080"
    );
    let web = ["8080:3000", "8081:3000/udp"];
    assert_eq!(
        ports(&web, &[], &["8080"]),
        ["8081:3000/udp/ingress"],
        "no target 8080: the port published on 8080"
    );
    assert_eq!(
        ports(&web, &[], &["3000"]),
        ["8081:3000/udp/ingress"],
        "by target, tcp"
    );
    assert_eq!(ports(&web, &[], &["8081/udp"]), ["8080:3000/tcp/ingress"]);
    assert_eq!(ports(&web, &[], &["3000/udp"]), ["8080:3000/tcp/ingress"]);
    assert_eq!(
        ports(&web, &[], &["8081"]),
        ["8080:3000/tcp/ingress", "8081:3000/udp/ingress"],
        "8081 is published over udp only"
    );
    let host = ["published=5353,target=53,protocol=udp,mode=host"];
    assert_eq!(
        ports(&host, &[], &["53/udp"]),
        ["5353:53/udp/host"],
        "as Docker: a short form is an ingress port, so not this one"
    );
    assert!(ports(&host, &[], &["target=53,protocol=udp,mode=host"]).is_empty());
    assert!(ports(&host, &[], &["5353/udp"]).is_empty());
    assert_eq!(
        ports(&web, &["9090:3000"], &["8080"]),
        ["8081:3000/udp/ingress", "9090:3000/tcp/ingress"],
        "--publish-add with --publish-rm"
    );
    assert_eq!(
        ports(&web, &[], &["7777"]),
        ["8080:3000/tcp/ingress", "8081:3000/udp/ingress"],
        "nothing named, nothing removed (as Docker)"
    );
}

#[test]
fn ports_keep_one_of_each_and_sort() {
    let same = |p: &str| ports::parse_port(p).unwrap();
    let current = [same("8080:3000"), same("8080:3000"), same("7070:70")].concat();
    let out = edit_ports(current, &["8080:3000".into()], &[]).unwrap();
    let keys: Vec<String> = out.iter().map(port_key).collect();
    assert_eq!(keys, ["7070:70/tcp/ingress", "8080:3000/tcp/ingress"]);
}
