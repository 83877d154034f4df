//! Interfaces added to a namespace after it started: `container
//! attach|detach --network N PATH` for namespaces made by other tools (`ip
//! netns add`, a container runtime), which get an overlay interface but no
//! way out (their default route is their owner's); and `network
//! connect|disconnect` for swarmnet's own containers, which get the next
//! ethN (and the gateway bridge, if it is their first network).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::containers::{Container, NetAttachment, NetRequest, RunState};
use super::networking::{Step, NETNS_DIR};
use super::Daemon;
use crate::model::{ApiError, AttachRequest};

/// Refuses a path that is not a network namespace file of its own: not
/// absolute, not a namespace, swarmnet's own (a sandbox, a container's), or
/// the host's (the daemon's or init's).
fn check_netns_path(path: &Path) -> Result<(), ApiError> {
    let not_netns = |why: String| {
        ApiError::InvalidArgument(format!(
            "{} {why}: give a network namespace, e.g. /run/netns/NAME made with \"ip netns add NAME\"",
            path.display()
        ))
    };
    if !path.is_absolute() {
        return Err(not_netns("is not an absolute path".into()));
    }
    if path.starts_with(NETNS_DIR) {
        return Err(not_netns(
            "is swarmnet's own (a sandbox or a container's namespace)".into(),
        ));
    }
    let stat = nix::sys::statfs::statfs(path).map_err(|e| match e {
        nix::errno::Errno::ENOENT => not_netns("does not exist".into()),
        other => not_netns(format!("cannot be read ({other})")),
    })?;
    if stat.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(not_netns("is not a namespace".into()));
    }
    let ns = std::fs::File::open(path).map_err(|e| not_netns(format!("cannot be opened ({e})")))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns the namespace's type.
    let kind = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&ns), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(not_netns(
            "is a namespace but not a network namespace".into(),
        ));
    }
    use std::os::unix::fs::MetadataExt;
    let meta = ns
        .metadata()
        .map_err(|e| not_netns(format!("cannot be read ({e})")))?;
    for host in ["/proc/self/ns/net", "/proc/1/ns/net"] {
        if std::fs::metadata(host).is_ok_and(|h| h.ino() == meta.ino() && h.dev() == meta.dev()) {
            return Err(not_netns("is the host's own network namespace".into()));
        }
    }
    Ok(())
}

/// Whether an attachment is on the network named by name, ID or ID prefix,
/// as the manager finds networks.
fn on_network(a: &NetAttachment, network: &str) -> bool {
    a.network_name == network || (!network.is_empty() && a.network_id.starts_with(network))
}

/// ioctl(2) on a namespace file: its type (linux/nsfs.h, _IO(0xb7, 0x3)).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

impl Daemon {
    /// `container attach --network N [--ip] [--network-alias A] PATH`: a
    /// namespace made by another tool gets an interface on the network.
    pub(super) async fn attach_namespace(
        &self,
        network: String,
        path: PathBuf,
        ip: Option<Ipv4Addr>,
        aliases: Vec<String>,
    ) -> Result<NetAttachment, ApiError> {
        check_netns_path(&path)?;
        let ctx = self.net_ctx(&network).await?;
        let _guard = self.net.lock.lock().await;
        let mut record = self.namespaces.get(&path);
        if let Some(a) = record.networks.iter().find(|a| on_network(a, &network)) {
            return Err(ApiError::FailedPrecondition(format!(
                "namespace {} is already attached to network {}",
                path.display(),
                a.network_name
            )));
        }
        let attach = AttachRequest {
            network,
            container_id: path.display().to_string(),
            container_name: record.name(),
            aliases,
            ip,
        };
        let ifname = record.next_ifname();
        let a = self
            .plug_network(&ctx, &path, ifname, attach, &record.networks)
            .await?;
        record.networks.push(a.clone());
        if let Err(e) = self.namespaces.put(&record) {
            self.undo(Some(&ctx), vec![Step::Endpoint(a)]).await;
            return Err(e);
        }
        Ok(a)
    }

    /// `container detach --network N PATH`.
    pub(super) async fn detach_namespace(
        &self,
        network: String,
        path: PathBuf,
    ) -> Result<(), ApiError> {
        let _guard = self.net.lock.lock().await;
        let mut record = self.namespaces.get(&path);
        let Some(pos) = record.networks.iter().position(|a| on_network(a, &network)) else {
            return Err(ApiError::NotFound(format!(
                "namespace {} is not attached to network {network}",
                path.display()
            )));
        };
        let a = record.networks.remove(pos);
        let ctx = self.net_ctx(&network).await.ok();
        self.undo(ctx.as_ref(), vec![Step::Endpoint(a.clone())])
            .await;
        self.namespaces.put(&record)
    }
}

/// The lowest ethN a container does not use yet.
fn next_ifname(c: &Container) -> String {
    let used: Vec<&str> = c
        .networks
        .iter()
        .map(|a| a.ifname.as_str())
        .chain(c.egress.iter().map(|e| e.ifname.as_str()))
        .collect();
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|name| !used.contains(&name.as_str()))
        .expect("an unused name")
}

impl Daemon {
    /// `network connect`: a created container asks for one more network; a
    /// started one gets an interface on it now, recorded, undone on failure.
    pub(super) async fn connect_container(
        &self,
        network: String,
        container: &str,
        ip: Option<Ipv4Addr>,
        aliases: Vec<String>,
    ) -> Result<(), ApiError> {
        let view = self.containers.find(container)?;
        if view.state == RunState::Created {
            let req = NetRequest {
                network,
                ip,
                aliases,
            };
            return self.containers.ask_network(&view.container.id, req);
        }
        let ctx = self.net_ctx(&network).await?;
        let _guard = self.net.lock.lock().await;
        let mut c: Container = self.containers.find(container)?.container;
        if c.networks.iter().any(|a| on_network(a, &network)) {
            return Err(ApiError::FailedPrecondition(format!(
                "container {} is already attached to network {network}",
                c.name
            )));
        }
        let attach = AttachRequest {
            network,
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            aliases,
            ip,
        };
        let a = self
            .plug_network(&ctx, &c.netns, next_ifname(&c), attach, &c.networks)
            .await?;
        let mut done = vec![Step::Endpoint(a.clone())];
        c.networks.push(a);
        let result = async {
            if c.egress.is_none() {
                let ifname = next_ifname(&c);
                let egress = self.plug_egress(&ctx, &c.id, &c.netns, ifname).await?;
                done.push(Step::Egress(c.id.clone()));
                c.egress = Some(egress);
            }
            self.containers.record(&c)
        }
        .await;
        if result.is_err() {
            self.undo(Some(&ctx), done).await;
        }
        result
    }

    /// `network disconnect`: the container's interface on the network goes
    /// and its endpoint is given back (and the gateway bridge with its last network).
    pub(super) async fn disconnect_container(
        &self,
        network: String,
        container: &str,
    ) -> Result<(), ApiError> {
        let view = self.containers.find(container)?;
        let not_connected = |name: &str| {
            ApiError::FailedPrecondition(format!(
                "container {name} is not connected to network {network}"
            ))
        };
        if view.state == RunState::Created {
            return match self.containers.unask_network(&view.container.id, &network) {
                true => Ok(()),
                false => Err(not_connected(&view.container.name)),
            };
        }
        let ctx = self.net_ctx(&network).await.ok();
        let _guard = self.net.lock.lock().await;
        let mut c: Container = self.containers.find(container)?.container;
        let Some(pos) = c.networks.iter().position(|a| on_network(a, &network)) else {
            return Err(not_connected(&c.name));
        };
        let mut steps = vec![Step::Endpoint(c.networks.remove(pos))];
        if c.networks.is_empty() && c.egress.take().is_some() {
            steps.insert(0, Step::Egress(c.id.clone()));
        }
        self.undo(ctx.as_ref(), steps).await;
        self.containers.record(&c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_namespace_files_are_attachable() {
        let err = check_netns_path(Path::new("/run/netns/sn-no-such-namespace"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = check_netns_path(Path::new("/etc/hostname"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a namespace"), "{err}");
        let err = check_netns_path(Path::new("/proc/self/ns/net"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the host's own"), "{err}");
        let err = check_netns_path(Path::new("run/netns/x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an absolute path"), "{err}");
        let err = check_netns_path(Path::new("/run/swarmnet/netns/1-abc"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("swarmnet's own"), "{err}");
        let err = check_netns_path(Path::new("/proc/self/ns/uts"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a network namespace"), "{err}");
    }
}
