//! The WireGuard cross-platform UAPI (<https://www.wireguard.com/xplatform/>)
//! on /var/run/wireguard/NAME.sock, so `wg show` and `wg showconf` read the
//! device: `get=1` in full, `set=1` for peers' persistent keepalive only.

use std::fmt::Write as _;
use std::fs::{self, DirBuilder, Permissions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;

use super::dataplane::Shared;
use super::peers::Key;
use super::PeerStats;

const SOCKET_DIR: &str = "/var/run/wireguard";

/// How long a client may take to send a request or read the reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest request accepted, in lines (a `set` of every peer fits).
const MAX_REQUEST_LINES: usize = 100_000;

const EINVAL: &str = "errno=22\n\n";

/// The listening socket; its file is removed when this is dropped.
pub(super) struct SocketFile {
    listener: UnixListener,
    path: PathBuf,
}

impl SocketFile {
    /// Binds /var/run/wireguard/NAME.sock, replacing a stale file but not a
    /// socket another process still serves.
    pub fn bind(name: &str) -> anyhow::Result<SocketFile> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(SOCKET_DIR)
            .with_context(|| format!("creating {SOCKET_DIR}"))?;
        let path = Path::new(SOCKET_DIR).join(format!("{name}.sock"));
        if UnixStream::connect(&path).is_ok() {
            anyhow::bail!(
                "{} is served by another WireGuard device; stop it or pick another interface name",
                path.display()
            );
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing stale {}", path.display()));
            }
            _ => {}
        }
        let listener =
            UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        let socket = SocketFile { listener, path };
        fs::set_permissions(&socket.path, Permissions::from_mode(0o755))?;
        socket.listener.set_nonblocking(true)?;
        Ok(socket)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Answers UAPI clients one at a time until the device stops.
pub(super) fn serve(sh: &Shared, socket: SocketFile) {
    while sh.stop.wait(socket.listener.as_fd(), None) {
        match socket.listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = handle(sh, stream) {
                    tracing::debug!(error = %e, "WireGuard UAPI client");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!(error = %e, "accepting on the WireGuard UAPI socket failed");
                if !sh.stop.sleep(CLIENT_TIMEOUT) {
                    return;
                }
            }
        }
    }
}

fn handle(sh: &Shared, stream: UnixStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut reader = BufReader::new(&stream);
    while let Some(request) = read_request(&mut reader)? {
        (&stream).write_all(respond(sh, &request).as_bytes())?;
    }
    Ok(())
}

/// The lines of one request up to its blank line; `None` at end of stream.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok((!lines.is_empty()).then_some(lines));
        }
        let trimmed = line.trim_end_matches('\n');
        if trimmed.is_empty() {
            return Ok(Some(lines));
        }
        if lines.len() == MAX_REQUEST_LINES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too long",
            ));
        }
        lines.push(trimmed.to_string());
    }
}

fn respond(sh: &Shared, request: &[String]) -> String {
    match request.split_first() {
        Some((op, [])) if op == "get=1" => {
            format_get(&sh.private.to_bytes(), sh.listen_port, &sh.peer_stats())
        }
        Some((op, rest)) if op == "set=1" => {
            let table = sh.table();
            match parse_set(rest, |key| table.by_key(key).is_some()) {
                Ok(changes) => {
                    for (key, keepalive) in changes {
                        if let Some(peer) = table.by_key(&key) {
                            peer.set_keepalive(keepalive);
                        }
                    }
                    "errno=0\n\n".to_string()
                }
                Err(why) => {
                    tracing::info!(why, "refused a WireGuard UAPI set");
                    EINVAL.to_string()
                }
            }
        }
        _ => EINVAL.to_string(),
    }
}

/// The reply to `get=1`: the device, then each peer, then `errno=0`.
pub(super) fn format_get(
    private_key: &[u8; 32],
    listen_port: u16,
    peers: &[(PeerStats, u16)],
) -> String {
    let mut out = format!(
        "private_key={}\nlisten_port={listen_port}\n",
        hex::encode(private_key)
    );
    for (peer, keepalive) in peers {
        let since_epoch = peer
            .last_handshake
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let _ = writeln!(out, "public_key={}", hex::encode(peer.public_key));
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(out, "endpoint={endpoint}");
        }
        let _ = write!(
            out,
            "allowed_ip={}/32\n\
             last_handshake_time_sec={}\n\
             last_handshake_time_nsec={}\n\
             rx_bytes={}\n\
             tx_bytes={}\n\
             persistent_keepalive_interval={keepalive}\n\
             protocol_version=1\n",
            peer.tunnel_addr,
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
            peer.rx_bytes,
            peer.tx_bytes,
        );
    }
    out.push_str("errno=0\n\n");
    out
}

/// The keepalive changes a `set=1` body asks for; refused whole when it
/// asks for anything else or names a peer `known` does not hold.
pub(super) fn parse_set(
    lines: &[String],
    known: impl Fn(&Key) -> bool,
) -> Result<Vec<(Key, u16)>, &'static str> {
    let mut changes = Vec::new();
    let mut peer: Option<Key> = None;
    for line in lines {
        let (key, value) = line.split_once('=').ok_or("a line without '='")?;
        match key {
            "public_key" => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(value, &mut bytes).map_err(|_| "a malformed public key")?;
                if !known(&bytes) {
                    return Err("adding peers is not supported");
                }
                peer = Some(bytes);
            }
            "persistent_keepalive_interval" => {
                let seconds = value.parse().map_err(|_| "a malformed keepalive")?;
                changes.push((peer.ok_or("a keepalive before any public_key")?, seconds));
            }
            _ => return Err("only persistent_keepalive_interval can be set"),
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn get_lists_device_and_peers() {
        let peer = PeerStats {
            public_key: [0xab; 32],
            endpoint: Some(SocketAddr::from(([10, 99, 0, 2], 51002))),
            tunnel_addr: Ipv4Addr::new(100, 64, 0, 2),
            rx_bytes: 10,
            tx_bytes: 20,
            last_handshake: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5)),
        };
        let reply = format_get(&[1; 32], 51001, &[(peer, 25)]);
        let expected = format!(
            "private_key={}\nlisten_port=51001\npublic_key={}\nendpoint=10.99.0.2:51002\n\
             allowed_ip=100.64.0.2/32\nlast_handshake_time_sec=1700000000\n\
             last_handshake_time_nsec=5\nrx_bytes=10\ntx_bytes=20\n\
             persistent_keepalive_interval=25\nprotocol_version=1\nerrno=0\n\n",
            "01".repeat(32),
            "ab".repeat(32)
        );
        assert_eq!(reply, expected);
    }

    #[test]
    fn set_accepts_keepalive_of_known_peers() {
        let body = lines(&format!(
            "public_key={}\npersistent_keepalive_interval=25",
            "ab".repeat(32)
        ));
        assert_eq!(
            parse_set(&body, |k| *k == [0xab; 32]),
            Ok(vec![([0xab; 32], 25)])
        );
    }

    #[test]
    fn set_refuses_what_it_does_not_support() {
        let key = "ab".repeat(32);
        for body in [
            format!("public_key={}", "cd".repeat(32)),
            format!("public_key={key}\nendpoint=1.2.3.4:5"),
            format!("public_key={key}\npersistent_keepalive_interval=x"),
            "persistent_keepalive_interval=5".to_string(),
            "private_key=00".to_string(),
            "public_key=zz".to_string(),
            "garbage".to_string(),
        ] {
            assert!(
                parse_set(&lines(&body), |k| *k == [0xab; 32]).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn requests_end_at_a_blank_line() {
        let mut input = io::Cursor::new("get=1\n\nset=1\npublic_key=00\n\n");
        assert_eq!(read_request(&mut input).unwrap(), Some(lines("get=1")));
        assert_eq!(
            read_request(&mut input).unwrap(),
            Some(lines("set=1\npublic_key=00"))
        );
        assert_eq!(read_request(&mut input).unwrap(), None);
    }
}
