//! Property tests over what any container controls: the bytes of a query.
//! Seeds from the kept corpus (tests/dns-corpus: valid queries and known
//! malformed ones), mutated, and plain random bytes. Nothing panics; a
//! reply always parses and carries the query's ID; a ready-made reply is the
//! reply worked out the first time. PROPTEST_CASES=N runs longer.

use std::path::PathBuf;

use hickory_proto::op::Message;
use proptest::prelude::*;

use super::answer::{answer, encode, Outcome};
use super::cache::Cache;
use super::view::tests::fixture;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dns-corpus");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "the corpus is there");
    seeds
}

/// Answers `query` as the UDP path does, checking what must hold.
fn check(query: &[u8]) -> Result<(), TestCaseError> {
    let view = fixture();
    match answer(&view, "cli", query) {
        Outcome::Drop => prop_assert!(query.len() < 12 || query[2] & 0x80 != 0),
        Outcome::Forward => prop_assert!(Message::from_vec(query).is_ok()),
        Outcome::Reply(reply) => {
            for limit in [512, 65535] {
                let Some(encoded) = encode(&reply, limit) else {
                    return Err(TestCaseError::fail("a reply that does not encode"));
                };
                prop_assert!(encoded.bytes.len() <= limit.max(512));
                let back = Message::from_vec(&encoded.bytes);
                prop_assert!(back.is_ok(), "{:?}", back);
                prop_assert_eq!(encoded.bytes[..2].to_vec(), query[..2].to_vec());
                let mut cache = Cache::default();
                cache.insert(query, &encoded);
                let mut out = Vec::new();
                if cache.reply(query, &mut out) {
                    prop_assert_eq!(out.len(), encoded.bytes.len());
                    prop_assert_eq!(&out[..12], &encoded.bytes[..12]);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn every_corpus_query_gets_a_clean_outcome() {
    for seed in corpus() {
        check(&seed).unwrap();
    }
}

/// A seed from the corpus with some bytes changed, some cut, some added.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus();
    (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(move |(i, flips, cut, tail)| {
            let mut q = seeds[i].clone();
            for (at, byte) in flips {
                let at = at.index(q.len());
                q[at] = byte;
            }
            if let Some(cut) = cut {
                q.truncate(cut.index(q.len() + 1));
            }
            q.extend(tail);
            q
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_queries_never_break_the_resolver(query in mutated()) {
        check(&query)?;
    }

    #[test]
    fn random_bytes_never_break_the_resolver(query in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&query)?;
    }
}
