//! Reading Docker's `ServiceSpec`: create bodies as the docker CLI 20.10
//! builds them (cli/command/service/opts.go `ToService`, then the client's
//! `ServiceCreate`), what it always sends, every refusal, and the spec
//! `service inspect` shows read back as the same spec.

use serde_json::json;

use super::super::docker_spec;
use super::*;

/// The network `app`, as the CLI sends it: resolved to its ID.
pub(in crate::api::services) const APP: &str = "k3mx0f7v9z1n8q2w4e6r5t1y0";

/// `docker service create --name web --replicas 3 --network app
/// --constraint node.role==worker --env A=1 --restart-condition on-failure
/// --restart-delay 2s host swarmnet whoami --port 3000`.
fn create_body() -> serde_json::Value {
    json!({
        "Name": "web",
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "host:latest",
                "Args": ["swarmnet", "whoami", "--port", "3000"],
                "Env": ["A=1"],
                "Init": false,
                "DNSConfig": {}
            },
            "Resources": { "Limits": {}, "Reservations": {} },
            "RestartPolicy": { "Condition": "on-failure", "Delay": 2_000_000_000u64, "MaxAttempts": 0 },
            "Placement": { "Constraints": ["node.role==worker"] },
            "Networks": [{ "Target": APP }],
            "ForceUpdate": 0
        },
        "Mode": { "Replicated": { "Replicas": 3 } },
        "EndpointSpec": { "Mode": "vip" }
    })
}

pub(in crate::api::services) fn web_spec() -> ServiceSpec {
    ServiceSpec {
        name: "web".into(),
        labels: Default::default(),
        mode: ServiceMode::Replicated { replicas: 3 },
        task: TaskTemplate {
            image: HOST_IMAGE.into(),
            command: Vec::new(),
            args: ["swarmnet", "whoami", "--port", "3000"]
                .map(String::from)
                .into(),
            env: vec!["A=1".into()],
            stop_grace_ms: None,
            networks: vec![ServiceNetwork {
                target: APP.into(),
                aliases: Vec::new(),
            }],
            constraints: vec!["node.role==worker".into()],
            restart: RestartPolicy {
                condition: RestartCondition::OnFailure,
                delay_ms: 2000,
                max_attempts: 0,
                window_ms: 0,
            },
            force_update: 0,
            health: None,
            endpoint: None,
            max_replicas: 0,
            container_labels: Default::default(),
            hostname: String::new(),
        },
        update: UpdateConfig::default(),
        rollback: UpdateConfig::default(),
        endpoint_mode: "vip".into(),
        ports: Vec::new(),
    }
}

/// `body` with the value at `pointer` (an object path) set.
pub(super) fn with(pointer: &str, value: serde_json::Value) -> serde_json::Value {
    let mut body = create_body();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut at = &mut body;
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        at = at.as_object_mut().unwrap().entry(part).or_insert(json!({}));
    }
    at.as_object_mut().unwrap().insert(key.into(), value);
    body
}

pub(super) fn refusal(body: serde_json::Value) -> String {
    match service_spec(body) {
        Err(ApiError::InvalidArgument(sentence)) => sentence,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_docker_clis_create_body_reads_as_our_spec() {
    assert_eq!(service_spec(create_body()).unwrap(), web_spec());
}

#[test]
fn modes_read_as_docker_reads_them() {
    let mode = |m: serde_json::Value| service_spec(with("/Mode", m)).map(|s| s.mode);
    assert_eq!(mode(json!({ "Global": {} })).unwrap(), ServiceMode::Global);
    assert_eq!(
        mode(json!({})).unwrap(),
        ServiceMode::Replicated { replicas: 1 }
    );
    assert_eq!(
        mode(json!({ "Replicated": {} })).unwrap(),
        ServiceMode::Replicated { replicas: 1 }
    );
    assert_eq!(
        mode(json!({ "Replicated": { "Replicas": 0 } })).unwrap(),
        ServiceMode::Replicated { replicas: 0 }
    );
    assert_eq!(
        refusal(with("/Mode", json!({ "Replicated": { "Replicas": 2 }, "Global": {} }))),
        "Mode.Replicated and Mode.Global are both given: replicas can only be used with replicated mode; give one of them"
    );
    assert_eq!(
        refusal(with("/Mode/Replicated/Replicas", json!(-1))),
        "Mode.Replicated.Replicas must be 0 or more, not -1"
    );
    assert_eq!(
        refusal(with("/Mode", json!({ "ReplicatedJob": { "MaxConcurrent": 1 } }))),
        "Mode.ReplicatedJob (--mode replicated-job) is not supported: swarmnet runs services, not jobs; use --mode replicated or --mode global"
    );
    assert!(refusal(with("/Mode", json!({ "GlobalJob": {} }))).starts_with("Mode.GlobalJob"));
}

#[test]
fn what_the_docker_cli_always_sends_is_accepted() {
    for (pointer, value) in [
        ("/TaskTemplate/ContainerSpec/Isolation", json!("default")),
        ("/TaskTemplate/ContainerSpec/Init", json!(null)),
        ("/TaskTemplate/ContainerSpec/Labels", json!({})),
        ("/TaskTemplate/ContainerSpec/Mounts", json!([])),
        (
            "/TaskTemplate/ContainerSpec/Privileges",
            json!({ "CredentialSpec": null, "SELinuxContext": null }),
        ),
        ("/TaskTemplate/ContainerSpec/Healthcheck", json!({})),
        ("/TaskTemplate/Runtime", json!("container")),
        (
            "/TaskTemplate/Resources",
            json!({ "Limits": { "Pids": 0 }, "Reservations": {} }),
        ),
        (
            "/UpdateConfig",
            json!({ "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000u64, "MaxFailureRatio": 0, "Order": "stop-first" }),
        ),
    ] {
        assert_eq!(
            service_spec(with(pointer, value)).as_ref(),
            Ok(&web_spec()),
            "{pointer}"
        );
    }
    let unplaced = service_spec(with("/TaskTemplate/Placement", json!({}))).unwrap();
    assert!(unplaced.task.constraints.is_empty());
}

#[test]
fn what_swarmnet_cannot_do_is_refused_by_name() {
    let mount = json!([{ "Type": "bind", "Source": "/srv", "Target": "/srv" }]);
    assert_eq!(
        refusal(with("/TaskTemplate/ContainerSpec/Mounts", mount)),
        "TaskTemplate.ContainerSpec.Mounts (--mount) is not supported: swarmnet runs each task as a command from the host's filesystem in its own network namespace, without the rest of a container; leave it out"
    );
    let health = json!({ "Test": ["CMD", "true"], "StartInterval": 1_000_000_000u64 });
    let container = [
        ("Dir", json!("/srv"), "Dir (--workdir)"),
        ("User", json!("nobody"), "User (--user)"),
        ("Groups", json!(["adm"]), "Groups (--group)"),
        (
            "Privileges",
            json!({ "NoNewPrivileges": true }),
            "Privileges",
        ),
        ("TTY", json!(true), "TTY (--tty)"),
        ("OpenStdin", json!(true), "OpenStdin"),
        ("ReadOnly", json!(true), "ReadOnly (--read-only)"),
        ("StopSignal", json!("SIGINT"), "StopSignal (--stop-signal)"),
        (
            "Healthcheck",
            health.clone(),
            "HealthCheck.StartInterval (--health-start-interval)",
        ),
        (
            "HealthCheck",
            health,
            "HealthCheck.StartInterval (--health-start-interval)",
        ),
        ("Hosts", json!(["1.2.3.4 a"]), "Hosts (--host)"),
        (
            "DNSConfig",
            json!({ "Nameservers": ["1.1.1.1"] }),
            "DNSConfig (--dns",
        ),
        (
            "Secrets",
            json!([{ "SecretName": "s" }]),
            "Secrets (--secret)",
        ),
        (
            "Configs",
            json!([{ "ConfigName": "c" }]),
            "Configs (--config)",
        ),
        ("OomScoreAdj", json!(100), "OomScoreAdj"),
        ("Isolation", json!("hyperv"), "Isolation (--isolation)"),
        ("Init", json!(true), "Init (--init)"),
        (
            "Sysctls",
            json!({ "net.core.somaxconn": "1" }),
            "Sysctls (--sysctl)",
        ),
        (
            "CapabilityAdd",
            json!(["CAP_NET_ADMIN"]),
            "CapabilityAdd (--cap-add)",
        ),
        (
            "CapabilityDrop",
            json!(["CAP_CHOWN"]),
            "CapabilityDrop (--cap-drop)",
        ),
        (
            "Ulimits",
            json!([{ "Name": "nofile", "Soft": 1, "Hard": 2 }]),
            "Ulimits (--ulimit)",
        ),
    ]
    .map(|(key, value, field)| {
        let pointer = format!("/TaskTemplate/ContainerSpec/{key}");
        (
            pointer,
            value,
            format!("TaskTemplate.ContainerSpec.{field}"),
        )
    });
    let spread = json!([{ "Spread": { "SpreadDescriptor": "node.labels.zone" } }]);
    let opts = json!([{ "Target": APP, "DriverOpts": { "a": "b" } }]);
    let task = [
        ("PluginSpec", json!({ "Name": "p" }), "PluginSpec"),
        (
            "NetworkAttachmentSpec",
            json!({ "ContainerID": "c" }),
            "NetworkAttachmentSpec",
        ),
        ("Runtime", json!("plugin"), "Runtime"),
        (
            "Resources",
            json!({ "Limits": { "MemoryBytes": 1 } }),
            "Resources (--limit-cpu",
        ),
        (
            "Resources",
            json!({ "Reservations": { "NanoCPUs": 1 } }),
            "Resources (--limit-cpu",
        ),
        (
            "Placement/Preferences",
            spread,
            "Placement.Preferences (--placement-pref)",
        ),
        (
            "LogDriver",
            json!({ "Name": "syslog" }),
            "LogDriver (--log-driver",
        ),
        ("Networks", opts, "Networks.DriverOpts"),
    ]
    .map(|(key, value, field)| {
        let pointer = format!("/TaskTemplate/{key}");
        (pointer, value, format!("TaskTemplate.{field}"))
    });
    for (pointer, value, field) in container.into_iter().chain(task) {
        let sentence = refusal(with(&pointer, value));
        assert!(
            sentence.starts_with(&field) && sentence.contains("is not supported"),
            "{pointer}: {sentence}"
        );
    }
}

#[test]
fn bad_numbers_and_missing_parts_are_refused_by_name() {
    for (pointer, value, sentence) in [
        (
            "/TaskTemplate/RestartPolicy/Delay",
            json!(-1),
            "TaskTemplate.RestartPolicy.Delay must not be negative (it is -1 ns)",
        ),
        (
            "/TaskTemplate/RestartPolicy/Window",
            json!(-5),
            "TaskTemplate.RestartPolicy.Window must not be negative (it is -5 ns)",
        ),
        (
            "/TaskTemplate/RestartPolicy/MaxAttempts",
            json!(-2),
            "TaskTemplate.RestartPolicy.MaxAttempts must be 0 or more, not -2",
        ),
        (
            "/TaskTemplate/ContainerSpec/StopGracePeriod",
            json!(-1),
            "TaskTemplate.ContainerSpec.StopGracePeriod must not be negative (it is -1 ns)",
        ),
        (
            "/UpdateConfig/Parallelism",
            json!(-1),
            "UpdateConfig.Parallelism must be 0 or more, not -1",
        ),
        (
            "/RollbackConfig/Monitor",
            json!(-1),
            "RollbackConfig.Monitor must not be negative (it is -1 ns)",
        ),
        (
            "/TaskTemplate/Networks",
            json!([{ "Aliases": ["a"] }]),
            "TaskTemplate.Networks has a network without a Target: give each network's name or ID",
        ),
        (
            "/EndpointSpec/Ports",
            json!([{ "TargetPort": 70000 }]),
            "invalid target port 70000: give the port the task listens on, from 1 to 65535",
        ),
    ] {
        assert_eq!(refusal(with(pointer, value)), sentence, "{pointer}");
    }
    assert_eq!(
        refusal(serde_json::Value::Null),
        "the request body is empty: send the service's ServiceSpec as JSON"
    );
    assert!(
        refusal(json!({ "Name": 7 })).starts_with("the request body is not a valid ServiceSpec: ")
    );
}

#[test]
fn the_models_checks_apply() {
    assert!(
        refusal(with("/TaskTemplate/ContainerSpec/Image", json!("nginx")))
            .starts_with("image \"nginx\" is not available")
    );
    assert!(refusal(with(
        "/EndpointSpec",
        json!({ "Mode": "dnsrr", "Ports": [{ "TargetPort": 3000, "PublishedPort": 8080 }] })
    ))
    .starts_with("EndpointSpec: port published with ingress mode can't be used with dnsrr mode"));
    assert!(
        refusal(with("/TaskTemplate/ContainerSpec/Args", json!(null)))
            .starts_with("no command given")
    );
}

#[test]
fn other_forms_of_the_same_spec_read_alike() {
    let mut old = create_body();
    let networks = old["TaskTemplate"]
        .as_object_mut()
        .unwrap()
        .remove("Networks");
    old["Networks"] = networks.unwrap();
    assert_eq!(service_spec(old).unwrap(), web_spec(), "Spec.Networks");
    let spec = service_spec(with("/TaskTemplate/ContainerSpec/Image", json!("host"))).unwrap();
    assert_eq!(spec.task.image, HOST_IMAGE);
    let spec = service_spec(with(
        "/UpdateConfig",
        json!({ "Parallelism": 0, "Delay": 1_000_000_000u64, "FailureAction": "rollback", "Monitor": 0, "MaxFailureRatio": 0.25, "Order": "start-first" }),
    ))
    .unwrap();
    assert_eq!(
        spec.update,
        UpdateConfig {
            parallelism: 0,
            delay_ms: 1000,
            failure_action: FailureAction::Rollback,
            monitor_ms: crate::model::DEFAULT_MONITOR_MS,
            max_failure_ratio: 0.25,
            order: UpdateOrder::StartFirst,
        }
    );
    let spec = service_spec(with("/EndpointSpec", json!({ "Mode": "dnsrr" }))).unwrap();
    assert_eq!(spec.endpoint_mode, "dnsrr");
}

#[test]
fn what_inspect_shows_reads_back_as_the_same_spec() {
    let mut spec = web_spec();
    spec.labels = [("tier".to_string(), "web".to_string())].into();
    spec.task.command = vec!["/usr/bin/env".into()];
    spec.task.stop_grace_ms = Some(3000);
    spec.task.networks[0].aliases = vec!["api".into()];
    spec.task.restart.window_ms = 60_000;
    spec.task.force_update = 2;
    spec.update.failure_action = FailureAction::Rollback;
    spec.rollback.order = UpdateOrder::StartFirst;
    for mode in [ServiceMode::Global, ServiceMode::Replicated { replicas: 5 }] {
        spec.mode = mode;
        let sent = serde_json::to_value(docker_spec(&spec)).unwrap();
        assert_eq!(service_spec(sent).unwrap(), spec);
    }
    let mut ports = web_spec();
    ports.ports = vec![PortConfig {
        protocol: "udp".into(),
        target: 53,
        published: Some(5353),
        mode: "host".into(),
    }];
    let shown = serde_json::to_value(docker_spec(&ports)).unwrap();
    assert_eq!(
        shown["EndpointSpec"],
        json!({ "Mode": "vip", "Ports": [{ "Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host" }] })
    );
}

/// `docker service create --network name=app,alias=api,alias=www ...`: the
/// aliases reach swarmnet's spec, and inspect shows them where Docker does.
#[test]
fn network_aliases_go_both_ways() {
    let body = with(
        "/TaskTemplate/Networks",
        json!([{ "Target": APP, "Aliases": ["api", "www"] }]),
    );
    let spec = service_spec(body).unwrap();
    assert_eq!(
        spec.task.networks,
        [ServiceNetwork {
            target: APP.into(),
            aliases: vec!["api".into(), "www".into()],
        }]
    );
    let shown = serde_json::to_value(docker_spec(&spec)).unwrap();
    assert_eq!(
        shown["TaskTemplate"]["Networks"],
        json!([{ "Target": APP, "Aliases": ["api", "www"] }])
    );
    assert_eq!(service_spec(shown).unwrap(), spec);
    let none = serde_json::to_value(docker_spec(&web_spec())).unwrap();
    assert_eq!(
        none["TaskTemplate"]["Networks"],
        json!([{ "Target": APP }]),
        "no aliases, no Aliases key (Docker's omitempty)"
    );
    let bad = with(
        "/TaskTemplate/Networks",
        json!([{ "Target": APP, "Aliases": ["no spaces"] }]),
    );
    assert!(
        refusal(bad).starts_with("invalid network alias name \"no spaces\""),
        "aliases are names"
    );
}

#[test]
fn replicas_per_node_and_container_labels_go_both_ways() {
    let mut body = create_body();
    body["TaskTemplate"]["Placement"]["MaxReplicas"] = json!(2);
    let spec = service_spec(body.clone()).unwrap();
    assert_eq!(spec.task.max_replicas, 2);
    let shown = serde_json::to_value(docker_spec(&spec)).unwrap();
    assert_eq!(shown["TaskTemplate"]["Placement"]["MaxReplicas"], 2);
    body["TaskTemplate"]["ContainerSpec"]["Labels"] =
        json!({ "com.docker.stack.namespace": "vote" });
    let spec = service_spec(body.clone()).unwrap();
    let shown = serde_json::to_value(docker_spec(&spec)).unwrap();
    assert_eq!(
        shown["TaskTemplate"]["ContainerSpec"]["Labels"],
        json!({ "com.docker.stack.namespace": "vote" }),
        "container labels are kept and shown"
    );
    body["TaskTemplate"]["ContainerSpec"]["Hostname"] = json!("{{.Node.Hostname}}-db");
    let spec = service_spec(body.clone()).unwrap();
    assert_eq!(spec.task.hostname, "{{.Node.Hostname}}-db");
    let shown = serde_json::to_value(docker_spec(&spec)).unwrap();
    assert_eq!(
        shown["TaskTemplate"]["ContainerSpec"]["Hostname"],
        "{{.Node.Hostname}}-db"
    );
    body["TaskTemplate"]["Placement"]["MaxReplicas"] = json!(-1);
    let err = service_spec(body).unwrap_err().to_string();
    assert_eq!(
        err,
        "TaskTemplate.Placement.MaxReplicas -1 is negative: give 0 (no limit) or more"
    );
}
