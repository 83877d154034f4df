//! The system calls of the packet loops around the batches of `udp`: the UDP
//! socket with forced large buffers and GRO, socket address conversions, and
//! the eventfd that wakes the loops to stop.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{setsockopt, sockopt, SockaddrStorage};

use super::udp;

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
    if !udp::enable_gro(&socket) {
        tracing::info!("UDP GRO is not available; receiving datagrams one by one");
    }
    Ok(socket)
}

/// The C form of `addr`, as the batches hand it to the kernel.
pub(super) fn to_sockaddr(addr: SocketAddr) -> SockaddrStorage {
    SockaddrStorage::from(addr)
}

/// The address the kernel wrote, if it is an IP one.
pub(super) fn from_sockaddr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(sin) = addr.as_sockaddr_in() {
        return Some(SocketAddrV4::from(*sin).into());
    }
    addr.as_sockaddr_in6()
        .map(|sin6| SocketAddrV6::from(*sin6).into())
}

/// A level-triggered eventfd: once fired, every loop polling it wakes.
pub(super) struct StopSignal(EventFd);

impl StopSignal {
    pub fn new() -> io::Result<StopSignal> {
        let flags = EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK;
        Ok(StopSignal(EventFd::from_value_and_flags(0, flags)?))
    }

    pub fn fire(&self) {
        // Only a counter overflow fails, and then the signal has fired already.
        let _ = self.0.write(1);
    }

    /// Waits until `fd` is readable (true) or the signal fired (false), or
    /// `timeout` passes (true).
    pub fn wait(&self, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
        let mut fds = [
            PollFd::new(fd, PollFlags::POLLIN),
            PollFd::new(self.0.as_fd(), PollFlags::POLLIN),
        ];
        let timeout = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX)
        });
        // An interrupted poll counts as a timeout: the caller polls again.
        let _ = poll(&mut fds, timeout);
        !fds[1].any().unwrap_or(false)
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
            assert_eq!(from_sockaddr(&to_sockaddr(addr)), Some(addr));
        }
    }

    #[test]
    fn stop_signal_wakes_waiters() {
        let b = bind_udp(0).unwrap();
        let stop = StopSignal::new().unwrap();
        stop.fire();
        assert!(!stop.wait(b.as_fd(), None));
        assert!(!stop.sleep(Duration::from_secs(5)));
    }
}
