//! The CLI's side of the local daemon socket (`--host`, `SWARMNET_HOST`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use crate::model::ApiError;
use crate::proto::{LocalRequest, Reply};

/// The default socket, as `unix:///var/run/docker.sock` is Docker's.
pub const DEFAULT_HOST: &str = "unix:///run/swarmnet/swarmnet.sock";

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

/// Sends one request to the daemon and returns its answer; a daemon error comes back as [`ApiError`].
pub fn call(host: &str, req: &LocalRequest) -> anyhow::Result<serde_json::Value> {
    let path = socket_path(host)?;
    let display = format!("unix://{}", path.display());
    let mut stream = UnixStream::connect(&path).map_err(|_| {
        anyhow::anyhow!(
            "Cannot connect to the swarmnet daemon at {display}. Is the swarmnet daemon running? Start it with \"swarmnet daemon\" (or \"systemctl start swarmnet\")."
        )
    })?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    if reply.is_empty() {
        anyhow::bail!(
            "the swarmnet daemon at {display} closed the connection without an answer; see its log"
        );
    }
    let reply: Reply = serde_json::from_str(&reply)?;
    reply.map_err(|e: ApiError| anyhow::Error::new(e))
}
