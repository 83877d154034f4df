//! The containers' resolver and VIP rules in the daemon's life: each
//! container namespace gets them when it is made (before its process runs)
//! and loses them just before the namespace is removed; a restarted daemon
//! serves again every namespace its containers kept.

use std::path::Path;

use super::Daemon;
use crate::dns::RESOLVER_IP;
use crate::model::ApiError;
use crate::netlink::netns;

impl Daemon {
    /// Serves 127.0.0.11 in `netns` for `owner` (a task's ID, or the
    /// container's), and leads 127.0.0.11:53 there.
    pub(super) async fn serve_dns(&self, netns: &Path, owner: &str) -> Result<(), ApiError> {
        let failed = |e: anyhow::Error| {
            ApiError::Internal(format!("cannot start the DNS resolver of {owner}: {e:#}"))
        };
        let ports = self.net.resolver.add(netns, owner).await.map_err(failed)?;
        let path = netns.to_path_buf();
        tokio::task::spawn_blocking(move || {
            crate::nft::dns::redirect(&path, RESOLVER_IP, ports.udp, ports.tcp)
        })
        .await
        .map_err(|e| failed(e.into()))?
        .map_err(failed)
    }

    /// Gives `netns`, its interfaces plugged, the VIPs of its networks (and a
    /// task on ingress its way back through the mesh).
    pub(super) async fn serve_vips(&self, netns: &Path, owner: &str) -> Result<(), ApiError> {
        self.net.balancer.add(netns, owner).await.map_err(|e| {
            ApiError::Internal(format!("cannot apply the VIP rules of {owner}: {e:#}"))
        })
    }

    /// Before the namespace at `netns` is removed.
    pub(super) async fn unserve(&self, netns: &Path) {
        self.net.balancer.remove(netns);
        self.net.resolver.remove(netns).await;
    }

    /// At start: every recorded container whose namespace is still there.
    pub(super) async fn serve_dns_again(&self) {
        for c in self.containers.all() {
            if !netns::is_namespace(&c.netns) {
                continue;
            }
            let owner = c.task_id.as_deref().unwrap_or(&c.id);
            let served = async {
                self.serve_dns(&c.netns, owner).await?;
                self.serve_vips(&c.netns, owner).await
            };
            if let Err(e) = served.await {
                tracing::warn!(container = %c.name, "{e}");
            }
        }
    }
}
