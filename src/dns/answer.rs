//! The answer to one query, without I/O: bytes in, a reply message (or
//! "forward it", or "drop it") out, from the view and the asker's identity.

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::view::{normalize, Lookup, View};

/// Seconds a client may keep an answer: one, so that nothing downstream
/// holds an answer much past the endpoint table's next change (Docker's 600 s
/// is moby#30134), while a burst of lookups from one program can still be
/// served from its own cache. Zero would say "never cache", which some stub
/// caches mishandle.
pub const TTL: u32 = 1;

/// The UDP payload we offer with EDNS (the DNS flag day's 1232).
pub const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a query.
#[derive(Debug)]
pub enum Outcome {
    Reply(Message),
    /// Not a name of the swarm: the upstream resolvers answer it.
    Forward,
    /// Not a query (a response, or shorter than a header): no reply.
    Drop,
}

/// Answers `query` for the container `owner`.
pub fn answer(view: &View, owner: &str, query: &[u8]) -> Outcome {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Outcome::Drop;
    }
    let Ok(request) = Message::from_vec(query) else {
        return match error_header(query, ResponseCode::FormErr) {
            Some(reply) => Message::from_vec(&reply).map_or(Outcome::Drop, Outcome::Reply),
            None => Outcome::Drop,
        };
    };
    let mut reply = reply_to(&request);
    if request.metadata.op_code != OpCode::Query {
        reply.metadata.response_code = ResponseCode::NotImp;
        return Outcome::Reply(reply);
    }
    let [query] = request.queries.as_slice() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return Outcome::Reply(reply);
    };
    reply.add_query(query.clone());
    if !view.is_ready() {
        // Before the first word from the manager a swarm name cannot be told
        // from another: fail rather than leak it upstream or deny it.
        reply.metadata.response_code = ResponseCode::ServFail;
        return Outcome::Reply(reply);
    }
    if query.query_class() != DNSClass::IN {
        return Outcome::Forward;
    }
    let name = normalize(&query.name().to_ascii());
    if query.query_type() == RecordType::PTR {
        if let Some(ip) = reverse_address(&name) {
            match view.reverse(owner, ip) {
                Lookup::Found(target) => {
                    let Ok(target) = Name::from_ascii(format!("{target}.")) else {
                        return Outcome::Forward;
                    };
                    let record =
                        Record::from_rdata(query.name().clone(), TTL, RData::PTR(PTR(target)));
                    reply.metadata.authoritative = true;
                    reply.add_answer(record);
                    return Outcome::Reply(reply);
                }
                Lookup::Elsewhere => return nxdomain(reply),
                Lookup::Unknown => return Outcome::Forward,
            }
        }
    }
    match view.lookup(owner, &name) {
        Lookup::Found(ips) => {
            reply.metadata.authoritative = true;
            if matches!(query.query_type(), RecordType::A | RecordType::ANY) {
                for ip in ips {
                    reply.add_answer(Record::from_rdata(
                        query.name().clone(),
                        TTL,
                        RData::A(A(*ip)),
                    ));
                }
            }
            // Any other type (AAAA: no IPv6 here) is an empty NOERROR, not NXDOMAIN.
            Outcome::Reply(reply)
        }
        Lookup::Elsewhere => nxdomain(reply),
        Lookup::Unknown => Outcome::Forward,
    }
}

fn nxdomain(mut reply: Message) -> Outcome {
    reply.metadata.authoritative = true;
    reply.metadata.response_code = ResponseCode::NXDomain;
    Outcome::Reply(reply)
}

/// An empty reply to `request`: its ID, op code and RD and CD bits, and EDNS if it used it.
fn reply_to(request: &Message) -> Message {
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.checking_disabled = request.metadata.checking_disabled;
    reply.metadata.recursion_available = true;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

/// A header-only reply with `rcode` to a query whose header could be read
/// but not the rest (FORMERR), or that cannot be served (SERVFAIL).
pub fn error_header(query: &[u8], rcode: ResponseCode) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let mut reply = vec![0u8; 12];
    reply[..2].copy_from_slice(&query[..2]);
    // QR, the op code and RD from the query; RA.
    reply[2] = 0x80 | (query[2] & 0x79);
    reply[3] = 0x80 | (u16::from(rcode) as u8 & 0x0f);
    Some(reply)
}

/// SERVFAIL for `query`, keeping its question when it has one.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let Ok(request) = Message::from_vec(query) else {
        return error_header(query, ResponseCode::ServFail);
    };
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = reply_to(&request);
    reply.add_queries(request.queries.iter().cloned());
    reply.metadata.response_code = ResponseCode::ServFail;
    reply.to_vec().ok()
}

/// `d.c.b.a.in-addr.arpa` → a.b.c.d.
fn reverse_address(name: &str) -> Option<Ipv4Addr> {
    let labels = name.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut parts = labels.split('.');
    for octet in octets.iter_mut().rev() {
        *octet = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// A reply as bytes, and where its answer records are if they may be
/// shuffled in place (all A records of the same size, as dnsrr needs).
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub records: Option<Records>,
}

/// `count` records of `size` bytes from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Records {
    pub start: usize,
    pub size: usize,
    pub count: usize,
}

/// Encodes `reply` to fit in `limit` bytes: over it, the answers go and TC is
/// set, so the client asks again over TCP.
pub fn encode(reply: &Message, limit: usize) -> Option<Encoded> {
    let bytes = reply.to_vec().ok()?;
    if bytes.len() > limit {
        let mut cut = reply.clone();
        cut.answers.clear();
        cut.metadata.truncation = true;
        return Some(Encoded {
            bytes: cut.to_vec().ok()?,
            records: None,
        });
    }
    let records = a_records(&bytes, reply.answers.len());
    Some(Encoded { bytes, records })
}

/// Where `count` compressed A records follow the question, if they do.
fn a_records(bytes: &[u8], count: usize) -> Option<Records> {
    const SIZE: usize = 16;
    if count < 2 {
        return None;
    }
    let start = question_end(bytes)?;
    let span = bytes.get(start..start + SIZE * count)?;
    span.chunks(SIZE)
        .all(|r| r[0] & 0xc0 == 0xc0 && r[2..4] == [0, 1] && r[10..12] == [0, 4])
        .then_some(Records {
            start,
            size: SIZE,
            count,
        })
}

/// The offset just past the (first) question, if its name has no compression.
pub fn question_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
    }
    let end = at + 1 + 4;
    (end <= bytes.len()).then_some(end)
}

#[cfg(test)]
mod tests;
