//! The system calls of the packet loops: the UDP socket with forced large
//! buffers, batched `recvmmsg`/`sendmmsg`, and the eventfd that wakes the
//! loops to stop.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};

/// Datagrams per `recvmmsg`/`sendmmsg` call: one system call per batch
/// instead of per packet.
pub(super) const BATCH: usize = 64;

/// Socket buffers big enough to ride out bursts while a loop is encrypting
/// (the default 212 KB overflows at a few hundred Mbit/s).
const SOCKET_BUFFER: usize = 8 << 20;

/// Binds the UDP socket on all IPv4 addresses and forces large buffers.
pub(super) fn bind_udp(port: u16) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
    if setsockopt(&socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        setsockopt(&socket, sockopt::RcvBuf, &SOCKET_BUFFER)?;
    }
    if setsockopt(&socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        setsockopt(&socket, sockopt::SndBuf, &SOCKET_BUFFER)?;
    }
    Ok(socket)
}

fn to_sockaddr(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    // SAFETY: sockaddr_storage is large and aligned enough for either type.
    unsafe {
        match addr {
            SocketAddr::V4(a) => {
                let sin = &mut *(out as *mut _ as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                let sin6 = &mut *(out as *mut _ as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

fn from_sockaddr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: the family field tells which type the kernel wrote.
    unsafe {
        match i32::from(addr.ss_family) {
            libc::AF_INET => {
                let sin = &*(addr as *const _ as *const libc::sockaddr_in);
                Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(sin.sin_addr.s_addr).into(),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let sin6 = &*(addr as *const _ as *const libc::sockaddr_in6);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    sin6.sin6_addr.s6_addr.into(),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Buffers for [`BATCH`] datagrams, sent or received in one system call.
pub(super) struct Batch {
    slot: usize,
    bufs: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    len: usize,
}

// SAFETY: the raw pointers in `iovs`/`msgs` only point into the batch's own
// buffers and are rebuilt before each system call.
unsafe impl Send for Batch {}

impl Batch {
    /// A batch of [`BATCH`] slots of `slot` bytes each.
    pub fn new(slot: usize) -> Batch {
        Batch {
            slot,
            bufs: vec![0; slot * BATCH],
            lens: vec![0; BATCH],
            // SAFETY: all-zero is a valid value of these C structs.
            addrs: vec![unsafe { mem::zeroed() }; BATCH],
            addr_lens: vec![0; BATCH],
            iovs: Vec::with_capacity(BATCH),
            msgs: Vec::with_capacity(BATCH),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len == BATCH
    }

    /// The free slot the next datagram is written into.
    pub fn next_slot(&mut self) -> &mut [u8] {
        let start = self.len * self.slot;
        &mut self.bufs[start..start + self.slot]
    }

    /// Queues the first `len` bytes of the next slot for `to`.
    pub fn push(&mut self, len: usize, to: SocketAddr) {
        let i = self.len;
        self.lens[i] = len;
        self.addr_lens[i] = to_sockaddr(&to, &mut self.addrs[i]);
        self.len += 1;
    }

    /// Datagram `i` of the batch and where it came from.
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let start = i * self.slot;
        (
            &self.bufs[start..start + self.lens[i]],
            from_sockaddr(&self.addrs[i]),
        )
    }

    fn build_headers(&mut self, count: usize, lens_from_slots: bool) {
        self.iovs.clear();
        self.msgs.clear();
        for i in 0..count {
            let len = if lens_from_slots {
                self.slot
            } else {
                self.lens[i]
            };
            self.iovs.push(libc::iovec {
                iov_base: self.bufs[i * self.slot..].as_mut_ptr().cast(),
                iov_len: len,
            });
            let namelen = if lens_from_slots {
                mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t
            } else {
                self.addr_lens[i]
            };
            // SAFETY: all-zero is a valid msghdr; the pointers set below stay
            // valid until the next call of this function.
            let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = namelen;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            self.msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking; `WouldBlock`
    /// when there are none.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.build_headers(BATCH, true);
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
        }
        self.len = n;
        Ok(n)
    }

    /// Sends the queued datagrams and empties the batch; returns how many
    /// could not be sent.
    pub fn send(&mut self, socket: &UdpSocket) -> usize {
        let count = self.len;
        self.len = 0;
        self.build_headers(count, false);
        let mut sent = 0;
        let mut failed = 0;
        while sent < count {
            // SAFETY: `msgs[sent..count]` are valid headers into our buffers.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.msgs[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                sent += n as usize;
            } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // The first datagram is refused (bad address, no route):
                // skip it and send the rest.
                sent += 1;
                failed += 1;
            }
        }
        failed
    }
}

/// A level-triggered eventfd: once fired, every loop polling it wakes.
pub(super) struct StopSignal(OwnedFd);

impl StopSignal {
    pub fn new() -> io::Result<StopSignal> {
        // SAFETY: plain system call; the fd is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        Ok(StopSignal(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fire(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Waits until `fd` is readable (true) or the signal fired (false), or
    /// `timeout` passes (true).
    pub fn wait(&self, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
        let mut fds = [
            libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: `fds` is a valid array of two pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        fds[1].revents == 0
    }

    /// Sleeps for `timeout`; false when the signal fired.
    pub fn sleep(&self, timeout: Duration) -> bool {
        self.wait(self.0.as_fd(), Some(timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for addr in ["127.0.0.1:51820", "[fe80::1%2]:9", "[::1]:443"] {
            let addr: SocketAddr = addr.parse().unwrap();
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut storage = unsafe { mem::zeroed() };
            to_sockaddr(&addr, &mut storage);
            assert_eq!(from_sockaddr(&storage), Some(addr));
        }
    }

    #[test]
    fn batch_sends_and_receives_over_loopback() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = bind_udp(0).unwrap();
        let to = SocketAddr::from(([127, 0, 0, 1], b.local_addr().unwrap().port()));
        let mut out = Batch::new(64);
        for i in 0..3u8 {
            out.next_slot()[..4].copy_from_slice(&[i; 4]);
            out.push(4, to);
        }
        assert_eq!(out.send(&a), 0);
        let stop = StopSignal::new().unwrap();
        let mut got = Vec::new();
        let mut input = Batch::new(64);
        while got.len() < 3 {
            assert!(stop.wait(b.as_fd(), Some(Duration::from_secs(5))));
            let n = input.recv(&b).unwrap();
            for i in 0..n {
                let (data, from) = input.get(i);
                assert_eq!(from, Some(a.local_addr().unwrap()));
                got.push(data.to_vec());
            }
        }
        assert_eq!(got, vec![vec![0; 4], vec![1; 4], vec![2; 4]]);
        stop.fire();
        assert!(!stop.wait(b.as_fd(), None));
        assert!(!stop.sleep(Duration::from_secs(5)));
    }
}
