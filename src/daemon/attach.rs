//! `container attach|detach --network N PATH`: namespaces made by other tools
//! (`ip netns add`, a container runtime) on overlay networks. They get an
//! overlay interface but no way out (their default route is their owner's).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::containers::NetAttachment;
use super::networking::{Step, NETNS_DIR};
use super::Daemon;
use crate::model::{ApiError, AttachRequest};
use crate::proto::{to_reply, Reply};

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
    ) -> Reply {
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
        to_reply(a)
    }

    /// `container detach --network N PATH`.
    pub(super) async fn detach_namespace(&self, network: String, path: PathBuf) -> Reply {
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
        self.namespaces.put(&record)?;
        to_reply(a)
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
