//! Shape tests of `container_docs`: recorded dockerd 20.10 answers, and
//! create bodies as the docker CLI sends them.

use super::*;
use crate::daemon::containers::{Container, NetAttachment};
use crate::runtime::Process;

fn view(state: RunState) -> ContainerView {
    let id = "3f4e5d6c7b8a".repeat(5) + "9f8e";
    ContainerView {
        container: Container {
            id: id.clone(),
            name: "c1".into(),
            cmd: vec!["sh".into(), "-c".into(), "exec sleep 600".into()],
            created: 100,
            started: 110,
            process: Process {
                pid: 4242,
                start_time: 7,
            },
            netns: format!("/run/swarmnet/netns/{}", &id[..12]).into(),
            networks: vec![NetAttachment {
                network_id: "n1".into(),
                network_name: "blue".into(),
                endpoint_id: "e1".into(),
                ifname: "eth0".into(),
                ip: "10.20.0.2".parse().unwrap(),
                prefix_len: 24,
                gateway: "10.20.0.1".parse().unwrap(),
                mac: "02:42:0a:14:00:02".into(),
                mtu: 1370,
                aliases: vec!["db".into()],
            }],
            egress: None,
            env: Vec::new(),
            task_id: None,
            hostname: None,
        },
        state,
        exit_code: (state == RunState::Exited).then_some(5),
        finished_at: (state == RunState::Exited).then_some(200),
        log_path: format!("/var/lib/swarmnet/containers/{id}/container.log").into(),
        asked: Vec::new(),
        health: None,
    }
}

/// `GET /containers/json` of a running container, as dockerd 20.10 lists
/// one on a user-defined network (what swarmnet has no value for left out).
#[test]
fn a_running_container_is_listed_as_dockers() {
    let v = view(RunState::Running);
    let doc = serde_json::to_value(summary(&v, 115)).unwrap();
    let id = v.container.id.clone();
    let docker = serde_json::json!({
        "Id": id,
        "Names": ["/c1"],
        "Image": "host",
        "ImageID": "host",
        "Command": "sh -c exec sleep 600",
        "Created": 100,
        "Ports": [],
        "Labels": {},
        "State": "running",
        "Status": "Up 5 seconds",
        "HostConfig": { "NetworkMode": "blue" },
        "NetworkSettings": { "Networks": { "blue": {
            "Aliases": ["db"],
            "NetworkID": "n1",
            "EndpointID": "e1",
            "Gateway": "10.20.0.1",
            "IPAddress": "10.20.0.2",
            "IPPrefixLen": 24,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": "02:42:0a:14:00:02",
            "DNSNames": ["c1", &id[..12]]
        }}},
        "Mounts": []
    });
    assert_eq!(doc, docker);
}

#[test]
fn statuses_read_as_dockers() {
    assert_eq!(
        status_line(&view(RunState::Exited), 203),
        "Exited (5) 3 seconds ago"
    );
    assert_eq!(
        status_line(&view(RunState::Running), 110),
        "Up Less than a second"
    );
    assert_eq!(status_line(&view(RunState::Created), 0), "Created");
}

fn with_health(state: RunState, status: HealthStatus) -> ContainerView {
    use crate::model::{HealthResult, TaskHealth};
    let mut v = view(state);
    v.health = Some(TaskHealth {
        status,
        failing_streak: 2,
        log: vec![HealthResult {
            start_ms: 111_250,
            end_ms: 111_300,
            exit_code: 1,
            output: "no /tmp/ok\n".into(),
        }],
    });
    v
}

#[test]
fn a_checked_containers_status_shows_its_health_as_dockers() {
    let up = |status| status_line(&with_health(RunState::Running, status), 115);
    assert_eq!(
        up(HealthStatus::Starting),
        "Up 5 seconds (health: starting)"
    );
    assert_eq!(up(HealthStatus::Healthy), "Up 5 seconds (healthy)");
    assert_eq!(up(HealthStatus::Unhealthy), "Up 5 seconds (unhealthy)");
    assert_eq!(
        status_line(&with_health(RunState::Exited, HealthStatus::Healthy), 203),
        "Exited (5) 3 seconds ago"
    );
}

/// `State.Health` as dockerd 20.10 shows it in `GET /containers/{id}/json`.
#[test]
fn a_checked_container_is_inspected_with_dockers_state_health() {
    let doc = serde_json::to_value(inspect(&with_health(
        RunState::Running,
        HealthStatus::Starting,
    )))
    .unwrap();
    assert_eq!(
        doc["State"]["Health"],
        serde_json::json!({
            "Status": "starting",
            "FailingStreak": 2,
            "Log": [{
                "Start": "1970-01-01T00:01:51.25Z",
                "End": "1970-01-01T00:01:51.3Z",
                "ExitCode": 1,
                "Output": "no /tmp/ok\n"
            }]
        })
    );
    let stopped = inspect(&with_health(RunState::Exited, HealthStatus::Healthy));
    let health = stopped.state.unwrap().health.unwrap();
    assert_eq!(
        health.status,
        Some(HealthStatusEnum::UNHEALTHY),
        "a stopped container's checks are over: Docker marks it unhealthy"
    );
    let plain = serde_json::to_value(inspect(&view(RunState::Running))).unwrap();
    assert!(
        plain["State"].get("Health").is_none(),
        "no check, no Health"
    );
}

/// `GET /containers/{id}/json` of an exited container: the fields dockerd
/// 20.10 gives that the CLI and templates read.
#[test]
fn an_exited_container_is_inspected_as_dockers() {
    let v = view(RunState::Exited);
    let doc = serde_json::to_value(inspect(&v)).unwrap();
    assert_eq!(doc["Id"], v.container.id);
    assert_eq!(doc["Created"], "1970-01-01T00:01:40Z");
    assert_eq!(doc["Path"], "sh");
    assert_eq!(doc["Args"], serde_json::json!(["-c", "exec sleep 600"]));
    assert_eq!(
        doc["State"],
        serde_json::json!({
            "Status": "exited", "Running": false, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": 0, "ExitCode": 5, "Error": "",
            "StartedAt": "1970-01-01T00:01:50Z", "FinishedAt": "1970-01-01T00:03:20Z"
        })
    );
    assert_eq!(doc["Name"], "/c1");
    assert_eq!(doc["Image"], "host");
    assert!(doc["LogPath"].as_str().unwrap().ends_with("/container.log"));
    assert!(doc["HostsPath"].as_str().unwrap().ends_with("/hosts"));
    assert_eq!(doc["Config"]["Hostname"], "c1");
    assert_eq!(doc["Config"]["Tty"], false);
    assert_eq!(doc["Config"]["Cmd"][2], "exec sleep 600");
    assert_eq!(doc["HostConfig"]["NetworkMode"], "blue");
    let net = &doc["NetworkSettings"]["Networks"]["blue"];
    assert_eq!(net["IPAddress"], "10.20.0.2");
    assert_eq!(net["IPPrefixLen"], 24);
    assert!(doc["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .starts_with("/run/swarmnet/netns/"));
    let running = serde_json::to_value(inspect(&view(RunState::Running))).unwrap();
    assert_eq!(running["State"]["Pid"], 4242);
    assert_eq!(running["State"]["FinishedAt"], NEVER);
}

/// A created container shows the networks it asked for, with no address yet.
#[test]
fn a_created_container_shows_what_it_asked_for() {
    let mut v = view(RunState::Created);
    v.container.networks.clear();
    v.asked = vec![NetRequest {
        network: "red".into(),
        ip: Some("10.30.0.9".parse().unwrap()),
        aliases: vec![],
    }];
    let doc = serde_json::to_value(inspect(&v)).unwrap();
    assert_eq!(doc["State"]["Status"], "created");
    assert_eq!(doc["State"]["StartedAt"], NEVER);
    assert_eq!(doc["HostConfig"]["NetworkMode"], "red");
    let red = &doc["NetworkSettings"]["Networks"]["red"];
    assert_eq!(red["IPAMConfig"]["IPv4Address"], "10.30.0.9");
    assert!(red.get("IPAddress").is_none());
}

/// The body `docker run -d --name c2 --network blue --ip 10.20.0.50
/// --network-alias db host sleep 60` sends (docker 20.10, trimmed of nulls).
const DOCKER_RUN_BODY: &str = r#"{
  "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
  "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
  "StdinOnce": false, "Env": [], "Cmd": ["sleep", "60"], "Image": "host",
  "Volumes": {}, "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": {},
  "HostConfig": {
    "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
    "NetworkMode": "blue", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null, "CapAdd": null, "CapDrop": null,
    "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null,
    "GroupAdd": null, "IpcMode": "", "Cgroup": "", "Links": null, "OomScoreAdj": 0,
    "PidMode": "", "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false,
    "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 0, "ConsoleSize": [0, 0],
    "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
    "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": null,
    "BlkioDeviceWriteBps": null, "BlkioDeviceReadIOps": null, "BlkioDeviceWriteIOps": null,
    "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
    "DeviceRequests": null, "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": null, "OomKillDisable": false, "PidsLimit": null,
    "Ulimits": null, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0, "MaskedPaths": null, "ReadonlyPaths": null
  },
  "NetworkingConfig": {"EndpointsConfig": {"blue": {
    "IPAMConfig": {"IPv4Address": "10.20.0.50"}, "Links": null, "Aliases": ["db"]
  }}}
}"#;

#[test]
fn a_docker_run_body_maps_to_a_command_and_networks() {
    let body: ContainerCreateBody = serde_json::from_str(DOCKER_RUN_BODY).unwrap();
    let req = create_request(body).unwrap();
    assert_eq!(req.cmd, ["sleep", "60"]);
    assert_eq!(
        req.networks,
        [NetRequest {
            network: "blue".into(),
            ip: Some("10.20.0.50".parse().unwrap()),
            aliases: vec!["db".into()],
        }]
    );
}

fn body(json: serde_json::Value) -> ContainerCreateBody {
    serde_json::from_value(json).unwrap()
}

#[test]
fn create_bodies_join_the_entrypoint_and_order_the_networks() {
    let req = create_request(body(serde_json::json!({
        "Image": "host:latest", "Entrypoint": ["swarmnet"], "Cmd": ["whoami"],
        "HostConfig": { "NetworkMode": "red" },
        "NetworkingConfig": { "EndpointsConfig": { "red": {}, "blue": {}, "amber": {} } }
    })))
    .unwrap();
    assert_eq!(req.cmd, ["swarmnet", "whoami"]);
    let names: Vec<&str> = req.networks.iter().map(|n| n.network.as_str()).collect();
    assert_eq!(names, ["red", "amber", "blue"], "eth0 is the network mode");
    let none = create_request(body(serde_json::json!({
        "Image": "host", "Cmd": ["true"], "HostConfig": { "NetworkMode": "default" }
    })))
    .unwrap();
    assert!(none.networks.is_empty());
}

#[test]
fn create_bodies_swarmnet_cannot_run_are_refused_with_a_sentence() {
    let refused = |json: serde_json::Value| create_request(body(json)).unwrap_err().to_string();
    let nginx = refused(serde_json::json!({ "Image": "nginx", "Cmd": ["x"] }));
    assert!(nginx.contains("built-in image host"), "{nginx}");
    assert!(
        nginx.starts_with("image \"nginx\" is not available"),
        "{nginx}"
    );
    assert_eq!(
        refused(serde_json::json!({ "Image": "host" })),
        "No command specified"
    );
    let cases = [
        (serde_json::json!({ "Tty": true }), "TTY"),
        (serde_json::json!({ "OpenStdin": true }), "-i"),
        (serde_json::json!({ "Env": ["A=1"] }), "-e"),
        (
            serde_json::json!({ "HostConfig": { "AutoRemove": true } }),
            "--rm",
        ),
        (
            serde_json::json!({ "HostConfig": { "Binds": ["/a:/b"] } }),
            "-v",
        ),
        (
            serde_json::json!({ "HostConfig": { "PortBindings": { "80/tcp": [{ "HostPort": "8080" }] } } }),
            "-p",
        ),
        (
            serde_json::json!({ "HostConfig": { "NetworkMode": "host" } }),
            "network mode \"host\"",
        ),
        (
            serde_json::json!({ "NetworkingConfig": { "EndpointsConfig": { "default": { "IPAMConfig": { "IPv4Address": "10.0.0.5" } } } } }),
            "user defined networks only",
        ),
        (
            serde_json::json!({ "NetworkingConfig": { "EndpointsConfig": { "default": { "Aliases": ["db"] } } } }),
            "network-scoped alias",
        ),
        (
            serde_json::json!({ "HostConfig": { "NetworkMode": "blue" }, "NetworkingConfig": { "EndpointsConfig": { "blue": { "IPAMConfig": { "IPv4Address": "10.0.0" } } } } }),
            "invalid IPv4 address: 10.0.0",
        ),
    ];
    for (mut json, needle) in cases {
        json["Image"] = "host".into();
        json["Cmd"] = serde_json::json!(["true"]);
        let err = refused(json);
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
