//! TUN offloads, without I/O: the `virtio_net_hdr` that prefixes every packet
//! on a TUN opened with `IFF_VNET_HDR`; cutting the kernel's TCP super-packets
//! (TSO) into MTU-sized segments with their own headers and checksums; and
//! coalescing received segments of one TCP flow into one super-packet (GRO).
//! The same for TCP carried in VXLAN (the overlays ride inside the mesh): the
//! kernel hands over UDP-tunnel super-packets (`TUN_F_UDP_TUNNEL_GSO`), cut
//! here into whole VXLAN datagrams, and received datagrams of one inner flow
//! are joined back into one, so the overlay costs about what the mesh does.

use crate::model::VXLAN_PORT;

/// Size of the header before each packet, as the TUN is set up
/// (`TUNSETVNETHDRSZ`): `virtio_net_hdr_v1_hash_tunnel`, the 12 bytes of
/// `virtio_net_hdr_v1`, 8 of hash fields (unused), then the UDP-tunnel
/// offsets of the outer transport header and the inner network header.
pub(super) const VNET_HDR_LEN: usize = 24;
/// The Ethernet header after it (the interface is a TAP; see `tun`).
pub(super) const ETH_HLEN: usize = 14;
/// Everything before the IPv4 packet in a frame.
pub(super) const FRAME_PREFIX: usize = VNET_HDR_LEN + ETH_HLEN;
/// The mesh interface's MAC: frames written to it are addressed to it.
pub(super) const MESH_MAC: [u8; 6] = [0x02, 0x73, 0x6e, 0, 0, 1];
/// The Ethernet header of every frame written: to the interface, IPv4.
const ETH_HEADER: [u8; ETH_HLEN] = [
    0x02, 0x73, 0x6e, 0, 0, 1, 0x02, 0x73, 0x6e, 0, 0, 2, 0x08, 0x00,
];
/// Where the UDP-tunnel offsets sit in that header.
const OUTER_TH_OFFSET: usize = 20;
const INNER_NH_OFFSET: usize = 22;

/// Largest IPv4 packet, and so largest super-packet.
pub(super) const MAX_PACKET: usize = 65535;

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_ECN: u8 = 0x80;
const GSO_UDP_TUNNEL_IPV4: u8 = 0x20;
/// The outer UDP checksum is to be filled in too (never asked for here).
const F_UDP_TUNNEL_CSUM: u8 = 0x08;
/// UDP (8), VXLAN (8) and the inner Ethernet header (14) after the outer IP header.
const VXLAN_ENCAP: usize = 30;

const IPV4_HDR: usize = 20;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;
/// Offset of the checksum in the TCP header.
const TCP_CSUM: usize = 16;

/// Why a packet read from the TUN could not be used.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed;

/// Turns a frame read from the interface (`virtio_net_hdr`, Ethernet header,
/// packet) into plain IPv4 packets with complete checksums, appended to
/// `out`; returns the end offset in `out` of each. Frames that are not IPv4
/// (the kernel's IPv6 chatter) give nothing.
pub(super) fn split_frame(
    frame: &mut [u8],
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), Malformed> {
    out.clear();
    ends.clear();
    if frame.len() <= FRAME_PREFIX {
        return Err(Malformed);
    }
    if frame[FRAME_PREFIX - 2..FRAME_PREFIX] != [0x08, 0x00] {
        return Ok(());
    }
    let (hdr, packet) = frame.split_at_mut(VNET_HDR_LEN);
    let packet = &mut packet[ETH_HLEN..];
    let field = |i: usize| usize::from(u16::from_ne_bytes([hdr[i], hdr[i + 1]]));
    // Offsets in the header count from the Ethernet header.
    let offset = |i: usize| field(i).checked_sub(ETH_HLEN).ok_or(Malformed);
    match hdr[1] & !GSO_ECN {
        GSO_NONE => {
            if hdr[0] & F_NEEDS_CSUM != 0 {
                complete_checksum(packet, offset(6)?, field(8))?;
            }
            out.extend_from_slice(packet);
            ends.push(out.len());
            Ok(())
        }
        GSO_TCPV4 => segment_tcp4(packet, &[], field(4), out, ends),
        gso if gso == GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4 && hdr[0] & F_UDP_TUNNEL_CSUM == 0 => {
            let inner = offset(INNER_NH_OFFSET)?;
            if inner < IPV4_HDR + 8 || inner >= packet.len() {
                return Err(Malformed);
            }
            let (prefix, rest) = packet.split_at(inner);
            segment_tcp4(rest, prefix, field(4), out, ends)
        }
        _ => Err(Malformed),
    }
}

/// Fills in a checksum the kernel left partial: the field at `start +
/// offset` holds the pseudo-header sum; the rest is summed from `start`.
fn complete_checksum(packet: &mut [u8], start: usize, offset: usize) -> Result<(), Malformed> {
    let at = start.checked_add(offset).ok_or(Malformed)?;
    if at + 2 > packet.len() {
        return Err(Malformed);
    }
    let mut csum = !fold(sum(&packet[start..], 0));
    if csum == 0 && packet.get(9) == Some(&PROTO_UDP) {
        csum = 0xffff;
    }
    packet[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// Header lengths (IP, IP + TCP) of an IPv4 TCP packet.
fn tcp4_headers(packet: &[u8]) -> Option<(usize, usize)> {
    if packet.len() < IPV4_HDR || packet[0] >> 4 != 4 || packet[9] != PROTO_TCP {
        return None;
    }
    let ip = usize::from(packet[0] & 0xf) * 4;
    let tcp = usize::from(*packet.get(ip + 12)? >> 4) * 4;
    (ip >= IPV4_HDR && tcp >= 20 && ip + tcp <= packet.len()).then_some((ip, ip + tcp))
}

/// Cuts a TCP/IPv4 super-packet into segments of `mss` payload bytes, each
/// behind a copy of `prefix`: nothing, or the outer IPv4, UDP, VXLAN and
/// Ethernet headers of a tunnelled one (given their own lengths and IDs).
fn segment_tcp4(
    packet: &[u8],
    prefix: &[u8],
    mss: usize,
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), Malformed> {
    let (ip_len, hdr_len) = tcp4_headers(packet).ok_or(Malformed)?;
    if mss == 0 || prefix.len() + hdr_len + mss > MAX_PACKET {
        return Err(Malformed);
    }
    let outer = match prefix.is_empty() {
        true => None,
        false => Some(udp_tunnel(prefix).ok_or(Malformed)?),
    };
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let seq = u32::from_be_bytes(
        packet[ip_len + 4..ip_len + 8]
            .try_into()
            .unwrap_or_default(),
    );
    let payload = &packet[hdr_len..];
    let count = payload.len().div_ceil(mss).max(1);
    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let start = out.len();
        out.extend_from_slice(prefix);
        out.extend_from_slice(&packet[..hdr_len]);
        out.extend_from_slice(chunk);
        if let Some(outer_ip) = outer {
            set_outer_lengths(&mut out[start..], outer_ip, i as u16);
        }
        let seg = &mut out[start + prefix.len()..];
        let total = seg.len() as u16;
        seg[2..4].copy_from_slice(&total.to_be_bytes());
        seg[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        set_ip_checksum(seg, ip_len);
        let tcp = &mut seg[ip_len..];
        let offset = (i * mss) as u32;
        tcp[4..8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
        if i + 1 < count {
            tcp[13] &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            tcp[13] &= !TCP_CWR;
        }
        set_tcp_checksum(seg, ip_len, false);
        ends.push(out.len());
    }
    Ok(())
}

/// The outer IP header length of the headers before a tunnelled packet, if
/// they are IPv4 then UDP without a checksum, then anything (VXLAN on any
/// port, Geneve, ...): what the kernel may hand over as a UDP-tunnel
/// super-packet.
fn udp_tunnel(prefix: &[u8]) -> Option<usize> {
    let ip_len = usize::from(*prefix.first()? & 0xf) * 4;
    let ok = prefix[0] >> 4 == 4
        && ip_len >= IPV4_HDR
        && prefix.len() >= ip_len + 8
        && prefix[9] == PROTO_UDP
        && prefix[ip_len + 6..ip_len + 8] == [0, 0];
    ok.then_some(ip_len)
}

/// The outer IP header length of our VXLAN headers (outer IPv4, UDP to the
/// VXLAN port without a checksum, VXLAN, Ethernet carrying IPv4), if they
/// are such: only those are joined on receive.
fn vxlan_headers(prefix: &[u8]) -> Option<usize> {
    let ip_len = udp_tunnel(prefix).filter(|len| *len == IPV4_HDR)?;
    let ok = prefix.len() == ip_len + VXLAN_ENCAP
        && prefix[ip_len + 2..ip_len + 4] == VXLAN_PORT.to_be_bytes()
        && prefix[prefix.len() - 2..] == [0x08, 0x00];
    ok.then_some(ip_len)
}

/// Gives a tunnelled packet's outer headers its length (IP and UDP), the
/// outer IP ID plus `id_offset`, and the outer IP checksum.
fn set_outer_lengths(packet: &mut [u8], ip_len: usize, id_offset: u16) {
    let total = packet.len() as u16;
    packet[2..4].copy_from_slice(&total.to_be_bytes());
    let id = u16::from_be_bytes([packet[4], packet[5]]).wrapping_add(id_offset);
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    set_ip_checksum(packet, ip_len);
    let udp_len = total - ip_len as u16;
    packet[ip_len + 4..ip_len + 6].copy_from_slice(&udp_len.to_be_bytes());
}

/// The one's-complement sum of `data` (big-endian 16-bit words), unfolded.
fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = initial;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        acc += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    }
    let mut rest = words.remainder();
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn set_ip_checksum(packet: &mut [u8], ip_len: usize) {
    packet[10..12].fill(0);
    let csum = !fold(sum(&packet[..ip_len], 0));
    packet[10..12].copy_from_slice(&csum.to_be_bytes());
}

/// Sets the TCP checksum: complete, or (`partial`) only the pseudo-header
/// sum, for the kernel to finish.
fn set_tcp_checksum(packet: &mut [u8], ip_len: usize, partial: bool) {
    let tcp_len = packet.len() - ip_len;
    let pseudo = sum(&packet[12..20], u64::from(PROTO_TCP) + tcp_len as u64);
    let at = ip_len + TCP_CSUM;
    packet[at..at + 2].fill(0);
    let csum = if partial {
        fold(pseudo)
    } else {
        !fold(sum(&packet[ip_len..], pseudo))
    };
    packet[at..at + 2].copy_from_slice(&csum.to_be_bytes());
}

/// The segment being built: its first packet's layout and what the next
/// segment must look like to join it.
struct Flow {
    /// Where the TCP/IPv4 packet starts: 0, or after the VXLAN headers.
    base: usize,
    ip_len: usize,
    hdr_len: usize,
    mss: usize,
    next_seq: u32,
    segments: usize,
    /// A short or pushed segment ended it.
    closed: bool,
}

/// Coalesces consecutive TCP segments of one flow (bare or in VXLAN) into
/// super-packets for the interface; other packets pass alone. Each frame to
/// write (`virtio_net_hdr` and Ethernet header included) goes to `write`.
pub(super) struct Coalescer {
    frame: Vec<u8>,
    flow: Option<Flow>,
    /// Whether to join TCP in VXLAN too (the kernel took `TUN_F_UDP_TUNNEL_GSO`).
    tunnel: bool,
}

impl Coalescer {
    pub fn new(tunnel: bool) -> Coalescer {
        Coalescer {
            frame: Vec::with_capacity(FRAME_PREFIX + MAX_PACKET),
            flow: None,
            tunnel,
        }
    }

    /// Adds one plain IPv4 packet.
    pub fn push(&mut self, packet: &[u8], write: &mut impl FnMut(&[u8])) {
        if self.try_append(packet) {
            return;
        }
        self.flush(write);
        self.frame.clear();
        self.frame.extend_from_slice(&[0; VNET_HDR_LEN]);
        self.frame.extend_from_slice(&ETH_HEADER);
        self.frame.extend_from_slice(packet);
        match coalescable(packet).filter(|c| self.tunnel || c.0 == 0) {
            Some((base, ip_len, hdr_len, seq, flags)) => {
                let mss = packet.len() - base - hdr_len;
                self.flow = Some(Flow {
                    base,
                    ip_len,
                    hdr_len,
                    mss,
                    next_seq: seq.wrapping_add(mss as u32),
                    segments: 1,
                    closed: flags & TCP_PSH != 0,
                });
            }
            None => self.flush(write),
        }
    }

    fn try_append(&mut self, packet: &[u8]) -> bool {
        let Some(flow) = &mut self.flow else {
            return false;
        };
        let Some((base, ip_len, hdr_len, seq, flags)) = coalescable(packet) else {
            return false;
        };
        if base != flow.base
            || self.frame.len() - FRAME_PREFIX + packet.len() - base - hdr_len > MAX_PACKET
        {
            return false;
        }
        let outer = &self.frame[FRAME_PREFIX..FRAME_PREFIX + base];
        // Same outer version, TOS, flags, TTL, protocol, addresses, ports,
        // (zero) UDP checksum, VXLAN header and Ethernet header.
        let same_outer = base == 0
            || (outer[..2] == packet[..2]
                && outer[6..10] == packet[6..10]
                && outer[12..24] == packet[12..24]
                && outer[26..] == packet[26..base]);
        let first = &self.frame[FRAME_PREFIX + base..];
        let packet = &packet[base..];
        let payload = packet.len() - hdr_len;
        let joins = same_outer
            && !flow.closed
            && ip_len == flow.ip_len
            && hdr_len == flow.hdr_len
            && seq == flow.next_seq
            && payload <= flow.mss
            // Same version, TOS, flags and fragment offset, TTL, protocol.
            && first[..2] == packet[..2]
            && first[6..10] == packet[6..10]
            // Same addresses, ports, ack, window and options; flags equal
            // but for PSH.
            && first[12..ip_len + 4] == packet[12..ip_len + 4]
            && first[ip_len + 8..ip_len + 13] == packet[ip_len + 8..ip_len + 13]
            && (first[ip_len + 13] ^ flags) & !TCP_PSH == 0
            && first[ip_len + 14..ip_len + 16] == packet[ip_len + 14..ip_len + 16]
            && first[ip_len + 20..hdr_len] == packet[ip_len + 20..hdr_len];
        if !joins {
            return false;
        }
        self.frame.extend_from_slice(&packet[hdr_len..]);
        flow.next_seq = seq.wrapping_add(payload as u32);
        flow.segments += 1;
        flow.closed = payload < flow.mss || flags & TCP_PSH != 0;
        if flags & TCP_PSH != 0 {
            self.frame[FRAME_PREFIX + base + ip_len + 13] |= TCP_PSH;
        }
        true
    }

    /// Writes what is held, if anything.
    pub fn flush(&mut self, write: &mut impl FnMut(&[u8])) {
        if self.frame.is_empty() {
            return;
        }
        if let Some(flow) = self.flow.take().filter(|f| f.segments > 1) {
            let base = flow.base;
            if base > 0 {
                set_outer_lengths(&mut self.frame[FRAME_PREFIX..], IPV4_HDR, 0);
            }
            let packet = &mut self.frame[FRAME_PREFIX + base..];
            let total = packet.len() as u16;
            packet[2..4].copy_from_slice(&total.to_be_bytes());
            set_ip_checksum(packet, flow.ip_len);
            set_tcp_checksum(packet, flow.ip_len, true);
            let hdr = &mut self.frame[..VNET_HDR_LEN];
            let put = |hdr: &mut [u8], at: usize, value: usize| {
                hdr[at..at + 2].copy_from_slice(&(value as u16).to_ne_bytes())
            };
            hdr[0] = F_NEEDS_CSUM;
            hdr[1] = if base > 0 {
                GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4
            } else {
                GSO_TCPV4
            };
            // Offsets count from the Ethernet header.
            put(hdr, 2, ETH_HLEN + base + flow.hdr_len);
            put(hdr, 4, flow.mss);
            put(hdr, 6, ETH_HLEN + base + flow.ip_len);
            put(hdr, 8, TCP_CSUM);
            if base > 0 {
                put(hdr, OUTER_TH_OFFSET, ETH_HLEN + IPV4_HDR);
                put(hdr, INNER_NH_OFFSET, ETH_HLEN + base);
            }
        }
        write(&self.frame);
        self.frame.clear();
    }
}

/// Layout of a TCP/IPv4 segment, bare or in VXLAN, that may join a
/// super-packet: unfragmented (inside and out), carrying data, flags ACK with
/// or without PSH. Returns (offset of the TCP/IPv4 packet, IP header length,
/// header length, sequence number, flags).
fn coalescable(packet: &[u8]) -> Option<(usize, usize, usize, u32, u8)> {
    let base = match packet.get(9) {
        Some(&PROTO_UDP) => {
            let base = IPV4_HDR + VXLAN_ENCAP;
            let outer_ip = vxlan_headers(packet.get(..base)?)?;
            let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            let udp_len = usize::from(u16::from_be_bytes([
                packet[outer_ip + 4],
                packet[outer_ip + 5],
            ]));
            let fragmented = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0;
            if total != packet.len() || udp_len != total - outer_ip || fragmented {
                return None;
            }
            base
        }
        _ => 0,
    };
    let packet = &packet[base..];
    let (ip_len, hdr_len) = tcp4_headers(packet)?;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let fragmented = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0;
    let flags = packet[ip_len + 13];
    let ok = total == packet.len()
        && !fragmented
        && packet.len() > hdr_len
        && flags & !TCP_PSH == TCP_ACK;
    let seq = u32::from_be_bytes(packet[ip_len + 4..ip_len + 8].try_into().ok()?);
    ok.then_some((base, ip_len, hdr_len, seq, flags))
}

#[cfg(test)]
#[path = "offload_test.rs"]
mod tests;
