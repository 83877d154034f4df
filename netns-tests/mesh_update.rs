//! Changing a running service's published ports (issue 11): `service update
//! --publish-add` rolls tasks that published nothing onto the ingress network,
//! so the routing mesh answers the new port on every node from every replica
//! with the client's own address, and the service gets a VIP on ingress;
//! `--publish-rm` of the last port closes it on every node and takes the VIP
//! back, as Docker's update does.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::harness::*;
use crate::mesh::{names, tasks, whoami, Mesh, NODES, WAIT};
use crate::services::converges;

/// Requests per node in a check: every replica answers through each node.
const ASKED: usize = 20;

/// The replicas that answered 8080 through `node`, each to the client's
/// own address; why not, if a request failed or saw another address.
fn answered_through(mesh: &Mesh, node: &str) -> Result<BTreeSet<String>, String> {
    let mut seen = BTreeSet::new();
    for (_, reply) in mesh.curl(&mesh.urls_on(&[node], 8080, ASKED)) {
        let answer = reply.map_err(|e| format!("through {node}: {e}"))?;
        if answer.remote != mesh.client {
            return Err(format!(
                "through {node}, not the client's address: {answer:?}"
            ));
        }
        seen.insert(answer.hostname);
    }
    Ok(seen)
}

/// The nodes where 8080 answered any of three requests from the client.
fn open_on(mesh: &Mesh) -> Vec<&'static str> {
    NODES
        .into_iter()
        .filter(|node| {
            let replies = mesh.curl(&mesh.urls_on(&[node], 8080, 3));
            replies.iter().any(|(_, reply)| reply.is_ok())
        })
        .collect()
}

/// The networks (by ID) of the VIPs `service inspect` shows.
fn vip_networks(lab: &Lab) -> BTreeSet<String> {
    let inspect = stdout(&ok(&lab.sn("vm1", &["service", "inspect", "web"])));
    let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    doc[0]["Endpoint"]["VirtualIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some(v["NetworkID"].as_str()?.to_string()))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn publish_add_opens_the_mesh_on_every_node_and_publish_rm_closes_it() {
    let mesh = Mesh::new();
    let lab = &mesh.lab;
    ok(&lab.sn("vm1", &whoami("web", &["--replicas", "3"])));
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    let unpublished = names(&tasks(lab, "web"));
    let ingress = stdout(&ok(&lab.sn(
        "vm1",
        &["network", "inspect", "--format", "{{.Id}}", "ingress"],
    )))
    .trim()
    .to_string();
    assert_eq!(open_on(&mesh), Vec::<&str>::new(), "8080 is not open yet");
    assert!(!vip_networks(lab).contains(&ingress));

    // The update replaces the three tasks; then every node answers from
    // the new ones.
    let start = Instant::now();
    ok(&lab.sn(
        "vm1",
        &[
            "service",
            "update",
            "--detach",
            "--publish-add",
            "8080:3000",
            "web",
        ],
    ));
    let published = eventually(
        "every node answers 8080 from the new replicas",
        WAIT,
        || {
            let now = names(&tasks(lab, "web"));
            if now.len() != 3 || !now.is_disjoint(&unpublished) {
                return Err(format!("the running tasks are {now:?}"));
            }
            for node in NODES {
                let seen = answered_through(&mesh, node)?;
                if seen != now {
                    return Err(format!("through {node}: {seen:?} of {now:?}"));
                }
            }
            Ok(now)
        },
    );
    eprintln!(
        "--publish-add: every node answers from every new replica after {:?}",
        start.elapsed()
    );
    assert!(
        vip_networks(lab).contains(&ingress),
        "a VIP on ingress while the service publishes through the mesh"
    );

    let start = Instant::now();
    ok(&lab.sn(
        "vm1",
        &[
            "service",
            "update",
            "--detach",
            "--publish-rm",
            "8080",
            "web",
        ],
    ));
    eventually("8080 answers on no node", WAIT, || {
        let open = open_on(&mesh);
        open.is_empty()
            .then_some(())
            .ok_or(format!("still open on {open:?}"))
    });
    eprintln!(
        "--publish-rm: closed on every node after {:?}",
        start.elapsed()
    );
    assert!(
        !vip_networks(lab).contains(&ingress),
        "the ingress VIP is given back"
    );
    // The tasks are replaced again, off ingress.
    converges(lab, "web", &[("vm1", 1), ("vm2", 1), ("vm3", 1)], WAIT);
    eventually("the published tasks are replaced", WAIT, || {
        let now = names(&tasks(lab, "web"));
        (now.len() == 3 && now.is_disjoint(&published))
            .then_some(())
            .ok_or(format!("the running tasks are {now:?}"))
    });
}
