//! What is live on this host, whatever the records say: the start-up sweep
//! of what a crash left between making a container and recording it, and
//! the addresses present in the containers' namespaces.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::AddressFamily;

use super::NETNS_DIR;
use crate::daemon::containers::Containers;
use crate::netlink::netns;
use crate::runtime;

/// At start, before any request: a container whose process a crash left
/// unrecorded is recorded; a directory no record owns loses what runs for it
/// (shim, process) and goes; a container namespace no record owns loses
/// every process in it, then goes with both veth pairs and the addresses on
/// them. Sandboxes ("1-...") are the agent's to keep or remove.
pub fn sweep_strays(containers: &Containers) {
    let swept = containers.sweep(Path::new(NETNS_DIR));
    if swept.adopted + swept.stopped + swept.removed > 0 {
        tracing::info!(
            adopted = swept.adopted,
            stopped = swept.stopped,
            removed = swept.removed,
            "swept what a crash left of containers being started"
        );
    }
    let known: Vec<PathBuf> = containers.all().into_iter().map(|c| c.netns).collect();
    for path in container_namespaces(Path::new(NETNS_DIR)) {
        if known.contains(&path) {
            continue;
        }
        match runtime::kill_namespace(&path) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(netns = %path.display(), processes = n, "stopped the processes of a namespace no container holds")
            }
            Err(e) => {
                tracing::warn!(netns = %path.display(), "cannot stop the processes of a namespace no container holds; leaving it: {e:#}");
                continue;
            }
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

/// The containers' namespace files in `dir` (not the networks' sandboxes, "1-...").
fn container_namespaces(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with("1-"))
        .map(|e| e.path())
        .collect()
}

/// Every IPv4 address present in the container namespaces under `dir`; a
/// namespace that cannot be read is logged and skipped.
pub(super) async fn addresses(dir: &Path) -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    for path in container_namespaces(dir) {
        if !netns::is_namespace(&path) {
            continue;
        }
        match namespace_addresses(&path).await {
            Ok(list) => found.extend(list),
            Err(e) => {
                tracing::warn!(netns = %path.display(), "cannot read the addresses in a container's namespace: {e:#}")
            }
        }
    }
    found
}

async fn namespace_addresses(path: &Path) -> anyhow::Result<Vec<Ipv4Addr>> {
    let handle = netns::handle_in(path).await?;
    let mut request = handle.address().get();
    request.message_mut().header.family = AddressFamily::Inet;
    let messages: Vec<AddressMessage> = request.execute().try_collect().await?;
    Ok(messages
        .iter()
        .flat_map(|m| &m.attributes)
        .filter_map(|attribute| match attribute {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        })
        .collect())
}
