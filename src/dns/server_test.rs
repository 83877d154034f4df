//! Root tests of the resolver's sockets: two namespaces served by the one
//! thread, each answered as its own container at 127.0.0.11:53 (redirected
//! to the resolver's ports, port 53 left free), over UDP and TCP; a removed
//! namespace's sockets are closed; a malformed packet disturbs nobody.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::view::tests::{container, network};
use super::{Resolver, View, RESOLVER_IP};
use crate::netlink::netns;
use crate::netlink::netns::ScratchDir;
use crate::nft::dns::redirect;

const RESOLVER: &str = "127.0.0.11:53";

fn query(name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 7;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Runs `f` on a thread inside the namespace at `path`.
fn inside<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = netns::open(path).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Sends `bytes` to the resolver from inside `path`; the reply, if one came within 2 s.
fn ask_udp(path: &Path, bytes: Vec<u8>) -> Option<Message> {
    inside(path, move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(&bytes, RESOLVER).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).ok()?;
        Some(Message::from_vec(&buf[..n]).unwrap())
    })
}

fn ask_tcp(path: &Path, bytes: Vec<u8>) -> std::io::Result<Message> {
    use std::io::{Read, Write};
    inside(path, move || {
        let addr: SocketAddr = RESOLVER.parse().unwrap();
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        s.write_all(&framed)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut reply)?;
        Ok(Message::from_vec(&reply).unwrap())
    })
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
#[ignore = "needs root"]
fn each_namespace_is_answered_as_its_own_container_until_removed() {
    let scratch = ScratchDir::new("dns-srv");
    let (blue, red) = (scratch.path().join("blue"), scratch.path().join("red"));
    netns::create(&blue).unwrap();
    netns::create(&red).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let resolver = Resolver::start(dir.path().join("resolv.conf")).unwrap();
    let view = View::build(
        &[
            network("b", "blue", "10.0.1.0/24"),
            network("r", "red", "10.0.2.0/24"),
        ],
        &[
            container("cb", "cb", "b", "10.0.1.2", &[]),
            container("cr", "cr", "r", "10.0.2.2", &[]),
        ],
        &[],
        &HashSet::new(),
    );
    resolver.set_view(view);
    runtime.block_on(async {
        for (path, owner) in [(&blue, "cb"), (&red, "cr"), (&red, "cr")] {
            let ports = resolver.add(path, owner).await.unwrap();
            redirect(path, RESOLVER_IP, ports.udp, ports.tcp).unwrap();
        }
    });
    let own = inside(&blue, || {
        let udp = UdpSocket::bind("0.0.0.0:53").map(drop);
        let tcp = std::net::TcpListener::bind("0.0.0.0:53").map(drop);
        (udp, tcp)
    });
    assert!(
        own.0.is_ok() && own.1.is_ok(),
        "port 53 stays the container's: {own:?}"
    );

    let m = ask_udp(&blue, query("cb.")).expect("an answer");
    assert_eq!(addresses(&m), ["10.0.1.2"]);
    let m = ask_udp(&blue, query("cr.")).expect("an answer");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "red's name, asked from blue"
    );
    let m = ask_udp(&red, query("CR.")).expect("an answer");
    assert_eq!(addresses(&m), ["10.0.2.2"]);
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "CR.",
        "the question as asked"
    );
    let m = ask_tcp(&red, query("cr.")).unwrap();
    assert_eq!(addresses(&m), ["10.0.2.2"], "over TCP");

    assert!(ask_udp(&blue, vec![1, 2, 3]).is_none(), "a runt is dropped");
    let mut cut = query("cb.");
    cut.truncate(14);
    let m = ask_udp(&blue, cut).expect("FORMERR");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let m = ask_udp(&blue, query("cb.")).expect("still answering");
    assert_eq!(addresses(&m), ["10.0.1.2"]);
    let m = ask_udp(&blue, query("elsewhere.example.")).expect("an answer");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "no upstream: SERVFAIL at once"
    );

    runtime.block_on(resolver.remove(&blue));
    let refused = ask_tcp(&blue, query("cb.")).unwrap_err();
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    assert!(
        ask_udp(&blue, query("cb.")).is_none(),
        "no UDP answer after removal"
    );
    let m = ask_udp(&red, query("cr.")).expect("red is still served");
    assert_eq!(addresses(&m), ["10.0.2.2"]);
    runtime.block_on(async {
        let ports = resolver.add(&blue, "cb").await.unwrap();
        redirect(&blue, RESOLVER_IP, ports.udp, ports.tcp).unwrap();
    });
    let m = ask_udp(&blue, query("cb.")).expect("served again");
    assert_eq!(addresses(&m), ["10.0.1.2"]);
}
