//! Batched UDP I/O: [`SendBatch`] packs datagrams back to back and sends runs
//! of equal-sized ones to the same endpoint as one UDP GSO message each, all
//! in one `sendmmsg`; [`RecvBatch`] takes up to [`BATCH`] messages per
//! `recvmmsg`, each possibly a UDP GRO buffer of several datagrams.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{setsockopt, sockopt, SockaddrLike, SockaddrStorage};

use super::io::{from_sockaddr, to_sockaddr};

/// Messages per `recvmmsg`/`sendmmsg` call.
pub(super) const BATCH: usize = 64;

/// Datagrams a send batch holds: several TUN super-packets' worth.
const SEND_CAPACITY: usize = 4 * BATCH;

/// Most segments the kernel takes in one UDP GSO message (`UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;

/// Largest UDP payload of one GSO message over IPv4 (65535 - 20 - 8).
const MAX_GSO_BYTES: usize = 65507;

/// Receive slot: a whole GRO buffer.
const RECV_SLOT: usize = 65536;

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// Space for one cmsg with an `int` payload, in u64 words (for alignment).
const CMSG_WORDS: usize = 4;

/// Asks the kernel to hand over coalesced (GRO) buffers; false if it cannot.
pub(super) fn enable_gro(socket: &UdpSocket) -> bool {
    setsockopt(socket, sockopt::UdpGroSegment, &true).is_ok()
}

/// A run of datagrams `start..end` sent as one message; `segment` is the
/// size of each but the last (which may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    pub start: usize,
    pub end: usize,
    pub segment: usize,
}

/// Groups datagrams into GSO runs: consecutive, same destination (`same`),
/// equal lengths except a shorter last one, within the kernel's limits.
pub(super) fn gso_runs(lens: &[usize], same: impl Fn(usize, usize) -> bool, out: &mut Vec<Run>) {
    out.clear();
    let mut i = 0;
    while i < lens.len() {
        let segment = lens[i];
        let mut total = segment;
        let mut end = i + 1;
        while end < lens.len()
            && end - i < MAX_SEGMENTS
            && same(i, end)
            && lens[end] <= segment
            && total + lens[end] <= MAX_GSO_BYTES
        {
            total += lens[end];
            end += 1;
            if lens[end - 1] < segment {
                break;
            }
        }
        out.push(Run {
            start: i,
            end,
            segment,
        });
        i = end;
    }
}

/// The datagrams of a GRO buffer of `segment`-sized pieces (0: just one).
pub(super) fn split_gro(buf: &[u8], segment: usize) -> impl Iterator<Item = &[u8]> {
    let size = if segment == 0 {
        buf.len().max(1)
    } else {
        segment
    };
    buf.chunks(size)
}

/// Datagrams packed back to back, sent in one system call.
pub(super) struct SendBatch {
    slot: usize,
    buf: Vec<u8>,
    /// Start offset of each datagram, and one past the last.
    offsets: Vec<usize>,
    lens: Vec<usize>,
    dsts: Vec<SocketAddr>,
    gso: bool,
    runs: Vec<Run>,
    addrs: Vec<SockaddrStorage>,
    iovs: Vec<libc::iovec>,
    ctrl: Vec<[u64; CMSG_WORDS]>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs`/`msgs` only point into the batch's own
// buffers and are rebuilt before each system call.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// A batch of datagrams of at most `slot` bytes each.
    pub fn new(slot: usize) -> SendBatch {
        SendBatch {
            slot,
            buf: vec![0; slot * SEND_CAPACITY],
            offsets: vec![0],
            lens: Vec::with_capacity(SEND_CAPACITY),
            dsts: Vec::with_capacity(SEND_CAPACITY),
            gso: true,
            runs: Vec::with_capacity(SEND_CAPACITY),
            addrs: vec![unspecified(); SEND_CAPACITY],
            iovs: Vec::with_capacity(SEND_CAPACITY),
            ctrl: vec![[0; CMSG_WORDS]; SEND_CAPACITY],
            msgs: Vec::with_capacity(SEND_CAPACITY),
        }
    }

    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether fewer than `count` datagrams still fit.
    pub fn lacks_room_for(&self, count: usize) -> bool {
        self.len() + count > SEND_CAPACITY
    }

    /// The free space the next datagram is written into.
    pub fn next_slot(&mut self) -> &mut [u8] {
        let start = self.offsets[self.len()];
        &mut self.buf[start..start + self.slot]
    }

    /// Queues the first `len` bytes of the next slot for `to`.
    pub fn push(&mut self, len: usize, to: SocketAddr) {
        let start = self.offsets[self.len()];
        self.offsets.push(start + len);
        self.lens.push(len);
        self.dsts.push(to);
    }

    /// Builds one message per run of datagrams from `first` on.
    fn build(&mut self, first: usize) {
        let dsts = &self.dsts[first..];
        if self.gso {
            gso_runs(
                &self.lens[first..],
                |a, b| dsts[a] == dsts[b],
                &mut self.runs,
            );
        } else {
            self.runs.clear();
            self.runs.extend((0..dsts.len()).map(|i| Run {
                start: i,
                end: i + 1,
                segment: self.lens[first + i],
            }));
        }
        self.iovs.clear();
        self.msgs.clear();
        for (m, run) in self.runs.iter_mut().enumerate() {
            run.start += first;
            run.end += first;
            let start = self.offsets[run.start];
            self.iovs.push(libc::iovec {
                iov_base: self.buf[start..].as_mut_ptr().cast(),
                iov_len: self.offsets[run.end] - start,
            });
            self.addrs[m] = to_sockaddr(self.dsts[run.start]);
            // SAFETY: all-zero is a valid msghdr; the pointers set below stay
            // valid until the next call of this function.
            let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
            hdr.msg_name = (&mut self.addrs[m] as *mut SockaddrStorage).cast();
            hdr.msg_namelen = self.addrs[m].len();
            hdr.msg_iov = &mut self.iovs[m];
            hdr.msg_iovlen = 1;
            if run.end - run.start > 1 {
                hdr.msg_control = self.ctrl[m].as_mut_ptr().cast();
                // SAFETY: the control buffer has room for one u16 cmsg.
                unsafe {
                    hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let cmsg = libc::CMSG_FIRSTHDR(&hdr);
                    (*cmsg).cmsg_level = SOL_UDP;
                    (*cmsg).cmsg_type = UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                    libc::CMSG_DATA(cmsg)
                        .cast::<u16>()
                        .write_unaligned(run.segment as u16);
                }
            }
            self.msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        // `iovs` no longer grows, so the pointers into it are final.
        for (msg, iov) in self.msgs.iter_mut().zip(self.iovs.iter_mut()) {
            msg.msg_hdr.msg_iov = iov;
        }
    }

    /// Sends the queued datagrams and empties the batch; returns how many
    /// could not be sent. Falls back to one datagram per message for good
    /// if the kernel refuses GSO.
    pub fn send(&mut self, socket: &UdpSocket) -> usize {
        let count = self.len();
        let mut next = 0;
        let mut failed = 0;
        while next < count {
            self.build(next);
            // SAFETY: `msgs` are valid headers into our buffers.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.msgs.as_mut_ptr(),
                    self.msgs.len() as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                next = self.runs[n as usize - 1].end;
                continue;
            }
            let error = io::Error::last_os_error();
            let first = self.runs[0];
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let gso_refused = matches!(error.raw_os_error(), Some(libc::EIO | libc::EINVAL));
            if self.gso && first.end - first.start > 1 && gso_refused {
                tracing::info!(error = %error, "UDP GSO refused; sending datagrams one by one");
                self.gso = false;
                continue;
            }
            // The first message is refused (bad address, no route): skip it.
            next = first.end;
            failed += first.end - first.start;
        }
        self.offsets.truncate(1);
        self.lens.clear();
        self.dsts.clear();
        failed
    }
}

/// Buffers for [`BATCH`] messages received in one system call.
pub(super) struct RecvBatch {
    bufs: Vec<u8>,
    lens: Vec<usize>,
    segments: Vec<usize>,
    addrs: Vec<SockaddrStorage>,
    iovs: Vec<libc::iovec>,
    ctrl: Vec<[u64; CMSG_WORDS]>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: as for `SendBatch`.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![0; RECV_SLOT * BATCH],
            lens: vec![0; BATCH],
            segments: vec![0; BATCH],
            addrs: vec![unspecified(); BATCH],
            iovs: Vec::with_capacity(BATCH),
            ctrl: vec![[0; CMSG_WORDS]; BATCH],
            msgs: Vec::with_capacity(BATCH),
        }
    }

    /// Receives up to [`BATCH`] messages without blocking; `WouldBlock`
    /// when there are none.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.iovs.clear();
        self.msgs.clear();
        for i in 0..BATCH {
            self.iovs.push(libc::iovec {
                iov_base: self.bufs[i * RECV_SLOT..].as_mut_ptr().cast(),
                iov_len: RECV_SLOT,
            });
        }
        for i in 0..BATCH {
            // SAFETY: all-zero is a valid msghdr; the pointers stay valid
            // until the next call of this function.
            let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
            hdr.msg_name = (&mut self.addrs[i] as *mut SockaddrStorage).cast();
            hdr.msg_namelen = mem::size_of::<SockaddrStorage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
            hdr.msg_controllen = mem::size_of::<[u64; CMSG_WORDS]>() as _;
            self.msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        // SAFETY: `msgs` holds BATCH headers pointing into our own buffers.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            self.lens[i] = self.msgs[i].msg_len as usize;
            self.segments[i] = gro_segment(&self.msgs[i].msg_hdr);
        }
        Ok(n)
    }

    /// The datagrams of message `i` and where they came from.
    pub fn get(&self, i: usize) -> (impl Iterator<Item = &[u8]>, Option<SocketAddr>) {
        let start = i * RECV_SLOT;
        let buf = &self.bufs[start..start + self.lens[i]];
        (
            split_gro(buf, self.segments[i]),
            from_sockaddr(&self.addrs[i]),
        )
    }
}

/// A placeholder address for the batches' buffers, overwritten before use.
fn unspecified() -> SockaddrStorage {
    to_sockaddr(SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The segment size of a received GRO buffer, 0 if it is one datagram.
fn gro_segment(hdr: &libc::msghdr) -> usize {
    // SAFETY: walks the control buffer the kernel filled, within
    // `msg_controllen`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                let size = libc::CMSG_DATA(cmsg).cast::<libc::c_int>().read_unaligned();
                return size.max(0) as usize;
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    0
}

#[cfg(test)]
#[path = "udp_test.rs"]
mod tests;
