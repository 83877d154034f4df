//! The manager's API against hostile callers without a certificate, served
//! for real over TLS on loopback: oversized lines, too many connections,
//! forged joins, and a burst of wrong tokens that is slowed, logged and
//! counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::fixture_test::{serve, Fixture};
use super::token::JoinToken;
use super::{ca, tls};
use crate::model::ApiError;
use crate::proto::client::ManagerConn;
use crate::proto::{read_msg, JoinRequest, ManagerRequest, RawEnvelope, Reply};

/// A TLS connection without a client certificate, as a stranger opens one.
async fn stranger(f: &Fixture) -> BufReader<TlsStream<TcpStream>> {
    let config = tls::joining_client_config(f.manager.ca_pem()).unwrap();
    let tcp = TcpStream::connect(f.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(ca::MANAGER_SERVER_NAME).unwrap();
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    BufReader::new(stream)
}

async fn reply(conn: &mut BufReader<TlsStream<TcpStream>>) -> Reply {
    let msg: RawEnvelope = tokio::time::timeout(Duration::from_secs(5), read_msg(conn))
        .await
        .expect("a reply within 5 s")
        .unwrap()
        .expect("a reply before the end of the stream");
    msg.open::<Reply>("manager").unwrap()
}

fn join_request(token: String, hostname: &str, addr: &str) -> ManagerRequest {
    ManagerRequest::Join(JoinRequest {
        token,
        csr_pem: ca::new_csr().unwrap().0,
        hostname: hostname.into(),
        addr: addr.parse().unwrap(),
        wg_public_key: "22".repeat(32),
        wg_port: 51820,
    })
}

fn worker_token(f: &Fixture) -> String {
    let view = f
        .manager
        .cluster_call(crate::proto::ClusterRequest::SwarmInspect, "x")
        .unwrap();
    view["worker_token"].as_str().unwrap().to_string()
}

async fn join_as_stranger(f: &Fixture, req: &ManagerRequest) -> Result<(), ApiError> {
    let config = tls::joining_client_config(f.manager.ca_pem()).unwrap();
    let mut conn = ManagerConn::connect(f.addr, config).await?;
    conn.call(req).await.map(|_| ())
}

#[tokio::test]
async fn an_oversized_line_without_a_certificate_is_refused_and_closed() {
    let f = serve().await;
    let mut conn = stranger(&f).await;
    conn.get_mut()
        .write_all(&vec![b'x'; 16 * 1024 + 1])
        .await
        .unwrap();
    conn.get_mut().flush().await.unwrap();
    let err = reply(&mut conn).await.unwrap_err().to_string();
    assert!(
        err.contains("a message is longer than 16384 bytes")
            && err.contains("may only fetch the CA or join"),
        "{err}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the manager keeps the connection open: {closed:?}"
    );
}

#[tokio::test]
async fn connections_without_a_certificate_are_limited_per_source() {
    let f = serve().await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut conn = stranger(&f).await;
        crate::proto::write_msg(
            conn.get_mut(),
            &crate::proto::Envelope::new(ManagerRequest::GetCa),
        )
        .await
        .unwrap();
        reply(&mut conn).await.unwrap();
        held.push(conn);
    }
    let mut ninth = stranger(&f).await;
    let err = reply(&mut ninth).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Unavailable(m) if m.contains("too many connections without a certificate")),
        "{err}"
    );
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let config = tls::joining_client_config(f.manager.ca_pem()).unwrap();
        let mut conn = ManagerConn::connect(f.addr, config).await.unwrap();
        match conn.call(&ManagerRequest::GetCa).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, ApiError::Unavailable(_)), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("a freed slot was not given back within 5 s: {e}"),
        }
    }
}

#[tokio::test]
async fn forged_hostnames_and_addresses_in_a_raw_join_are_refused() {
    let f = serve().await;
    let token = worker_token(&f);
    let cases = [
        (
            join_request(
                token.clone(),
                "vm2\n\u{1b}[31mFAKE Ready Active Leader",
                "127.0.0.1",
            ),
            "is not a valid host name: it contains \"\\n\"",
        ),
        (
            join_request(token.clone(), &"a".repeat(300), "127.0.0.1"),
            "300 characters long and the limit is 253",
        ),
        (
            join_request(token.clone(), &"a".repeat(100_000), "127.0.0.1"),
            "a message is longer than 16384 bytes",
        ),
        (
            join_request(token.clone(), "vm2", "1.1.1.1"),
            "the node advertises 1.1.1.1 but connected from 127.0.0.1: give --advertise-addr",
        ),
    ];
    for (req, needle) in &cases {
        let err = join_as_stranger(&f, req).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }
    assert_eq!(f.manager.views().unwrap().len(), 1, "nothing was admitted");
    let failures = f.counters.join_failures.snapshot();
    assert_eq!(failures, vec![("address", 1), ("hostname", 2)]);
    join_as_stranger(&f, &join_request(token, "vm2", "127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(f.manager.views().unwrap().len(), 2);
}

/// A log sink the test can read.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::Write::write(&mut *self.0.lock().unwrap(), buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_burst_of_wrong_tokens_is_slowed_logged_and_counted() {
    let log = Log::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let f = serve().await;
    let ca_der = ca::pem_to_der(f.manager.ca_pem()).unwrap();
    let guess = JoinToken::generate(&ca_der).to_string();
    let mut took = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let err = join_as_stranger(&f, &join_request(guess.clone(), "guesser", "127.0.0.1"))
            .await
            .unwrap_err();
        took.push(start.elapsed());
        assert!(err.to_string().contains("invalid join token"), "{err}");
    }
    assert!(
        took[..5].iter().all(|t| *t < Duration::from_millis(900)),
        "{took:?}"
    );
    assert!(
        took[5] >= Duration::from_secs(1),
        "the 6th waits 1 s: {took:?}"
    );
    assert!(
        took[6] >= Duration::from_secs(2),
        "the 7th waits 2 s: {took:?}"
    );
    assert_eq!(f.counters.join_failures.snapshot(), vec![("token", 7)]);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("join refused"))
        .collect();
    assert_eq!(refused.len(), 7, "{text}");
    for line in refused {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("source=127.0.0.1"), "{line}");
        assert!(line.contains("reason=\"token\""), "{line}");
    }
    let secret = guess.rsplit('-').next().unwrap();
    assert!(!text.contains(secret), "the token reached the log: {text}");
}
