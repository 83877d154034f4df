//! Byte-exact checks of the replies against what traefik/whoami sends.

use super::super::go::{http_date, reason};
use super::super::request::{parse, Parse};
use super::*;
use std::time::UNIX_EPOCH;

const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(784_111_777)
}

fn request(raw: &str) -> Request {
    match parse(raw.as_bytes()) {
        Parse::Done(request, _) => request,
        other => panic!("{other:?}"),
    }
}

fn reply_to(raw: &str, health: i64) -> Reply {
    reply_from(raw, health, true)
}

/// The reply of a server shutting down.
fn closing_reply_to(raw: &str) -> Reply {
    reply_from(raw, 200, false)
}

fn reply_from(raw: &str, health: i64, keep_alives: bool) -> Reply {
    let ips = ["127.0.0.1", "::1", "10.0.0.2", "fe80::1"].map(|ip| ip.parse().unwrap());
    let facts = Facts {
        name: None,
        hostname: "box",
        ips: &ips,
        keep_alives,
    };
    respond(
        &request(raw),
        &facts,
        "127.0.0.1:50000".parse().unwrap(),
        health,
        now(),
    )
}

fn text(reply: &Reply) -> &str {
    std::str::from_utf8(&reply.bytes).unwrap()
}

#[test]
fn whoami_page_is_byte_for_byte_go() {
    let reply = reply_to(
        "GET /path?x=1 HTTP/1.1\r\nHost: localhost:3000\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        200,
    );
    let body = "Hostname: box\nIP: 127.0.0.1\nIP: ::1\nIP: 10.0.0.2\nIP: fe80::1\n\
        RemoteAddr: 127.0.0.1:50000\nGET /path?x=1 HTTP/1.1\r\nHost: localhost:3000\r\n\
        User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    let expected = format!(
        "HTTP/1.1 200 OK\r\nDate: {DATE}\r\nContent-Length: {}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(text(&reply), expected);
    assert!(!reply.close);
}

#[test]
fn echo_sorts_fields_and_adds_what_request_write_adds() {
    let reply = reply_to(
        "POST /f HTTP/1.1\r\nHost: h\r\nZ: 1\r\nContent-Length: 3\r\nA: 2\r\nZ: 0\r\nConnection: close\r\n\r\nabc",
        200,
    );
    let echo =
        "POST /f HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 3\r\n\
        A: 2\r\nConnection: close\r\nZ: 1\r\nZ: 0\r\n\r\nabc";
    assert!(text(&reply).ends_with(echo));
    assert!(text(&reply).contains("charset=utf-8\r\nConnection: close\r\n\r\n"));
    assert!(reply.close);
}

#[test]
fn http10_closes_unless_kept_alive() {
    let reply = reply_to("GET / HTTP/1.0\r\n\r\n", 200);
    assert!(reply.close && !text(&reply).contains("Connection"));
    assert!(text(&reply).ends_with(
        "RemoteAddr: 127.0.0.1:50000\nhttp: Request.Write on Request with no Host or URL set\n"
    ));

    let reply = reply_to("GET / HTTP/1.0\r\nHost: h\r\n\r\n", 200);
    assert!(text(&reply).contains("User-Agent: Go-http-client/1.1\r\nConnection: close\r\n\r\n"));

    let reply = reply_to(
        "GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n",
        200,
    );
    assert!(!reply.close);
    assert!(text(&reply).contains("charset=utf-8\r\nConnection: keep-alive\r\n\r\n"));
    assert!(text(&reply)
        .ends_with("Host: h\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Keep-Alive\r\n\r\n"));
}

/// A server shutting down answers, then closes, as Go's after `Shutdown`:
/// an HTTP/1.1 reply says `Connection: close` (replacing a handler's own
/// keep-alive); an HTTP/1.0 keep-alive reply keeps the `keep-alive` Go
/// already chose, and closes all the same.
#[test]
fn a_server_shutting_down_closes_after_each_reply() {
    let page = closing_reply_to("GET /?wait=3s HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(page.close);
    assert!(text(&page).contains("charset=utf-8\r\nConnection: close\r\n\r\nHostname: box\n"));
    let kept = reply_to("GET /?wait=3s HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    assert_eq!(
        text(&page).replace("Connection: close\r\n", ""),
        text(&kept),
        "only the Connection header differs"
    );

    let bench = closing_reply_to("GET /bench HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(bench.close);
    assert_eq!(
        text(&bench),
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: {DATE}\r\nContent-Length: 1\r\nConnection: close\r\n\r\n1")
    );

    let old = closing_reply_to("GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
    assert!(old.close);
    assert!(text(&old).contains("charset=utf-8\r\nConnection: keep-alive\r\n\r\n"));
}

#[test]
fn head_has_the_length_but_no_body() {
    let get = reply_to("GET / HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    let head = reply_to("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    let (_, get_body) = text(&get).split_once("\r\n\r\n").unwrap();
    // The page echoes "HEAD", one byte longer than "GET".
    let length = format!("Content-Length: {}\r\n", get_body.len() + 1);
    assert!(text(&head).ends_with(&format!(
        "{length}Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )));
}

#[test]
fn health_follows_posted_codes() {
    let ok = reply_to("GET /health HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    assert_eq!(
        text(&ok),
        format!("HTTP/1.1 200 OK\r\nDate: {DATE}\r\nContent-Length: 0\r\n\r\n")
    );
    let set = reply_to(
        "POST /health HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n503\n",
        200,
    );
    assert_eq!((set.set_health, set.close), (Some(503), false));
    assert!(text(&set).starts_with("HTTP/1.1 200 OK\r\n"));
    let failing = reply_to("GET /health HTTP/1.1\r\nHost: h\r\n\r\n", 503);
    assert!(text(&failing).starts_with("HTTP/1.1 503 Service Unavailable\r\nDate: "));
    let bad = reply_to(
        "POST /health HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nno",
        200,
    );
    assert!(text(&bad).starts_with(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"
    ));
    let broken = reply_to("GET /health HTTP/1.1\r\nHost: h\r\n\r\n", 42);
    assert!(broken.bytes.is_empty() && broken.close);
}

#[test]
fn bench_and_asterisk() {
    let bench = reply_to(
        "GET /bench HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        200,
    );
    let expected = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: {DATE}\r\nContent-Length: 1\r\nConnection: close\r\n\r\n1"
    );
    assert_eq!(text(&bench), expected);
    let star = reply_to("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    let expected = format!("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nDate: {DATE}\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((text(&star), star.close), (expected.as_str(), true));
}

#[test]
fn wait_takes_go_durations() {
    let wait_of = |uri: &str| wait(&request(&format!("GET {uri} HTTP/1.1\r\nHost: h\r\n\r\n")));
    assert_eq!(wait_of("/?wait=100ms"), Some(Duration::from_millis(100)));
    assert_eq!(
        wait_of("/x?a=1&wait=1m1.5s"),
        Some(Duration::from_millis(61_500))
    );
    assert_eq!(wait_of("/?wait=-1s"), Some(Duration::ZERO));
    assert_eq!(wait_of("/?wait=2%C2%B5s"), Some(Duration::from_micros(2)));
    for none in [
        "/?wait=5",
        "/?wait=",
        "/?wait=1x",
        "/health?wait=1s",
        "/?wait=-",
    ] {
        assert_eq!(wait_of(none), None, "{none}");
    }
}

#[test]
fn dates_and_reasons() {
    assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(now()), DATE);
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(951_825_599)),
        "Tue, 29 Feb 2000 11:59:59 GMT"
    );
    assert_eq!(reason(418), "I'm a teapot");
    assert_eq!(reason(599), "status code 599");
}
