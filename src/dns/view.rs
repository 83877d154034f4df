//! The names the resolver knows, as a plain value built from the agent's copy
//! of the endpoint table and swapped whole when it changes: per network, each
//! name's addresses and each address's name. Lookups are scoped to the
//! networks the asking container is on.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::model::{Endpoint, Network};
use crate::proto::{ServiceName, WatchResponse};

/// What a name (or an address) is to an asker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// On a network the asker shares: its addresses (never empty), or its name.
    Found(T),
    /// A name of the swarm, on no network the asker is on: NXDOMAIN, and never asked upstream.
    Elsewhere,
    /// Not a name of the swarm: the upstream resolvers' to answer.
    Unknown,
}

/// One network's names.
#[derive(Debug, Default)]
struct NetNames {
    hosts: HashMap<String, Vec<Ipv4Addr>>,
    ptr: HashMap<Ipv4Addr, String>,
}

/// Every network's names, and which networks each container is on.
#[derive(Debug, Default)]
pub struct View {
    /// False until the first watch answer: then a name of the swarm cannot be
    /// told from another, so nothing is answered or forwarded.
    ready: bool,
    nets: HashMap<String, NetNames>,
    /// An endpoint's owner (container or task ID) → its networks, by network name.
    scopes: HashMap<String, Vec<String>>,
    /// Every name on any network, so that none is ever forwarded upstream.
    swarm_names: HashSet<String>,
    /// The overlay subnets: reverse lookups in them are never forwarded either.
    subnets: Vec<Ipv4Network>,
}

/// A name as the tables hold it: lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl View {
    /// The view before the manager has been heard from.
    pub fn pending() -> View {
        View::default()
    }

    /// A view with no names, for a daemon outside any swarm: everything is forwarded.
    pub fn empty() -> View {
        View {
            ready: true,
            ..View::default()
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Builds the view from a watch answer.
    pub fn from_watch(update: &WatchResponse) -> View {
        let running: HashSet<&str> = update.running_tasks.iter().map(String::as_str).collect();
        View::build(
            &update.networks,
            &update.endpoints,
            &update.services,
            &running,
        )
    }

    /// Names per network: every standalone container by its name, short ID and
    /// aliases; every running task by its name; every service by its name and
    /// its network aliases (the VIP in vip mode once it has one, else every
    /// running task's address), and `tasks.NAME` (every running task's address).
    pub fn build(
        networks: &[Network],
        endpoints: &[Endpoint],
        services: &[ServiceName],
        running: &HashSet<&str>,
    ) -> View {
        // The routing mesh's network has no names, as in Docker.
        let net_names: HashMap<&str, &str> = networks
            .iter()
            .filter(|n| !n.ingress)
            .map(|n| (n.id.as_str(), n.name.as_str()))
            .collect();
        let services_by_id: HashMap<&str, &ServiceName> =
            services.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut view = View {
            ready: true,
            subnets: networks.iter().map(|n| n.subnet).collect(),
            ..View::default()
        };
        // Service-level names (service name, its aliases, tasks.*) per network → task addresses.
        let mut members: HashMap<(&str, String), Vec<Ipv4Addr>> = HashMap::new();
        // A service's network aliases, per network, as its tasks carry them:
        // in vip mode they answer with the VIP, as the service's name does.
        let mut service_aliases: HashMap<(&str, &str), Vec<String>> = HashMap::new();
        for e in endpoints {
            let Some(&net_name) = net_names.get(e.network_id.as_str()) else {
                continue;
            };
            view.scopes
                .entry(e.container_id.clone())
                .or_default()
                .push(e.network_id.clone());
            let net = view.nets.entry(e.network_id.clone()).or_default();
            match (&e.task_id, &e.service_id) {
                (Some(task), Some(service)) => {
                    if !running.contains(task.as_str()) {
                        continue;
                    }
                    add(net, &e.container_name, e.ip);
                    net.ptr
                        .insert(e.ip, format!("{}.{net_name}", e.container_name));
                    let Some(svc) = services_by_id.get(service.as_str()) else {
                        continue;
                    };
                    service_aliases
                        .entry((e.network_id.as_str(), service.as_str()))
                        .or_default()
                        .extend(e.aliases.iter().map(|a| normalize(a)));
                    for name in std::iter::once(&svc.name).chain(&e.aliases) {
                        let name = normalize(name);
                        let net_id = e.network_id.as_str();
                        members
                            .entry((net_id, format!("tasks.{name}")))
                            .or_default()
                            .push(e.ip);
                        members.entry((net_id, name)).or_default().push(e.ip);
                    }
                }
                _ => {
                    add(net, &e.container_name, e.ip);
                    if let Some(short) = e.container_id.get(..12) {
                        add(net, short, e.ip);
                    }
                    for alias in &e.aliases {
                        add(net, alias, e.ip);
                    }
                    net.ptr
                        .insert(e.ip, format!("{}.{net_name}", e.container_name));
                }
            }
        }
        for ((net_id, name), mut ips) in members {
            ips.sort();
            ips.dedup();
            let net = view.nets.entry(net_id.to_string()).or_default();
            net.hosts.entry(name).or_default().extend(ips);
        }
        for svc in services {
            let vip_mode = svc.endpoint_mode != "dnsrr";
            for vip in svc.vips.iter().filter(|_| vip_mode) {
                let Some(&net_name) = net_names.get(vip.network_id.as_str()) else {
                    continue;
                };
                let net = view.nets.entry(vip.network_id.clone()).or_default();
                // A VIP answers for the service's name and aliases instead of its tasks.
                net.hosts.insert(normalize(&svc.name), vec![vip.ip]);
                let key = (vip.network_id.as_str(), svc.id.as_str());
                for alias in service_aliases.get(&key).into_iter().flatten() {
                    net.hosts.insert(alias.clone(), vec![vip.ip]);
                }
                net.ptr.insert(vip.ip, format!("{}.{net_name}", svc.name));
            }
            // A service with no running task is still a name of the swarm.
            view.swarm_names.insert(normalize(&svc.name));
            view.swarm_names
                .insert(format!("tasks.{}", normalize(&svc.name)));
        }
        for net in view.nets.values_mut() {
            for ips in net.hosts.values_mut() {
                ips.sort();
                ips.dedup();
            }
            view.swarm_names.extend(net.hosts.keys().cloned());
        }
        for nets in view.scopes.values_mut() {
            nets.sort_by_key(|id| net_names.get(id.as_str()).copied().unwrap_or_default());
            nets.dedup();
        }
        view
    }

    /// The networks `owner` (a container's or task's ID) is on, in order of name.
    pub fn scope(&self, owner: &str) -> &[String] {
        self.scopes
            .get(owner)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// `name` (normalized) as `owner` sees it: the first of its networks, by
    /// name, that has it answers.
    pub fn lookup(&self, owner: &str, name: &str) -> Lookup<&[Ipv4Addr]> {
        for net in self.scope(owner) {
            if let Some(ips) = self.nets.get(net).and_then(|n| n.hosts.get(name)) {
                if !ips.is_empty() {
                    return Lookup::Found(ips);
                }
            }
        }
        if self.swarm_names.contains(name) {
            Lookup::Elsewhere
        } else {
            Lookup::Unknown
        }
    }

    /// The name of `ip` for `owner`: `NAME.NETWORK`, as Docker answers PTR.
    /// Any address in an overlay subnet is the swarm's, never asked upstream.
    pub fn reverse(&self, owner: &str, ip: Ipv4Addr) -> Lookup<&str> {
        for net in self.scope(owner) {
            if let Some(name) = self.nets.get(net).and_then(|n| n.ptr.get(&ip)) {
                return Lookup::Found(name);
            }
        }
        if self.subnets.iter().any(|s| s.contains(ip)) {
            Lookup::Elsewhere
        } else {
            Lookup::Unknown
        }
    }
}

fn add(net: &mut NetNames, name: &str, ip: Ipv4Addr) {
    net.hosts.entry(normalize(name)).or_default().push(ip);
}

#[cfg(test)]
pub(crate) mod tests;
