//! A change of the endpoint (the published ports, the endpoint mode) rolls
//! the tasks out as a change of the template does: swarmkit's `IsTaskDirty`
//! compares the task's copy of its service's endpoint too.

use super::*;
use crate::model::PortConfig;

/// Three replicas on three nodes, running for a while, publishing nothing.
fn running() -> Cluster {
    let mut c = Cluster::new(nodes(3), vec![replicated("web", 3)]);
    c.settle();
    c.advance(60_000);
    c
}

/// A change of a service's spec.
type Change = fn(&mut ServiceSpec);

/// 8080 published to 3000/tcp, in `mode`.
fn port(mode: &str) -> PortConfig {
    PortConfig::test(Some(8080), 3000, "tcp", mode)
}

/// The published ports each slot's current task was made with.
fn ports(c: &Cluster) -> Vec<Vec<PortConfig>> {
    c.live("web")
        .iter()
        .map(|t| t.spec.endpoint.as_ref().expect("an endpoint").ports.clone())
        .collect()
}

/// Settles, and lets the last new task run for the monitoring period.
fn complete(c: &mut Cluster) -> UpdateState {
    c.settle();
    c.advance(5_000);
    c.settle();
    c.update_state("web").0
}

#[test]
fn publishing_a_port_rolls_the_tasks_out_one_at_a_time_and_unpublishing_it_again() {
    let mut c = running();
    assert_eq!(ports(&c), [vec![], vec![], vec![]]);
    let port = port("ingress");
    c.update_spec("web", |s| s.ports.push(port.clone()));
    let plan = c.step();
    assert_eq!(ids(&plan.update), ["t1"], "the first slot's task stops");
    assert_eq!(plan.update[0].desired_state, TaskState::Shutdown);
    assert_eq!(
        plan.create.len(),
        1,
        "one at a time, as the update config says"
    );
    let new = &plan.create[0];
    assert_eq!(new.slot, 1);
    assert_eq!(
        new.spec.endpoint.as_ref().unwrap().ports,
        vec![port.clone()]
    );
    assert_eq!(complete(&mut c), UpdateState::Completed);
    assert_eq!(ports(&c), vec![vec![port.clone()]; 3]);

    c.update_spec("web", |s| s.ports.clear());
    assert_eq!(c.step().create.len(), 1, "--publish-rm rolls them out too");
    assert_eq!(complete(&mut c), UpdateState::Completed);
    assert_eq!(ports(&c), [vec![], vec![], vec![]]);
}

#[test]
fn a_new_publish_mode_or_endpoint_mode_makes_the_tasks_outdated() {
    let changes: [(&str, Change); 3] = [
        ("a host-mode port", |s| s.ports = vec![port("host")]),
        ("dnsrr", |s| s.endpoint_mode = "dnsrr".into()),
        ("vip, the port through the mesh", |s| {
            s.endpoint_mode = "vip".into();
            s.ports = vec![port("ingress")];
        }),
    ];
    let mut c = running();
    for (what, change) in changes {
        c.update_spec("web", change);
        assert_eq!(c.step().create.len(), 1, "{what}: the first task replaced");
        assert_eq!(complete(&mut c), UpdateState::Completed, "{what}");
        let wanted = Some(c.services[0].spec.endpoint());
        for t in c.live("web") {
            assert_eq!(t.spec.endpoint, wanted, "{what}");
        }
    }
}

#[test]
fn a_task_that_kept_no_endpoint_is_outdated_by_its_template_only() {
    let mut c = running();
    // Tasks made before tasks kept their service's endpoint.
    for t in &mut c.tasks {
        t.spec.endpoint = None;
    }
    c.update_spec("web", |s| s.ports.push(port("ingress")));
    let plan = c.step();
    assert!(plan.create.is_empty(), "{plan:#?}");
    assert_eq!(complete(&mut c), UpdateState::Completed);
    c.update_template("web", |t| t.env = vec!["A=1".into()]);
    assert_eq!(c.step().create.len(), 1, "a new template still rolls them");
}
