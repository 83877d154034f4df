//! The mesh interface: created with the `TUNSETIFF` ioctl on /dev/net/tun
//! as a TAP (Ethernet frames) without ARP, with a `virtio_net_hdr` before
//! each frame and TCP offloads, plain and inside VXLAN (see `offload`), its
//! queue lengthened with `SIOCSIFTXQLEN`, configured (address, MAC, MTU, up)
//! over rtnetlink. Closing the fd deletes it. A TAP rather than a TUN because
//! the kernel takes UDP-tunnel super-packets written back only with their
//! offsets counted from an Ethernet header (`virtio_net_hdr_tnl_to_skb`).

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;
use futures::TryStreamExt;

/// Opens the interface `name` (Ethernet frames after a `virtio_net_hdr`), in
/// the network namespace of the calling thread. The fd is non-blocking.
/// Also says whether the kernel took the UDP-tunnel offload (Linux 6.17+):
/// without it, frames of TCP in VXLAN must not be written joined either.
pub(super) fn open(name: &str) -> io::Result<(File, bool)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let hdr_len = super::offload::VNET_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETVNETHDRSZ, &hdr_len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let set_offloads = |flags: libc::c_uint| {
        // SAFETY: TUNSETOFFLOAD takes the offload flags by value.
        unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, flags) >= 0 }
    };
    let tunnel_gso = set_offloads(OFFLOADS | UDP_TUNNEL_GSO);
    if !tunnel_gso {
        let error = io::Error::last_os_error();
        if set_offloads(OFFLOADS) {
            tracing::info!(%error, "this kernel has no UDP-tunnel offload on TUN (Linux 6.17+): overlay traffic is read packet by packet");
        } else {
            let error = io::Error::last_os_error();
            tracing::info!(%error, "TUN offloads refused; reading packets one by one");
        }
    }
    set_txqueuelen(name, TX_QUEUE_LEN)?;
    Ok((file, tunnel_gso))
}

const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;

/// Checksum offload and TCP segmentation offload for IPv4: the kernel hands
/// over TCP super-packets of up to 64 KiB with partial checksums, which
/// `offload::split_frame` cuts up.
const OFFLOADS: libc::c_uint = 0x01 | 0x02;

/// `TUN_F_UDP_TUNNEL_GSO`: super-packets of TCP inside UDP tunnels (VXLAN),
/// which `offload::split_frame` cuts into whole datagrams.
const UDP_TUNNEL_GSO: libc::c_uint = 0x80;

/// An `ifreq` naming the interface.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name must have 1 to 15 bytes",
        ));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// Packets the kernel may queue for our TUN reader before it drops (tun's
/// default is 500): enough to absorb a TCP burst while the reader encrypts.
const TX_QUEUE_LEN: i32 = 1000;

fn set_txqueuelen(name: &str, len: i32) -> io::Result<()> {
    // SAFETY: plain system call; the fd is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_metric = len;
    // SAFETY: SIOCSIFTXQLEN reads one ifreq, which `req` is.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFTXQLEN, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the interface its address (the connected route covers the mesh),
/// MTU, and brings it up. The netlink socket is opened here, so in the
/// namespace of the calling thread.
pub(super) async fn configure(
    name: &str,
    address: Ipv4Addr,
    prefix_len: u8,
    mtu: u32,
) -> anyhow::Result<()> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    let connection = tokio::spawn(connection);
    let result = async {
        let link = handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await?
            .with_context(|| format!("interface {name} vanished"))?;
        let index = link.header.index;
        handle
            .address()
            .add(index, IpAddr::V4(address), prefix_len)
            .execute()
            .await
            .with_context(|| format!("adding {address}/{prefix_len} to {name}"))?;
        handle
            .link()
            .set(index)
            .address(super::offload::MESH_MAC.to_vec())
            .arp(false)
            .mtu(mtu)
            .up()
            .execute()
            .await
            .with_context(|| format!("setting MTU {mtu} and bringing {name} up"))?;
        anyhow::Ok(())
    }
    .await;
    connection.abort();
    result
}
