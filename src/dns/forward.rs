//! Names that are not the swarm's go to the host's own resolvers, from
//! /etc/resolv.conf (read again whenever it changes): over UDP, again over
//! TCP when the answer was truncated, each server in turn until one answers
//! or the time is up, and SERVFAIL when none did.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

use super::answer::servfail;

/// How long one server has to answer.
const PER_SERVER: Duration = Duration::from_secs(2);
/// How long a query may wait in all, below a stub's usual 5 s.
const IN_ALL: Duration = Duration::from_secs(4);
/// resolv.conf's own limit.
const MAX_SERVERS: usize = 3;

/// What was read from resolv.conf, and when the file was as it is.
#[derive(Debug, Default, Clone, PartialEq)]
struct Conf {
    stamp: Option<(SystemTime, u64)>,
    servers: Vec<SocketAddr>,
}

/// The host's resolvers.
#[derive(Debug)]
pub struct Upstreams {
    path: PathBuf,
    conf: Mutex<Conf>,
}

impl Upstreams {
    pub fn new(path: PathBuf) -> Upstreams {
        Upstreams {
            path,
            conf: Mutex::new(Conf::default()),
        }
    }

    /// The servers, from the file as it is now.
    pub fn servers(&self) -> Vec<SocketAddr> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let mut conf = self.conf.lock().unwrap_or_else(|e| e.into_inner());
        if conf.stamp != stamp || stamp.is_none() {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            let servers = parse_servers(&text);
            if conf.servers != servers {
                tracing::info!(path = %self.path.display(), ?servers, "upstream resolvers");
            }
            *conf = Conf { stamp, servers };
        }
        conf.servers.clone()
    }

    /// The upstream reply to `query` (its ID as the asker sent it), or SERVFAIL.
    pub async fn forward(&self, query: &[u8]) -> Option<Vec<u8>> {
        let deadline = Instant::now() + IN_ALL;
        for server in self.servers() {
            let until = deadline.min(Instant::now() + PER_SERVER);
            match ask(server, query, until).await {
                Ok(reply) => return Some(reply),
                Err(e) => tracing::debug!(%server, error = %e, "upstream resolver did not answer"),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        servfail(query)
    }
}

/// `nameserver` lines, loopback ones included (we ask from the host's namespace).
fn parse_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|addr| addr.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .take(MAX_SERVERS)
        .collect()
}

/// One server: UDP with a fresh ID, TCP if the answer was truncated.
async fn ask(server: SocketAddr, query: &[u8], until: Instant) -> std::io::Result<Vec<u8>> {
    let id = rand::random::<u16>();
    let mut ours = query.to_vec();
    ours[..2].copy_from_slice(&id.to_be_bytes());
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    socket.send(&ours).await?;
    let mut buf = vec![0u8; 65535];
    let mut reply = loop {
        let n = timeout_at(until, socket.recv(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        // Another ID is a stray or a forgery: keep waiting for ours.
        if n >= 12 && buf[..2] == ours[..2] && buf[2] & 0x80 != 0 {
            break buf[..n].to_vec();
        }
    };
    if reply[2] & 0x02 != 0 {
        reply = ask_tcp(server, &ours, until).await?;
    }
    reply[..2].copy_from_slice(&query[..2]);
    Ok(reply)
}

async fn ask_tcp(server: SocketAddr, query: &[u8], until: Instant) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await?;
        if reply.len() < 12 || reply[..2] != query[..2] {
            return Err(std::io::Error::other("a reply to another query"));
        }
        Ok(reply)
    };
    timeout_at(until, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_become_servers() {
        let text =
            "# a comment\nsearch example.com\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\n\
                    nameserver bogus\nnameserver 127.0.0.53\nnameserver 192.0.2.9\n";
        let servers = parse_servers(text);
        assert_eq!(
            servers,
            [
                "192.0.2.1:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "127.0.0.53:53".parse().unwrap()
            ]
        );
        assert!(parse_servers("").is_empty());
    }

    #[test]
    fn the_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let up = Upstreams::new(path.clone());
        assert_eq!(up.servers(), ["192.0.2.1:53".parse().unwrap()]);
        std::fs::write(&path, "nameserver 192.0.2.22\nnameserver 192.0.2.3\n").unwrap();
        assert_eq!(up.servers().len(), 2, "a change of size is seen");
        std::fs::remove_file(&path).unwrap();
        assert!(up.servers().is_empty(), "no file, no upstream");
    }

    #[tokio::test]
    async fn no_upstream_is_servfail_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let up = Upstreams::new(dir.path().join("none"));
        let query = [
            0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
        ];
        let started = std::time::Instant::now();
        let reply = up.forward(&query).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(reply[..2], [0xab, 0xcd]);
        assert_eq!(reply[3] & 0x0f, 2, "SERVFAIL");
    }

    #[tokio::test]
    async fn a_server_that_says_nothing_is_given_up_on_in_time() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let query = [
            0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
        ];
        let until = Instant::now() + Duration::from_millis(200);
        let err = ask(silent.local_addr().unwrap(), &query, until)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_truncated_answer_is_asked_again_over_tcp() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = std::net::TcpListener::bind(addr).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut buf = [0u8; 512];
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            let mut truncated = buf[..n].to_vec();
            truncated[2] |= 0x82;
            udp.send_to(&truncated, from).unwrap();
            let (mut conn, _) = tcp.accept().unwrap();
            let mut len = [0u8; 2];
            conn.read_exact(&mut len).unwrap();
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            conn.read_exact(&mut q).unwrap();
            q[2] |= 0x80;
            q.push(0xee);
            conn.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
            conn.write_all(&q).unwrap();
        });
        let query = [
            0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
        ];
        let reply = ask(addr, &query, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        server.join().unwrap();
        assert_eq!(reply[..2], [0xab, 0xcd], "the asker's ID back");
        assert_eq!(reply.last(), Some(&0xee), "the TCP answer");
    }
}
