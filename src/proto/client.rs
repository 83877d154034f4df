//! The client of the manager's API: a connection over mutual TLS, one typed
//! call at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::model::ApiError;
use crate::proto::{
    read_answer, read_msg, write_msg, Call, Envelope, ManagerRequest, RawEnvelope, Reply,
};

/// The name in the leader's certificate that clients verify it by (Docker's OU).
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";

fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from(MANAGER_SERVER_NAME).expect("static name is valid")
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longer than the manager's watch wait, so a long poll is not cut short.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// An open connection to a manager.
pub struct ManagerConn {
    addr: SocketAddr,
    stream: BufReader<TlsStream<TcpStream>>,
}

fn unreachable(addr: SocketAddr, err: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!(
        "could not reach the manager at {addr}: {err}; check the address and that the manager's daemon is running"
    ))
}

impl ManagerConn {
    pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Self, ApiError> {
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            TlsConnector::from(config).connect(server_name(), tcp).await
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| unreachable(addr, "timed out"))?
            .map_err(|e| unreachable(addr, e))?;
        Ok(ManagerConn {
            addr,
            stream: BufReader::new(stream),
        })
    }

    /// Sends one typed call and waits for its typed reply.
    pub async fn ask<C: Call>(&mut self, call: C) -> Result<C::Reply, ApiError> {
        let reply = self.call(&call.into()).await;
        read_answer::<C>(reply)
    }

    /// Sends one request and waits for its reply.
    pub async fn call(&mut self, req: &ManagerRequest) -> Reply {
        let addr = self.addr;
        let exchange = async {
            write_msg(self.stream.get_mut(), &Envelope::new(req)).await?;
            read_msg::<_, RawEnvelope>(&mut self.stream).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Err(_) => Err(unreachable(addr, "no answer in time")),
            Ok(Err(e)) => Err(unreachable(addr, e)),
            Ok(Ok(None)) => Err(unreachable(addr, "the connection was closed")),
            Ok(Ok(Some(reply))) => reply.open::<Reply>("manager")?,
        }
    }
}

/// Resolves `HOST[:PORT]` (default port 2377) to one address.
pub async fn resolve_manager(remote: &str) -> Result<SocketAddr, ApiError> {
    let with_port = if remote.parse::<SocketAddr>().is_ok()
        || remote
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        remote.to_string()
    } else {
        format!("{remote}:2377")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "invalid manager address {remote:?}: give HOST:PORT, e.g. 192.168.99.100:2377"
            ))
        })
}
