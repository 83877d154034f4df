//! Service VIPs as nftables rules, built as data: in each container's
//! namespace, a connection to a VIP of a service on one of its networks is
//! DNATed to one of the service's running tasks there, chosen per connection
//! (conntrack keeps the flow on it); a VIP with no task refuses at once.
//! A task on the ingress network gets the routing mesh's chains in the same
//! table (`mesh.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use super::mesh::MeshView;
use crate::proto::WatchResponse;

/// The table every container's VIP rules live in.
pub const TABLE: &str = "swarmnet_lb";

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

    /// The `nft -f` script for `owner`'s namespace: the table made whole again
    /// (so applying it twice gives the same rules), or only deleted when the
    /// namespace reaches no VIP.
    pub fn script(&self, owner: &str) -> String {
        let mut vips: BTreeMap<Ipv4Addr, &[Ipv4Addr]> = BTreeMap::new();
        for net in self.scopes.get(owner).into_iter().flatten() {
            for (vip, backends) in self.vips.get(net).into_iter().flatten() {
                vips.insert(*vip, backends);
            }
        }
        let mut script = format!("table ip {TABLE}\ndelete table ip {TABLE}\n");
        let mesh = self.mesh.task_chains(owner);
        if vips.is_empty() && mesh.is_none() {
            return script;
        }
        let (mut dnat, mut refuse) = (String::new(), String::new());
        for (vip, backends) in vips {
            match backends {
                [] => {
                    let _ = writeln!(
                        refuse,
                        "        ip daddr {vip} meta l4proto tcp reject with tcp reset"
                    );
                    let _ = writeln!(refuse, "        ip daddr {vip} reject");
                }
                [one] => {
                    let _ = writeln!(dnat, "        ip daddr {vip} dnat to {one}");
                }
                many => {
                    let map: Vec<String> = many
                        .iter()
                        .enumerate()
                        .map(|(i, ip)| format!("{i} : {ip}"))
                        .collect();
                    let _ = writeln!(
                        dnat,
                        "        ip daddr {vip} dnat to numgen random mod {} map {{ {} }}",
                        many.len(),
                        map.join(", ")
                    );
                }
            }
        }
        let _ = write!(
            script,
            "table ip {TABLE} {{
    chain vips {{
        type nat hook output priority -100; policy accept;
{dnat}    }}
    chain no_backend {{
        type filter hook output priority filter; policy accept;
{refuse}    }}
{}}}
",
            mesh.unwrap_or_default()
        );
        script
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
        assert!(script.starts_with("table ip swarmnet_lb\ndelete table ip swarmnet_lb\n"));
        assert!(
            script.contains("ip daddr 10.0.1.200 dnat to numgen random mod 2 map { 0 : 10.0.1.3, 1 : 10.0.1.4 }"),
            "{script}"
        );
        assert!(script.contains("type nat hook output priority -100"));
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
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["nft", "list", "table", "ip", TABLE])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    #[ignore = "needs root"]
    fn nft_takes_every_shape_of_script_and_applying_twice_is_the_same() {
        let scratch = ScratchDir::new("lb-nft");
        let path = scratch.path().join("c");
        netns::create(&path).unwrap();
        let mut update = watch();
        for running in [vec!["t1", "t2"], vec!["t1"], vec![]] {
            update.running_tasks = running.iter().map(|t| t.to_string()).collect();
            let script = LbView::from_watch(&update, "n1").script("cli");
            super::super::firewall::run_nft_in(Some(&path), &script).unwrap();
            let first = list(&path);
            super::super::firewall::run_nft_in(Some(&path), &script).unwrap();
            assert_eq!(list(&path), first, "applied twice, the same rules");
            assert!(first.contains("10.0.1.200"), "{first}");
        }
        let none = LbView::from_watch(&update, "n1").script("far");
        super::super::firewall::run_nft_in(Some(&path), &none).unwrap();
        assert_eq!(list(&path), "", "the table is gone");
    }
}
