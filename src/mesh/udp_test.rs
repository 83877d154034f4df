//! Unit tests of `udp`: GSO runs, GRO splitting, a batch over loopback.

use std::os::fd::AsFd;
use std::time::Duration;

use super::super::io::{bind_udp, StopSignal};
use super::*;

fn runs(lens: &[usize], dsts: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    gso_runs(lens, |a, b| dsts[a] == dsts[b], &mut out);
    out.iter().map(|r| (r.start, r.end, r.segment)).collect()
}

#[test]
fn gso_runs_group_equal_sizes_to_one_destination() {
    // A shorter datagram ends a run; a longer one or another peer starts one.
    assert_eq!(
        runs(&[100, 100, 60, 100, 100, 120, 120], &[0; 7]),
        vec![(0, 3, 100), (3, 5, 100), (5, 7, 120)]
    );
    assert_eq!(
        runs(&[100, 100, 100, 100], &[0, 0, 1, 1]),
        vec![(0, 2, 100), (2, 4, 100)]
    );
    assert_eq!(runs(&[], &[]), vec![]);
}

#[test]
fn gso_runs_respect_kernel_limits() {
    let lens = vec![1452; 100];
    let got = runs(&lens, &[0; 100]);
    assert_eq!(
        got[0],
        (0, 45, 1452),
        "45 * 1452 fits in 65507, 46 does not"
    );
    let small = vec![10; 130];
    let got = runs(&small, &[0; 130]);
    assert_eq!(got, vec![(0, 64, 10), (64, 128, 10), (128, 130, 10)]);
}

#[test]
fn split_gro_cuts_equal_segments_and_a_short_tail() {
    let buf: Vec<u8> = (0..10).collect();
    let parts: Vec<&[u8]> = split_gro(&buf, 4).collect();
    assert_eq!(parts, vec![&[0, 1, 2, 3][..], &[4, 5, 6, 7], &[8, 9]]);
    assert_eq!(split_gro(&buf, 0).count(), 1);
    assert_eq!(split_gro(&[], 0).count(), 0);
}

/// Sends a mix of GSO runs and single datagrams, and gets them back in
/// order whether or not the kernel coalesced them.
#[test]
fn batches_send_and_receive_over_loopback() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = bind_udp(0).unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], b.local_addr().unwrap().port()));
    let sizes = [300, 300, 300, 120, 300, 7];
    let mut out = SendBatch::new(512);
    for (i, &size) in sizes.iter().enumerate() {
        out.next_slot()[..size].fill(i as u8);
        out.push(size, to);
    }
    assert_eq!(out.len(), sizes.len());
    assert_eq!(out.send(&a), 0);
    assert_eq!(out.len(), 0);
    let stop = StopSignal::new().unwrap();
    let mut got = Vec::new();
    let mut input = RecvBatch::new();
    while got.len() < sizes.len() {
        assert!(stop.wait(b.as_fd(), Some(Duration::from_secs(5))));
        let n = input.recv(&b).unwrap();
        for i in 0..n {
            let (datagrams, from) = input.get(i);
            assert_eq!(from, Some(a.local_addr().unwrap()));
            got.extend(datagrams.map(<[u8]>::to_vec));
        }
    }
    let want: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| vec![i as u8; size])
        .collect();
    assert_eq!(got, want);
}
