//! Node-to-node calls: `service logs` on any manager gathers every task's
//! output from the node that runs it, and publishing a port first asks every
//! node what already holds it. Each node serves them on its mesh address (so
//! the bytes ride WireGuard) at Docker's node-to-node port, over mutual TLS
//! with the node certificates: only nodes of the swarm may ask. A call is
//! one JSON request line; the answer to a log call is the raw log, until it
//! ends; to a port call, one JSON line.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::containers::Containers;
use super::listeners::{self, Listener, PortQuery};
use super::tasklogs::log_stream;
use crate::model::ApiError;
use crate::proto::{read_msg_within, write_msg, Envelope, RawEnvelope};

/// Docker's node-to-node port, on the mesh address only.
pub const PEER_PORT: u16 = 7946;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request is one line (a port call lists every port a service publishes).
const MAX_REQUEST: usize = 64 * 1024;

/// What one node asks another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PeerRequest {
    Log(LogRequest),
    /// What holds any of these ports on the node.
    Listeners(Vec<PortQuery>),
}

/// A task's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub task_id: String,
    /// The last lines only.
    pub tail: Option<usize>,
    /// Go on until the task's process ends.
    pub follow: bool,
}

/// Serves this node's task logs until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    containers: Arc<Containers>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("node-to-node accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, containers) = (acceptor.clone(), containers.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(tcp, acceptor, containers).await {
                tracing::debug!(%peer, "node-to-node call ended: {e:#}");
            }
        });
    }
}

async fn answer(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    containers: Arc<Containers>,
) -> anyhow::Result<()> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await??;
    let mut stream = BufReader::new(tls);
    let msg: Option<RawEnvelope> =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, read_msg_within(&mut stream, MAX_REQUEST))
            .await??;
    let Some(msg) = msg else {
        return Ok(());
    };
    let req = match msg.open::<PeerRequest>("calling node")? {
        PeerRequest::Log(req) => req,
        PeerRequest::Listeners(ports) => {
            let held = tokio::task::spawn_blocking(move || listeners::holding(&ports)).await?;
            let reply: Result<Vec<Listener>, ApiError> = Ok(held);
            write_msg(stream.get_mut(), &Envelope::new(reply)).await?;
            stream.get_mut().shutdown().await?;
            return Ok(());
        }
    };
    let found = containers
        .all()
        .into_iter()
        .find(|c| c.task_id.as_deref() == Some(req.task_id.as_str()));
    let Some(container) = found else {
        let reply: Result<(), ApiError> = Err(ApiError::NotFound(format!(
            "task {} has no container on this node",
            req.task_id
        )));
        write_msg(stream.get_mut(), &Envelope::new(reply)).await?;
        return Ok(());
    };
    let ok: Result<(), ApiError> = Ok(());
    write_msg(stream.get_mut(), &Envelope::new(ok)).await?;
    let mut log = Box::pin(log_stream(containers, container.id, req.tail, req.follow));
    while let Some(chunk) = log.next().await {
        stream.get_mut().write_all(&chunk?).await?;
    }
    stream.get_mut().shutdown().await?;
    Ok(())
}

type PeerStream = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

/// Sends `req` to the node at `addr` (its mesh address) and reads its
/// answer line (at most `max` bytes); errors are in `what`'s words.
async fn call<T: serde::de::DeserializeOwned>(
    addr: Ipv4Addr,
    tls: Arc<rustls::ClientConfig>,
    req: &PeerRequest,
    max: usize,
    what: &str,
) -> Result<(T, PeerStream), ApiError> {
    let peer = SocketAddr::from((addr, PEER_PORT));
    let unreachable =
        |e: String| ApiError::Unavailable(format!("cannot {what} from its node at {peer}: {e}"));
    let connect = async {
        let tcp = TcpStream::connect(peer).await?;
        let name = rustls::pki_types::ServerName::try_from("swarm-node").expect("static name");
        TlsConnector::from(tls).connect(name, tcp).await
    };
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect)
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let mut stream = BufReader::new(stream);
    write_msg(stream.get_mut(), &Envelope::new(req))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_msg_within(&mut stream, max))
        .await
        .map_err(|_| unreachable("no answer in time".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let reply: RawEnvelope =
        reply.ok_or_else(|| unreachable("the connection was closed".into()))?;
    let answer = reply.open::<Result<T, ApiError>>("node")??;
    Ok((answer, stream))
}

/// What holds any of `ports` on the node at `addr` (its mesh address).
pub async fn node_listeners(
    addr: Ipv4Addr,
    tls: Arc<rustls::ClientConfig>,
    ports: Vec<PortQuery>,
) -> Result<Vec<Listener>, ApiError> {
    let req = PeerRequest::Listeners(ports);
    let what = "read which ports are held";
    let (held, _) = call(addr, tls, &req, MAX_LISTENERS, what).await?;
    Ok(held)
}

/// The largest answer about held ports (a few hundred sockets).
const MAX_LISTENERS: usize = 256 * 1024;

/// Asks the node at `addr` (its mesh address) for a task's log.
pub async fn task_log(
    addr: Ipv4Addr,
    tls: Arc<rustls::ClientConfig>,
    req: LogRequest,
) -> Result<impl Stream<Item = std::io::Result<Bytes>>, ApiError> {
    let what = format!("read the log of task {}", req.task_id);
    let ((), stream) = call(addr, tls, &PeerRequest::Log(req), MAX_REQUEST, &what).await?;
    Ok(futures::stream::unfold(Some(stream), |stream| async move {
        let mut stream = stream?;
        let mut buf = vec![0u8; 64 * 1024];
        match stream.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(stream)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}
