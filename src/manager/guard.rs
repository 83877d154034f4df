//! What the manager's API grants a caller before it is authenticated:
//! connection slots (overall and per source address), and the growing delay
//! before answering a source whose joins keep failing. Pure: callers pass
//! the time.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections without a certificate held open at once, in all.
pub const MAX_UNAUTHENTICATED: usize = 64;
/// Connections without a certificate held open at once from one address.
pub const MAX_UNAUTHENTICATED_PER_SOURCE: usize = 8;

/// Failures from one source before its joins are slowed.
const FREE_FAILURES: u32 = 5;
/// A source's failures are forgotten after this long without one.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);
/// The first delay, doubled with each further failure.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Sources remembered at once; the least recent is forgotten first.
const MAX_SOURCES: usize = 4096;

/// Counts of connections without a certificate, overall and by source.
#[derive(Debug)]
pub struct Slots {
    total: usize,
    per_source: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's slot, given back when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    source: IpAddr,
}

impl Slots {
    pub fn new(total: usize, per_source: usize) -> Arc<Slots> {
        Arc::new(Slots {
            total,
            per_source,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `source`, or None when it or everyone holds the most allowed.
    pub fn take(self: &Arc<Slots>, source: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock().expect("slots lock");
        let total: usize = held.values().sum();
        let mine = held.get(&source).copied().unwrap_or(0);
        if total >= self.total || mine >= self.per_source {
            return None;
        }
        held.insert(source, mine + 1);
        Some(Slot {
            slots: self.clone(),
            source,
        })
    }

    /// Slots held now, in all.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.lock().expect("slots lock").values().sum()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("slots lock");
        if let Some(n) = held.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.source);
            }
        }
    }
}

/// One source's streak of failed joins.
#[derive(Debug, Clone, Copy)]
struct Streak {
    failures: u32,
    last: Instant,
}

/// Failed joins by source: after five with no minute's gap between them,
/// each further join from that source waits 1 s, 2 s, 4 s … up to 30 s.
#[derive(Debug, Default)]
pub struct JoinLimiter {
    sources: HashMap<IpAddr, Streak>,
}

impl JoinLimiter {
    /// How long to wait before answering a join from `source` at `now`.
    pub fn delay(&self, source: IpAddr, now: Instant) -> Duration {
        let Some(streak) = self.current(source, now) else {
            return Duration::ZERO;
        };
        let Some(over) = streak.failures.checked_sub(FREE_FAILURES) else {
            return Duration::ZERO;
        };
        FIRST_DELAY
            .checked_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
    }

    /// Records a failed join from `source` at `now`.
    pub fn failed(&mut self, source: IpAddr, now: Instant) {
        let failures = self.current(source, now).map_or(0, |s| s.failures);
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_SOURCES {
            self.forget_oldest(now);
        }
        self.sources.insert(
            source,
            Streak {
                failures: failures.saturating_add(1),
                last: now,
            },
        );
    }

    /// Sources remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    fn current(&self, source: IpAddr, now: Instant) -> Option<Streak> {
        self.sources
            .get(&source)
            .filter(|s| now.saturating_duration_since(s.last) < FAILURE_MEMORY)
            .copied()
    }

    /// Drops the streaks that have ended, or else the least recent one.
    fn forget_oldest(&mut self, now: Instant) {
        self.sources
            .retain(|_, s| now.saturating_duration_since(s.last) < FAILURE_MEMORY);
        if self.sources.len() < MAX_SOURCES {
            return;
        }
        if let Some(oldest) = self.sources.iter().min_by_key(|(_, s)| s.last) {
            let oldest = *oldest.0;
            self.sources.remove(&oldest);
        }
    }
}

/// Failed joins counted by reason, for the metrics.
#[derive(Debug, Default)]
pub struct JoinFailures {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl JoinFailures {
    pub fn count(&self, reason: &'static str) {
        *self
            .counts
            .lock()
            .expect("join failures lock")
            .entry(reason)
            .or_default() += 1;
    }

    /// The counts so far, by reason.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let counts = self.counts.lock().expect("join failures lock");
        counts.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn slots_are_limited_overall_and_per_source_and_given_back() {
        let slots = Slots::new(3, 2);
        let a1 = slots.take(ip("10.0.0.1")).unwrap();
        let _a2 = slots.take(ip("10.0.0.1")).unwrap();
        assert!(slots.take(ip("10.0.0.1")).is_none(), "per source");
        let _b1 = slots.take(ip("10.0.0.2")).unwrap();
        assert!(slots.take(ip("10.0.0.3")).is_none(), "overall");
        drop(a1);
        assert_eq!(slots.held(), 2);
        let _c1 = slots.take(ip("10.0.0.3")).unwrap();
        assert!(slots.take(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn a_dropped_slot_frees_its_source_entry() {
        let slots = Slots::new(64, 8);
        for _ in 0..100 {
            let taken: Vec<_> = (0..8)
                .map(|_| slots.take(ip("10.0.0.9")).unwrap())
                .collect();
            assert!(slots.take(ip("10.0.0.9")).is_none());
            drop(taken);
        }
        assert_eq!(slots.held(), 0);
        assert!(slots.held.lock().unwrap().is_empty());
    }

    #[test]
    fn failures_past_five_wait_longer_each_time_up_to_30s() {
        let mut l = JoinLimiter::default();
        let t0 = Instant::now();
        let src = ip("10.0.0.1");
        let mut delays = Vec::new();
        for i in 0..12 {
            let now = t0 + Duration::from_secs(i);
            delays.push(l.delay(src, now).as_secs());
            l.failed(src, now);
        }
        assert_eq!(delays, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(l.delay(ip("10.0.0.2"), t0), Duration::ZERO, "per source");
        for _ in 0..100 {
            l.failed(src, t0 + Duration::from_secs(12));
        }
        assert_eq!(l.delay(src, t0 + Duration::from_secs(13)), MAX_DELAY);
    }

    #[test]
    fn a_minute_without_failures_forgets_the_streak() {
        let mut l = JoinLimiter::default();
        let t0 = Instant::now();
        let src = ip("10.0.0.1");
        for _ in 0..7 {
            l.failed(src, t0);
        }
        assert_eq!(l.delay(src, t0 + Duration::from_secs(59)).as_secs(), 4);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(l.delay(src, later), Duration::ZERO);
        l.failed(src, later);
        assert_eq!(l.delay(src, later), Duration::ZERO, "a new streak of one");
    }

    #[test]
    fn the_sources_remembered_are_bounded() {
        let mut l = JoinLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 500) {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..6 {
                l.failed(src, t0 + Duration::from_millis(u64::from(i)));
            }
        }
        assert_eq!(l.len(), MAX_SOURCES);
        let newest = IpAddr::from(std::net::Ipv4Addr::from(
            0x0a00_0000 + MAX_SOURCES as u32 + 499,
        ));
        assert_eq!(l.delay(newest, t0 + Duration::from_secs(5)).as_secs(), 2);
        assert_eq!(
            l.delay(ip("10.0.0.0"), t0),
            Duration::ZERO,
            "the oldest went"
        );
    }

    #[test]
    fn failures_are_counted_by_reason() {
        let f = JoinFailures::default();
        f.count("token");
        f.count("hostname");
        f.count("token");
        assert_eq!(f.snapshot(), vec![("hostname", 1), ("token", 2)]);
    }
}
