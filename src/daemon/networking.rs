//! Containers on overlay networks: `container start` plumbs what `create`
//! asked for, `container rm` undoes it, and the steps `attach` and
//! `network connect` share with them. Each change
//! holds the network lock (shared with the agent's reconcile), checks what it
//! can first, and on a failure part-way undoes what it did, in reverse,
//! reporting every teardown error rather than the first.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;

use super::containers::{Container, Egress, NetAttachment, NetRequest, RunState};
use super::namespaces::NsRecord;
use super::swarm::NetCtx;
use super::{blocking, Daemon};
use crate::agent::netagent::LocalUse;
use crate::manager::ipam;
use crate::model::{ApiError, AttachRequest, Endpoint, Network};
use crate::netlink::netns;
use crate::overlay::{GatewayPlug, Plug, SandboxSpec};
use crate::proto::{to_reply, Attachment, Detach};

mod live;

pub use live::sweep_strays;

/// Where network namespaces live: the networks' sandboxes ("1-<id>") and the containers' ("<id12>").
pub const NETNS_DIR: &str = "/run/swarmnet/netns";

/// What `container start` did.
pub(super) enum Started {
    Now,
    /// It was running already (Docker answers 304).
    Already,
}

/// Steps done so far, undone in reverse on failure.
pub(super) enum Step {
    Netns(PathBuf),
    Endpoint(NetAttachment),
    Egress(String),
}

/// The lowest gateway-bridge address (after the bridge's own) that no
/// container holds, by its record (`recorded`) or in fact (`live`: the
/// addresses found in the containers' namespaces).
fn free_egress_ip(
    subnet: Ipv4Network,
    recorded: &[Ipv4Addr],
    live: &[Ipv4Addr],
) -> Result<Ipv4Addr, ApiError> {
    let used: Vec<Ipv4Addr> = recorded.iter().chain(live).copied().collect();
    ipam::lowest_free(subnet, gw_gateway(subnet), &used).ok_or_else(|| {
        ApiError::FailedPrecondition(format!(
            "the gateway bridge's subnet {subnet} is full; remove containers"
        ))
    })
}

/// The gateway bridge's own address: its subnet's first, as a network's gateway.
fn gw_gateway(subnet: Ipv4Network) -> Ipv4Addr {
    ipam::default_gateway(subnet)
}

/// What the containers and namespaces of this host use (for the agent).
pub fn local_use(containers: &[Container], namespaces: &[NsRecord]) -> LocalUse {
    let attachments = containers
        .iter()
        .flat_map(|c| &c.networks)
        .chain(namespaces.iter().flat_map(|n| &n.networks));
    let mut used = LocalUse::default();
    for a in attachments {
        used.networks.insert(a.network_id.clone());
        used.endpoints.insert(a.endpoint_id.clone());
    }
    used
}

impl Daemon {
    /// The swarm's network context, or the error a network name gets outside a swarm.
    pub(super) async fn net_ctx(&self, network: &str) -> Result<NetCtx, ApiError> {
        let slot = self.swarm.lock().await;
        slot.as_ref().map(|s| s.net.clone()).ok_or_else(|| {
            ApiError::NotFound(format!(
                "network {network} not found: this node is not in a swarm; run \"swarmnet swarm init\" or \"swarmnet swarm join\" first"
            ))
        })
    }

    /// `container create`: the name taken, the request kept; nothing is plumbed yet.
    pub(super) fn create_container(
        &self,
        name: Option<String>,
        cmd: Vec<String>,
        networks: Vec<NetRequest>,
    ) -> Result<String, ApiError> {
        Ok(self.containers.prepare(name, cmd, networks)?.id)
    }

    /// `container start`: a created container gets its namespace, networks
    /// and process; an exited one runs again in the namespace it kept.
    pub(super) async fn start_container(&self, name: &str) -> Result<Started, ApiError> {
        // The swarm before the network lock, as every change takes them.
        let asked = self.containers.find(name)?.asked;
        let ctx = match asked.first() {
            Some(first) => Some(self.net_ctx(&first.network).await?),
            None => None,
        };
        let _guard = self.net.lock.lock().await;
        let view = self.containers.find(name)?;
        match view.state {
            RunState::Running => return Ok(Started::Already),
            RunState::Exited => {
                let containers = self.containers.clone();
                let c = view.container;
                blocking(move || containers.restart(c).map(|_| serde_json::Value::Null)).await?;
                return Ok(Started::Now);
            }
            RunState::Created => {}
        }
        let prepared = self
            .containers
            .prepared(&view.container.id)
            .ok_or_else(|| ApiError::NotFound(format!("No such container: {name}")))?;
        if ctx.is_none() && !prepared.networks.is_empty() {
            return Err(ApiError::Conflict(format!(
                "container {name} was connected to a network while starting; start it again"
            )));
        }
        let netns = PathBuf::from(NETNS_DIR).join(&prepared.id[..12]);
        let mut done = Vec::new();
        let result = async {
            netns::create(&netns).map_err(|e| ApiError::Internal(format!("{e:#}")))?;
            done.push(Step::Netns(netns.clone()));
            self.serve_dns(&netns, &prepared.id).await?;
            let mut networks = Vec::new();
            for (i, req) in prepared.networks.iter().enumerate() {
                let attach = AttachRequest {
                    network: req.network.clone(),
                    container_id: prepared.id.clone(),
                    container_name: prepared.name.clone(),
                    aliases: req.aliases.clone(),
                    ip: req.ip,
                };
                let ctx = ctx.as_ref().expect("networks need a swarm");
                let a = self
                    .plug_network(ctx, &netns, format!("eth{i}"), attach, &networks)
                    .await?;
                done.push(Step::Endpoint(a.clone()));
                networks.push(a);
            }
            let egress = match networks.is_empty() {
                true => None,
                false => {
                    let ctx = ctx.as_ref().expect("networks need a swarm");
                    let e = self
                        .plug_egress(ctx, &prepared.id, &netns, format!("eth{}", networks.len()))
                        .await?;
                    done.push(Step::Egress(prepared.id.clone()));
                    Some(e)
                }
            };
            self.serve_vips(&netns, &prepared.id).await?;
            let containers = self.containers.clone();
            let (prepared, netns) = (prepared.clone(), netns.clone());
            blocking(move || {
                containers
                    .start(&prepared, netns, networks, egress)
                    .map(|_| serde_json::Value::Null)
            })
            .await
        }
        .await;
        if let Err(e) = result {
            self.undo(ctx.as_ref(), done).await;
            return Err(e);
        }
        Ok(Started::Now)
    }

    /// `container rm [-f]`: stops it, unplugs and gives back its endpoints,
    /// removes its namespace and files. A created container just goes.
    pub(super) async fn remove_container(&self, name: &str, force: bool) -> Result<(), ApiError> {
        let _guard = self.net.lock.lock().await;
        let view = self.containers.find(name)?;
        if view.state == RunState::Created {
            self.containers.discard(&view.container.id);
            return Ok(());
        }
        let containers = self.containers.clone();
        let c =
            blocking(move || containers.stop_for_removal(view, force).and_then(to_reply)).await?;
        let c: Container = serde_json::from_value(c).map_err(ApiError::internal)?;
        let ctx = match c.networks.first() {
            Some(a) => self.net_ctx(&a.network_name).await.ok(),
            None => None,
        };
        let mut steps = vec![Step::Netns(c.netns.clone())];
        steps.extend(c.networks.iter().cloned().map(Step::Endpoint));
        if c.egress.is_some() {
            steps.push(Step::Egress(c.id.clone()));
        }
        self.undo(ctx.as_ref(), steps).await;
        self.containers.forget(&c)
    }

    /// Gets an endpoint from the manager, then plugs it into `netns` as
    /// `ifname`. `held` are the attachments the container already has: the
    /// manager answers a repeated attach with the endpoint it gave before,
    /// which must be refused here, never undone.
    pub(super) async fn plug_network(
        &self,
        ctx: &NetCtx,
        netns: &Path,
        ifname: String,
        attach: AttachRequest,
        held: &[NetAttachment],
    ) -> Result<NetAttachment, ApiError> {
        let container = attach.container_name.clone();
        let Attachment { endpoint, network } = ctx.link.ask(attach).await?;
        if held.iter().any(|a| a.network_id == network.id) {
            return Err(ApiError::FailedPrecondition(format!(
                "{container} is already attached to network {}",
                network.name
            )));
        }
        self.plug_endpoint(ctx, netns, ifname, &endpoint, &network, &container)
            .await
    }

    /// Plugs an endpoint the manager gave into `netns` as `ifname`; on
    /// failure the endpoint is unplugged and given back.
    pub(super) async fn plug_endpoint(
        &self,
        ctx: &NetCtx,
        netns: &Path,
        ifname: String,
        endpoint: &Endpoint,
        network: &Network,
        container: &str,
    ) -> Result<NetAttachment, ApiError> {
        let sandbox = SandboxSpec::of(network, ctx.mtu, ctx.vtep);
        let a = NetAttachment {
            network_id: network.id.clone(),
            network_name: network.name.clone(),
            endpoint_id: endpoint.id.clone(),
            ifname,
            ip: endpoint.ip,
            prefix_len: sandbox.prefix_len,
            gateway: network.gateway,
            mac: endpoint.mac.clone(),
            mtu: sandbox.mtu,
            aliases: endpoint.aliases.clone(),
        };
        let plugged = async {
            self.net.overlay.ensure_sandbox(&sandbox).await?;
            self.net
                .overlay
                .plug(&Plug {
                    network_id: network.id.clone(),
                    endpoint_id: endpoint.id.clone(),
                    netns: netns.to_path_buf(),
                    ifname: a.ifname.clone(),
                    mac: endpoint.mac_bytes(),
                    ip: endpoint.ip,
                    prefix_len: a.prefix_len,
                    mtu: a.mtu,
                })
                .await
        }
        .await;
        if let Err(e) = plugged {
            self.undo(Some(ctx), vec![Step::Endpoint(a)]).await;
            return Err(ApiError::Internal(format!(
                "cannot attach {container} to network {}: {e:#}",
                network.name
            )));
        }
        tracing::info!(container = %container, network = %network.name, ip = %endpoint.ip, "attached");
        Ok(a)
    }

    /// The container's way out: an interface on the gateway bridge, after its overlay ones.
    pub(super) async fn plug_egress(
        &self,
        ctx: &NetCtx,
        id: &str,
        netns: &Path,
        ifname: String,
    ) -> Result<Egress, ApiError> {
        let recorded = self.containers.egress_addresses();
        let subnet = ctx.gw_subnet;
        let ip = free_egress_ip(
            subnet,
            &recorded,
            &live::addresses(Path::new(NETNS_DIR)).await,
        )?;
        let egress = Egress { ifname, ip };
        let overlay = &self.net.overlay;
        let result = async {
            overlay
                .ensure_gateway_bridge(gw_gateway(subnet), subnet.prefix())
                .await?;
            overlay
                .plug_gateway(&GatewayPlug {
                    endpoint_id: id.to_string(),
                    netns: netns.to_path_buf(),
                    ifname: egress.ifname.clone(),
                    ip,
                    prefix_len: subnet.prefix(),
                    gateway: gw_gateway(subnet),
                    mtu: ctx.underlay_mtu,
                })
                .await
        }
        .await;
        result.map_err(|e| ApiError::Internal(format!("cannot plug the gateway bridge: {e:#}")))?;
        Ok(egress)
    }

    /// Undoes steps in reverse; every failure is logged, none stops the rest.
    pub(super) async fn undo(&self, ctx: Option<&NetCtx>, steps: Vec<Step>) {
        let overlay = &self.net.overlay;
        for step in steps.into_iter().rev() {
            match step {
                Step::Egress(id) => {
                    if let Err(e) = overlay.unplug_gateway(&id).await {
                        tracing::warn!(container = %id, "cannot unplug from the gateway bridge: {e:#}");
                    }
                }
                Step::Endpoint(a) => {
                    if let Err(e) = overlay.unplug(&a.network_id, &a.endpoint_id).await {
                        tracing::warn!(network = %a.network_name, endpoint = %a.endpoint_id, "cannot unplug: {e:#}");
                    }
                    let Some(ctx) = ctx else {
                        tracing::warn!(network = %a.network_name, endpoint = %a.endpoint_id, "not in a swarm: the endpoint stays in the manager");
                        continue;
                    };
                    let req = Detach {
                        endpoint_id: a.endpoint_id.clone(),
                    };
                    if let Err(e) = ctx.link.ask(req).await {
                        tracing::warn!(network = %a.network_name, endpoint = %a.endpoint_id, "cannot give the endpoint back now (the agent will): {e}");
                    }
                }
                Step::Netns(path) => {
                    // Its sockets would keep the namespace alive.
                    self.unserve(&path).await;
                    if let Err(e) = netns::remove(&path) {
                        tracing::warn!(netns = %path.display(), "cannot remove the namespace: {e:#}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<Ipv4Addr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn egress_addresses_skip_the_bridge_and_taken_ones() {
        let subnet: Ipv4Network = "172.19.0.0/16".parse().unwrap();
        let free = |recorded: &[&str], live: &[&str]| {
            free_egress_ip(subnet, &ips(recorded), &ips(live))
                .unwrap()
                .to_string()
        };
        assert_eq!(free(&[], &[]), "172.19.0.2");
        assert_eq!(free(&["172.19.0.2"], &[]), "172.19.0.3");
        assert_eq!(gw_gateway(subnet).to_string(), "172.19.0.1");
        // Live addresses no record owns (a container a crash hid) are taken too.
        assert_eq!(free(&[], &["172.19.0.2", "10.0.1.2"]), "172.19.0.3");
        assert_eq!(
            free(&["172.19.0.2", "172.19.0.4"], &["172.19.0.3", "127.0.0.1"]),
            "172.19.0.5"
        );
        let full: Ipv4Network = "172.19.0.0/30".parse().unwrap();
        let err = free_egress_ip(full, &[], &ips(&["172.19.0.2"])).unwrap_err();
        assert!(err.to_string().contains("172.19.0.0/30 is full"), "{err}");
    }
}
