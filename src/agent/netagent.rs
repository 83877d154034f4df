//! Keeps this host's overlay sandboxes equal to what the manager's endpoint
//! table and the local containers ask for: one sandbox per network a local
//! container uses, its VXLAN forwarding set to the endpoints on other nodes,
//! no sandbox left for a network nothing here uses, and no endpoint left in
//! the manager for a container this host no longer has.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use super::membership::ManagerLink;
use crate::model::{INGRESS_LEG, INGRESS_SBOX};
use crate::netlink::Ns;
use crate::overlay::{Overlay, Plug, RemoteEndpoint, SandboxSpec};
use crate::proto::{Detach, WatchResponse};

/// VXLAN's overhead inside the mesh: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// What the containers of this host use, from its own registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalUse {
    pub networks: BTreeSet<String>,
    pub endpoints: BTreeSet<String>,
}

/// The reads the agent needs from the daemon: its containers' networks.
pub type LocalSource = Arc<dyn Fn() -> LocalUse + Send + Sync>;

/// One network's sandbox as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPlan {
    pub name: String,
    pub spec: SandboxSpec,
    pub remotes: Vec<RemoteEndpoint>,
}

/// What a reconcile does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub sandboxes: Vec<SandboxPlan>,
    /// Sandboxes (by their network-ID prefix) no local container uses.
    pub remove: Vec<String>,
    /// This node's endpoints in the manager that no local container holds,
    /// as (network ID, endpoint ID).
    pub orphans: Vec<(String, String)>,
}

/// How this node sits in the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local<'a> {
    pub node_id: &'a str,
    pub vtep: Ipv4Addr,
    /// The MTU inside the overlay unless a network sets its own.
    pub mtu: u32,
}

/// The pure part of a reconcile: the wanted sandboxes, the ones to remove and
/// the endpoints to give back.
pub fn plan(local: Local<'_>, update: &WatchResponse, used: &LocalUse, present: &[String]) -> Plan {
    // This node's leg on the ingress network needs its sandbox, and is not an orphan.
    let mut used = used.clone();
    for leg in update
        .endpoints
        .iter()
        .filter(|e| e.node_id == local.node_id && e.container_id == INGRESS_SBOX)
    {
        used.networks.insert(leg.network_id.clone());
        used.endpoints.insert(leg.id.clone());
    }
    let used = &used;
    let vteps: HashMap<&str, Ipv4Addr> = update
        .peers
        .iter()
        .map(|p| (p.node_id.as_str(), p.tunnel_addr))
        .collect();
    let sandboxes: Vec<SandboxPlan> = update
        .networks
        .iter()
        .filter(|n| used.networks.contains(&n.id))
        .map(|n| {
            let mut remotes: Vec<RemoteEndpoint> = update
                .endpoints
                .iter()
                .filter(|e| e.network_id == n.id && e.node_id != local.node_id)
                .filter_map(|e| {
                    Some(RemoteEndpoint {
                        mac: e.mac_bytes(),
                        ip: e.ip,
                        vtep: *vteps.get(e.node_id.as_str())?,
                    })
                })
                .collect();
            remotes.sort();
            SandboxPlan {
                name: n.name.clone(),
                spec: SandboxSpec::of(n, local.mtu, local.vtep),
                remotes,
            }
        })
        .collect();
    let remove = present
        .iter()
        .filter(|prefix| !used.networks.iter().any(|id| id.starts_with(*prefix)))
        .cloned()
        .collect();
    let orphans = update
        .endpoints
        .iter()
        .filter(|e| e.node_id == local.node_id && !used.endpoints.contains(&e.id))
        // A task's addresses are the manager's to give back, when the task ends.
        .filter(|e| e.task_id.is_none())
        .map(|e| (e.network_id.clone(), e.id.clone()))
        .collect();
    Plan {
        sandboxes,
        remove,
        orphans,
    }
}

/// The overlay side of the agent.
pub struct NetAgent {
    pub overlay: Arc<Overlay>,
    /// Held by the daemon across a container's attach or detach, and by a
    /// reconcile, so a reconcile never sees a container half made.
    pub lock: Arc<tokio::sync::Mutex<()>>,
    pub local: LocalSource,
    pub vtep: Ipv4Addr,
    /// The MTU inside the overlay (the mesh's minus VXLAN's overhead).
    pub mtu: u32,
}

impl NetAgent {
    /// Makes the sandboxes match the update and the local containers, and
    /// gives back endpoints no local container holds.
    pub async fn reconcile(&self, link: &ManagerLink, update: &WatchResponse) {
        let _guard = self.lock.lock().await;
        let used = (self.local)();
        let local = Local {
            node_id: &link.node_id,
            vtep: self.vtep,
            mtu: self.mtu,
        };
        let plan = plan(local, update, &used, &self.overlay.sandboxes());
        apply(&self.overlay, &plan).await;
        self.plug_leg(&link.node_id, update).await;
        for (network_id, endpoint_id) in plan.orphans {
            // Its veth (and so its address and MAC) goes first, so the
            // address can never answer twice once the manager reuses it.
            if let Err(e) = self.overlay.unplug(&network_id, &endpoint_id).await {
                tracing::warn!(endpoint = %endpoint_id, "cannot unplug an endpoint no container holds: {e:#}");
                continue;
            }
            let req = Detach {
                endpoint_id: endpoint_id.clone(),
            };
            match link.ask(req).await {
                Ok(_) => {
                    tracing::info!(endpoint = %endpoint_id, "gave back an endpoint no container here holds")
                }
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint_id, "cannot give back an endpoint: {e}")
                }
            }
        }
    }
}

impl NetAgent {
    /// Plugs this node's leg on the ingress network into the host (once),
    /// through which published ports reach the tasks.
    async fn plug_leg(&self, node_id: &str, update: &WatchResponse) {
        let Some(leg) = update
            .endpoints
            .iter()
            .find(|e| e.node_id == node_id && e.container_id == INGRESS_SBOX)
        else {
            return;
        };
        let Some(network) = update.networks.iter().find(|n| n.id == leg.network_id) else {
            return;
        };
        // The daemon's own namespace: its main thread never enters another.
        let host = PathBuf::from("/proc/self/ns/net");
        match Ns::open(&host).await {
            Ok(ns) => match ns.index(INGRESS_LEG).await {
                Ok(Some(_)) => return route_localnet(),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("cannot look for the ingress leg: {e:#}");
                    return;
                }
            },
            Err(e) => {
                tracing::warn!("cannot open the host's namespace: {e:#}");
                return;
            }
        }
        let plug = Plug {
            network_id: network.id.clone(),
            endpoint_id: leg.id.clone(),
            netns: host,
            ifname: INGRESS_LEG.into(),
            mac: leg.mac_bytes(),
            ip: leg.ip,
            prefix_len: network.subnet.prefix(),
            mtu: network.mtu.unwrap_or(self.mtu),
        };
        match self.overlay.plug(&plug).await {
            Ok(()) => {
                route_localnet();
                tracing::info!(ip = %leg.ip, "ingress leg plugged: published ports reach the tasks")
            }
            Err(e) => tracing::warn!("cannot plug the ingress leg: {e:#}"),
        }
    }
}

/// Lets the host's own connections to its published ports (from 127.0.0.1,
/// DNATed to a task) leave by the leg, where they are masqueraded.
fn route_localnet() {
    let path = format!("/proc/sys/net/ipv4/conf/{INGRESS_LEG}/route_localnet");
    if let Err(e) = std::fs::write(&path, "1") {
        tracing::warn!("cannot set {path}: {e}");
    }
}

/// Applies a plan's kernel part.
/// Each failure is logged with the network it concerns, and the rest goes on.
pub async fn apply(overlay: &Overlay, plan: &Plan) {
    for sandbox in &plan.sandboxes {
        let result = async {
            overlay.ensure_sandbox(&sandbox.spec).await?;
            overlay
                .set_remotes(&sandbox.spec.network_id, &sandbox.remotes)
                .await
        }
        .await;
        match result {
            Ok((0, 0)) => {}
            Ok((set, removed)) => tracing::info!(
                network = %sandbox.name,
                remotes = sandbox.remotes.len(),
                set,
                removed,
                "overlay forwarding updated"
            ),
            Err(e) => {
                tracing::warn!(network = %sandbox.name, "cannot program the overlay sandbox: {e:#}")
            }
        }
    }
    for prefix in &plan.remove {
        match overlay.remove_sandbox(prefix).await {
            Ok(()) => {
                tracing::info!(network = %prefix, "overlay sandbox removed: nothing here uses it")
            }
            Err(e) => tracing::warn!(network = %prefix, "cannot remove the overlay sandbox: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{mac_for, Endpoint, Network};
    use crate::proto::MeshPeer;

    fn network(id: &str, subnet: &str, vni: u32, mtu: Option<u32>) -> Network {
        let subnet: ipnetwork::Ipv4Network = subnet.parse().unwrap();
        Network {
            id: id.into(),
            name: format!("net-{id}"),
            attachable: true,
            ingress: false,
            subnet,
            gateway: subnet.nth(1).unwrap(),
            vni,
            mtu,
            allow_overlap: false,
            from_pool: false,
            options: Default::default(),
            created_at: 0,
            labels: Default::default(),
            removing: false,
        }
    }

    fn endpoint(id: &str, network: &str, node: &str, ip: &str) -> Endpoint {
        let ip = ip.parse().unwrap();
        Endpoint {
            id: id.into(),
            network_id: network.into(),
            node_id: node.into(),
            container_id: format!("c-{id}"),
            container_name: format!("c-{id}"),
            aliases: vec![],
            ip,
            mac: mac_for(ip),
            created_at: 0,
            task_id: None,
            service_id: None,
        }
    }

    fn peer(node: &str, tunnel: &str) -> MeshPeer {
        MeshPeer {
            node_id: node.into(),
            wg_public_key: String::new(),
            endpoint: "192.168.99.100:51820".parse().unwrap(),
            tunnel_addr: tunnel.parse().unwrap(),
        }
    }

    #[test]
    fn sandboxes_follow_local_use_and_forward_to_other_nodes_endpoints() {
        let update = WatchResponse {
            revision: 7,
            peers: vec![peer("me", "100.64.0.1"), peer("b", "100.64.0.2")],
            networks: vec![
                network("blue0000000000", "10.20.0.0/24", 4097, None),
                network("red00000000000", "10.30.0.0/24", 4098, Some(1300)),
            ],
            endpoints: vec![
                endpoint("e1", "blue0000000000", "me", "10.20.0.2"),
                endpoint("e2", "blue0000000000", "b", "10.20.0.3"),
                endpoint("e3", "red00000000000", "b", "10.30.0.2"),
                endpoint("e4", "blue0000000000", "gone", "10.20.0.4"),
                endpoint("e5", "blue0000000000", "me", "10.20.0.5"),
            ],
            tasks: Vec::new(),
            role: None,
            services: Vec::new(),
            running_tasks: Vec::new(),
        };
        let used = LocalUse {
            networks: ["blue0000000000".to_string()].into(),
            endpoints: ["e1".to_string()].into(),
        };
        let local = Local {
            node_id: "me",
            vtep: "100.64.0.1".parse().unwrap(),
            mtu: 1370,
        };
        let present = vec!["blue000000".to_string(), "old0000000".to_string()];
        let plan = plan(local, &update, &used, &present);
        assert_eq!(plan.sandboxes.len(), 1, "red is used only on b");
        let blue = &plan.sandboxes[0];
        assert_eq!(blue.spec.vni, 4097);
        assert_eq!(blue.spec.mtu, 1370);
        assert_eq!(blue.spec.gateway.to_string(), "10.20.0.1");
        assert_eq!(blue.spec.local_vtep.to_string(), "100.64.0.1");
        assert_eq!(
            blue.remotes,
            vec![RemoteEndpoint {
                mac: [2, 0x42, 10, 20, 0, 3],
                ip: "10.20.0.3".parse().unwrap(),
                vtep: "100.64.0.2".parse().unwrap(),
            }],
            "only endpoints on other nodes still in the mesh"
        );
        assert_eq!(plan.remove, vec!["old0000000".to_string()]);
        assert_eq!(
            plan.orphans,
            vec![("blue0000000000".to_string(), "e5".to_string())]
        );
    }

    #[test]
    fn a_network_mtu_option_wins() {
        let vtep = "100.64.0.1".parse().unwrap();
        let n = network("x", "10.0.0.0/24", 4096, Some(1300));
        assert_eq!(SandboxSpec::of(&n, 1370, vtep).mtu, 1300);
        let n = network("x", "10.0.0.0/24", 4096, None);
        let spec = SandboxSpec::of(&n, 1370, vtep);
        assert_eq!(
            (spec.mtu, spec.prefix_len, spec.local_vtep),
            (1370, 24, vtep)
        );
    }
}
