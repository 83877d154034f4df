//! `swarmnet whoami` answers as traefik/whoami does, checked with curl on loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// Stops the server it holds, by PID, even when the test fails.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn whoami_answers_like_traefik_whoami() {
    let port = 20000 + (std::process::id() % 20000) as u16;
    let child = Command::new(bin())
        .args(["whoami", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("start whoami");
    let _server = Server(child);
    let url = format!("http://127.0.0.1:{port}/hello?x=1");
    let body = eventually("whoami answers", Duration::from_secs(10), || {
        let out = Command::new("curl")
            .args(["-sf", "-H", "X-Test: 7", &url])
            .output()
            .map_err(|e| e.to_string())?;
        out.status
            .success()
            .then(|| stdout(&out))
            .ok_or_else(|| stderr(&out))
    });
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert!(
        body.starts_with(&format!("Hostname: {hostname}\n")),
        "{body}"
    );
    assert!(body.contains("IP: 127.0.0.1\n"), "{body}");
    assert!(body.contains("RemoteAddr: 127.0.0.1:"), "{body}");
    assert!(body.contains("GET /hello?x=1 HTTP/1.1\r\n"), "{body}");
    assert!(body.contains("X-Test: 7\r\n"), "{body}");
}

/// A whoami on a port of its own choosing, and that port.
fn start_whoami() -> (Server, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(bin())
        .args(["whoami", "--bind", "127.0.0.1", "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start whoami");
    let mut first = String::new();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    log.read_line(&mut first).unwrap();
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    let server = Server(child);
    let port = first
        .trim()
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("whoami did not say where it listens: {first:?}"));
    (server, port)
}

/// A request sent on a connection of its own, and a second connection
/// answered after it: connections are accepted in order, so the first one
/// is then in whoami's hands.
fn in_flight(port: u16, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(slow, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    ok(&Command::new("curl")
        .args(["-sS", "-m", "5", &url])
        .output()
        .unwrap());
    slow
}

fn signal(server: &Server, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(server.0.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
}

/// Polls until a new connection to `port` is refused.
fn refuses_connections(port: u16) {
    eventually(
        "new connections are refused",
        Duration::from_secs(5),
        || match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

/// Waits (by polling) for the server's exit, within `deadline`.
fn exit_status(server: &mut Server, deadline: Duration) -> std::process::ExitStatus {
    eventually("whoami exits", deadline, || {
        server
            .0
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "still running".to_string())
    })
}

#[test]
fn whoami_answers_requests_in_flight_on_sigterm_and_a_second_signal_ends_it() {
    use nix::sys::signal::Signal;
    use std::io::Read;

    // One SIGTERM: no new connection, the request in flight answered, exit 0.
    let (mut server, port) = start_whoami();
    let mut slow = in_flight(port, "/?wait=2s");
    signal(&server, Signal::SIGTERM);
    refuses_connections(port);
    let mut reply = String::new();
    slow.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains("\r\nConnection: close\r\n\r\nHostname: "),
        "{reply}"
    );
    assert!(reply.contains("GET /?wait=2s HTTP/1.1\r\n"), "{reply}");
    assert_eq!(
        exit_status(&mut server, Duration::from_secs(5)).code(),
        Some(0)
    );

    // A second signal ends it without waiting for the request in flight.
    let (mut server, port) = start_whoami();
    let mut slow = in_flight(port, "/?wait=60s");
    signal(&server, Signal::SIGTERM);
    refuses_connections(port);
    signal(&server, Signal::SIGINT);
    assert_eq!(
        exit_status(&mut server, Duration::from_secs(5)).code(),
        Some(0)
    );
    let mut cut = Vec::new();
    let _ = slow.read_to_end(&mut cut);
    assert!(cut.is_empty(), "{}", String::from_utf8_lossy(&cut));
}
