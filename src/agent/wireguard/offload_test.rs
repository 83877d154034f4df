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
    let mut gro = Coalescer::new();
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
    let mut frame = vec![F_NEEDS_CSUM, GSO_TCPV4, 52, 0, 100, 0, 20, 0, 16, 0];
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
    let mut frame = vec![F_NEEDS_CSUM, GSO_NONE, 0, 0, 0, 0, 20, 0, 6, 0];
    frame.extend_from_slice(&udp);
    let got = split(&mut frame);
    assert_eq!(got.len(), 1);
    assert!(checksums_valid(&got[0]));
    let mut plain = vec![0; VNET_HDR_LEN];
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
    assert_eq!(frame.len(), VNET_HDR_LEN + 52 + 330);
    assert_eq!(split(&mut frame), packets);
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
        assert_eq!(&frame[VNET_HDR_LEN..], &packet[..]);
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
