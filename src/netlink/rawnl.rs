//! A minimal NETLINK_ROUTE client for what rtnetlink 0.14 cannot express
//! without naming netlink-packet-route's types (not a direct dependency of
//! this crate): FDB entries flagged NTF_SELF, and reading the attributes of
//! links, addresses and neighbours. Messages are encoded and decoded here as
//! plain bytes; the socket is blocking and every exchange is one request.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;

const RTM_GETLINK: u16 = 18;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_GETNEIGH: u16 = 30;

const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_ID: u16 = 1;
const IFLA_VXLAN_LOCAL: u16 = 4;
const IFA_LOCAL: u16 = 2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Attribute type bits (without NLA_F_NESTED and NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const AF_INET: u8 = libc::AF_INET as u8;
pub const AF_BRIDGE: u8 = libc::AF_BRIDGE as u8;
pub const NUD_PERMANENT: u16 = 0x80;
pub const NTF_SELF: u8 = 0x02;
pub const NTF_MASTER: u8 = 0x04;

/// What the overlay reads of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    pub mtu: u32,
    /// The index of the bridge it is enslaved to, 0 if none.
    pub master: u32,
    pub up: bool,
    /// Set when the link is a VXLAN device.
    pub vxlan: Option<Vxlan>,
}

/// What the overlay reads of a VXLAN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vxlan {
    pub vni: u32,
    pub local: Option<Ipv4Addr>,
}

/// A neighbour entry: an ARP entry (AF_INET) or an FDB entry (AF_BRIDGE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub family: u8,
    pub ifindex: u32,
    pub state: u16,
    pub flags: u8,
    pub lladdr: Option<[u8; 6]>,
    pub dst: Option<Ipv4Addr>,
}

/// A netlink socket bound to the namespace it was opened in.
pub struct RawNl {
    fd: OwnedFd,
    seq: u32,
}

impl RawNl {
    /// Opens the socket in the calling thread's namespace.
    pub fn open() -> io::Result<RawNl> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(RawNl { fd, seq: 0 })
    }

    pub fn link(&mut self, index: u32) -> io::Result<LinkState> {
        let mut body = vec![0u8; 16];
        body[4..8].copy_from_slice(&index.to_ne_bytes());
        let replies = self.exchange(RTM_GETLINK, 0, &body)?;
        let reply = replies
            .first()
            .filter(|r| r.len() >= 16)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short RTM_NEWLINK"))?;
        let flags = u32::from_ne_bytes(reply[8..12].try_into().unwrap());
        let mut state = LinkState {
            mtu: 0,
            master: 0,
            up: flags & libc::IFF_UP as u32 != 0,
            vxlan: None,
        };
        for (kind, value) in attributes(&reply[16..]) {
            match (kind, value.len()) {
                (IFLA_MTU, 4) => state.mtu = u32::from_ne_bytes(value.try_into().unwrap()),
                (IFLA_MASTER, 4) => state.master = u32::from_ne_bytes(value.try_into().unwrap()),
                (IFLA_LINKINFO, _) => state.vxlan = vxlan_info(value),
                _ => {}
            }
        }
        Ok(state)
    }

    /// The IPv4 addresses (address, prefix length) on link `index`.
    pub fn addresses(&mut self, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let body = [AF_INET, 0, 0, 0, 0, 0, 0, 0];
        let mut found = Vec::new();
        for reply in self.exchange(RTM_GETADDR, NLM_F_DUMP, &body)? {
            if reply.len() < 8 || u32::from_ne_bytes(reply[4..8].try_into().unwrap()) != index {
                continue;
            }
            for (kind, value) in attributes(&reply[8..]) {
                if let (IFA_LOCAL, Ok(octets)) = (kind, <[u8; 4]>::try_from(value)) {
                    found.push((Ipv4Addr::from(octets), reply[1]));
                }
            }
        }
        Ok(found)
    }

    pub fn delete_address(&mut self, index: u32, ip: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mut body = vec![AF_INET, prefix_len, 0, 0];
        body.extend(index.to_ne_bytes());
        push_attribute(&mut body, IFA_LOCAL, &ip.octets());
        self.exchange(RTM_DELADDR, 0, &body).map(drop)
    }

    /// Every neighbour entry of one family, on every link.
    pub fn neighbours(&mut self, family: u8) -> io::Result<Vec<Neighbour>> {
        let body = encode_neighbour(&Neighbour {
            family,
            ifindex: 0,
            state: 0,
            flags: 0,
            lladdr: None,
            dst: None,
        });
        let replies = self.exchange(RTM_GETNEIGH, NLM_F_DUMP, &body)?;
        Ok(replies.iter().filter_map(|r| decode_neighbour(r)).collect())
    }

    /// Adds or replaces (NLM_F_CREATE | NLM_F_REPLACE) a neighbour entry.
    pub fn put_neighbour(&mut self, entry: &Neighbour) -> io::Result<()> {
        let body = encode_neighbour(entry);
        self.exchange(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &body)
            .map(drop)
    }

    pub fn delete_neighbour(&mut self, entry: &Neighbour) -> io::Result<()> {
        self.exchange(RTM_DELNEIGH, 0, &encode_neighbour(entry))
            .map(drop)
    }

    /// Sends one request and returns the payloads of its answers: every
    /// entry for a dump, none for a change (acknowledged).
    fn exchange(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let flags = flags | NLM_F_REQUEST | if dump { 0 } else { NLM_F_ACK };
        let mut request = Vec::with_capacity(16 + body.len());
        request.extend(((16 + body.len()) as u32).to_ne_bytes());
        request.extend(kind.to_ne_bytes());
        request.extend(flags.to_ne_bytes());
        request.extend(self.seq.to_ne_bytes());
        request.extend(0u32.to_ne_bytes());
        request.extend(body);
        retry(|| send(self.fd.as_raw_fd(), &request, MsgFlags::empty()))?;

        let mut payloads = Vec::new();
        loop {
            let datagram = self.receive()?;
            for (kind, seq, payload) in messages(&datagram)? {
                if seq != self.seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = payload
                            .get(..4)
                            .map_or(0, |c| i32::from_ne_bytes(c.try_into().unwrap()));
                        if code < 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        if kind == NLMSG_DONE || !dump {
                            return Ok(payloads);
                        }
                    }
                    _ => payloads.push(payload.to_vec()),
                }
            }
        }
    }

    fn receive(&self) -> io::Result<Vec<u8>> {
        let fd = self.fd.as_raw_fd();
        let peek = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
        let size = retry(|| recv(fd, &mut [0u8; 0], peek))?;
        let mut datagram = vec![0u8; size];
        let got = retry(|| recv(fd, &mut datagram, MsgFlags::empty()))?;
        datagram.truncate(got);
        Ok(datagram)
    }
}

fn retry<T>(mut call: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Splits a datagram into (type, sequence number, payload) messages.
fn messages(datagram: &[u8]) -> io::Result<Vec<(u16, u32, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
        if len < 16 || len > rest.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink message",
            ));
        }
        let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
        let seq = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
        out.push((kind, seq, &rest[16..len]));
        rest = &rest[align(len).min(rest.len())..];
    }
    Ok(out)
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The (type, value) attributes in `data`; stops at the first malformed one.
fn attributes(data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes(rest[0..2].try_into().unwrap()) as usize;
        if len < 4 || len > rest.len() {
            break;
        }
        let kind = u16::from_ne_bytes(rest[2..4].try_into().unwrap()) & NLA_TYPE_MASK;
        out.push((kind, &rest[4..len]));
        rest = &rest[align(len).min(rest.len())..];
    }
    out
}

/// The VNI and local address in an IFLA_LINKINFO of kind "vxlan".
fn vxlan_info(linkinfo: &[u8]) -> Option<Vxlan> {
    let info = attributes(linkinfo);
    let find = |wanted| info.iter().find(|(kind, _)| *kind == wanted).map(|a| a.1);
    if find(IFLA_INFO_KIND)? != b"vxlan\0" {
        return None;
    }
    let mut vxlan = Vxlan {
        vni: 0,
        local: None,
    };
    for (kind, value) in attributes(find(IFLA_INFO_DATA)?) {
        match (kind, <[u8; 4]>::try_from(value)) {
            (IFLA_VXLAN_ID, Ok(vni)) => vxlan.vni = u32::from_ne_bytes(vni),
            (IFLA_VXLAN_LOCAL, Ok(local)) => vxlan.local = Some(Ipv4Addr::from(local)),
            _ => {}
        }
    }
    Some(vxlan)
}

fn push_attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buf.extend(((4 + value.len()) as u16).to_ne_bytes());
    buf.extend(kind.to_ne_bytes());
    buf.extend(value);
    buf.resize(align(buf.len()), 0);
}

/// struct ndmsg, then NDA_DST and NDA_LLADDR when set.
fn encode_neighbour(entry: &Neighbour) -> Vec<u8> {
    let mut body = vec![entry.family, 0, 0, 0];
    body.extend(entry.ifindex.to_ne_bytes());
    body.extend(entry.state.to_ne_bytes());
    body.extend([entry.flags, 0]);
    if let Some(dst) = entry.dst {
        push_attribute(&mut body, NDA_DST, &dst.octets());
    }
    if let Some(lladdr) = entry.lladdr {
        push_attribute(&mut body, NDA_LLADDR, &lladdr);
    }
    body
}

/// The entry in an RTM_NEWNEIGH payload; addresses that are not IPv4 or
/// Ethernet are left out (None).
fn decode_neighbour(payload: &[u8]) -> Option<Neighbour> {
    if payload.len() < 12 {
        return None;
    }
    let mut entry = Neighbour {
        family: payload[0],
        ifindex: u32::from_ne_bytes(payload[4..8].try_into().unwrap()),
        state: u16::from_ne_bytes(payload[8..10].try_into().unwrap()),
        flags: payload[10],
        lladdr: None,
        dst: None,
    };
    for (kind, value) in attributes(&payload[12..]) {
        match kind {
            NDA_DST => entry.dst = <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from),
            NDA_LLADDR => entry.lladdr = value.try_into().ok(),
            _ => {}
        }
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_neighbour_survives_encoding() {
        let entry = Neighbour {
            family: AF_BRIDGE,
            ifindex: 7,
            state: NUD_PERMANENT,
            flags: NTF_SELF,
            lladdr: Some([2, 0, 0, 0, 0, 9]),
            dst: Some(Ipv4Addr::new(100, 64, 0, 2)),
        };
        let body = encode_neighbour(&entry);
        // ndmsg (12) + NDA_DST (8) + NDA_LLADDR (4 + 6, padded to 12)
        assert_eq!(body.len(), 32);
        assert_eq!(decode_neighbour(&body), Some(entry));
        let bare = Neighbour {
            lladdr: None,
            dst: None,
            ..entry
        };
        assert_eq!(decode_neighbour(&encode_neighbour(&bare)), Some(bare));
    }

    #[test]
    fn vxlan_link_info_is_read_and_other_kinds_are_not() {
        let linkinfo = |kind: &[u8]| {
            let mut data = Vec::new();
            push_attribute(&mut data, IFLA_VXLAN_ID, &4242u32.to_ne_bytes());
            push_attribute(&mut data, IFLA_VXLAN_LOCAL, &[100, 64, 0, 1]);
            let mut info = Vec::new();
            push_attribute(&mut info, IFLA_INFO_KIND, kind);
            push_attribute(&mut info, IFLA_INFO_DATA, &data);
            info
        };
        let want = Vxlan {
            vni: 4242,
            local: Some(Ipv4Addr::new(100, 64, 0, 1)),
        };
        assert_eq!(vxlan_info(&linkinfo(b"vxlan\0")), Some(want));
        assert_eq!(vxlan_info(&linkinfo(b"bridge\0")), None);
        assert_eq!(vxlan_info(&[]), None);
    }

    #[test]
    fn malformed_input_is_refused_or_cut_short() {
        assert_eq!(decode_neighbour(&[0; 11]), None);
        assert!(messages(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        let mut data = Vec::new();
        push_attribute(&mut data, IFLA_MTU, &1400u32.to_ne_bytes());
        data.extend([40, 0, 1, 0]);
        assert_eq!(
            attributes(&data),
            vec![(IFLA_MTU, &1400u32.to_ne_bytes()[..])]
        );
    }
}
