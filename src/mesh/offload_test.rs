//! Unit tests of `offload`: TSO frames cut up, checksums completed, segments
//! coalesced and split back.

use super::*;

/// A TCP/IPv4 packet with valid checksums and a timestamp option.
fn tcp(id: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, PROTO_TCP, 0, 0];
    p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x1f, 0x90, 0xc0, 0x01]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(&[0x80, flags, 0x01, 0xf5, 0, 0, 0, 0]);
    p.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend_from_slice(payload);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    set_ip_checksum(&mut p, IPV4_HDR);
    set_tcp_checksum(&mut p, IPV4_HDR, false);
    p
}

/// The start of a frame as the kernel reads it out: flags, GSO type, then
/// hdr_len, gso_size, csum_start, csum_offset (offsets given from the IP
/// header, stored from the Ethernet header), then the Ethernet header.
fn header(flags: u8, gso: u8, fields: [u16; 4]) -> Vec<u8> {
    let mut hdr = vec![flags, gso];
    for (i, f) in fields.into_iter().enumerate() {
        let f = if matches!(i, 0 | 2) && f != 0 {
            f + ETH_HLEN as u16
        } else {
            f
        };
        hdr.extend_from_slice(&f.to_ne_bytes());
    }
    hdr.resize(VNET_HDR_LEN, 0);
    hdr.extend_from_slice(&ETH_HEADER);
    hdr
}

/// `inner` in VXLAN: outer IPv4 (ID `id`) and UDP to 4789 without a checksum,
/// VNI 4097, an Ethernet header.
fn vxlan(id: u16, inner: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, PROTO_UDP, 0, 0];
    p.extend_from_slice(&[100, 64, 0, 1, 100, 64, 0, 2]);
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0xc3, 0x50, 0x12, 0xb5, 0, 0, 0, 0]);
    p.extend_from_slice(&[0x08, 0, 0, 0, 0, 0x10, 0x01, 0]);
    p.extend_from_slice(&[2, 0x42, 10, 0, 0, 2, 2, 0x42, 10, 0, 0, 3, 0x08, 0x00]);
    p.extend_from_slice(inner);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[24..26].copy_from_slice(&(total - 20).to_be_bytes());
    set_ip_checksum(&mut p, IPV4_HDR);
    p
}

fn checksums_valid(p: &[u8]) -> bool {
    let pseudo = sum(&p[12..20], u64::from(p[9]) + (p.len() - IPV4_HDR) as u64);
    fold(sum(&p[..IPV4_HDR], 0)) == 0xffff && fold(sum(&p[IPV4_HDR..], pseudo)) == 0xffff
}

fn split(frame: &mut [u8]) -> Vec<Vec<u8>> {
    let (mut out, mut ends) = (Vec::new(), Vec::new());
    split_frame(frame, &mut out, &mut ends).unwrap();
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let p = out[start..end].to_vec();
            start = end;
            p
        })
        .collect()
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7) as u8).collect()
}

fn coalesce(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    coalesce_with(packets, true)
}

fn coalesce_with(packets: &[Vec<u8>], tunnel: bool) -> Vec<Vec<u8>> {
    let mut gro = Coalescer::new(tunnel);
    let mut frames = Vec::new();
    let mut write = |f: &[u8]| frames.push(f.to_vec());
    for p in packets {
        gro.push(p, &mut write);
    }
    gro.flush(&mut write);
    frames
}

fn segments(count: usize, mss: usize, last: usize) -> Vec<Vec<u8>> {
    let data = payload(mss * (count - 1) + last);
    (0..count)
        .map(|i| {
            let chunk = &data[i * mss..(i * mss + mss).min(data.len())];
            let flags = if i + 1 == count {
                TCP_ACK | TCP_PSH
            } else {
                TCP_ACK
            };
            tcp(9 + i as u16, 1000 + (i * mss) as u32, flags, chunk)
        })
        .collect()
}

#[test]
fn tso_frame_is_cut_into_segments_with_fixed_headers() {
    let data = payload(250);
    let mut frame = header(F_NEEDS_CSUM, GSO_TCPV4, [52, 100, 20, 16]);
    frame.extend(tcp(9, 1000, TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR, &data));
    let got = split(&mut frame);
    assert_eq!(got.len(), 3);
    for (i, p) in got.iter().enumerate() {
        assert!(checksums_valid(p), "segment {i}");
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 9 + i as u16);
        assert_eq!(
            u32::from_be_bytes(p[24..28].try_into().unwrap()),
            1000 + 100 * i as u32
        );
        let flags = p[33];
        assert_eq!(
            flags & (TCP_PSH | TCP_FIN) != 0,
            i == 2,
            "segment {i} flags"
        );
        assert_eq!(flags & TCP_CWR != 0, i == 0, "segment {i} CWR");
        assert_eq!(&p[52..], &data[i * 100..(i * 100 + 100).min(250)]);
    }
}

#[test]
fn partial_checksum_is_completed() {
    let mut udp = vec![
        0x45, 0, 0, 32, 0, 0, 0, 0, 64, PROTO_UDP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    set_ip_checksum(&mut udp, IPV4_HDR);
    udp.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
    let pseudo = fold(sum(&udp[12..20], u64::from(PROTO_UDP) + 12));
    udp[26..28].copy_from_slice(&pseudo.to_be_bytes());
    let mut frame = header(F_NEEDS_CSUM, GSO_NONE, [0, 0, 20, 6]);
    frame.extend_from_slice(&udp);
    let got = split(&mut frame);
    assert_eq!(got.len(), 1);
    assert!(checksums_valid(&got[0]));
    let mut plain = vec![0; VNET_HDR_LEN];
    plain.extend_from_slice(&ETH_HEADER);
    plain.extend(tcp(1, 1, TCP_ACK, b"x"));
    assert_eq!(split(&mut plain), vec![tcp(1, 1, TCP_ACK, b"x")]);
    assert_eq!(
        split_frame(&mut [0; 4], &mut Vec::new(), &mut Vec::new()),
        Err(Malformed)
    );
}

#[test]
fn consecutive_segments_coalesce_and_split_back() {
    let packets = segments(4, 100, 30);
    let frames = coalesce(&packets);
    assert_eq!(frames.len(), 1);
    let mut frame = frames[0].clone();
    assert_eq!(frame[..2], [F_NEEDS_CSUM, GSO_TCPV4]);
    assert_eq!(u16::from_ne_bytes([frame[4], frame[5]]), 100);
    assert_eq!(frame.len(), FRAME_PREFIX + 52 + 330);
    assert_eq!(split(&mut frame), packets);
}

#[test]
fn vxlan_segments_coalesce_into_a_udp_tunnel_frame_and_split_back() {
    let packets: Vec<Vec<u8>> = segments(4, 100, 30)
        .iter()
        .enumerate()
        .map(|(i, inner)| vxlan(300 + i as u16, inner))
        .collect();
    let frames = coalesce(&packets);
    assert_eq!(frames.len(), 1, "one frame for the whole flow");
    let mut frame = frames[0].clone();
    let field = |f: &[u8], i: usize| u16::from_ne_bytes([f[i], f[i + 1]]);
    assert_eq!(frame[..2], [F_NEEDS_CSUM, GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4]);
    assert_eq!(field(&frame, 4), 100, "the inner MSS");
    assert_eq!(
        field(&frame, 6),
        14 + 50 + 20,
        "the inner TCP header, from the Ethernet header"
    );
    assert_eq!(field(&frame, OUTER_TH_OFFSET), 14 + 20);
    assert_eq!(field(&frame, INNER_NH_OFFSET), 14 + 50);
    assert_eq!(frame.len(), FRAME_PREFIX + 50 + 52 + 330);
    assert_eq!(
        split(&mut frame),
        packets,
        "split gives back the very datagrams"
    );
    // Another VNI, or a UDP checksum, does not join.
    let mut other = packets.clone();
    other[1][33] = 0x02;
    set_ip_checksum(&mut other[1], IPV4_HDR);
    assert_eq!(coalesce(&other).len(), 3);
    let mut summed = packets.clone();
    summed[0][26] = 1;
    assert_eq!(coalesce(&summed).len(), 2);
    // A kernel without the UDP-tunnel offload gets them one by one.
    assert_eq!(coalesce_with(&packets, false).len(), 4);
}

#[test]
fn a_tunnel_super_packet_on_any_udp_port_is_cut_into_datagrams() {
    let data = payload(250);
    let inner = tcp(9, 1000, TCP_ACK | TCP_PSH, &data);
    let mut geneve = vxlan(300, &inner);
    geneve[22..24].copy_from_slice(&6081u16.to_be_bytes());
    let mut frame = header(
        F_NEEDS_CSUM,
        GSO_UDP_TUNNEL_IPV4 | GSO_TCPV4,
        [50 + 52, 100, 50 + 20, 16],
    );
    frame[OUTER_TH_OFFSET..OUTER_TH_OFFSET + 2].copy_from_slice(&(14u16 + 20).to_ne_bytes());
    frame[INNER_NH_OFFSET..INNER_NH_OFFSET + 2].copy_from_slice(&(14u16 + 50).to_ne_bytes());
    frame.extend_from_slice(&geneve);
    let got = split(&mut frame);
    assert_eq!(got.len(), 3);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(
            usize::from(u16::from_be_bytes([d[2], d[3]])),
            d.len(),
            "outer length"
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([d[24], d[25]])),
            d.len() - 20,
            "UDP length"
        );
        assert_eq!(u16::from_be_bytes([d[4], d[5]]), 300 + i as u16, "outer ID");
        assert_eq!(fold(sum(&d[..IPV4_HDR], 0)), 0xffff, "outer IP checksum");
        assert_eq!(d[22..24], 6081u16.to_be_bytes());
        assert!(checksums_valid(&d[50..]), "inner segment {i}");
    }
}

#[test]
fn other_packets_pass_alone() {
    // A gap in the sequence, then a SYN, then another flow, then UDP.
    let mut packets = vec![tcp(20, 5000, TCP_ACK, &payload(100))];
    packets.push(tcp(21, 6000, TCP_ACK, &payload(100)));
    packets.push(tcp(21, 5100, 0x02, &[]));
    let mut other = tcp(22, 5100, TCP_ACK, &payload(100));
    other[20] = 0x1f;
    packets.push(other);
    packets.push(vec![
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, PROTO_UDP, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    let frames = coalesce(&packets);
    assert_eq!(frames.len(), packets.len());
    for (frame, packet) in frames.iter().zip(&packets) {
        assert_eq!(frame[..VNET_HDR_LEN], [0; VNET_HDR_LEN]);
        assert_eq!(&frame[FRAME_PREFIX..], &packet[..]);
    }
    // A short segment ends a super-packet: the next starts another.
    let mut packets = segments(2, 100, 50);
    packets[1][33] = TCP_ACK;
    packets.push(tcp(11, 1150, TCP_ACK, &payload(100)));
    packets.push(tcp(12, 1250, TCP_ACK, &payload(100)));
    let frames = coalesce(&packets);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0][1], GSO_TCPV4);
    assert_eq!(frames[1][1], GSO_TCPV4);
}
