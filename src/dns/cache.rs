//! Ready-made replies, one table per namespace: a query seen before (same
//! bytes after the ID, the name in any case) is answered by copying the
//! reply and patching in the query's ID and question, the swarm's answers
//! being a pure function of the view, the asker and those bytes. Emptied when
//! the view changes; bounded, so a flood of distinct queries cannot grow it.

use std::collections::HashMap;

use super::answer::{question_end, Encoded, Records};

/// Entries before the table is emptied and filled again.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
struct Entry {
    bytes: Vec<u8>,
    records: Option<Records>,
}

/// One namespace's ready-made replies.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Box<[u8]>, Entry>,
    /// The key being built, reused between queries.
    key: Vec<u8>,
    rng: u64,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            entries: HashMap::new(),
            key: Vec::new(),
            rng: rand::random::<u64>() | 1,
        }
    }
}

impl Cache {
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Writes the reply to `query` into `out` if one is ready; with its A
    /// records shuffled when there are several.
    pub fn reply(&mut self, query: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(qend) = self.make_key(query) else {
            return false;
        };
        let Some(entry) = self.entries.get(self.key.as_slice()) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(&entry.bytes);
        out[..2].copy_from_slice(&query[..2]);
        out[12..qend].copy_from_slice(&query[12..qend]);
        if let Some(records) = entry.records {
            shuffle(&mut self.rng, out, records);
        }
        true
    }

    /// Keeps `reply` for queries with `query`'s bytes.
    pub fn insert(&mut self, query: &[u8], reply: &Encoded) {
        let Some(qend) = self.make_key(query) else {
            return;
        };
        // The reply must carry the question where the query does, for the patch.
        if reply.bytes.len() < qend || question_end(&reply.bytes) != Some(qend) {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(
            self.key.as_slice().into(),
            Entry {
                bytes: reply.bytes.clone(),
                records: reply.records,
            },
        );
    }

    /// The key: the query after its ID, the name in lower case. Returns where
    /// the question ends; None for a query whose question cannot be patched.
    fn make_key(&mut self, query: &[u8]) -> Option<usize> {
        let qend = question_end(query)?;
        self.key.clear();
        self.key.extend_from_slice(&query[2..]);
        // Length bytes are at most 63, below 'A': lowering the whole name is safe.
        self.key[10..qend - 2 - 4].make_ascii_lowercase();
        Some(qend)
    }
}

/// Fisher-Yates over the records, with xorshift: cheap, and enough to spread
/// clients that take the first address.
fn shuffle(rng: &mut u64, out: &mut [u8], r: Records) {
    for i in (1..r.count).rev() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let j = (*rng % (i as u64 + 1)) as usize;
        if i != j {
            let (a, b) = (r.start + i * r.size, r.start + j * r.size);
            for k in 0..r.size {
                out.swap(a + k, b + k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &[u8]) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.push(name.len() as u8);
        q.extend_from_slice(name);
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    fn reply_for(q: &[u8], ips: &[[u8; 4]]) -> Encoded {
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r[7] = ips.len() as u8;
        for ip in ips {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
            r.extend_from_slice(ip);
        }
        Encoded {
            records: (ips.len() > 1).then_some(Records {
                start: q.len(),
                size: 16,
                count: ips.len(),
            }),
            bytes: r,
        }
    }

    #[test]
    fn a_reply_is_reused_with_the_asker_s_id_and_case() {
        let mut cache = Cache::default();
        let first = query(1, b"web");
        cache.insert(&first, &reply_for(&first, &[[10, 0, 0, 2]]));
        let mut out = Vec::new();
        let again = query(0xbeef, b"WeB");
        assert!(cache.reply(&again, &mut out));
        assert_eq!(out[..2], [0xbe, 0xef]);
        assert_eq!(&out[13..16], b"WeB", "the question as asked");
        assert_eq!(out[out.len() - 4..], [10, 0, 0, 2]);
        assert!(!cache.reply(&query(2, b"api"), &mut out), "another name");
        cache.clear();
        assert!(!cache.reply(&again, &mut out), "gone with the view");
    }

    #[test]
    fn several_records_come_in_every_order_and_none_is_lost() {
        let mut cache = Cache::default();
        let q = query(1, b"tasks");
        let ips = [[10, 0, 0, 2], [10, 0, 0, 3], [10, 0, 0, 4]];
        cache.insert(&q, &reply_for(&q, &ips));
        let mut firsts = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for _ in 0..200 {
            assert!(cache.reply(&q, &mut out));
            let mut got: Vec<[u8; 4]> = out[q.len()..]
                .chunks(16)
                .map(|r| r[12..16].try_into().unwrap())
                .collect();
            firsts.insert(got[0]);
            got.sort();
            assert_eq!(got, ips);
        }
        assert_eq!(firsts.len(), 3, "each address comes first at times");
    }

    #[test]
    fn a_flood_of_distinct_queries_keeps_the_table_bounded() {
        let mut cache = Cache::default();
        for i in 0..(MAX_ENTRIES as u32 * 2) {
            let q = query(1, format!("n{i:08}").as_bytes());
            cache.insert(&q, &reply_for(&q, &[[10, 0, 0, 2]]));
            assert!(cache.entries.len() <= MAX_ENTRIES);
        }
    }

    #[test]
    fn queries_without_a_plain_question_are_not_kept() {
        let mut cache = Cache::default();
        let mut q = query(1, b"web");
        q.truncate(14);
        cache.insert(&q, &reply_for(&query(1, b"web"), &[[10, 0, 0, 2]]));
        assert!(cache.entries.is_empty());
    }
}
