//! The ingress routing mesh as data. On every node, a published port is
//! DNATed to the service's running tasks' addresses on the ingress network
//! (no SNAT: the task sees the client's own address). In each task on
//! ingress, a new connection is marked with the node it came through (by
//! that node's leg MAC), and its replies carry the mark to a routing table
//! whose default route is that node's leg: they leave by the node that has
//! the connection's conntrack entry, which undoes the DNAT.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use super::table::{Chain, Hook, Table, SET_CT_TIMEOUT};
use crate::model::{INGRESS_LEG, INGRESS_SBOX};
use crate::proto::WatchResponse;

/// The host's table for published ports.
pub const HOST_TABLE: &str = "swarmnet_ingress";

const PUBLISHED: Hook = Hook {
    name: "published",
    spec: "type nat hook prerouting priority -100;",
};
const PUBLISHED_HERE: Hook = Hook {
    name: "published_here",
    spec: "type nat hook output priority -100;",
};
const PUBLISHED_FROM_LOOPBACK: Hook = Hook {
    name: "published_from_loopback",
    spec: "type nat hook postrouting priority srcnat;",
};
/// The host's table.
pub const HOST: Table = Table {
    name: HOST_TABLE,
    hooks: &[PUBLISHED, PUBLISHED_HERE, PUBLISHED_FROM_LOOPBACK],
};

/// The chains of a task's table (`lb.rs`) that belong to the mesh.
pub const TASK_HOOKS: [Hook; 3] = [MESH_UDP_SOURCE, MESH_IN, MESH_OUT];
const MESH_UDP_SOURCE: Hook = Hook {
    name: "mesh_udp_source",
    spec: "type filter hook output priority raw;",
};
const MESH_IN: Hook = Hook {
    name: "mesh_in",
    spec: "type filter hook prerouting priority mangle;",
};
const MESH_OUT: Hook = Hook {
    name: "mesh_out",
    spec: "type route hook output priority mangle;",
};

/// A published port and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    protocol: String,
    port: u16,
    target: u16,
    backends: Vec<Ipv4Addr>,
}

/// The mesh as the watch describes it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MeshView {
    published: Vec<Published>,
    /// Every node's leg: its MAC (as nft writes it) and address.
    legs: Vec<(String, Ipv4Addr)>,
    /// A task's address on ingress, by owner (the task's ID).
    on_ingress: BTreeMap<String, Ipv4Addr>,
    /// The UDP ports a task's service publishes its target ports, by owner.
    udp_targets: BTreeMap<String, Vec<u16>>,
    /// Every overlay subnet (where mesh clients never are).
    subnets: Vec<String>,
}

impl MeshView {
    /// The mesh as node `node` applies it (host-mode ports lead only to its own tasks).
    pub fn from_watch(update: &WatchResponse, node: &str) -> MeshView {
        let Some(ingress) = update.networks.iter().find(|n| n.ingress) else {
            return MeshView::default();
        };
        let running: HashSet<&str> = update.running_tasks.iter().map(String::as_str).collect();
        let on_ingress = update
            .endpoints
            .iter()
            .filter(|e| e.network_id == ingress.id);
        let mut view = MeshView::default();
        for e in on_ingress.clone() {
            if e.container_id == INGRESS_SBOX {
                view.legs.push((e.mac.to_lowercase(), e.ip));
            } else if e.task_id.is_some() {
                view.on_ingress.insert(e.container_id.clone(), e.ip);
                let service = update
                    .services
                    .iter()
                    .find(|s| Some(s.id.as_str()) == e.service_id.as_deref());
                let mut udp: Vec<u16> = service
                    .into_iter()
                    .flat_map(|s| &s.ports)
                    .filter(|p| p.protocol == "udp")
                    .map(|p| p.target)
                    .collect();
                udp.sort();
                udp.dedup();
                if !udp.is_empty() {
                    view.udp_targets.insert(e.container_id.clone(), udp);
                }
            }
        }
        view.subnets = update
            .networks
            .iter()
            .map(|n| n.subnet.to_string())
            .collect();
        view.subnets.sort();
        view.legs.sort();
        for s in &update.services {
            for p in &s.ports {
                let Some(port) = p.published else { continue };
                // Host mode: only on a node that runs a task, only to its own.
                let here = p.mode == "host";
                let mut backends: Vec<Ipv4Addr> = on_ingress
                    .clone()
                    .filter(|e| e.service_id.as_deref() == Some(s.id.as_str()))
                    .filter(|e| e.task_id.as_deref().is_some_and(|t| running.contains(t)))
                    .filter(|e| !here || e.node_id == node)
                    .map(|e| e.ip)
                    .collect();
                backends.sort();
                view.published.push(Published {
                    protocol: p.protocol.clone(),
                    port,
                    target: p.target,
                    backends,
                });
            }
        }
        view.published.sort();
        view
    }

    /// The host's `nft -f` script: published ports DNATed to the tasks, for
    /// connections from outside (prerouting) and from the host itself
    /// (output); the host's own `curl localhost:8080` leaves by its leg from
    /// the leg's address (loopback cannot be routed out; the leg lets it
    /// with route_localnet, as Docker does). A TCP flow takes the timeout
    /// policy as it is DNATed.
    pub fn host_script(&self) -> String {
        let mut rules = Vec::new();
        for p in self.published.iter().filter(|p| !p.backends.is_empty()) {
            let map: Vec<String> = p
                .backends
                .iter()
                .enumerate()
                .map(|(i, ip)| format!("{i} : {ip} . {}", p.target))
                .collect();
            let timeout = if p.protocol == "tcp" {
                format!(" {SET_CT_TIMEOUT}")
            } else {
                String::new()
            };
            rules.push(format!(
                "fib daddr type local {} dport {}{timeout} dnat ip to numgen random mod {} map {{ {} }}",
                p.protocol,
                p.port,
                p.backends.len(),
                map.join(", ")
            ));
        }
        let loopback = if rules.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "oifname \"{INGRESS_LEG}\" ip saddr 127.0.0.0/8 masquerade"
            )]
        };
        HOST.script(&[
            PUBLISHED.with(rules.clone()),
            PUBLISHED_HERE.with(rules),
            PUBLISHED_FROM_LOOPBACK.with(loopback),
        ])
    }

    /// The chains a task on ingress needs in its own table (see the module
    /// doc), or None for a namespace not on ingress.
    pub fn task_chains(&self, owner: &str) -> Option<Vec<Chain>> {
        let ip = self.on_ingress.get(owner)?;
        if self.legs.is_empty() {
            return None;
        }
        let map: Vec<String> = self
            .legs
            .iter()
            .map(|(mac, leg)| format!("{mac} : {}", mark(*leg)))
            .collect();
        // A UDP reply's source is picked by the default route before the
        // mark can steer it: set it to the ingress address before conntrack
        // looks, so the reply matches its connection (and is marked, and
        // routed back, and un-DNATed by the node).
        let udp_source = match self.udp_targets.get(owner) {
            Some(ports) => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                let mut inside = self.subnets.clone();
                inside.push("127.0.0.0/8".into());
                vec![format!(
                    "udp sport {{ {} }} ip daddr != {{ {} }} ip saddr != {ip} ip saddr set {ip}",
                    ports.join(", "),
                    inside.join(", ")
                )]
            }
            None => Vec::new(),
        };
        // The mark lives in the flow's entry here: it keeps the timeout
        // policy too, or an idle flow's replies would lose their way back.
        Some(vec![
            MESH_UDP_SOURCE.with(udp_source),
            MESH_IN.with(vec![
                format!("ip daddr {ip} meta l4proto tcp ct state new {SET_CT_TIMEOUT}"),
                format!(
                    "ip daddr {ip} ct state new ct mark set ether saddr map {{ {} }}",
                    map.join(", ")
                ),
            ]),
            MESH_OUT.with(vec!["ct mark != 0 meta mark set ct mark".into()]),
        ])
    }

    /// Where a task's marked replies go: per node, its mark (also the
    /// routing table's number) and its leg's address, the table's default route.
    pub fn routes(&self, owner: &str) -> Vec<(u32, Ipv4Addr)> {
        if !self.on_ingress.contains_key(owner) {
            return Vec::new();
        }
        self.legs
            .iter()
            .map(|(_, leg)| (mark(*leg), *leg))
            .collect()
    }
}

/// A node's mark: its leg's address as a number (unique, and stable while the leg lives).
fn mark(leg: Ipv4Addr) -> u32 {
    u32::from(leg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::view_fixture::{network, task, watch};
    use crate::model::{mac_for, Endpoint, PortConfig};

    fn leg(node: &str, ip: &str) -> Endpoint {
        let ip: Ipv4Addr = ip.parse().unwrap();
        Endpoint {
            id: format!("leg-{node}"),
            network_id: "ingress-id".into(),
            node_id: node.into(),
            container_id: INGRESS_SBOX.into(),
            container_name: "ingress-endpoint".into(),
            aliases: Vec::new(),
            ip,
            mac: mac_for(ip),
            created_at: 0,
            task_id: None,
            service_id: None,
        }
    }

    /// The fixture with ingress: legs of n1 (10.0.0.2) and n2 (10.0.0.3),
    /// web publishing 8080 → 3000 with t1 and t2 on ingress.
    fn meshed() -> WatchResponse {
        let mut update = watch();
        let mut ingress = network("ingress-id", "ingress", "10.0.0.0/24");
        ingress.ingress = true;
        update.networks.push(ingress);
        update.endpoints.push(leg("n1", "10.0.0.2"));
        update.endpoints.push(leg("n2", "10.0.0.3"));
        update
            .endpoints
            .push(task("t1", "web", 1, "ingress-id", "10.0.0.4"));
        update
            .endpoints
            .push(task("t2", "web", 2, "ingress-id", "10.0.0.5"));
        update
            .endpoints
            .push(task("t3", "web", 3, "ingress-id", "10.0.0.6"));
        update.services[0].ports.push(PortConfig {
            protocol: "tcp".into(),
            target: 3000,
            published: Some(8080),
            mode: "ingress".into(),
        });
        update
    }

    #[test]
    fn a_published_port_leads_to_the_running_tasks_on_ingress() {
        let script = MeshView::from_watch(&meshed(), "n1").host_script();
        let rule = "fib daddr type local tcp dport 8080 ct timeout set \"swarmnet_tcp\" dnat ip to numgen random mod 2 map { 0 : 10.0.0.4 . 3000, 1 : 10.0.0.5 . 3000 }";
        assert_eq!(
            script.matches(rule).count(),
            2,
            "from outside and from the host: {script}"
        );
        assert!(!script.contains("snat to"), "the client's address is kept");
        let masquerades: Vec<&str> = script
            .lines()
            .filter(|l| l.contains("masquerade"))
            .collect();
        assert_eq!(
            masquerades,
            ["        oifname \"swarmnet_in\" ip saddr 127.0.0.0/8 masquerade"],
            "only the host's own loopback connections take the leg's address"
        );
    }

    #[test]
    fn a_host_mode_port_leads_only_to_the_node_s_own_tasks() {
        let mut update = meshed();
        update.services[0].ports[0].mode = "host".into();
        let on = |node: &str| MeshView::from_watch(&update, node).host_script();
        assert!(on("n1").contains("tcp dport 8080 ct timeout set \"swarmnet_tcp\" dnat ip to numgen random mod 2 map { 0 : 10.0.0.4 . 3000, 1 : 10.0.0.5 . 3000 }"));
        assert!(
            !on("n2").contains("dport 8080"),
            "no task on n2: {}",
            on("n2")
        );
    }

    #[test]
    fn no_running_task_no_rule_and_no_ingress_no_table() {
        let mut update = meshed();
        update.running_tasks.clear();
        let empty = "table ip swarmnet_ingress\ndelete table ip swarmnet_ingress\n";
        assert_eq!(MeshView::from_watch(&update, "n1").host_script(), empty);
        assert_eq!(MeshView::from_watch(&watch(), "n1").host_script(), empty);
    }

    #[test]
    fn a_published_tcp_flow_keeps_the_timeout_policy_and_a_udp_one_its_own() {
        let mut update = meshed();
        update.services[0].ports.push(PortConfig {
            protocol: "udp".into(),
            target: 53,
            published: Some(5353),
            mode: "ingress".into(),
        });
        let script = MeshView::from_watch(&update, "n1").host_script();
        assert!(
            script.contains("ct timeout swarmnet_tcp {\n        protocol tcp; l3proto ip;\n        policy = { established: 432000 }\n    }"),
            "{script}"
        );
        assert_eq!(script.matches("tcp dport 8080 ct timeout set").count(), 2);
        assert_eq!(
            script.matches("udp dport 5353 dnat ip to").count(),
            2,
            "{script}"
        );
        assert!(
            !script.contains("delete table"),
            "a change keeps the policy: {script}"
        );
    }

    #[test]
    fn a_task_on_ingress_marks_by_the_node_and_routes_replies_back_there() {
        let view = MeshView::from_watch(&meshed(), "n1");
        let chains = view.task_chains("t1").unwrap();
        let rules = |hook: Hook| &chains.iter().find(|c| c.hook == hook).unwrap().rules;
        assert_eq!(
            rules(MESH_IN),
            &[
                // The entry that holds the mark holds the timeout policy too.
                "ip daddr 10.0.0.4 meta l4proto tcp ct state new ct timeout set \"swarmnet_tcp\"",
                "ip daddr 10.0.0.4 ct state new ct mark set ether saddr map { 02:42:0a:00:00:02 : 167772162, 02:42:0a:00:00:03 : 167772163 }",
            ]
        );
        assert_eq!(rules(MESH_OUT), &["ct mark != 0 meta mark set ct mark"]);
        assert!(rules(MESH_UDP_SOURCE).is_empty(), "no UDP port published");
        let leg = |ip: &str| ip.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            view.routes("t1"),
            [(167772162, leg("10.0.0.2")), (167772163, leg("10.0.0.3"))]
        );
        assert_eq!(view.task_chains("cli"), None);
        assert!(view.routes("cli").is_empty());
    }
}
