//! The packet loops, each on its own OS thread: TUN→UDP (encrypt), UDP→TUN
//! (decrypt), and the timers; plus the state they share and the drop counters.
//!
//! Throughput levers used, biggest first: TUN offloads (`offload`): the
//! kernel hands over 64 KiB TCP super-packets that we cut into segments, and
//! received segments of one flow are written back as one super-packet, so
//! the TCP stack and the TUN syscalls run per 64 KiB, not per 1420 bytes;
//! UDP GSO (`udp`): runs of same-sized datagrams to one peer go out as one
//! message, all runs of a batch in one `sendmmsg`; UDP GRO: one `recvmmsg`
//! slot takes a coalesced buffer of up to 64 KiB. Also encryption straight
//! into the send buffer, one lock per packet, a peer-table snapshot per batch,
//! forced 8 MiB socket buffers (see `io`) and a TUN queue of 1000 (see `tun`).
//!
//! What limits throughput now (not yet profiled): per-byte work, mostly
//! ChaCha20-Poly1305 plus the segment and coalesce copies, on one thread per
//! direction, with sender, receiver and iperf3 sharing two cores.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};

use super::io::StopSignal;
use super::offload::{split_frame, Coalescer, FRAME_PREFIX, MAX_PACKET};
use super::peers::{keepalive_due, Peer, PeerTable};
use super::udp::{RecvBatch, SendBatch, BATCH};
use super::PeerStats;

/// How often the session timers run.
const TICK: Duration = Duration::from_millis(250);

/// Handshake initiations per second before senders must answer a cookie.
const HANDSHAKE_RATE_LIMIT: u64 = 100;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reason {
    /// No peer has the destination (TUN) or the receiver index / key (UDP).
    NoPeer,
    NoEndpoint,
    /// Not a valid WireGuard message, or it failed to decrypt.
    BadPacket,
    /// The inner source is not the sending peer's tunnel address.
    AllowedIp,
    TunWrite,
    UdpSend,
}

const REASONS: [(Reason, &str); 6] = [
    (Reason::NoPeer, "no_peer"),
    (Reason::NoEndpoint, "no_endpoint"),
    (Reason::BadPacket, "bad_packet"),
    (Reason::AllowedIp, "allowed_ip"),
    (Reason::TunWrite, "tun_write"),
    (Reason::UdpSend, "udp_send"),
];

#[derive(Default)]
pub(super) struct Drops([AtomicU64; REASONS.len()]);

impl Drops {
    pub fn add(&self, reason: Reason, count: u64) {
        self.0[reason as usize].fetch_add(count, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        REASONS
            .iter()
            .map(|(reason, name)| (*name, self.0[*reason as usize].load(Ordering::Relaxed)))
            .collect()
    }
}

/// Everything the loops, the UAPI and the `Device` handle share.
pub(super) struct Shared {
    pub private: StaticSecret,
    pub public: PublicKey,
    pub listen_port: u16,
    pub mtu: usize,
    pub tun: File,
    /// The kernel takes UDP-tunnel super-packets (see `tun::open`).
    pub tunnel_gso: bool,
    pub udp: UdpSocket,
    pub stop: StopSignal,
    pub drops: Drops,
    table: RwLock<Arc<PeerTable>>,
    /// Serializes `set_peers` so the table is rebuilt without blocking readers.
    writer: Mutex<()>,
    /// Checks MAC1 and rate-limits handshake initiations before the
    /// Diffie-Hellman that finds their peer.
    limiter: RateLimiter,
}

impl Shared {
    pub fn new(
        private: StaticSecret,
        mtu: usize,
        (tun, tunnel_gso): (File, bool),
        udp: UdpSocket,
    ) -> io::Result<Shared> {
        let public = PublicKey::from(&private);
        Ok(Shared {
            listen_port: udp.local_addr()?.port(),
            limiter: RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT),
            table: RwLock::new(Arc::new(PeerTable::new(rand::random()))),
            writer: Mutex::new(()),
            tunnel_gso,
            stop: StopSignal::new()?,
            drops: Drops::default(),
            private,
            public,
            mtu,
            tun,
            udp,
        })
    }

    /// The current peer table.
    pub fn table(&self) -> Arc<PeerTable> {
        Arc::clone(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the table by `update(current)`, one writer at a time.
    pub fn update_table(&self, update: impl FnOnce(&PeerTable) -> Option<PeerTable>) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(table) = update(&self.table()) {
            *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        }
    }

    /// Each peer's counters with its persistent keepalive, sorted by key.
    pub fn peer_stats(&self) -> Vec<(PeerStats, u16)> {
        let now = SystemTime::now();
        let table = self.table();
        let peers = table.peers();
        peers
            .into_iter()
            .map(|peer| {
                let state = peer.lock();
                let (since, tx, rx, _, _) = state.tunn.stats();
                let stats = PeerStats {
                    public_key: peer.public_key,
                    endpoint: state.endpoint,
                    tunnel_addr: peer.tunnel_addr(),
                    rx_bytes: rx as u64,
                    tx_bytes: tx as u64,
                    last_handshake: since.and_then(|d| now.checked_sub(d)),
                };
                (stats, peer.keepalive())
            })
            .collect()
    }

    fn send_to(&self, datagram: &[u8], to: SocketAddr) {
        if self.udp.send_to(datagram, to).is_err() {
            self.drops.add(Reason::UdpSend, 1);
        }
    }

    /// Buffer size for one packet plus WireGuard's overhead (and at least a
    /// handshake message).
    fn slot(&self) -> usize {
        (self.mtu + 64).max(256)
    }
}

/// Reads packets from the TUN, encrypts them and sends them in batches.
pub(super) fn tun_to_udp(sh: &Shared) {
    let mut batch = SendBatch::new(sh.slot());
    let mut frame = vec![0u8; FRAME_PREFIX + MAX_PACKET];
    let mut packets = Vec::with_capacity(2 * MAX_PACKET);
    let mut ends = Vec::new();
    let mut table = sh.table();
    loop {
        if batch.len() == 0 {
            table = sh.table();
        }
        match (&sh.tun).read(&mut frame) {
            Ok(len) => {
                if split_frame(&mut frame[..len], &mut packets, &mut ends).is_err() {
                    sh.drops.add(Reason::BadPacket, 1);
                    continue;
                }
                let mut start = 0;
                for &end in &ends {
                    if batch.lacks_room_for(1) {
                        send(sh, &mut batch);
                    }
                    encapsulate(sh, &table, &packets[start..end], &mut batch);
                    start = end;
                }
                if batch.len() >= BATCH {
                    send(sh, &mut batch);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if batch.len() > 0 {
                    send(sh, &mut batch);
                } else if !sh.stop.wait(sh.tun.as_fd(), None) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the WireGuard TUN failed");
                if !sh.stop.sleep(TICK) {
                    return;
                }
            }
        }
    }
}

fn send(sh: &Shared, batch: &mut SendBatch) {
    let failed = batch.send(&sh.udp);
    sh.drops.add(Reason::UdpSend, failed as u64);
}

fn encapsulate(sh: &Shared, table: &PeerTable, packet: &[u8], batch: &mut SendBatch) {
    let Some(peer) = table.by_dst(packet) else {
        return sh.drops.add(Reason::NoPeer, 1);
    };
    let mut state = peer.lock();
    let Some(endpoint) = state.endpoint else {
        return sh.drops.add(Reason::NoEndpoint, 1);
    };
    match state.tunn.encapsulate(packet, batch.next_slot()) {
        TunnResult::WriteToNetwork(datagram) => {
            let len = datagram.len();
            batch.push(len, endpoint);
        }
        TunnResult::Err(_) => sh.drops.add(Reason::BadPacket, 1),
        // Queued until the handshake it started completes.
        _ => {}
    }
}

/// Receives datagrams in batches, decrypts them and writes them to the TUN.
pub(super) fn udp_to_tun(sh: &Shared) {
    let mut batch = RecvBatch::new();
    let mut out = vec![0u8; sh.slot().max(2048)];
    let mut gro = Coalescer::new(sh.tunnel_gso);
    loop {
        match batch.recv(&sh.udp) {
            Ok(n) => {
                let table = sh.table();
                for i in 0..n {
                    if let (datagrams, Some(from)) = batch.get(i) {
                        for datagram in datagrams {
                            decapsulate(sh, &table, datagram, from, &mut out, &mut gro);
                        }
                    }
                }
                gro.flush(&mut |frame| write_tun(sh, frame));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !sh.stop.wait(sh.udp.as_fd(), None) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "receiving WireGuard datagrams failed");
                if !sh.stop.sleep(TICK) {
                    return;
                }
            }
        }
    }
}

/// The peer a datagram is for; `None` when it was answered with a cookie
/// (under load) or dropped (counted here).
fn find_peer<'t>(
    sh: &Shared,
    table: &'t PeerTable,
    packet: &Packet,
    datagram: &[u8],
    from: SocketAddr,
    out: &mut [u8],
) -> Option<&'t Arc<Peer>> {
    let peer = match packet {
        Packet::HandshakeInit(init) => {
            match sh.limiter.verify_packet(Some(from.ip()), datagram, out) {
                Ok(_) => {}
                Err(TunnResult::WriteToNetwork(cookie)) => {
                    sh.send_to(cookie, from);
                    return None;
                }
                Err(_) => {
                    sh.drops.add(Reason::BadPacket, 1);
                    return None;
                }
            }
            let Ok(half) = parse_handshake_anon(&sh.private, &sh.public, init) else {
                sh.drops.add(Reason::BadPacket, 1);
                return None;
            };
            table.by_key(&half.peer_static_public)
        }
        Packet::HandshakeResponse(p) => table.by_receiver(p.receiver_idx),
        Packet::PacketCookieReply(p) => table.by_receiver(p.receiver_idx),
        Packet::PacketData(p) => table.by_receiver(p.receiver_idx),
    };
    if peer.is_none() {
        sh.drops.add(Reason::NoPeer, 1);
    }
    peer
}

fn write_tun(sh: &Shared, frame: &[u8]) {
    if (&sh.tun).write(frame).is_err() {
        sh.drops.add(Reason::TunWrite, 1);
    }
}

fn decapsulate(
    sh: &Shared,
    table: &PeerTable,
    datagram: &[u8],
    from: SocketAddr,
    out: &mut [u8],
    gro: &mut Coalescer,
) {
    let Ok(packet) = Tunn::parse_incoming_packet(datagram) else {
        return sh.drops.add(Reason::BadPacket, 1);
    };
    let Some(peer) = find_peer(sh, table, &packet, datagram, from, out) else {
        return;
    };
    let is_cookie = matches!(packet, Packet::PacketCookieReply(_));
    let mut state = peer.lock();
    match state.tunn.decapsulate(Some(from.ip()), datagram, out) {
        TunnResult::Err(_) => return sh.drops.add(Reason::BadPacket, 1),
        TunnResult::Done => {}
        TunnResult::WriteToNetwork(reply) => {
            sh.send_to(reply, from);
            // boringtun's contract: repeat with an empty datagram until Done
            // to flush the packets queued during the handshake.
            while let TunnResult::WriteToNetwork(queued) = state.tunn.decapsulate(None, &[], out) {
                sh.send_to(queued, from);
            }
        }
        TunnResult::WriteToTunnelV4(inner, src) if src == peer.tunnel_addr() => {
            gro.push(inner, &mut |frame| write_tun(sh, frame));
        }
        TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..) => {
            sh.drops.add(Reason::AllowedIp, 1);
        }
    }
    // Authenticated: the peer is where this came from (roaming).
    if !is_cookie && state.endpoint != Some(from) {
        state.endpoint = Some(from);
    }
}

/// Every [`TICK`]: handshake retries, rekeys, keepalives.
pub(super) fn timers(sh: &Shared) {
    let mut buf = vec![0u8; sh.slot()];
    while sh.stop.sleep(TICK) {
        sh.limiter.reset_count();
        let now = Instant::now();
        let table = sh.table();
        for peer in table.peers() {
            let mut state = peer.lock();
            let Some(endpoint) = state.endpoint else {
                continue;
            };
            match state.tunn.update_timers(&mut buf) {
                TunnResult::WriteToNetwork(datagram) => sh.send_to(datagram, endpoint),
                TunnResult::Err(WireGuardError::ConnectionExpired) => {}
                TunnResult::Err(e) => tracing::debug!(error = ?e, "WireGuard timers"),
                _ => {}
            }
            if keepalive_due(peer.keepalive(), state.last_keepalive, now) {
                state.last_keepalive = Some(now);
                if let TunnResult::WriteToNetwork(datagram) = state.tunn.encapsulate(&[], &mut buf)
                {
                    sh.send_to(datagram, endpoint);
                }
            }
        }
    }
}
