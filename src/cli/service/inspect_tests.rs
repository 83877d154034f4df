//! Unit tests of `service inspect`: Docker's `--pretty` text and JSON.

use super::*;

#[test]
fn pretty_follows_dockers_template() {
    let service: Service = serde_json::from_value(serde_json::json!({
        "ID": "svc1",
        "Spec": {
            "Name": "web",
            "Labels": {"tier": "front", "flag": ""},
            "Mode": {"Replicated": {"Replicas": 3}},
            "TaskTemplate": {
                "ContainerSpec": {"Image": "host", "Args": ["swarmnet", "whoami"], "Init": false},
                "Resources": {"Limits": {}, "Reservations": {}},
                "Placement": {"Constraints": ["node.role==worker", "node.hostname!=vm2"]},
                "Networks": [{"Target": "net1"}]
            },
            "UpdateConfig": {"Parallelism": 1, "Delay": 10_000_000_000i64, "FailureAction": "pause",
                             "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0.2, "Order": "stop-first"},
            "EndpointSpec": {"Mode": "vip"}
        },
        "Endpoint": {"Ports": [{"Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress"}]},
        "UpdateStatus": {"State": "completed", "StartedAt": "2024-01-01T00:00:00Z",
                         "CompletedAt": "2024-01-01T00:01:00Z", "Message": "update completed"}
    }))
    .unwrap();
    let networks: HashMap<String, String> = [("net1".to_string(), "appnet".to_string())].into();
    let now = 1_704_067_200 + 150;
    let expected = "
ID:\t\tsvc1
Name:\t\tweb
Labels:
 flag
 tier=front
Service Mode:\tReplicated
 Replicas:\t3
UpdateStatus:
 State:\t\tcompleted
 Started:\t2 minutes ago
 Completed:\tAbout a minute ago
 Message:\tupdate completed
Placement:
 Constraints:\t[node.role==worker node.hostname!=vm2]
UpdateConfig:
 Parallelism:\t1
 Delay:\t\t10s
 On failure:\tpause
 Monitoring Period: 5s
 Max failure ratio: 0.2
 Update order:      stop-first
ContainerSpec:
 Image:\t\thost
 Args:\t\tswarmnet whoami 
 Init:\t\tfalse
Resources:
Networks: appnet 
Endpoint Mode:\tvip
Ports:
 PublishedPort = 8080
  Protocol = tcp
  TargetPort = 3000
  PublishMode = ingress 
";
    assert_eq!(pretty(&service, &networks, now), expected);
}

#[test]
fn global_services_and_json() {
    let service: Service = serde_json::from_value(serde_json::json!({
        "ID": "g", "Spec": {"Name": "agent", "Mode": {"Global": {}}, "TaskTemplate": {"ContainerSpec": {"Image": "host"}}}
    }))
    .unwrap();
    let out = pretty(&service, &HashMap::new(), 0);
    assert!(
        out.contains("Service Mode:\tGlobal\nPlacement:\nContainerSpec:"),
        "{out}"
    );
    assert!(out.ends_with("Endpoint Mode:\t\n"), "{out}");
    let doc = ServiceDoc {
        service,
        previous_spec: Some(ServiceSpec::default()),
    };
    let json = indented(&[doc]).unwrap();
    assert!(
        json.starts_with("[\n    {\n        \"ID\": \"g\""),
        "{json}"
    );
    assert!(json.contains("\"PreviousSpec\": {}"), "{json}");
}

#[test]
fn networks_show_by_name_as_docker_shows_them() {
    let service: Service = serde_json::from_value(serde_json::json!({
        "ID": "s", "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": "host"},
                "Networks": [{"Target": "net1", "Aliases": ["api", "www"]}, {"Target": "gone"}]},
            "EndpointSpec": {"Mode": "vip"}}
    }))
    .unwrap();
    let networks: HashMap<String, String> = [("net1".to_string(), "appnet".to_string())].into();
    let out = pretty(&service, &networks, 0);
    assert!(
        out.contains("\nNetworks: appnet gone \nEndpoint Mode:\tvip\n"),
        "names (an unknown ID as is), no aliases, as Docker's template: {out}"
    );
    let json = indented(&[ServiceDoc {
        service,
        previous_spec: None,
    }])
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc[0]["Spec"]["TaskTemplate"]["Networks"][0],
        serde_json::json!({"Target": "net1", "Aliases": ["api", "www"]})
    );
}

/// Every port of `Endpoint.Ports` (host-mode ones too, a node-chosen one as
/// 0), as Docker's template prints them.
#[test]
fn pretty_ports_are_every_endpoint_port() {
    let service: Service = serde_json::from_value(serde_json::json!({
        "ID": "s", "Spec": {"Name": "dns", "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": "host"}},
            "EndpointSpec": {"Mode": "dnsrr"}},
        "Endpoint": {"Ports": [
            {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
            {"Protocol": "tcp", "TargetPort": 22, "PublishMode": "host"}
        ]}
    }))
    .unwrap();
    let out = pretty(&service, &HashMap::new(), 0);
    let expected = "Endpoint Mode:\tdnsrr
Ports:
 PublishedPort = 5353
  Protocol = udp
  TargetPort = 53
  PublishMode = host
 PublishedPort = 0
  Protocol = tcp
  TargetPort = 22
  PublishMode = host 
";
    assert!(out.ends_with(expected), "{out}");
}
