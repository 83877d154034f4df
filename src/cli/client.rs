//! The CLI's typed client of the daemon's Docker Engine API, over its Unix
//! socket (`--host`, `SWARMNET_HOST`): hyper's HTTP/1.1 client, Docker's
//! shapes in and out, and Docker's error bodies turned back into `ApiError`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::api::{error_from_status, ErrorBody, API_VERSION};

/// The default socket, as `unix:///var/run/docker.sock` is Docker's.
pub const DEFAULT_HOST: &str = "unix:///run/swarmnet/swarmnet.sock";

/// Where the daemon's log is, when `swarmnet machine ssh` ran this command
/// inside a machine (the machine's daemon.log, as the host sees it).
const DAEMON_LOG_ENV: &str = "SWARMNET_DAEMON_LOG";

/// Where the log of the daemon behind `socket` is, for an error: the path
/// `machine ssh` gave (`from_env`), a machine's daemon.log beside the run
/// directory its socket is in (`swarmnet machine` keeps it there), or the
/// systemd journal of a real host.
fn daemon_log(socket: &Path, from_env: Option<String>) -> String {
    if let Some(log) = from_env.filter(|log| !log.is_empty()) {
        return log;
    }
    let machine_log = Some(socket)
        .filter(|socket| socket.ends_with("run/swarmnet/swarmnet.sock"))
        .and_then(|socket| socket.ancestors().nth(3))
        .map(|dir| dir.join("daemon.log"))
        .filter(|log| log.is_file());
    match machine_log {
        Some(log) => log.display().to_string(),
        None => "`journalctl -u swarmnet`".to_string(),
    }
}

/// The socket path of a `--host` value (`unix:///path` or a plain path).
pub fn socket_path(host: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(PathBuf::from(path));
    }
    if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    anyhow::bail!("invalid --host {host:?}: give unix:///path/to/swarmnet.sock")
}

/// A request's path and query: `path("/nodes", &[("filters", f)])`.
pub fn path(base: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return base.to_string();
    }
    let encoded = serde_urlencoded::to_string(query).unwrap_or_default();
    format!("{base}?{encoded}")
}

/// A name (of a node, network, container) as one path segment, percent-encoded.
pub fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A response whose body is read as it comes (logs, exec output).
pub type Streaming = hyper::Response<hyper::body::Incoming>;

/// The connection to one daemon; each call is one request.
pub struct Client {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    pub fn new(host: &str) -> anyhow::Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            socket: socket_path(host)?,
            runtime,
        })
    }

    /// Runs async client work (streams, hijacked connections) to completion.
    pub fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(Method::GET, path, None::<&()>)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.json(Method::POST, path, Some(body))
    }

    /// A POST whose answer has no body (or one the caller does not need).
    pub fn post_empty<B: Serialize>(&self, path: &str, body: Option<&B>) -> anyhow::Result<()> {
        self.block_on(self.send(Method::POST, path, body, &[]))?;
        Ok(())
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.block_on(self.send(Method::DELETE, path, None::<&()>, &[]))?;
        Ok(())
    }

    fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        self.block_on(async {
            let response = self.send(method, path, body, &[]).await?;
            let bytes = collect(response).await?;
            serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "the daemon's answer to {path} is not what this client expects: {e}"
                )
            })
        })
    }

    /// Sends one request; a non-2xx answer comes back as the daemon's
    /// [`crate::model::ApiError`], a 101 (hijacked stream) as success.
    pub async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Streaming> {
        let display = format!("unix://{}", self.socket.display());
        let stream = UnixStream::connect(&self.socket).await.map_err(|_| {
            anyhow::anyhow!(
                "Cannot connect to the swarmnet daemon at {display}. Is the swarmnet daemon running? Start it with \"swarmnet daemon\" (or \"systemctl start swarmnet\")."
            )
        })?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/v{API_VERSION}{path}"))
            .header(hyper::header::HOST, "swarmnet")
            .header(
                hyper::header::USER_AGENT,
                concat!("swarmnet/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = sender
            .send_request(request.body(Full::new(bytes))?)
            .await
            .map_err(|e| {
                let log = daemon_log(&self.socket, std::env::var(DAEMON_LOG_ENV).ok());
                anyhow::anyhow!(
                    "the swarmnet daemon at {display} closed the connection without an answer ({e}); see its log: {log}"
                )
            })?;
        let status = response.status();
        if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(response);
        }
        let bytes = collect(response).await?;
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
        Err(anyhow::Error::new(error_from_status(
            status.as_u16(),
            message,
        )))
    }
}

/// The whole body of a response.
async fn collect(response: Streaming) -> anyhow::Result<Bytes> {
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("the daemon's answer was cut off: {e}"))?
        .to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_a_socket() {
        assert_eq!(
            socket_path("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            socket_path("/run/y.sock").unwrap(),
            PathBuf::from("/run/y.sock")
        );
        assert!(socket_path("tcp://1.2.3.4:2375").is_err());
    }

    #[test]
    fn a_daemon_log_is_named_for_machines_and_hosts() {
        let host = Path::new("/run/swarmnet/swarmnet.sock");
        assert_eq!(daemon_log(host, None), "`journalctl -u swarmnet`");
        assert_eq!(
            daemon_log(
                host,
                Some("/run/swarmnet-lab/l/machines/vm1/daemon.log".into())
            ),
            "/run/swarmnet-lab/l/machines/vm1/daemon.log"
        );
        let machine = tempfile::tempdir().unwrap();
        let socket = machine.path().join("run/swarmnet/swarmnet.sock");
        assert_eq!(daemon_log(&socket, None), "`journalctl -u swarmnet`");
        std::fs::write(machine.path().join("daemon.log"), "").unwrap();
        assert_eq!(
            daemon_log(&socket, Some(String::new())),
            machine.path().join("daemon.log").display().to_string()
        );
    }

    #[test]
    fn names_are_one_segment() {
        assert_eq!(segment("vm-2.a_b"), "vm-2.a_b");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(path("/nodes", &[]), "/nodes");
        assert_eq!(
            path("/nodes", &[("filters", r#"{"role":["manager"]}"#)]),
            "/nodes?filters=%7B%22role%22%3A%5B%22manager%22%5D%7D"
        );
    }
}
