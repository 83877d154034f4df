//! Containers on overlay networks: `container run --network`, `container rm`,
//! and the steps `attach` shares with them. Each change
//! holds the network lock (shared with the agent's reconcile), checks what it
//! can first, and on a failure part-way undoes what it did, in reverse,
//! reporting every teardown error rather than the first.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;

use super::containers::{Container, Containers, Egress, NetAttachment};
use super::namespaces::NsRecord;
use super::swarm::NetCtx;
use super::{blocking, Daemon};
use crate::agent::netagent::{network_mtu, LocalUse};
use crate::agent::netns;
use crate::agent::overlay::{GatewayPlug, Plug, SandboxSpec};
use crate::manager::ipam;
use crate::model::{ApiError, AttachRequest};
use crate::proto::{to_reply, Attachment, ManagerRequest, Reply};

/// Where network namespaces live: the networks' sandboxes ("1-<id>") and the containers' ("<id12>").
pub const NETNS_DIR: &str = "/run/swarmnet/netns";

/// What `container run` asks for on the network side.
#[derive(Debug, Clone, Default)]
pub struct RunNetworks {
    pub networks: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub aliases: Vec<String>,
}

/// Steps done so far, undone in reverse on failure.
pub(super) enum Step {
    Netns(PathBuf),
    Endpoint(NetAttachment),
    Egress(String),
}

/// The lowest gateway-bridge address (after the bridge's own) no container holds.
fn free_egress_ip(subnet: Ipv4Network, used: &[Ipv4Addr]) -> Result<Ipv4Addr, ApiError> {
    ipam::lowest_free(subnet, gw_gateway(subnet), used).ok_or_else(|| {
        ApiError::FailedPrecondition(format!(
            "the gateway bridge's subnet {subnet} is full; remove containers"
        ))
    })
}

/// The gateway bridge's own address: its subnet's first, as a network's gateway.
fn gw_gateway(subnet: Ipv4Network) -> Ipv4Addr {
    ipam::default_gateway(subnet)
}

/// Checks the network options of `container run` on their own.
fn check_run(req: &RunNetworks) -> Result<(), ApiError> {
    if req.networks.is_empty() {
        if req.ip.is_some() {
            return Err(ApiError::InvalidArgument(
                "user specified IP address is supported on user defined networks only: add --network NAME".into(),
            ));
        }
        if !req.aliases.is_empty() {
            return Err(ApiError::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks: add --network NAME".into(),
            ));
        }
    }
    for (i, n) in req.networks.iter().enumerate() {
        if req.networks[..i].contains(n) {
            return Err(ApiError::InvalidArgument(format!(
                "network {n} is given twice: a container has one interface per network"
            )));
        }
    }
    Ok(())
}

/// At start, before any request: removes what a crash left between making a
/// container and recording it: its directory, and its namespace (and with
/// it both veth pairs, overlay and gateway). Sandboxes ("1-...") are the
/// agent's to keep or remove.
pub fn sweep_strays(containers: &Containers) {
    let gone = containers.remove_unrecorded();
    if gone > 0 {
        tracing::info!(
            count = gone,
            "removed the files of containers that were never started"
        );
    }
    let known: Vec<PathBuf> = containers.all().into_iter().map(|c| c.netns).collect();
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let sandbox = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("1-"));
        if sandbox || known.contains(&path) {
            continue;
        }
        match netns::remove(&path) {
            Ok(()) => {
                tracing::info!(netns = %path.display(), "removed a namespace no container holds")
            }
            Err(e) => {
                tracing::warn!(netns = %path.display(), "cannot remove a namespace no container holds: {e:#}")
            }
        }
    }
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

    /// `container run [--network N]... [--ip] [--network-alias]`.
    pub(super) async fn run_container(
        &self,
        name: Option<String>,
        cmd: Vec<String>,
        req: RunNetworks,
    ) -> Reply {
        check_run(&req)?;
        let ctx = match req.networks.first() {
            Some(first) => Some(self.net_ctx(first).await?),
            None => None,
        };
        let _guard = self.net.lock.lock().await;
        let prepared = self.containers.prepare(name, cmd)?;
        let netns = PathBuf::from(NETNS_DIR).join(&prepared.id[..12]);
        let mut done = Vec::new();
        let result = async {
            netns::create(&netns).map_err(|e| ApiError::Internal(format!("{e:#}")))?;
            done.push(Step::Netns(netns.clone()));
            let mut networks = Vec::new();
            for (i, network) in req.networks.iter().enumerate() {
                let attach = AttachRequest {
                    network: network.clone(),
                    container_id: prepared.id.clone(),
                    container_name: prepared.name.clone(),
                    aliases: req.aliases.clone(),
                    ip: if i == 0 { req.ip } else { None },
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
                        .plug_egress(ctx, &prepared.id, &netns, networks.len())
                        .await?;
                    done.push(Step::Egress(prepared.id.clone()));
                    Some(e)
                }
            };
            let containers = self.containers.clone();
            let (prepared, netns) = (prepared.clone(), netns.clone());
            blocking(move || {
                containers
                    .start(&prepared, netns, networks, egress)
                    .and_then(to_reply)
            })
            .await
        }
        .await;
        if result.is_err() {
            self.undo(ctx.as_ref(), done).await;
            self.containers.discard(prepared);
        }
        result
    }

    /// `container rm [-f]`: stops it, unplugs and gives back its endpoints, removes its namespace and files.
    pub(super) async fn remove_container(&self, name: String, force: bool) -> Reply {
        let _guard = self.net.lock.lock().await;
        let containers = self.containers.clone();
        let c =
            blocking(move || containers.stop_for_removal(&name, force).and_then(to_reply)).await?;
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
        self.containers.forget(&c)?;
        to_reply(&c.name)
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
        let reply = ctx.link.call(&ManagerRequest::Attach(attach)).await?;
        let Attachment { endpoint, network } =
            serde_json::from_value(reply).map_err(ApiError::internal)?;
        if held.iter().any(|a| a.network_id == network.id) {
            return Err(ApiError::FailedPrecondition(format!(
                "{container} is already attached to network {}",
                network.name
            )));
        }
        let a = NetAttachment {
            network_id: network.id.clone(),
            network_name: network.name.clone(),
            endpoint_id: endpoint.id.clone(),
            ifname,
            ip: endpoint.ip,
            prefix_len: network.subnet.prefix(),
            gateway: network.gateway,
            mac: endpoint.mac.clone(),
            mtu: network_mtu(&network, ctx.mtu),
            aliases: endpoint.aliases.clone(),
        };
        let plugged = async {
            self.net
                .overlay
                .ensure_sandbox(&SandboxSpec {
                    network_id: network.id.clone(),
                    vni: network.vni,
                    gateway: network.gateway,
                    prefix_len: a.prefix_len,
                    mtu: a.mtu,
                    local_vtep: ctx.vtep,
                })
                .await?;
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
    async fn plug_egress(
        &self,
        ctx: &NetCtx,
        id: &str,
        netns: &Path,
        index: usize,
    ) -> Result<Egress, ApiError> {
        let used = self.containers.egress_addresses();
        let subnet = ctx.gw_subnet;
        let ip = free_egress_ip(subnet, &used)?;
        let egress = Egress {
            ifname: format!("eth{index}"),
            ip,
        };
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
                    let req = ManagerRequest::Detach {
                        endpoint_id: a.endpoint_id.clone(),
                    };
                    if let Err(e) = ctx.link.call(&req).await {
                        tracing::warn!(network = %a.network_name, endpoint = %a.endpoint_id, "cannot give the endpoint back now (the agent will): {e}");
                    }
                }
                Step::Netns(path) => {
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

    #[test]
    fn run_options_are_checked_before_anything_is_made() {
        let bad = [
            (
                RunNetworks {
                    ip: Some("10.0.0.5".parse().unwrap()),
                    ..Default::default()
                },
                "user defined networks only",
            ),
            (
                RunNetworks {
                    aliases: vec!["db".into()],
                    ..Default::default()
                },
                "network-scoped alias",
            ),
            (
                RunNetworks {
                    networks: vec!["blue".into(), "blue".into()],
                    ..Default::default()
                },
                "given twice",
            ),
        ];
        for (req, needle) in bad {
            let err = check_run(&req).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        assert!(check_run(&RunNetworks::default()).is_ok());
    }

    #[test]
    fn egress_addresses_skip_the_bridge_and_taken_ones() {
        let subnet: Ipv4Network = "172.19.0.0/16".parse().unwrap();
        assert_eq!(
            free_egress_ip(subnet, &[]).unwrap().to_string(),
            "172.19.0.2"
        );
        let used = ["172.19.0.2".parse().unwrap()];
        assert_eq!(
            free_egress_ip(subnet, &used).unwrap().to_string(),
            "172.19.0.3"
        );
        assert_eq!(gw_gateway(subnet).to_string(), "172.19.0.1");
    }
}
