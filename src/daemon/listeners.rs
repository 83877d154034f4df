//! What already holds a port on this node: the TCP sockets listening and
//! the UDP sockets bound in the node's own network namespace (the one the
//! routing mesh publishes on), read from `/proc/self/net`, each with the
//! process that owns it when one can be found. `service create` and
//! `update` ask every node before publishing a port, so a port something
//! listens on is refused naming who holds it, instead of being taken over
//! silently by the mesh's DNAT (as Docker's is).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// A port a published port would take, as asked: number and `tcp`/`udp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortQuery {
    pub port: u16,
    pub protocol: String,
}

/// A socket on the node that holds one of the ports asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub protocol: String,
    pub addr: SocketAddr,
    /// The owning process, when a process holds the socket.
    pub pid: Option<u32>,
    pub command: Option<String>,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.command, self.pid) {
            (Some(command), Some(pid)) => write!(f, "{command} (pid {pid})")?,
            _ => f.write_str("a socket no process holds")?,
        }
        let how = match self.protocol.as_str() {
            "tcp" => "listening on",
            _ => "bound to",
        };
        write!(f, " {how} {}", self.addr)
    }
}

/// A socket of one of `/proc/net`'s tables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Socket {
    addr: SocketAddr,
    inode: u64,
}

/// TCP's LISTEN state in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// The sockets of one `/proc/net/{tcp,tcp6,udp,udp6}` table that hold a
/// port: TCP ones listening, every UDP one (bound, connected or not).
fn parse_table(text: &str, tcp: bool) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if tcp && *state != TCP_LISTEN {
                return None;
            }
            Some(Socket {
                addr: parse_addr(local)?,
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address
/// as the kernel prints it, each 32-bit word in host (little-endian) order.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_le_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The sockets on this node that hold any of `ports`, with their owners.
pub fn holding(ports: &[PortQuery]) -> Vec<Listener> {
    let mut found = Vec::new();
    for (protocol, tcp) in [("tcp", true), ("udp", false)] {
        let wanted: Vec<u16> = ports
            .iter()
            .filter(|p| p.protocol == protocol)
            .map(|p| p.port)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        for table in [protocol.to_string(), format!("{protocol}6")] {
            let text =
                std::fs::read_to_string(format!("/proc/self/net/{table}")).unwrap_or_default();
            found.extend(
                parse_table(&text, tcp)
                    .into_iter()
                    .filter(|s| wanted.contains(&s.addr.port()))
                    .map(|s| (protocol, s)),
            );
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let owners = owners(found.iter().map(|(_, s)| s.inode).collect());
    found
        .into_iter()
        .map(|(protocol, s)| {
            let owner = owners.get(&s.inode);
            Listener {
                protocol: protocol.to_string(),
                addr: s.addr,
                pid: owner.map(|(pid, _)| *pid),
                command: owner.map(|(_, command)| command.clone()),
            }
        })
        .collect()
}

/// The process (pid and `comm`) holding each socket inode, found through
/// every process's open files; a process that ends meanwhile is skipped.
fn owners(inodes: Vec<u64>) -> HashMap<u64, (u32, String)> {
    let mut owners = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|i| inodes.contains(i)) {
                let command = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_default();
                owners.entry(inode).or_insert((pid, command));
            }
        }
        if owners.len() == inodes.len() {
            break;
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1073 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2000 1 0000000000000000 100 0 0 10 0
   2: 6563A8C0:1F90 6463A8C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 3000 1 0000000000000000 20 4 30 10 -1
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1: 00000000000000000000000001000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4000 2 0000000000000000 0
";

    #[test]
    fn listening_tcp_sockets_and_bound_udp_ones_are_read_with_their_addresses() {
        let tcp = parse_table(TCP, true);
        assert_eq!(
            tcp,
            [
                Socket {
                    addr: "0.0.0.0:8080".parse().unwrap(),
                    inode: 1073
                },
                Socket {
                    addr: "127.0.0.1:3306".parse().unwrap(),
                    inode: 2000
                },
            ],
            "an established connection from port 8080 holds no port"
        );
        let udp = parse_table(UDP6, false);
        assert_eq!(
            udp,
            [Socket {
                addr: "[::1]:5353".parse().unwrap(),
                inode: 4000
            }]
        );
        assert_eq!(parse_table("header\n 0: junk\n", true), []);
    }

    #[test]
    fn a_listener_names_its_process_and_address() {
        let held = Listener {
            protocol: "tcp".into(),
            addr: "0.0.0.0:8080".parse().unwrap(),
            pid: Some(42),
            command: Some("nc".into()),
        };
        assert_eq!(held.to_string(), "nc (pid 42) listening on 0.0.0.0:8080");
        let orphan = Listener {
            protocol: "udp".into(),
            pid: None,
            command: None,
            ..held
        };
        assert_eq!(
            orphan.to_string(),
            "a socket no process holds bound to 0.0.0.0:8080"
        );
    }

    #[test]
    fn a_socket_this_process_listens_on_is_found_with_its_owner() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let held = holding(&[PortQuery {
            port,
            protocol: "tcp".into(),
        }]);
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].pid, Some(std::process::id()));
        assert_eq!(held[0].addr, socket.local_addr().unwrap());
        let udp = holding(&[PortQuery {
            port,
            protocol: "udp".into(),
        }]);
        assert!(udp.is_empty(), "the TCP port holds no UDP one: {udp:?}");
    }
}
