//! The peer table: each peer's session (`Tunn`) and addresses, how a packet
//! finds its peer (by inner destination, by receiver index, by public key),
//! and the pure diff that turns the desired peer list into changes.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use boringtun::noise::Tunn;

use super::PeerConfig;

/// A WireGuard public key.
pub(super) type Key = [u8; 32];

/// Local session indices are 24 bits: boringtun puts `index << 8` in the
/// receiver field and uses the low 8 bits for the session number.
const INDEX_MASK: u32 = 0x00ff_ffff;

/// One peer: its session and where to reach it.
pub(super) struct Peer {
    pub public_key: Key,
    /// This side's session index for the peer (see [`INDEX_MASK`]).
    pub index: u32,
    tunnel_addr: AtomicU32,
    /// Persistent keepalive in seconds, 0 for none. Kept here rather than in
    /// the `Tunn` so it can change without losing the session.
    keepalive: AtomicU16,
    state: Mutex<PeerState>,
}

/// What the packet loops change, behind one lock so each packet takes it once.
pub(super) struct PeerState {
    pub tunn: Tunn,
    /// Where to send: the configured endpoint, then wherever the peer's
    /// last authenticated packet came from (roaming).
    pub endpoint: Option<SocketAddr>,
    pub last_keepalive: Option<Instant>,
}

impl Peer {
    fn new(cfg: &PeerConfig, index: u32, tunn: Tunn) -> Peer {
        Peer {
            public_key: cfg.public_key,
            index,
            tunnel_addr: AtomicU32::new(cfg.tunnel_addr.into()),
            keepalive: AtomicU16::new(cfg.persistent_keepalive.unwrap_or(0)),
            state: Mutex::new(PeerState {
                tunn,
                endpoint: Some(cfg.endpoint),
                last_keepalive: None,
            }),
        }
    }

    /// The one allowed IP of the peer (its tunnel address, /32).
    pub fn tunnel_addr(&self) -> Ipv4Addr {
        self.tunnel_addr.load(Ordering::Relaxed).into()
    }

    pub fn keepalive(&self) -> u16 {
        self.keepalive.load(Ordering::Relaxed)
    }

    pub fn set_keepalive(&self, seconds: u16) {
        self.keepalive.store(seconds, Ordering::Relaxed);
    }

    /// Locks the session; a panic in another loop does not stop this one.
    pub fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a changed configuration, keeping the session.
    fn update(&self, cfg: &PeerConfig) {
        self.tunnel_addr
            .store(cfg.tunnel_addr.into(), Ordering::Relaxed);
        self.set_keepalive(cfg.persistent_keepalive.unwrap_or(0));
        self.lock().endpoint = Some(cfg.endpoint);
    }
}

/// Whether a persistent keepalive is due (`interval` seconds, 0 = off).
pub(super) fn keepalive_due(interval: u16, last: Option<Instant>, now: Instant) -> bool {
    interval != 0
        && last.is_none_or(|t| {
            now.saturating_duration_since(t) >= Duration::from_secs(interval.into())
        })
}

/// The destination of an IPv4 packet read from the TUN.
pub(super) fn ipv4_dst(packet: &[u8]) -> Option<Ipv4Addr> {
    match packet {
        [first, _, _, _, _, _, _, _, _, _, _, _, _, _, _, _, a, b, c, d, ..] if first >> 4 == 4 => {
            Some(Ipv4Addr::new(*a, *b, *c, *d))
        }
        _ => None,
    }
}

/// The changes that make the current peer set equal to the desired one.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct PeerDiff {
    pub added: Vec<PeerConfig>,
    /// Same key, another endpoint, tunnel address or keepalive.
    pub changed: Vec<PeerConfig>,
    pub removed: Vec<Key>,
}

impl PeerDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Compares the current configs with the desired list (the last entry wins
/// for a key given twice). Each list of the result is sorted by key.
pub(super) fn diff_peers(current: &HashMap<Key, PeerConfig>, desired: &[PeerConfig]) -> PeerDiff {
    let wanted: HashMap<Key, &PeerConfig> = desired.iter().map(|p| (p.public_key, p)).collect();
    let mut diff = PeerDiff::default();
    for (key, want) in &wanted {
        match current.get(key) {
            None => diff.added.push((*want).clone()),
            Some(have) if have != *want => diff.changed.push((*want).clone()),
            Some(_) => {}
        }
    }
    diff.removed = current
        .keys()
        .filter(|key| !wanted.contains_key(*key))
        .copied()
        .collect();
    diff.added.sort_by_key(|p| p.public_key);
    diff.changed.sort_by_key(|p| p.public_key);
    diff.removed.sort();
    diff
}

/// The first 24-bit index at or after `start` that is not in use.
pub(super) fn free_index(start: u32, in_use: &HashSet<u32>) -> u32 {
    (0..=INDEX_MASK)
        .map(|i| start.wrapping_add(i) & INDEX_MASK)
        .find(|i| !in_use.contains(i))
        .expect("fewer than 2^24 peers")
}

/// An immutable snapshot of the peers; `set_peers` builds a new one and swaps it in.
#[derive(Default)]
pub(super) struct PeerTable {
    configs: HashMap<Key, PeerConfig>,
    by_key: HashMap<Key, Arc<Peer>>,
    by_addr: HashMap<Ipv4Addr, Arc<Peer>>,
    by_index: HashMap<u32, Arc<Peer>>,
    next_index: u32,
}

impl PeerTable {
    /// An empty table whose indices start at `first_index`.
    pub fn new(first_index: u32) -> PeerTable {
        PeerTable {
            next_index: first_index & INDEX_MASK,
            ..PeerTable::default()
        }
    }

    pub fn configs(&self) -> &HashMap<Key, PeerConfig> {
        &self.configs
    }

    /// The peer an outgoing packet goes to, by its IPv4 destination.
    pub fn by_dst(&self, packet: &[u8]) -> Option<&Arc<Peer>> {
        self.by_addr.get(&ipv4_dst(packet)?)
    }

    /// The peer a handshake response, cookie or data packet is for.
    pub fn by_receiver(&self, receiver_idx: u32) -> Option<&Arc<Peer>> {
        self.by_index.get(&(receiver_idx >> 8))
    }

    pub fn by_key(&self, key: &Key) -> Option<&Arc<Peer>> {
        self.by_key.get(key)
    }

    /// The peers, sorted by public key.
    pub fn peers(&self) -> Vec<&Arc<Peer>> {
        let mut peers: Vec<_> = self.by_key.values().collect();
        peers.sort_by_key(|p| p.public_key);
        peers
    }

    /// The table after `diff`; unchanged and changed peers keep their
    /// session. `make_tunn` creates the session of an added peer with the
    /// index it is given; a peer it refuses is left out.
    pub fn apply(
        &self,
        diff: &PeerDiff,
        mut make_tunn: impl FnMut(&PeerConfig, u32) -> Option<Tunn>,
    ) -> PeerTable {
        let mut configs = self.configs.clone();
        let mut by_key = self.by_key.clone();
        for key in &diff.removed {
            configs.remove(key);
            by_key.remove(key);
        }
        for cfg in &diff.changed {
            if let Some(peer) = by_key.get(&cfg.public_key) {
                peer.update(cfg);
                configs.insert(cfg.public_key, cfg.clone());
            }
        }
        let mut in_use: HashSet<u32> = by_key.values().map(|p| p.index).collect();
        let mut next_index = self.next_index;
        for cfg in &diff.added {
            let index = free_index(next_index, &in_use);
            if let Some(tunn) = make_tunn(cfg, index) {
                in_use.insert(index);
                next_index = index.wrapping_add(1) & INDEX_MASK;
                by_key.insert(cfg.public_key, Arc::new(Peer::new(cfg, index, tunn)));
                configs.insert(cfg.public_key, cfg.clone());
            }
        }
        let mut sorted: Vec<&Arc<Peer>> = by_key.values().collect();
        sorted.sort_by_key(|p| p.public_key);
        let mut by_addr = HashMap::new();
        for peer in sorted {
            match by_addr.entry(peer.tunnel_addr()) {
                Entry::Vacant(slot) => {
                    slot.insert(Arc::clone(peer));
                }
                Entry::Occupied(_) => tracing::warn!(
                    addr = %peer.tunnel_addr(),
                    "two WireGuard peers claim one tunnel address; the first by key keeps it"
                ),
            }
        }
        let by_index = by_key.values().map(|p| (p.index, Arc::clone(p))).collect();
        PeerTable {
            configs,
            by_key,
            by_addr,
            by_index,
            next_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boringtun::x25519::{PublicKey, StaticSecret};

    fn cfg(key: u8, endpoint_port: u16, addr: u8) -> PeerConfig {
        PeerConfig {
            public_key: [key; 32],
            endpoint: SocketAddr::from(([10, 0, 0, key], endpoint_port)),
            tunnel_addr: Ipv4Addr::new(100, 64, 0, addr),
            persistent_keepalive: None,
        }
    }

    fn tunn(cfg: &PeerConfig, index: u32) -> Option<Tunn> {
        let secret = StaticSecret::from(rand::random::<[u8; 32]>());
        Tunn::new(
            secret,
            PublicKey::from(cfg.public_key),
            None,
            None,
            index,
            None,
        )
        .ok()
    }

    fn table(peers: &[PeerConfig]) -> PeerTable {
        let diff = diff_peers(&HashMap::new(), peers);
        PeerTable::new(7).apply(&diff, tunn)
    }

    #[test]
    fn diff_of_equal_sets_is_empty() {
        let t = table(&[cfg(1, 1, 1), cfg(2, 2, 2)]);
        assert!(diff_peers(t.configs(), &[cfg(2, 2, 2), cfg(1, 1, 1)]).is_empty());
    }

    #[test]
    fn diff_finds_added_changed_removed() {
        let t = table(&[cfg(1, 1, 1), cfg(2, 2, 2), cfg(3, 3, 3)]);
        let mut keepalive = cfg(3, 3, 3);
        keepalive.persistent_keepalive = Some(25);
        let diff = diff_peers(
            t.configs(),
            &[cfg(4, 4, 4), cfg(2, 9, 2), keepalive.clone()],
        );
        assert_eq!(
            diff,
            PeerDiff {
                added: vec![cfg(4, 4, 4)],
                changed: vec![cfg(2, 9, 2), keepalive],
                removed: vec![[1; 32]],
            }
        );
    }

    #[test]
    fn diff_takes_the_last_entry_of_a_repeated_key() {
        let diff = diff_peers(&HashMap::new(), &[cfg(1, 1, 1), cfg(1, 2, 1)]);
        assert_eq!(diff.added, vec![cfg(1, 2, 1)]);
    }

    #[test]
    fn apply_keeps_the_session_of_a_changed_peer() {
        let t = table(&[cfg(1, 1, 1), cfg(2, 2, 2)]);
        let before = Arc::clone(t.by_key(&[2; 32]).unwrap());
        let diff = diff_peers(t.configs(), &[cfg(2, 9, 5)]);
        let t2 = t.apply(&diff, tunn);
        let after = t2.by_key(&[2; 32]).unwrap();
        assert!(Arc::ptr_eq(&before, after));
        assert_eq!(after.lock().endpoint, Some(cfg(2, 9, 5).endpoint));
        assert_eq!(after.tunnel_addr(), Ipv4Addr::new(100, 64, 0, 5));
        assert!(t2.by_key(&[1; 32]).is_none());
        assert!(t2
            .by_dst(&packet_to(Ipv4Addr::new(100, 64, 0, 2)))
            .is_none());
        assert!(t2
            .by_dst(&packet_to(Ipv4Addr::new(100, 64, 0, 5)))
            .is_some());
        assert!(t2.by_receiver(before.index << 8 | 3).is_some());
        assert!(t2
            .by_receiver(t.by_key(&[1; 32]).unwrap().index << 8)
            .is_none());
    }

    #[test]
    fn added_peers_get_distinct_indices() {
        let t = table(&[cfg(1, 1, 1), cfg(2, 2, 2), cfg(3, 3, 3)]);
        let indices: HashSet<u32> = t.peers().iter().map(|p| p.index).collect();
        assert_eq!(indices.len(), 3);
        for peer in t.peers() {
            assert!(Arc::ptr_eq(t.by_receiver(peer.index << 8).unwrap(), peer));
        }
    }

    #[test]
    fn free_index_skips_used_and_wraps() {
        let used: HashSet<u32> = [INDEX_MASK, 0, 1].into_iter().collect();
        assert_eq!(free_index(INDEX_MASK, &used), 2);
        assert_eq!(free_index(5, &used), 5);
    }

    fn packet_to(dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[16..20].copy_from_slice(&dst.octets());
        p
    }

    #[test]
    fn lookup_by_destination() {
        let t = table(&[cfg(1, 1, 1), cfg(2, 2, 2)]);
        let peer = t.by_dst(&packet_to(Ipv4Addr::new(100, 64, 0, 2))).unwrap();
        assert_eq!(peer.public_key, [2; 32]);
        assert!(t.by_dst(&packet_to(Ipv4Addr::new(100, 64, 0, 3))).is_none());
        assert!(t.by_dst(&[0x60; 40]).is_none());
        assert!(t.by_dst(&[0x45; 19]).is_none());
    }

    #[test]
    fn keepalive_is_due_after_its_interval() {
        let now = Instant::now();
        assert!(!keepalive_due(0, None, now));
        assert!(keepalive_due(25, None, now));
        assert!(!keepalive_due(25, Some(now), now + Duration::from_secs(24)));
        assert!(keepalive_due(25, Some(now), now + Duration::from_secs(25)));
    }
}
