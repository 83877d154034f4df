//! The whoami I/O layer: accepts connections on a bound listener until the
//! shutdown future resolves, runs each keep-alive connection as a task, and
//! shuts down gracefully as Go's `http.Server.Shutdown` does.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::reply::{self, Facts};
use super::request::{self, Parse};

/// How long a connection that has not sent a request yet may still send
/// one once the server shuts down (Go's grace for a new connection).
const NEW_CONNECTION_GRACE: Duration = Duration::from_secs(5);

/// Serves until `shutdown` resolves, then shuts down as Go's
/// `http.Server.Shutdown` does and returns when no connection is left: the
/// listener closes at once (new connections are refused), idle keep-alive
/// connections close, and each request in flight is answered (its reply
/// saying `Connection: close`) before its connection closes. `name` is
/// printed first on each page, as traefik/whoami's `--name`.
pub async fn serve(
    listener: TcpListener,
    name: Option<String>,
    shutdown: impl Future<Output = ()>,
) {
    let name: Arc<Option<String>> = Arc::new(name);
    let health = Arc::new(AtomicI64::new(200));
    let (closing_tx, closing) = watch::channel(false);
    // Each connection holds a sender: the channel closes with the last one.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (name, health) = (name.clone(), health.clone());
                    let (closing, open) = (closing.clone(), open.clone());
                    tokio::spawn(async move {
                        // A peer that resets or vanishes just ends its connection.
                        let _ = converse(stream, peer, &name, &health, closing).await;
                        drop(open);
                    });
                }
                Err(err) => {
                    eprintln!("whoami: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    closing_tx.send_replace(true);
    drop(open);
    let _ = all_closed.recv().await;
}

/// Resolves when a connection waiting for a request should close: once the
/// server shuts down, and for one that has not sent a request yet, not
/// before its `NEW_CONNECTION_GRACE` has passed.
async fn closing_time(closing: &mut watch::Receiver<bool>, new_until: Option<Instant>) {
    // An error means the server is gone, which closes too.
    let _ = closing.wait_for(|closing| *closing).await;
    if let Some(until) = new_until {
        tokio::time::sleep_until(until).await;
    }
}

/// Answers the requests of one connection, pipelined ones in order; once
/// `closing`, it finishes the request it is reading or answering and closes.
async fn converse(
    mut stream: TcpStream,
    peer: SocketAddr,
    name: &Option<String>,
    health: &AtomicI64,
    mut closing: watch::Receiver<bool>,
) -> io::Result<()> {
    let new_until = Instant::now() + NEW_CONNECTION_GRACE;
    let mut answered = false;
    stream.set_nodelay(true)?;
    // Go prints a v4 client of a dual-stack socket as plain IPv4.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let mut buf = Vec::with_capacity(4096);
    let mut needed = 0;
    let mut continued = false;
    loop {
        if buf.len() >= needed {
            match request::parse(&buf) {
                Parse::Done(req, used) => {
                    if let Some(wait) = reply::wait(&req) {
                        tokio::time::sleep(wait).await;
                    }
                    let (hostname, ips) = match reply::prints_facts(&req) {
                        true => (hostname(), interface_ips()),
                        false => (String::new(), Vec::new()),
                    };
                    let facts = Facts {
                        name: name.as_deref(),
                        hostname: &hostname,
                        ips: &ips,
                        keep_alives: !*closing.borrow(),
                    };
                    let reply = reply::respond(
                        &req,
                        &facts,
                        peer,
                        health.load(Ordering::Relaxed),
                        SystemTime::now(),
                    );
                    if let Some(code) = reply.set_health {
                        health.store(code, Ordering::Relaxed);
                        println!("Update health check status code [{code}]");
                    }
                    stream.write_all(&reply.bytes).await?;
                    if reply.close {
                        return close_gently(stream).await;
                    }
                    answered = true;
                    buf.drain(..used);
                    if buf.is_empty() && buf.capacity() > 64 << 10 {
                        buf = Vec::with_capacity(4096);
                    }
                    (needed, continued) = (0, false);
                    continue;
                }
                Parse::Partial {
                    needed: more,
                    expects_continue,
                } => {
                    needed = more;
                    if expects_continue && !continued {
                        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                        continued = true;
                    }
                }
                Parse::Bad(status) => {
                    stream.write_all(&request::rejection(status)).await?;
                    return close_gently(stream).await;
                }
            }
        }
        let waiting = buf.is_empty();
        let new = (!answered).then_some(new_until);
        tokio::select! {
            read = stream.read_buf(&mut buf) => if read? == 0 {
                return Ok(());
            },
            () = closing_time(&mut closing, new), if waiting => return Ok(()),
        }
    }
}

/// Closes our side, then briefly drains what the client still sends, so a
/// reset does not destroy the reply it has not read yet (as Go does).
async fn close_gently(mut stream: TcpStream) -> io::Result<()> {
    stream.shutdown().await?;
    let mut sink = [0; 4096];
    let drain = async {
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
    Ok(())
}

/// The hostname, read per request as Go's `os.Hostname` is.
fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every address of every interface, read per request like traefik/whoami so
/// networks attached later show up: interfaces in kernel order, each with its
/// IPv4 then its IPv6 addresses.
fn interface_ips() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut by_interface: Vec<(String, Vec<IpAddr>)> = Vec::new();
    for ifa in addrs {
        let ip = ifa.address.as_ref().and_then(|a| {
            let v4 = a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip()));
            v4.or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        });
        let at = match by_interface
            .iter()
            .position(|(name, _)| *name == ifa.interface_name)
        {
            Some(at) => at,
            None => {
                by_interface.push((ifa.interface_name, Vec::new()));
                by_interface.len() - 1
            }
        };
        by_interface[at].1.extend(ip);
    }
    by_interface.into_iter().flat_map(|(_, ips)| ips).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Shutdown as Go's: new connections are refused at once, an idle one
    /// closes, a request in flight is answered with `Connection: close`, a
    /// connection accepted before the shutdown may still send its request,
    /// and `serve` returns once they are done.
    #[test]
    fn shutdown_refuses_new_connections_and_drains_the_open_ones() {
        use tokio::io::AsyncReadExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, None, async {
                let _ = stopped.await;
            }));
            let connect = || TcpStream::connect(addr);
            let mut slow = connect().await.unwrap();
            slow.write_all(b"GET /?wait=1s HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut silent = connect().await.unwrap();
            let mut idle = connect().await.unwrap();
            idle.write_all(b"GET /bench HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut reply = Vec::new();
            while !reply.ends_with(b"\r\n\r\n1") {
                assert_ne!(idle.read_buf(&mut reply).await.unwrap(), 0);
            }
            // Accepted in order: the idle one answered, so all three are in.
            stop.send(()).unwrap();

            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match connect().await {
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    other => assert!(Instant::now() < deadline, "still accepting: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest));
            assert_eq!(
                closed.await.unwrap().unwrap(),
                0,
                "the idle connection is closed"
            );

            silent
                .write_all(b"GET /bench HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut late = String::new();
            silent.read_to_string(&mut late).await.unwrap();
            assert!(late.starts_with("HTTP/1.1 200 OK\r\n"), "{late}");
            assert!(late.ends_with("Connection: close\r\n\r\n1"), "{late}");

            assert!(!server.is_finished(), "returned with a request in flight");
            let mut answer = String::new();
            slow.read_to_string(&mut answer).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(
                answer.contains("\r\nConnection: close\r\n\r\nHostname: "),
                "{answer}"
            );
            assert!(answer.contains("GET /?wait=1s HTTP/1.1\r\n"), "{answer}");
            tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .expect("serve returns once every connection is done")
                .unwrap();
        });
    }

    #[test]
    fn answers_pipelined_requests_over_tcp_and_stops() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, Some("demo".into()), async {
                let _ = stopped.await;
            }));
            let replies = tokio::task::spawn_blocking(move || {
                let mut client = std::net::TcpStream::connect(addr).unwrap();
                client
                    .write_all(
                        b"GET /a?b=c HTTP/1.1\r\nHost: t\r\nUser-Agent: test\r\n\r\n\
                          GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
                let mut replies = String::new();
                client.read_to_string(&mut replies).unwrap();
                (replies, client.local_addr().unwrap())
            });
            let (replies, client) = replies.await.unwrap();
            let (first, second) = replies.split_once("\r\n\r\nHTTP/1.1 ").unwrap();
            assert!(first.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{first}");
            assert!(first.contains("\r\n\r\nName: demo\nHostname: "), "{first}");
            assert!(first.contains("\nIP: 127.0.0.1\n"), "{first}");
            let tail = format!(
                "\nRemoteAddr: {client}\nGET /a?b=c HTTP/1.1\r\nHost: t\r\nUser-Agent: test"
            );
            assert!(first.ends_with(&tail), "{first}");
            assert!(second.starts_with("200 OK\r\nDate: "), "{second}");
            assert!(
                second.ends_with("\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                "{second}"
            );
            stop.send(()).unwrap();
            server.await.unwrap();
        });
    }
}
