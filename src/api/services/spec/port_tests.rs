//! Published ports in Docker's `ServiceSpec`: as the docker 20.10 client
//! sends them (`PortOpt`), read and shown back the same, and every bad port
//! refused in one sentence.

use serde_json::json;

use super::super::docker_spec;
use super::tests::{refusal, with};
use super::*;

/// `docker service create -p 8080:3000 -p 3001 --publish
/// published=5353,target=53,protocol=udp,mode=host ...`: the ports as the
/// docker 20.10 client sends them (`PortOpt`, Go's `omitempty` leaving out a
/// published port of 0), read and shown back the same.
#[test]
fn published_ports_go_both_ways() {
    let sent = json!([
        { "Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress" },
        { "Protocol": "tcp", "TargetPort": 3001, "PublishMode": "ingress" },
        { "Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host" }
    ]);
    let spec = service_spec(with("/EndpointSpec/Ports", sent.clone())).unwrap();
    let port = |published, target, protocol: &str, mode: &str| PortConfig {
        protocol: protocol.into(),
        target,
        published,
        mode: mode.into(),
    };
    assert_eq!(
        spec.ports,
        [
            port(Some(8080), 3000, "tcp", "ingress"),
            port(None, 3001, "tcp", "ingress"),
            port(Some(5353), 53, "udp", "host"),
        ]
    );
    let shown = serde_json::to_value(docker_spec(&spec)).unwrap();
    assert_eq!(
        shown["EndpointSpec"],
        json!({ "Mode": "vip", "Ports": sent })
    );
    assert_eq!(service_spec(shown).unwrap(), spec);
    let bare = service_spec(with(
        "/EndpointSpec/Ports",
        json!([{ "TargetPort": 3000, "PublishedPort": 0 }]),
    ))
    .unwrap();
    assert_eq!(
        bare.ports,
        [port(None, 3000, "tcp", "ingress")],
        "a raw client's defaults: tcp, ingress, published 0 is none"
    );
}

#[test]
fn bad_ports_are_refused_in_one_sentence() {
    let ports = |p: serde_json::Value| refusal(with("/EndpointSpec/Ports", json!([p])));
    for (port, sentence) in [
        (
            json!({ "TargetPort": 3000, "PublishedPort": 70000 }),
            "invalid published port 70000: give a port from 1 to 65535, or leave it out to have one assigned from 30000-32767",
        ),
        (
            json!({ "TargetPort": 3000, "PublishedPort": -1 }),
            "invalid published port -1: give a port from 1 to 65535, or leave it out to have one assigned from 30000-32767",
        ),
        (
            json!({ "PublishedPort": 8080 }),
            "invalid target port 0: give the port the task listens on, from 1 to 65535",
        ),
        (
            json!({ "TargetPort": 3000, "Protocol": "icmp" }),
            "invalid protocol \"icmp\" for port 3000: use tcp or udp",
        ),
        (
            json!({ "TargetPort": 3000, "Protocol": "sctp" }),
            "protocol sctp (port 3000/sctp) is not supported: swarmnet publishes tcp and udp ports; use protocol=tcp or protocol=udp",
        ),
        (
            json!({ "TargetPort": 3000, "PublishMode": "everywhere" }),
            "invalid publish mode \"everywhere\" for port 3000: use ingress or host",
        ),
    ] {
        assert_eq!(ports(port.clone()), sentence, "{port}");
    }
    let twice = json!([
        { "Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "ingress" },
        { "Protocol": "udp", "TargetPort": 54, "PublishedPort": 53, "PublishMode": "host" }
    ]);
    assert_eq!(
        refusal(with("/EndpointSpec/Ports", twice)),
        "EndpointSpec: duplicate published ports provided: 53/udp is published twice"
    );
    let dnsrr = json!({
        "Mode": "dnsrr",
        "Ports": [{ "Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "ingress" }]
    });
    assert_eq!(
        refusal(with("/EndpointSpec", dnsrr)),
        "EndpointSpec: port published with ingress mode can't be used with dnsrr mode; publish it with mode=host, or use --endpoint-mode vip"
    );
    let host = json!({
        "Mode": "dnsrr",
        "Ports": [{ "Protocol": "tcp", "TargetPort": 3000, "PublishedPort": 8080, "PublishMode": "host" }]
    });
    assert_eq!(
        service_spec(with("/EndpointSpec", host))
            .unwrap()
            .endpoint_mode,
        "dnsrr",
        "dnsrr with host-mode ports, as Docker allows"
    );
}
