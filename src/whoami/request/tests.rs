//! Request parsing checked against what Go's net/http accepts and rejects.

use super::*;

fn done(raw: &[u8]) -> (Request, usize) {
    match parse(raw) {
        Parse::Done(request, used) => (request, used),
        other => panic!("{other:?}"),
    }
}

#[test]
fn parses_a_request_with_a_body_and_leaves_the_next_one() {
    let raw = b"POST /a?b=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nx-two: 1\r\n\r\nabcGET";
    let (request, used) = done(raw);
    assert_eq!(used, raw.len() - 3);
    assert_eq!(
        (request.method.as_str(), request.uri.as_str()),
        ("POST", "/a?b=1")
    );
    assert_eq!((request.host.as_str(), request.minor), ("x", 1));
    assert_eq!(request.header("X-Two"), Some("1"));
    assert_eq!(request.body, b"abc");
    assert_eq!(
        parse(&raw[used..]),
        Parse::Partial {
            needed: 0,
            expects_continue: false
        }
    );
}

#[test]
fn waits_for_the_body_and_asks_for_continue() {
    let raw = b"PUT / HTTP/1.1\nHost: x\nExpect: 100-continue\nContent-Length: 5\n\nab";
    assert_eq!(
        parse(raw),
        Parse::Partial {
            needed: raw.len() + 3,
            expects_continue: true
        }
    );
}

#[test]
fn rejects_what_go_rejects() {
    for raw in [
        &b"GET /\r\n\r\n"[..],
        b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET nohost HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        assert_eq!(
            parse(raw),
            Parse::Bad("400 Bad Request"),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let missing = parse(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        missing,
        Parse::Bad("400 Bad Request: missing required Host header")
    );
    let version = parse(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    assert!(matches!(version, Parse::Bad(s) if s.starts_with("505")));
    let chunked = parse(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(matches!(chunked, Parse::Bad(s) if s.starts_with("501")));
}

#[test]
fn canonicalises_names_and_fixes_pragma() {
    let raw = b"GET / HTTP/1.0\r\nx-FORWARDED-for: 1\r\nPragma: no-cache\r\n\r\n";
    let (request, _) = done(raw);
    assert_eq!(request.header("X-Forwarded-For"), Some("1"));
    assert_eq!(request.header("Cache-Control"), Some("no-cache"));
    assert!(request.close() && request.host.is_empty());
}
