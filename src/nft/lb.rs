//! Service VIPs as nftables rules, built as data: in each container's
//! namespace, a connection to a VIP of a service on one of its networks is
//! DNATed to one of the service's running tasks there, chosen per connection
//! (conntrack keeps the flow on it); a VIP with no task refuses at once.
//! A task on the ingress network gets the routing mesh's chains in the same
//! table (`mesh.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use super::mesh::{MeshView, TASK_HOOKS};
use super::table::{Hook, Table, SET_CT_TIMEOUT};
use crate::proto::WatchResponse;

/// The table every container's VIP rules live in.
pub const TABLE: &str = "swarmnet_lb";

const VIPS: Hook = Hook {
    name: "vips",
    spec: "type nat hook output priority -100;",
};
const NO_BACKEND: Hook = Hook {
    name: "no_backend",
    spec: "type filter hook output priority filter;",
};
/// The table, with its own chains and the mesh's.
pub const LB: Table = Table {
    name: TABLE,
    hooks: &[
        VIPS,
        NO_BACKEND,
        TASK_HOOKS[0],
        TASK_HOOKS[1],
        TASK_HOOKS[2],
    ],
};

/// The VIPs of every network, with their backends; and who is on which network.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LbView {
    /// Network ID → VIP → its service's running tasks' addresses there, sorted.
    vips: HashMap<String, BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>>,
    /// An endpoint's owner (container or task ID) → its networks.
    scopes: HashMap<String, Vec<String>>,
    /// The routing mesh: published ports on the host, replies' way back in tasks.
    pub mesh: MeshView,
}

impl LbView {
    /// The view node `node` applies.
    pub fn from_watch(update: &WatchResponse, node: &str) -> LbView {
        let running: HashSet<&str> = update.running_tasks.iter().map(String::as_str).collect();
        let mut view = LbView {
            mesh: MeshView::from_watch(update, node),
            ..LbView::default()
        };
        for e in &update.endpoints {
            view.scopes
                .entry(e.container_id.clone())
                .or_default()
                .push(e.network_id.clone());
        }
        // A VIP on ingress is what `service inspect` shows, as Docker's: the
        // mesh leads to the tasks' own addresses, and ingress has no names.
        let ingress = update.networks.iter().find(|n| n.ingress).map(|n| &n.id);
        for s in update
            .services
            .iter()
            .filter(|s| s.endpoint_mode != "dnsrr")
        {
            for vip in s.vips.iter().filter(|v| Some(&v.network_id) != ingress) {
                let mut backends: Vec<Ipv4Addr> = update
                    .endpoints
                    .iter()
                    .filter(|e| e.network_id == vip.network_id)
                    .filter(|e| e.service_id.as_deref() == Some(s.id.as_str()))
                    .filter(|e| e.task_id.as_deref().is_some_and(|t| running.contains(t)))
                    .map(|e| e.ip)
                    .collect();
                backends.sort();
                view.vips
                    .entry(vip.network_id.clone())
                    .or_default()
                    .insert(vip.ip, backends);
            }
        }
        view
    }

    /// The `nft -f` script for `owner`'s namespace: its table made to hold
    /// exactly its rules (applying it twice gives the same rules), or only
    /// deleted when the namespace reaches no VIP and is not on ingress. A
    /// TCP flow to a VIP takes the timeout policy before it is DNATed.
    pub fn script(&self, owner: &str) -> String {
        let mut vips: BTreeMap<Ipv4Addr, &[Ipv4Addr]> = BTreeMap::new();
        for net in self.scopes.get(owner).into_iter().flatten() {
            for (vip, backends) in self.vips.get(net).into_iter().flatten() {
                vips.insert(*vip, backends);
            }
        }
        let (mut dnat, mut refuse, mut served) = (Vec::new(), Vec::new(), Vec::new());
        for (vip, backends) in vips {
            match backends {
                [] => {
                    refuse.push(format!(
                        "ip daddr {vip} meta l4proto tcp reject with tcp reset"
                    ));
                    refuse.push(format!("ip daddr {vip} reject"));
                }
                [one] => {
                    served.push(vip.to_string());
                    dnat.push(format!("ip daddr {vip} dnat to {one}"));
                }
                many => {
                    served.push(vip.to_string());
                    let map: Vec<String> = many
                        .iter()
                        .enumerate()
                        .map(|(i, ip)| format!("{i} : {ip}"))
                        .collect();
                    dnat.push(format!(
                        "ip daddr {vip} dnat to numgen random mod {} map {{ {} }}",
                        many.len(),
                        map.join(", ")
                    ));
                }
            }
        }
        if !served.is_empty() {
            dnat.insert(
                0,
                format!(
                    "ip daddr {{ {} }} meta l4proto tcp {SET_CT_TIMEOUT}",
                    served.join(", ")
                ),
            );
        }
        let mut chains = vec![VIPS.with(dnat), NO_BACKEND.with(refuse)];
        chains.extend(self.mesh.task_chains(owner).into_iter().flatten());
        LB.script(&chains)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::view_fixture::{network, task, watch};
    use crate::proto::ServiceVip;

    #[test]
    fn a_vip_spreads_over_the_running_tasks_of_its_network() {
        let view = LbView::from_watch(&watch(), "n1");
        let script = view.script("cli");
        assert!(script.starts_with("table ip swarmnet_lb {\n    ct timeout swarmnet_tcp {"));
        assert!(
            !script.contains("delete table"),
            "a change keeps the timeout policy: {script}"
        );
        assert!(
            script.contains(
                "        type nat hook output priority -100; policy accept;
        ip daddr { 10.0.1.200 } meta l4proto tcp ct timeout set \"swarmnet_tcp\"
        ip daddr 10.0.1.200 dnat to numgen random mod 2 map { 0 : 10.0.1.3, 1 : 10.0.1.4 }
"
            ),
            "the policy, then the DNAT: {script}"
        );
    }

    #[test]
    fn one_backend_is_plain_dnat_and_none_refuses() {
        let mut update = watch();
        update.running_tasks.retain(|t| t == "t1");
        let script = LbView::from_watch(&update, "n1").script("cli");
        assert!(
            script.contains("ip daddr 10.0.1.200 dnat to 10.0.1.3\n"),
            "{script}"
        );
        update.running_tasks.clear();
        let script = LbView::from_watch(&update, "n1").script("cli");
        assert!(!script.contains("dnat"), "{script}");
        assert!(!script.contains("ct timeout set"), "{script}");
        assert!(script.contains("ip daddr 10.0.1.200 meta l4proto tcp reject with tcp reset"));
    }

    #[test]
    fn a_vip_on_ingress_gets_no_rule() {
        let mut update = watch();
        let mut ingress = network("ingress-id", "ingress", "10.0.0.0/24");
        ingress.ingress = true;
        update.networks.push(ingress);
        update
            .endpoints
            .push(task("t1", "web", 1, "ingress-id", "10.0.0.4"));
        update.services[0].vips.push(ServiceVip {
            network_id: "ingress-id".into(),
            ip: "10.0.0.2".parse().unwrap(),
            prefix_len: 24,
        });
        let script = LbView::from_watch(&update, "n1").script("t1");
        assert!(
            script.contains("ip daddr 10.0.1.200 dnat to numgen"),
            "web's VIP on app: {script}"
        );
        assert!(!script.contains("10.0.0.2"), "none on ingress: {script}");
    }

    #[test]
    fn a_namespace_off_the_vips_network_gets_no_rules() {
        let view = LbView::from_watch(&watch(), "n1");
        assert_eq!(
            view.script("far"),
            "table ip swarmnet_lb\ndelete table ip swarmnet_lb\n"
        );
        assert_eq!(view.script("nobody"), view.script("far"));
    }
}

#[cfg(test)]
mod root_tests {
    use super::*;
    use crate::dns::view_fixture::watch;
    use crate::netlink::netns::{self, ScratchDir};

    fn list(path: &std::path::Path) -> String {
        nft_list(path, &[])
    }

    fn nft_list(path: &std::path::Path, flags: &[&str]) -> String {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .arg("nft")
            .args(flags)
            .args(["list", "table", "ip", TABLE])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The timeout policy object's line with its handle (a new object gets a new one).
    fn policy(path: &std::path::Path) -> String {
        let listed = nft_list(path, &["-a"]);
        let line = listed
            .lines()
            .find(|l| l.contains("ct timeout swarmnet_tcp {"));
        line.unwrap_or_else(|| panic!("no policy: {listed}"))
            .trim()
            .to_string()
    }

    #[test]
    #[ignore = "needs root"]
    fn nft_takes_every_shape_of_script_and_applying_twice_is_the_same() {
        let scratch = ScratchDir::new("lb-nft");
        let path = scratch.path().join("c");
        netns::create(&path).unwrap();
        let mut update = watch();
        let mut kept = None;
        for running in [vec!["t1", "t2"], vec!["t1"], vec![], vec!["t2"]] {
            update.running_tasks = running.iter().map(|t| t.to_string()).collect();
            let script = LbView::from_watch(&update, "n1").script("cli");
            super::super::firewall::run_nft_in(Some(&path), &script).unwrap();
            let first = list(&path);
            super::super::firewall::run_nft_in(Some(&path), &script).unwrap();
            assert_eq!(list(&path), first, "applied twice, the same rules");
            assert!(first.contains("10.0.1.200"), "{first}");
            let chains = first.matches("\tchain ").count();
            assert_eq!(chains, 1, "only the chain in use: {first}");
            // The flows that carry the policy keep it across every change.
            let policy = policy(&path);
            assert_eq!(kept.get_or_insert(policy.clone()), &policy);
        }
        let none = LbView::from_watch(&update, "n1").script("far");
        super::super::firewall::run_nft_in(Some(&path), &none).unwrap();
        assert_eq!(list(&path), "", "the table is gone");
    }
}
