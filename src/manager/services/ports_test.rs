//! Published ports in an in-process manager: assigned from 30000, kept
//! across updates, refused when another service holds them (naming it),
//! and every bad port refused before anything is stored.

use super::super::fixture_test::manager_in;
use super::super::services_test::{call, services, spec};
use super::super::Manager;
use crate::model::{PortConfig, Service, ServiceSpec};
use crate::proto::ClusterRequest;

fn port(published: Option<u16>, target: u16, protocol: &str, mode: &str) -> PortConfig {
    PortConfig::test(published, target, protocol, mode)
}

fn with_ports(name: &str, ports: Vec<PortConfig>) -> ServiceSpec {
    ServiceSpec {
        ports,
        ..spec(name, 1, &[])
    }
}

fn published(s: &Service) -> Vec<Option<u16>> {
    s.spec.ports.iter().map(|p| p.published).collect()
}

fn update(m: &Manager, name: &str, spec: ServiceSpec) -> Result<Service, String> {
    let now: Service = call(
        m,
        ClusterRequest::ServiceInspect {
            service: name.into(),
        },
    )
    .unwrap();
    call(
        m,
        ClusterRequest::ServiceUpdate {
            service: name.into(),
            version: now.version,
            spec,
            rollback: false,
        },
    )
}

#[test]
fn published_ports_are_assigned_kept_and_never_taken_twice() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_in(&dir, "leader", "192.168.99.100");
    let create = |s: ServiceSpec| call::<Service>(&m, ClusterRequest::ServiceCreate(s));
    let web = create(with_ports(
        "web",
        vec![
            port(Some(8080), 3000, "tcp", "ingress"),
            port(None, 3001, "tcp", "ingress"),
            port(None, 53, "udp", "host"),
        ],
    ))
    .unwrap();
    assert_eq!(
        published(&web),
        [Some(8080), Some(30000), None],
        "an ingress port gets the lowest free from 30000; a host one is the node's to choose"
    );
    let api = create(with_ports("api", vec![port(None, 80, "tcp", "ingress")])).unwrap();
    assert_eq!(published(&api), [Some(30001)]);

    // Another service's port: refused, naming the holder; nothing made.
    let before = services(&m);
    let taken = format!(
        "port '8080' is already in use by service 'web' ({}) as an ingress port; publish another port, or remove it from 'web' first",
        web.id
    );
    let err = create(with_ports(
        "db",
        vec![port(Some(8080), 80, "tcp", "ingress")],
    ))
    .unwrap_err();
    assert_eq!(err, taken);
    let err = create(with_ports("db", vec![port(Some(30001), 80, "tcp", "host")])).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "port '30001' is already in use by service 'api' ({}) as an ingress port",
            api.id
        )),
        "{err}"
    );
    assert_eq!(services(&m), before, "nothing changed");

    // The same number over udp, and host-mode ports side by side, are fine.
    create(with_ports(
        "dns",
        vec![port(Some(8080), 53, "udp", "ingress")],
    ))
    .unwrap();
    create(with_ports(
        "h1",
        vec![port(Some(9100), 9100, "tcp", "host")],
    ))
    .unwrap();
    let h2 = create(with_ports(
        "h2",
        vec![port(Some(9100), 9100, "tcp", "host")],
    ))
    .unwrap();
    let err = create(with_ports(
        "h3",
        vec![port(Some(9100), 1, "tcp", "ingress")],
    ))
    .unwrap_err();
    assert!(
        err.starts_with("port '9100' is already in use by service 'h1' (")
            && err.contains(") as a host-published port"),
        "{err}"
    );

    // An update that sends no number again keeps the assigned one; its own
    // ports are no conflict; another's are, and change nothing.
    let again = with_ports(
        "web",
        vec![
            port(Some(8080), 3000, "tcp", "ingress"),
            port(None, 3001, "tcp", "ingress"),
        ],
    );
    let web = update(&m, "web", again).unwrap();
    assert_eq!(published(&web), [Some(8080), Some(30000)]);
    let before = services(&m);
    let err = update(
        &m,
        "api",
        with_ports("api", vec![port(Some(8080), 80, "tcp", "ingress")]),
    )
    .unwrap_err();
    assert_eq!(err, taken);
    let err = update(
        &m,
        "h2",
        with_ports("h2", vec![port(Some(30000), 9100, "tcp", "host")]),
    )
    .unwrap_err();
    assert!(err.contains("by service 'web'"), "{err}");
    assert_eq!(services(&m), before, "nothing changed");
    assert_eq!(h2.spec.ports[0].published, Some(9100));

    // A port given back is free again; a rollback to a port taken since is refused.
    let web = update(&m, "web", with_ports("web", Vec::new())).unwrap();
    let api = update(
        &m,
        "api",
        with_ports("api", vec![port(Some(8080), 80, "tcp", "ingress")]),
    )
    .unwrap();
    assert_eq!(published(&api), [Some(8080)]);
    let err = call::<Service>(
        &m,
        ClusterRequest::ServiceUpdate {
            service: "web".into(),
            version: web.version,
            spec: web.spec.clone(),
            rollback: true,
        },
    )
    .unwrap_err();
    assert!(
        err.starts_with("port '8080' is already in use by service 'api' ("),
        "{err}"
    );
}

#[test]
fn bad_ports_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_in(&dir, "leader", "192.168.99.100");
    let create = |s: ServiceSpec| call::<Service>(&m, ClusterRequest::ServiceCreate(s));
    let mut dnsrr = with_ports("web", vec![port(Some(8080), 3000, "tcp", "ingress")]);
    dnsrr.endpoint_mode = "dnsrr".into();
    assert!(create(dnsrr).unwrap_err().starts_with(
        "EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
    ));
    let twice = with_ports(
        "web",
        vec![
            port(Some(8080), 3000, "tcp", "ingress"),
            port(Some(8080), 3001, "tcp", "ingress"),
        ],
    );
    assert!(create(twice)
        .unwrap_err()
        .starts_with("EndpointSpec: duplicate published ports provided"));
    let sctp = with_ports("web", vec![port(Some(8080), 3000, "sctp", "ingress")]);
    assert!(create(sctp).unwrap_err().starts_with("protocol sctp"));
    assert!(services(&m).is_empty());

    // Without the ingress network, only host-mode ports can be published.
    m.remove_network("ingress").unwrap();
    let err = create(with_ports("web", vec![port(None, 3000, "tcp", "ingress")])).unwrap_err();
    assert_eq!(
        err,
        "service needs ingress network, but no ingress network is present; publish its ports with mode=host instead"
    );
    create(with_ports(
        "web",
        vec![port(Some(8080), 3000, "tcp", "host")],
    ))
    .unwrap();
}
