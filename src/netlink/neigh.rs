//! Neighbour entries: the ARP table (AF_INET) and a device's forwarding
//! database (AF_BRIDGE), including a VXLAN device's own entries (NTF_SELF,
//! netlink-packet-route's `NeighbourFlag::Own`). Dumped, upserted with
//! replace semantics (as `ip neigh replace` / `bridge fdb replace`), deleted.

use std::fmt;
use std::net::Ipv4Addr;

use anyhow::Context;
use futures::TryStreamExt;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlag, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::AddressFamily;

use super::Ns;

/// The `NUD_PERMANENT` bit of an entry's state.
const NUD_PERMANENT: u16 = 0x80;

/// Which table an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// IPv4 neighbours (ARP): `ip neigh`.
    Arp,
    /// Forwarding entries: `bridge fdb`.
    Fdb,
}

/// A neighbour entry; addresses that are not IPv4 or Ethernet read as None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub table: Table,
    pub ifindex: u32,
    pub permanent: bool,
    /// NTF_SELF: the device's own entry (a VXLAN device's), not its bridge's.
    pub own: bool,
    /// NTF_MASTER: the entry the bridge keeps for this port.
    pub master: bool,
    pub lladdr: Option<[u8; 6]>,
    pub dst: Option<Ipv4Addr>,
}

impl fmt::Display for Neighbour {
    /// `FDB entry MAC dst IP` or `neighbour IP lladdr MAC`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mac = self.lladdr.as_ref().map_or("none".into(), mac_text);
        let dst = self.dst.map_or("none".into(), |ip| ip.to_string());
        match self.table {
            Table::Fdb => write!(f, "FDB entry {mac} dst {dst}"),
            Table::Arp => write!(f, "neighbour {dst} lladdr {mac}"),
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`
pub fn mac_text(mac: &[u8; 6]) -> String {
    let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

impl Ns {
    /// Every entry of one table, on every link.
    pub async fn neighbours(&self, table: Table) -> anyhow::Result<Vec<Neighbour>> {
        let mut request = self.nl.neighbours().get();
        request.message_mut().header.family = family(table);
        let messages: Vec<NeighbourMessage> = request
            .execute()
            .try_collect()
            .await
            .with_context(|| format!("cannot list the {table:?} entries in {}", self.name()))?;
        Ok(messages.iter().filter_map(from_message).collect())
    }

    /// Adds `entry`, or replaces the entry with its key (NLM_F_CREATE |
    /// NLM_F_REPLACE). `device` names its link in errors.
    pub async fn put_neighbour(&self, entry: &Neighbour, device: &str) -> anyhow::Result<()> {
        let mut request = self.nl.neighbours().add_bridge(entry.ifindex, &[]);
        *request.message_mut() = to_message(entry);
        request
            .replace()
            .execute()
            .await
            .with_context(|| format!("cannot write {entry} on {device} in {}", self.name()))
    }

    /// Deletes `entry`; false if it was not there.
    pub async fn delete_neighbour(&self, entry: &Neighbour, device: &str) -> anyhow::Result<bool> {
        match self.nl.neighbours().del(to_message(entry)).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENOENT => Ok(false),
            Err(e) => Err(e)
                .with_context(|| format!("cannot delete {entry} on {device} in {}", self.name())),
        }
    }
}

fn family(table: Table) -> AddressFamily {
    match table {
        Table::Arp => AddressFamily::Inet,
        Table::Fdb => AddressFamily::Bridge,
    }
}

/// struct ndmsg, then NDA_DST and NDA_LLADDR when set.
fn to_message(entry: &Neighbour) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    let header = &mut message.header;
    header.family = family(entry.table);
    header.ifindex = entry.ifindex;
    header.state = if entry.permanent {
        NeighbourState::Permanent
    } else {
        NeighbourState::None
    };
    for (set, flag) in [
        (entry.own, NeighbourFlag::Own),
        (entry.master, NeighbourFlag::Controller),
    ] {
        if set {
            header.flags.push(flag);
        }
    }
    if let Some(dst) = entry.dst {
        let dst = NeighbourAddress::Inet(dst);
        message
            .attributes
            .push(NeighbourAttribute::Destination(dst));
    }
    if let Some(mac) = entry.lladdr {
        let mac = NeighbourAttribute::LinkLocalAddress(mac.to_vec());
        message.attributes.push(mac);
    }
    message
}

/// The entry in an RTM_NEWNEIGH message; None for other families.
fn from_message(message: &NeighbourMessage) -> Option<Neighbour> {
    let header = &message.header;
    let table = match header.family {
        AddressFamily::Inet => Table::Arp,
        AddressFamily::Bridge => Table::Fdb,
        _ => return None,
    };
    let mut entry = Neighbour {
        table,
        ifindex: header.ifindex,
        permanent: u16::from(header.state) & NUD_PERMANENT != 0,
        own: header.flags.contains(&NeighbourFlag::Own),
        master: header.flags.contains(&NeighbourFlag::Controller),
        lladdr: None,
        dst: None,
    };
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => entry.dst = Some(*ip),
            // An FDB entry's destination is parsed as raw bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                entry.dst = <[u8; 4]>::try_from(bytes.as_slice())
                    .ok()
                    .map(Ipv4Addr::from)
            }
            NeighbourAttribute::LinkLocalAddress(mac) => {
                entry.lladdr = mac.as_slice().try_into().ok()
            }
            _ => {}
        }
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::neighbour::NeighbourMessageBuffer;
    use netlink_packet_utils::traits::{Emitable, Parseable};

    use super::*;

    /// `entry` as the kernel would send it back, through the wire format.
    fn round_trip(entry: &Neighbour) -> Option<Neighbour> {
        let message = to_message(entry);
        let mut wire = vec![0; message.buffer_len()];
        message.emit(&mut wire);
        let parsed = NeighbourMessage::parse(&NeighbourMessageBuffer::new(&wire)).unwrap();
        from_message(&parsed)
    }

    #[test]
    fn an_fdb_entry_flagged_self_survives_the_wire() {
        let entry = Neighbour {
            table: Table::Fdb,
            ifindex: 7,
            permanent: true,
            own: true,
            master: false,
            lladdr: Some([2, 0, 0, 0, 0, 9]),
            dst: Some(Ipv4Addr::new(100, 64, 0, 2)),
        };
        let message = to_message(&entry);
        // NTF_SELF is netlink-packet-route's NeighbourFlag::Own.
        assert_eq!(message.header.flags, [NeighbourFlag::Own]);
        let mut wire = vec![0; message.buffer_len()];
        message.emit(&mut wire);
        // ndmsg (12) + NDA_DST (8) + NDA_LLADDR (4 + 6, padded to 12)
        assert_eq!(wire.len(), 32);
        assert_eq!((wire[0], wire[10]), (libc::AF_BRIDGE as u8, 0x02));
        assert_eq!(u16::from_ne_bytes([wire[8], wire[9]]), NUD_PERMANENT);
        assert_eq!(round_trip(&entry), Some(entry));
    }

    #[test]
    fn an_arp_entry_survives_the_wire_and_bare_entries_too() {
        let entry = Neighbour {
            table: Table::Arp,
            ifindex: 3,
            permanent: true,
            own: false,
            master: true,
            lladdr: Some([2, 0x42, 0, 0, 0, 3]),
            dst: Some(Ipv4Addr::new(10, 0, 0, 3)),
        };
        assert_eq!(round_trip(&entry), Some(entry));
        let bare = Neighbour {
            lladdr: None,
            dst: None,
            permanent: false,
            ..entry
        };
        assert_eq!(round_trip(&bare), Some(bare));
        assert_eq!(
            entry.to_string(),
            "neighbour 10.0.0.3 lladdr 02:42:00:00:00:03"
        );
    }

    #[test]
    fn other_families_and_odd_addresses_are_left_out() {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet6;
        assert_eq!(from_message(&message), None);
        message.header.family = AddressFamily::Bridge;
        // A NUD_NOARP | NUD_PERMANENT state still counts as permanent.
        message.header.state = NeighbourState::Other(0xc0);
        message.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Other(vec![0; 16])),
            NeighbourAttribute::LinkLocalAddress(vec![1, 2, 3]),
        ];
        let entry = from_message(&message).unwrap();
        assert!(entry.permanent);
        assert_eq!((entry.dst, entry.lladdr), (None, None));
    }
}
