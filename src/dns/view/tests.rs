use super::*;
use crate::model::mac_for;
use crate::proto::ServiceVip;

pub(crate) fn network(id: &str, name: &str, subnet: &str) -> Network {
    let subnet: Ipv4Network = subnet.parse().unwrap();
    Network {
        id: id.into(),
        name: name.into(),
        attachable: true,
        ingress: false,
        subnet,
        gateway: subnet.nth(1).unwrap(),
        vni: 4097,
        mtu: None,
        allow_overlap: false,
        from_pool: false,
        options: Default::default(),
        created_at: 0,
        labels: Default::default(),
        removing: false,
    }
}

pub(crate) fn container(id: &str, name: &str, net: &str, ip: &str, aliases: &[&str]) -> Endpoint {
    let ip = ip.parse().unwrap();
    Endpoint {
        id: format!("e-{id}-{net}"),
        network_id: net.into(),
        node_id: "n1".into(),
        container_id: id.into(),
        container_name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ip,
        mac: mac_for(ip),
        created_at: 0,
        task_id: None,
        service_id: None,
    }
}

pub(crate) fn task(id: &str, service: &str, slot: u32, net: &str, ip: &str) -> Endpoint {
    Endpoint {
        task_id: Some(id.into()),
        service_id: Some(format!("svc-{service}")),
        ..container(id, &format!("{service}.{slot}.{id}"), net, ip, &[])
    }
}

pub(crate) fn service(name: &str, mode: &str) -> ServiceName {
    ServiceName {
        id: format!("svc-{name}"),
        name: name.into(),
        endpoint_mode: mode.into(),
        vips: Vec::new(),
        ports: Vec::new(),
    }
}

/// Networks app (10.0.1.0/24) and other (10.0.2.0/24); on app: c1 (alias
/// db) and web's tasks t1, t2 (running) and t3 (not yet); on other: c2 and
/// api's task t4. The container "cli" is on app, "far" on other.
pub(crate) fn fixture() -> View {
    let networks = [
        network("app-id", "app", "10.0.1.0/24"),
        network("other-id", "other", "10.0.2.0/24"),
    ];
    let endpoints = [
        container("c1c1c1c1c1c1c1c1", "c1", "app-id", "10.0.1.2", &["db"]),
        container("cli", "cli", "app-id", "10.0.1.9", &[]),
        container("far", "far", "other-id", "10.0.2.9", &[]),
        container("c2", "c2", "other-id", "10.0.2.2", &[]),
        task("t1", "web", 1, "app-id", "10.0.1.3"),
        task("t2", "web", 2, "app-id", "10.0.1.4"),
        task("t3", "web", 3, "app-id", "10.0.1.5"),
        task("t4", "api", 1, "other-id", "10.0.2.3"),
    ];
    let services = [
        service("web", "vip"),
        service("api", "dnsrr"),
        service("idle", "vip"),
    ];
    let running: HashSet<&str> = ["t1", "t2", "t4"].into();
    View::build(&networks, &endpoints, &services, &running)
}

fn ips(list: &[&str]) -> Vec<Ipv4Addr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn found(view: &View, owner: &str, name: &str) -> Vec<Ipv4Addr> {
    match view.lookup(owner, &normalize(name)) {
        Lookup::Found(ips) => ips.to_vec(),
        other => panic!("{name} for {owner}: {other:?}"),
    }
}

#[test]
fn a_service_without_a_vip_is_its_running_tasks() {
    let view = fixture();
    assert_eq!(found(&view, "cli", "web"), ips(&["10.0.1.3", "10.0.1.4"]));
    assert_eq!(
        found(&view, "cli", "tasks.web"),
        ips(&["10.0.1.3", "10.0.1.4"])
    );
    assert_eq!(found(&view, "far", "api"), ips(&["10.0.2.3"]), "dnsrr");
}

#[test]
fn a_vip_answers_for_the_service_and_tasks_still_answer_for_tasks() {
    let networks = [network("app-id", "app", "10.0.1.0/24")];
    let endpoints = [
        container("cli", "cli", "app-id", "10.0.1.9", &[]),
        task("t1", "web", 1, "app-id", "10.0.1.3"),
    ];
    let mut web = service("web", "vip");
    web.vips.push(ServiceVip {
        network_id: "app-id".into(),
        ip: "10.0.1.200".parse().unwrap(),
        prefix_len: 24,
    });
    let mut rr = service("rr", "dnsrr");
    rr.vips = web.vips.clone();
    let view = View::build(&networks, &endpoints, &[web, rr], &["t1"].into());
    assert_eq!(found(&view, "cli", "web"), ips(&["10.0.1.200"]));
    assert_eq!(found(&view, "cli", "tasks.web"), ips(&["10.0.1.3"]));
    assert_eq!(
        view.reverse("cli", "10.0.1.200".parse().unwrap()),
        Lookup::Found("web.app")
    );
    assert_eq!(
        view.lookup("cli", "rr"),
        Lookup::Elsewhere,
        "dnsrr never answers with a VIP"
    );
}

#[test]
fn containers_answer_to_name_short_id_and_alias_and_tasks_to_their_name() {
    let view = fixture();
    assert_eq!(found(&view, "cli", "c1"), ips(&["10.0.1.2"]));
    assert_eq!(
        found(&view, "cli", "C1."),
        ips(&["10.0.1.2"]),
        "any case, trailing dot"
    );
    assert_eq!(found(&view, "cli", "c1c1c1c1c1c1"), ips(&["10.0.1.2"]));
    assert_eq!(found(&view, "cli", "db"), ips(&["10.0.1.2"]));
    assert_eq!(found(&view, "cli", "web.1.t1"), ips(&["10.0.1.3"]));
}

#[test]
fn a_task_not_running_is_in_no_answer() {
    let view = fixture();
    assert_eq!(view.lookup("cli", "web.3.t3"), Lookup::Unknown);
    assert_eq!(
        view.reverse("cli", "10.0.1.5".parse().unwrap()),
        Lookup::Elsewhere
    );
    let none_running = View::build(
        &[network("app-id", "app", "10.0.1.0/24")],
        &[
            container("cli", "cli", "app-id", "10.0.1.9", &[]),
            task("t1", "web", 1, "app-id", "10.0.1.3"),
        ],
        &[service("web", "vip")],
        &HashSet::new(),
    );
    assert_eq!(
        none_running.lookup("cli", "web"),
        Lookup::Elsewhere,
        "still the swarm's: never forwarded"
    );
    assert_eq!(none_running.lookup("cli", "tasks.web"), Lookup::Elsewhere);
}

#[test]
fn names_are_scoped_to_the_askers_networks() {
    let view = fixture();
    assert_eq!(view.lookup("cli", "c2"), Lookup::Elsewhere);
    assert_eq!(view.lookup("cli", "api"), Lookup::Elsewhere);
    assert_eq!(view.lookup("far", "web"), Lookup::Elsewhere);
    assert_eq!(found(&view, "far", "c2"), ips(&["10.0.2.2"]));
    assert_eq!(view.lookup("cli", "example.com"), Lookup::Unknown);
    assert_eq!(
        view.lookup("nobody", "c1"),
        Lookup::Elsewhere,
        "a container on no network"
    );
}

#[test]
fn addresses_name_their_owner_on_the_network() {
    let view = fixture();
    let ptr = |owner: &str, ip: &str| view.reverse(owner, ip.parse().unwrap());
    assert_eq!(ptr("cli", "10.0.1.2"), Lookup::Found("c1.app"));
    assert_eq!(ptr("cli", "10.0.1.3"), Lookup::Found("web.1.t1.app"));
    assert_eq!(
        ptr("cli", "10.0.2.2"),
        Lookup::Elsewhere,
        "another network's"
    );
    assert_eq!(
        ptr("cli", "10.0.1.77"),
        Lookup::Elsewhere,
        "an overlay address is never asked upstream"
    );
    assert_eq!(ptr("cli", "192.0.2.1"), Lookup::Unknown);
}

#[test]
fn a_container_on_two_networks_gets_the_first_by_name() {
    let networks = [
        network("b-id", "blue", "10.0.3.0/24"),
        network("a-id", "amber", "10.0.4.0/24"),
    ];
    let endpoints = [
        container("both", "both", "b-id", "10.0.3.9", &[]),
        container("both", "both", "a-id", "10.0.4.9", &[]),
        container("x-blue", "x", "b-id", "10.0.3.2", &[]),
        container("x-amber", "x", "a-id", "10.0.4.2", &[]),
    ];
    let view = View::build(&networks, &endpoints, &[], &HashSet::new());
    assert_eq!(view.scope("both"), ["a-id", "b-id"]);
    assert_eq!(found(&view, "both", "x"), ips(&["10.0.4.2"]));
}

#[test]
fn service_aliases_answer_like_the_service() {
    let mut t = task("t1", "web", 1, "app-id", "10.0.1.3");
    t.aliases = vec!["Front".into()];
    let view = View::build(
        &[network("app-id", "app", "10.0.1.0/24")],
        &[container("cli", "cli", "app-id", "10.0.1.9", &[]), t],
        &[service("web", "vip")],
        &["t1"].into(),
    );
    assert_eq!(found(&view, "cli", "front"), ips(&["10.0.1.3"]));
    assert_eq!(found(&view, "cli", "tasks.front"), ips(&["10.0.1.3"]));

    // With a VIP, the alias answers with it, as the name does (Docker's too).
    let mut t = task("t1", "web", 1, "app-id", "10.0.1.3");
    t.aliases = vec!["Front".into()];
    let mut web = service("web", "vip");
    web.vips.push(ServiceVip {
        network_id: "app-id".into(),
        ip: "10.0.1.200".parse().unwrap(),
        prefix_len: 24,
    });
    let view = View::build(
        &[network("app-id", "app", "10.0.1.0/24")],
        &[container("cli", "cli", "app-id", "10.0.1.9", &[]), t],
        &[web],
        &["t1"].into(),
    );
    assert_eq!(found(&view, "cli", "front"), ips(&["10.0.1.200"]));
    assert_eq!(found(&view, "cli", "web"), ips(&["10.0.1.200"]));
    assert_eq!(found(&view, "cli", "tasks.front"), ips(&["10.0.1.3"]));
}

#[test]
fn before_the_manager_is_heard_nothing_is_ready() {
    assert!(!View::pending().is_ready());
    assert!(View::empty().is_ready());
    assert_eq!(View::empty().lookup("x", "web"), Lookup::Unknown);
}

/// The fixture's names as a watch answer, web with VIP 10.0.1.200 on app
/// (for the load balancer's tests too).
pub(crate) fn watch() -> WatchResponse {
    let mut web = service("web", "vip");
    web.vips.push(ServiceVip {
        network_id: "app-id".into(),
        ip: "10.0.1.200".parse().unwrap(),
        prefix_len: 24,
    });
    WatchResponse {
        revision: 1,
        peers: Vec::new(),
        networks: vec![
            network("app-id", "app", "10.0.1.0/24"),
            network("other-id", "other", "10.0.2.0/24"),
        ],
        endpoints: vec![
            container("cli", "cli", "app-id", "10.0.1.9", &[]),
            container("far", "far", "other-id", "10.0.2.9", &[]),
            task("t1", "web", 1, "app-id", "10.0.1.3"),
            task("t2", "web", 2, "app-id", "10.0.1.4"),
            task("t3", "web", 3, "app-id", "10.0.1.5"),
        ],
        tasks: Vec::new(),
        role: None,
        services: vec![web, service("api", "dnsrr")],
        running_tasks: vec!["t1".into(), "t2".into()],
    }
}

#[test]
fn a_watch_answer_becomes_the_view_with_vips() {
    let view = View::from_watch(&watch());
    assert_eq!(found(&view, "cli", "web"), ips(&["10.0.1.200"]));
    assert_eq!(
        found(&view, "cli", "tasks.web"),
        ips(&["10.0.1.3", "10.0.1.4"])
    );
}
