//! The resolver's one thread: a single-threaded runtime serving every
//! namespace's sockets on 127.0.0.11 (at ports of their own, to which
//! 127.0.0.11:53 is redirected, so port 53 stays the container's). UDP, the hot path, is a loop per
//! namespace that answers from ready-made replies; TCP is hickory-server's,
//! with a handler over the same answers. Sockets are opened inside their
//! namespace by a short-lived thread that entered it, then handed over.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use hickory_proto::op::{Header, Message};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::answer::{answer, encode, servfail, Outcome, EDNS_PAYLOAD};
use super::cache::Cache;
use super::forward::Upstreams;
use super::view::View;
use crate::netlink::netns;

/// Where every container's resolver listens, as Docker's.
pub const RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// Queries one namespace may have waiting on upstream servers (Docker's bound).
const MAX_FORWARDS: usize = 1024;
/// A TCP connection that sends nothing for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(5);
/// How long open TCP connections get when their namespace goes.
const STOP_GRACE: Duration = Duration::from_millis(200);

enum Cmd {
    Add {
        key: String,
        owner: String,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    },
    Remove {
        key: String,
        done: oneshot::Sender<()>,
    },
}

/// The handle the daemon keeps: add and remove namespaces, swap the view.
pub struct Resolver {
    cmds: mpsc::UnboundedSender<Cmd>,
    view: watch::Sender<Arc<View>>,
    /// The namespaces served, with their sockets' ports.
    served: Mutex<HashMap<String, Ports>>,
}

/// What every namespace's server shares.
struct Shared {
    view: watch::Receiver<Arc<View>>,
    upstreams: Upstreams,
}

impl Resolver {
    /// Starts the resolver's thread; upstream servers come from `resolv_conf`.
    pub fn start(resolv_conf: PathBuf) -> anyhow::Result<Resolver> {
        let (cmds, rx) = mpsc::unbounded_channel();
        let (view, view_rx) = watch::channel(Arc::new(View::pending()));
        let shared = Arc::new(Shared {
            view: view_rx,
            upstreams: Upstreams::new(resolv_conf),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot make the resolver's runtime")?;
        std::thread::Builder::new()
            .name("swarmnet-dns".into())
            .spawn(move || runtime.block_on(serve(rx, shared)))
            .context("cannot start the resolver's thread")?;
        Ok(Resolver {
            cmds,
            view,
            served: Mutex::new(HashMap::new()),
        })
    }

    /// Answers from `view` from now on.
    pub fn set_view(&self, view: View) {
        self.view.send_replace(Arc::new(view));
    }

    /// Serves the namespace at `netns`, whose endpoints are `owner`'s (the
    /// task's ID for a task, else the container's), on 127.0.0.11 at the
    /// ports returned: port 53 is the container's own to bind, so queries to
    /// 127.0.0.11:53 are to be redirected there. Once per namespace: the
    /// sockets stay with it until `remove`.
    pub async fn add(&self, netns: &Path, owner: &str) -> anyhow::Result<Ports> {
        let key = netns.display().to_string();
        if let Some(ports) = self.lock().get(&key) {
            return Ok(*ports);
        }
        let (udp, tcp) = netns::run_in(netns, bind).await?;
        let ports = Ports {
            udp: udp.local_addr()?.port(),
            tcp: tcp.local_addr()?.port(),
        };
        self.lock().insert(key.clone(), ports);
        self.cmds
            .send(Cmd::Add {
                key,
                owner: owner.to_string(),
                udp,
                tcp,
            })
            .map_err(|_| anyhow::anyhow!("the resolver has stopped"))?;
        tracing::debug!(netns = %netns.display(), owner, udp = ports.udp, tcp = ports.tcp, "resolver added");
        Ok(ports)
    }

    /// Stops serving the namespace at `netns`; its sockets are closed when this returns.
    pub async fn remove(&self, netns: &Path) {
        let key = netns.display().to_string();
        if self.lock().remove(&key).is_none() {
            return;
        }
        let (done, closed) = oneshot::channel();
        let cmd = Cmd::Remove { key, done };
        if self.cmds.send(cmd).is_ok() {
            let _ = closed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ports>> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The ports a namespace's resolver listens on, at 127.0.0.11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub udp: u16,
    pub tcp: u16,
}

/// Binds 127.0.0.11, UDP and TCP, at ports the kernel picks, in the calling
/// thread's namespace.
fn bind() -> anyhow::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let addr = SocketAddr::from((RESOLVER_IP, 0));
    let udp = std::net::UdpSocket::bind(addr).with_context(|| format!("cannot bind UDP {addr}"))?;
    udp.set_nonblocking(true)?;
    let tcp =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot bind TCP {addr}"))?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// One namespace's servers.
struct Served {
    udp: tokio::task::JoinHandle<()>,
    tcp: Server<TcpHandler>,
}

impl Served {
    /// Stops both and closes their sockets, which would otherwise keep the
    /// namespace (and its devices) alive after it is deleted.
    async fn stop(self) {
        let Served { udp, mut tcp } = self;
        udp.abort();
        let _ = udp.await;
        // Open connections get a moment; then dropping the server aborts them.
        let _ = tokio::time::timeout(STOP_GRACE, tcp.shutdown_gracefully()).await;
    }
}

async fn serve(mut cmds: mpsc::UnboundedReceiver<Cmd>, shared: Arc<Shared>) {
    let mut served: HashMap<String, Served> = HashMap::new();
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            Cmd::Add {
                key,
                owner,
                udp,
                tcp,
            } => match start(&owner, udp, tcp, &shared) {
                Ok(s) => {
                    if let Some(old) = served.insert(key, s) {
                        tokio::spawn(old.stop());
                    }
                }
                Err(e) => tracing::warn!(netns = %key, "cannot serve DNS: {e:#}"),
            },
            Cmd::Remove { key, done } => {
                let stopping = served.remove(&key);
                tokio::spawn(async move {
                    if let Some(s) = stopping {
                        s.stop().await;
                    }
                    let _ = done.send(());
                });
            }
        }
    }
}

fn start(
    owner: &str,
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    shared: &Arc<Shared>,
) -> anyhow::Result<Served> {
    let udp = Arc::new(UdpSocket::from_std(udp)?);
    let tcp = tokio::net::TcpListener::from_std(tcp)?;
    let owner: Arc<str> = owner.into();
    let mut server = Server::new(TcpHandler {
        owner: owner.clone(),
        shared: shared.clone(),
    });
    server.register_listener(tcp, TCP_IDLE, 16);
    let udp = tokio::spawn(supervise_udp(udp, owner, shared.clone()));
    Ok(Served { udp, tcp: server })
}

/// Runs the namespace's UDP loop again if it ever panics: a fault in one
/// namespace's answers stays there, and is not fatal even there.
async fn supervise_udp(socket: Arc<UdpSocket>, owner: Arc<str>, shared: Arc<Shared>) {
    loop {
        let run = serve_udp(socket.clone(), owner.clone(), shared.clone());
        if AssertUnwindSafe(run).catch_unwind().await.is_ok() {
            return;
        }
        tracing::error!(owner = %owner, "the resolver's UDP loop panicked; starting it again");
    }
}

/// The UDP loop: a ready-made reply when there is one, else the answer
/// worked out (and kept), else a forward, at most `MAX_FORWARDS` at once.
async fn serve_udp(socket: Arc<UdpSocket>, owner: Arc<str>, shared: Arc<Shared>) {
    let mut view_rx = shared.view.clone();
    let mut view = view_rx.borrow_and_update().clone();
    let mut cache = Cache::default();
    let forwards = Arc::new(AtomicUsize::new(0));
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(512);
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(owner = %owner, error = %e, "DNS receive failed");
                continue;
            }
        };
        if view_rx.has_changed().unwrap_or(false) {
            view = view_rx.borrow_and_update().clone();
            cache.clear();
        }
        let query = &buf[..n];
        if cache.reply(query, &mut out) {
            let _ = socket.try_send_to(&out, peer);
            continue;
        }
        match answer(&view, &owner, query) {
            Outcome::Reply(reply) => {
                let limit = if reply.edns.is_some() {
                    usize::from(EDNS_PAYLOAD)
                } else {
                    512
                };
                if let Some(encoded) = encode(&reply, limit) {
                    let _ = socket.try_send_to(&encoded.bytes, peer);
                    cache.insert(query, &encoded);
                }
            }
            Outcome::Forward => {
                if forwards.fetch_add(1, Ordering::Relaxed) >= MAX_FORWARDS {
                    forwards.fetch_sub(1, Ordering::Relaxed);
                    if let Some(reply) = servfail(query) {
                        let _ = socket.try_send_to(&reply, peer);
                    }
                    continue;
                }
                // Weak: a forward in flight must not keep the socket, and so
                // the namespace, alive once the namespace is removed.
                let socket = Arc::downgrade(&socket);
                let (shared, forwards) = (shared.clone(), forwards.clone());
                let query = query.to_vec();
                tokio::spawn(async move {
                    let reply = shared.upstreams.forward(&query).await;
                    if let (Some(reply), Some(socket)) = (reply, socket.upgrade()) {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                    forwards.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Outcome::Drop => {}
        }
    }
}

/// hickory-server's handler for the TCP listeners: the same answers, and
/// forwards, as UDP (TCP has no size limit to truncate to).
struct TcpHandler {
    owner: Arc<str>,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let raw = request.as_slice();
        let view = self.shared.view.borrow().clone();
        let reply = match answer(&view, &self.owner, raw) {
            Outcome::Reply(reply) => Some(reply),
            Outcome::Forward => self
                .shared
                .upstreams
                .forward(raw)
                .await
                .and_then(|bytes| Message::from_vec(&bytes).ok()),
            Outcome::Drop => None,
        };
        let reply = reply.unwrap_or_else(|| {
            let mut failed = Message::response(request.metadata.id, request.metadata.op_code);
            failed.metadata.response_code = hickory_proto::op::ResponseCode::ServFail;
            failed
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &reply.edns {
            builder.edns(edns);
        }
        let message = builder.build(
            reply.metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(owner = %self.owner, error = %e, "DNS reply over TCP failed");
                ResponseInfo::from(Header {
                    metadata: reply.metadata,
                    counts: Default::default(),
                })
            }
        }
    }
}
