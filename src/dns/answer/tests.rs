use hickory_proto::op::Query;

use super::*;
use crate::dns::view::tests::fixture;

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

fn reply(owner: &str, bytes: &[u8]) -> Message {
    match answer(&fixture(), owner, bytes) {
        Outcome::Reply(m) => m,
        other => panic!("{other:?}"),
    }
}

fn addresses(m: &Message) -> Vec<String> {
    let mut ips: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    ips.sort();
    ips
}

#[test]
fn a_swarm_name_gets_its_addresses_with_a_short_ttl() {
    let m = reply("cli", &query("tasks.web.", RecordType::A));
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.metadata.authoritative && m.metadata.recursion_desired && m.metadata.recursion_available
    );
    assert_eq!(addresses(&m), ["10.0.1.3", "10.0.1.4"]);
    assert!(m.answers.iter().all(|r| r.ttl == TTL));
    assert_eq!(m.queries[0].name().to_ascii(), "tasks.web.");
}

#[test]
fn aaaa_of_a_swarm_name_is_empty_not_nxdomain() {
    let m = reply("cli", &query("web.", RecordType::AAAA));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn another_network_s_name_is_nxdomain_and_others_are_forwarded() {
    let m = reply("cli", &query("c2.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(
        answer(&fixture(), "cli", &query("example.com.", RecordType::A)),
        Outcome::Forward
    ));
    assert!(matches!(
        answer(
            &fixture(),
            "cli",
            &query("4.3.2.1.in-addr.arpa.", RecordType::PTR)
        ),
        Outcome::Forward
    ));
}

#[test]
fn ptr_names_the_container_on_the_network() {
    let m = reply("cli", &query("2.1.0.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(addresses(&m), ["c1.app."]);
    let m = reply("cli", &query("2.2.0.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "not on the asker's network"
    );
}

#[test]
fn not_ready_is_servfail_and_never_forwarded() {
    let m = match answer(
        &View::pending(),
        "cli",
        &query("example.com.", RecordType::A),
    ) {
        Outcome::Reply(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn malformed_input_is_formerr_or_dropped() {
    let view = fixture();
    assert!(
        matches!(answer(&view, "cli", &[1, 2, 3]), Outcome::Drop),
        "shorter than a header"
    );
    let mut response = query("web.", RecordType::A);
    response[2] |= 0x80;
    assert!(
        matches!(answer(&view, "cli", &response), Outcome::Drop),
        "a response"
    );
    let mut cut = query("web.", RecordType::A);
    cut.truncate(15);
    match answer(&view, "cli", &cut) {
        Outcome::Reply(m) => {
            assert_eq!(m.metadata.id, 0x1234);
            assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        }
        other => panic!("{other:?}"),
    }
    let mut two = Message::query();
    two.add_query(Query::query(
        Name::from_ascii("web.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("c1.").unwrap(),
        RecordType::A,
    ));
    let m = reply("cli", &two.to_vec().unwrap());
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn other_op_codes_are_not_implemented() {
    let mut q = query("web.", RecordType::A);
    q[2] |= 0x10; // op code 2, STATUS
    assert_eq!(
        reply("cli", &q).metadata.response_code,
        ResponseCode::NotImp
    );
}

#[test]
fn many_answers_are_truncated_to_the_udp_limit_and_records_are_found() {
    let mut m = reply("cli", &query("web.", RecordType::A));
    let encoded = encode(&m, 512).unwrap();
    assert_eq!(
        encoded.records,
        Some(Records {
            start: 12 + 5 + 4,
            size: 16,
            count: 2
        })
    );
    let record = m.answers[0].clone();
    for _ in 0..40 {
        m.add_answer(record.clone());
    }
    let cut = encode(&m, 512).unwrap();
    let back = Message::from_vec(&cut.bytes).unwrap();
    assert!(back.metadata.truncation && back.answers.is_empty());
    assert!(
        encode(&m, 65535).unwrap().bytes.len() > 512,
        "no limit over TCP"
    );
}

#[test]
fn edns_is_answered_with_edns() {
    let mut q = Message::query();
    q.add_query(Query::query(
        Name::from_ascii("web.").unwrap(),
        RecordType::A,
    ));
    q.set_edns(Edns::new());
    let m = reply("cli", &q.to_vec().unwrap());
    assert_eq!(m.edns.map(|e| e.max_payload()), Some(EDNS_PAYLOAD));
}

#[test]
fn servfail_keeps_the_question() {
    let bytes = servfail(&query("example.com.", RecordType::A)).unwrap();
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(error_header(&[0; 5], ResponseCode::FormErr), None);
}
