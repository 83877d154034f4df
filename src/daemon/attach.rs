//! `container attach|detach --network N PATH`: namespaces made by other tools
//! (`ip netns add`, a container runtime) on overlay networks. They get an
//! overlay interface but no way out (their default route is their owner's).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::networking::{Step, NETNS_DIR};
use super::Daemon;
use crate::model::{ApiError, AttachRequest};
use crate::proto::{to_reply, Reply};

/// The magic number of nsfs, the file system of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

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
    if stat.filesystem_type().0 as i64 != NSFS_MAGIC {
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
    Ok(())
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
        if record
            .networks
            .iter()
            .any(|a| a.network_name == network || a.network_id == network)
        {
            return Err(ApiError::FailedPrecondition(format!(
                "namespace {} is already attached to network {network}",
                path.display()
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
        let Some(pos) = record
            .networks
            .iter()
            .position(|a| a.network_name == network || a.network_id == network)
        else {
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
        assert!(check_netns_path(Path::new("/proc/self/ns/net")).is_ok());
        let err = check_netns_path(Path::new("/proc/self/ns/uts"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a network namespace"), "{err}");
    }
}
