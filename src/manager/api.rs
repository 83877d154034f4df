//! The manager's API server: mutual TLS on the swarm port (2377). A caller's
//! identity and role come from its certificate; a removed node's certificate
//! is refused. A caller without one is a guest: it may only fetch the CA and
//! join, in small messages, on few connections, for a short while.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use super::guard::{JoinFailures, JoinLimiter, Slots};
use super::guard::{MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_SOURCE};
use super::join::JoinFailure;
use super::{ca, Manager};
use crate::model::{escape, AttachRequest};
use crate::model::{ApiError, NodeRole, RequestCounts};
use crate::proto::JoinRequest;
use crate::proto::{
    answer, read_msg, read_msg_within, write_msg, Detach, Envelope, GetCa, Heartbeat, Leave,
    ManagerRequest, RawEnvelope, Reply, Watch, MAX_GUEST_MESSAGE,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sends no request for this long is closed (agents call every second).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A guest's whole exchange (a CA fetch, a join) ends within this, plus any join delay.
const GUEST_DEADLINE: Duration = Duration::from_secs(10);

/// What the manager's API counts; the daemon renders them as metrics.
#[derive(Debug, Default)]
pub struct ApiCounters {
    /// Requests by outcome.
    pub requests: RequestCounts,
    /// Refused joins by reason.
    pub join_failures: JoinFailures,
}

/// What one server keeps across its connections.
struct Server {
    acceptor: TlsAcceptor,
    manager: Arc<Manager>,
    counters: Arc<ApiCounters>,
    slots: Arc<Slots>,
    limiter: Mutex<JoinLimiter>,
}

/// Serves the API until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    manager: Arc<Manager>,
    counters: Arc<ApiCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let server = Arc::new(Server {
        acceptor,
        manager,
        counters,
        slots: Slots::new(MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_SOURCE),
        limiter: Mutex::new(JoinLimiter::default()),
    });
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let (server, shutdown) = (server.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        if let Err(e) = server.connection(tcp, peer, shutdown).await {
                            tracing::debug!(%peer, error = %e, "manager API connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "manager API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Server {
    async fn connection(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        tcp.set_nodelay(true)?;
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await??;
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| ca::identity(cert))
            .transpose()?;
        let source = peer.ip().to_canonical();
        let stream = BufReader::new(tls);
        match identity {
            Some(identity) => self.member(stream, source, identity, shutdown).await,
            None => self.guest(stream, source, shutdown).await,
        }
    }

    /// A node with a certificate: any call, messages up to the protocol's cap.
    async fn member<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: BufReader<S>,
        source: IpAddr,
        identity: (String, NodeRole),
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        loop {
            let msg: RawEnvelope = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                req = tokio::time::timeout(IDLE_TIMEOUT, read_msg(&mut stream)) => match req?? {
                    Some(req) => req,
                    None => return Ok(()),
                },
            };
            let reply = match self.open(msg, Some(&identity.0)) {
                Ok(ManagerRequest::Join(join)) => self.join(join, source).await,
                Ok(req) => handle(&self.manager, &identity, req).await,
                Err(refused) => Err(refused),
            };
            self.counters.requests.count(reply.as_ref().err());
            write_msg(stream.get_mut(), &Envelope::new(reply)).await?;
        }
    }

    /// A caller without a certificate: a CA fetch or a join, each message at
    /// most `MAX_GUEST_MESSAGE`, within `GUEST_DEADLINE`, on one of few slots.
    async fn guest<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: BufReader<S>,
        source: IpAddr,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut deadline = Instant::now() + GUEST_DEADLINE;
        let Some(_slot) = self.slots.take(source) else {
            let busy = ApiError::Unavailable(format!(
                "the manager has too many connections without a certificate open (at most {MAX_UNAUTHENTICATED_PER_SOURCE} from one address, {MAX_UNAUTHENTICATED} in all); try again shortly"
            ));
            self.counters.requests.count(Some(&busy));
            let reply: Reply = Err(busy);
            timeout_at(deadline, write_msg(stream.get_mut(), &Envelope::new(reply))).await??;
            anyhow::bail!("refused {source}: too many connections without a certificate");
        };
        loop {
            let read = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                read = timeout_at(deadline, read_msg_within(&mut stream, MAX_GUEST_MESSAGE)) => read?,
            };
            let reply = match read {
                Ok(None) => return Ok(()),
                Ok(Some(msg)) => match self.open(msg, None) {
                    Ok(ManagerRequest::GetCa) => {
                        answer::<GetCa>(Ok(self.manager.ca_pem().to_string()))
                    }
                    Ok(ManagerRequest::Join(join)) => {
                        deadline += self.join_delay(source);
                        tokio::select! {
                            _ = shutdown.changed() => return Ok(()),
                            reply = self.join(join, source) => reply,
                        }
                    }
                    Ok(_) => Err(ApiError::PermissionDenied(
                        "this call needs a node certificate: join the swarm first".into(),
                    )),
                    Err(refused) => Err(refused),
                },
                Err(e) => {
                    let refused = ApiError::InvalidArgument(format!(
                        "a message from a node without a certificate is unreadable: {e}; such a node may only fetch the CA or join, in at most {MAX_GUEST_MESSAGE} bytes"
                    ));
                    self.counters.requests.count(Some(&refused));
                    let reply = Envelope::new(Err::<serde_json::Value, _>(refused));
                    let _ = timeout_at(deadline, write_msg(stream.get_mut(), &reply)).await;
                    return Err(e.into());
                }
            };
            self.counters.requests.count(reply.as_ref().err());
            timeout_at(deadline, write_msg(stream.get_mut(), &Envelope::new(reply))).await??;
        }
    }

    /// The request of a message, or its refusal (logged, escaped).
    fn open(&self, msg: RawEnvelope, node: Option<&String>) -> Result<ManagerRequest, ApiError> {
        msg.open::<ManagerRequest>("calling node")
            .inspect_err(|refused| {
                tracing::warn!(?node, "{}", escape(&refused.to_string()));
            })
    }

    /// How long a join from `source` waits before it is answered.
    fn join_delay(&self, source: IpAddr) -> Duration {
        let limiter = self.limiter.lock().expect("join limiter lock");
        limiter.delay(source, std::time::Instant::now())
    }

    /// A join, answered after the source's delay; a refusal is logged at
    /// warn with the source and reason (never the token), counted, and
    /// lengthens the source's delay.
    async fn join(&self, join: JoinRequest, source: IpAddr) -> Reply {
        let wait = self.join_delay(source);
        if !wait.is_zero() {
            tracing::debug!(%source, ?wait, "slowing a join after repeated failures");
            tokio::time::sleep(wait).await;
        }
        let manager = self.manager.clone();
        let result = tokio::task::spawn_blocking(move || manager.join(join, source))
            .await
            .map_err(ApiError::internal)?;
        let refusal = match result {
            Ok(joined) => return answer::<JoinRequest>(Ok(joined)),
            Err(refusal) => refusal,
        };
        let reason = refusal.reason.as_str();
        tracing::warn!(%source, reason, error = %escape(&refusal.error.to_string()), "join refused");
        self.counters.join_failures.count(reason);
        if refusal.reason != JoinFailure::Internal {
            let mut limiter = self.limiter.lock().expect("join limiter lock");
            limiter.failed(source, std::time::Instant::now());
        }
        Err(refusal.error)
    }
}

/// A member's call other than a join.
async fn handle(
    manager: &Manager,
    (id, _cert_role): &(String, NodeRole),
    req: ManagerRequest,
) -> Reply {
    if let ManagerRequest::GetCa = req {
        return answer::<GetCa>(Ok(manager.ca_pem().to_string()));
    }
    let Some(role) = manager.role_of(id)? else {
        return Err(ApiError::PermissionDenied(format!(
            "node {id} was removed from the swarm: its certificate is no longer valid; run \"swarmnet swarm leave\" on it and join again"
        )));
    };
    match req {
        ManagerRequest::GetCa | ManagerRequest::Join(_) => Err(ApiError::Internal(
            "a CA fetch or a join reached the member calls".into(),
        )),
        ManagerRequest::Heartbeat => {
            manager.heartbeat(id);
            answer::<Heartbeat>(Ok(()))
        }
        ManagerRequest::Watch { since } => answer::<Watch>(manager.watch(id, since).await),
        ManagerRequest::Leave => answer::<Leave>(manager.leave(id)),
        ManagerRequest::Attach(attach) => answer::<AttachRequest>(manager.attach(id, attach)),
        ManagerRequest::Detach { endpoint_id } => {
            answer::<Detach>(manager.detach(id, &endpoint_id))
        }
        ManagerRequest::EngineLabels(labels) => {
            answer::<crate::proto::EngineLabels>(manager.set_engine_labels(id, labels.labels))
        }
        ManagerRequest::TaskReport(report) => {
            answer::<crate::proto::TaskReport>(manager.task_report(id, report))
        }
        ManagerRequest::Cluster(call) => {
            if role != NodeRole::Manager {
                return Err(ApiError::not_a_manager());
            }
            manager.cluster_call(*call, id)
        }
    }
}
