//! The mesh interface: created with the `TUNSETIFF` ioctl on /dev/net/tun
//! as a TAP (Ethernet frames) without ARP, with a `virtio_net_hdr` before
//! each frame and TCP offloads, plain and inside VXLAN (see `offload`), then
//! configured through the netlink layer (queue length, address, MAC, MTU,
//! up). Closing the fd deletes it. A TAP rather than a TUN because
//! the kernel takes UDP-tunnel super-packets written back only with their
//! offsets counted from an Ethernet header (`virtio_net_hdr_tnl_to_skb`).

use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;

use crate::netlink::Ns;

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

/// Packets the kernel may queue for our TUN reader (tun's default is 500):
/// enough to absorb a TCP burst while the reader encrypts.
const TX_QUEUE_LEN: u32 = 1000;

/// Lengthens the interface's queue, gives it its address (the connected
/// route covers the mesh), MAC and MTU, and brings it up. The netlink socket
/// is opened here, so in the namespace of the calling thread.
pub(super) async fn configure(
    name: &str,
    address: Ipv4Addr,
    prefix_len: u8,
    mtu: u32,
) -> anyhow::Result<()> {
    let host = Ns::here().await?;
    let index = host.require(name).await?;
    host.set_txqueuelen(index, name, TX_QUEUE_LEN).await?;
    host.add_address(index, name, address, prefix_len).await?;
    host.nl
        .link()
        .set(index)
        .address(super::offload::MESH_MAC.to_vec())
        .arp(false)
        .mtu(mtu)
        .up()
        .execute()
        .await
        .with_context(|| {
            format!(
                "cannot set the MAC, MTU {mtu} and up on {name} in {}",
                host.name()
            )
        })
}
