//! The manager's API server: mutual TLS on the swarm port (2377). A caller's
//! identity and role come from its certificate; a caller without one may only
//! fetch the CA and join; a removed node's certificate is refused.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{ca, Manager};
use crate::model::AttachRequest;
use crate::model::{ApiError, NodeRole, RequestCounts};
use crate::proto::JoinRequest;
use crate::proto::{
    answer, read_msg, write_msg, Detach, Envelope, GetCa, Heartbeat, Leave, ManagerRequest,
    RawEnvelope, Reply, Watch,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sends no request for this long is closed (agents call every second).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves the API until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    manager: Arc<Manager>,
    requests: Arc<RequestCounts>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let (acceptor, manager, requests) = (acceptor.clone(), manager.clone(), requests.clone());
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(tcp, acceptor, manager, requests, shutdown).await {
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

async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    manager: Arc<Manager>,
    requests: Arc<RequestCounts>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await??;
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| ca::identity(cert))
        .transpose()?;
    let mut stream = BufReader::new(tls);
    loop {
        let msg: RawEnvelope = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            req = tokio::time::timeout(IDLE_TIMEOUT, read_msg(&mut stream)) => match req?? {
                Some(req) => req,
                None => return Ok(()),
            },
        };
        let reply = match msg.open::<ManagerRequest>("calling node") {
            Ok(req) => handle(&manager, identity.as_ref(), req).await,
            Err(refused) => {
                tracing::warn!(node = ?identity.as_ref().map(|(id, _)| id), "{refused}");
                Err(refused)
            }
        };
        requests.count(reply.as_ref().err());
        write_msg(stream.get_mut(), &Envelope::new(reply)).await?;
    }
}

async fn handle(
    manager: &Manager,
    identity: Option<&(String, NodeRole)>,
    req: ManagerRequest,
) -> Reply {
    match req {
        ManagerRequest::GetCa => return answer::<GetCa>(Ok(manager.ca_pem().to_string())),
        ManagerRequest::Join(join) => return answer::<JoinRequest>(manager.join(join)),
        _ => {}
    }
    let Some((id, role)) = identity else {
        return Err(ApiError::PermissionDenied(
            "this call needs a node certificate: join the swarm first".into(),
        ));
    };
    if !manager.is_member(id)? {
        return Err(ApiError::PermissionDenied(format!(
            "node {id} was removed from the swarm: its certificate is no longer valid; run \"swarmnet swarm leave\" on it and join again"
        )));
    }
    match req {
        ManagerRequest::GetCa | ManagerRequest::Join(_) => unreachable!("answered above"),
        ManagerRequest::Heartbeat => {
            manager.heartbeat(id);
            answer::<Heartbeat>(Ok(()))
        }
        ManagerRequest::Watch { since } => answer::<Watch>(manager.watch(since).await),
        ManagerRequest::Leave => answer::<Leave>(manager.leave(id)),
        ManagerRequest::Attach(attach) => answer::<AttachRequest>(manager.attach(id, attach)),
        ManagerRequest::Detach { endpoint_id } => {
            answer::<Detach>(manager.detach(id, &endpoint_id))
        }
        ManagerRequest::Cluster(call) => {
            if *role != NodeRole::Manager {
                return Err(ApiError::not_a_manager());
            }
            manager.cluster_call(call, id)
        }
    }
}
