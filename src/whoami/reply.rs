//! The whoami replies, byte for byte as traefik/whoami (Go net/http) writes
//! them: the routes, the echoed request, status lines and response headers.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use super::go::{http_date, parse_duration, reason};
use super::request::{has_token, Request};
use super::target::percent_decode;

/// What the host looks like when a request arrives.
pub struct Facts<'a> {
    /// traefik/whoami's `--name`, printed first when set.
    pub name: Option<&'a str>,
    pub hostname: &'a str,
    pub ips: &'a [IpAddr],
    /// False once the server is shutting down: every reply then closes its
    /// connection, as Go's server does after `Shutdown`.
    pub keep_alives: bool,
}

/// The bytes to send, and what the connection does next.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub close: bool,
    /// A `POST /health` set the status code later `GET /health` answer with.
    pub set_health: Option<i64>,
}

enum Route {
    Whoami,
    Health,
    Bench,
    Asterisk,
    Unsupported,
}

fn route(req: &Request) -> Route {
    match req.uri.split('?').next().unwrap_or_default() {
        "*" => Route::Asterisk,
        "/health" => Route::Health,
        "/bench" => Route::Bench,
        "/api" | "/data" | "/echo" => Route::Unsupported,
        _ => Route::Whoami,
    }
}

/// True when the reply prints the hostname and the addresses (the whoami
/// page): only then are they read, so `/bench` measures the network path.
pub fn prints_facts(req: &Request) -> bool {
    matches!(route(req), Route::Whoami)
}

/// How long `?wait=` (a Go duration such as `100ms`) delays the whoami page.
pub fn wait(req: &Request) -> Option<Duration> {
    if !matches!(route(req), Route::Whoami) {
        return None;
    }
    let (_, query) = req.uri.split_once('?')?;
    let value = query
        .split('&')
        .filter(|pair| !pair.contains(';'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key.as_bytes(), true)?;
            let value = percent_decode(value.as_bytes(), true)?;
            (key == b"wait").then_some(value)
        })?;
    parse_duration(std::str::from_utf8(&value).ok()?)
}

/// The reply to `req`; `health` is the code `GET /health` answers with.
pub fn respond(
    req: &Request,
    facts: &Facts,
    peer: SocketAddr,
    health: i64,
    now: SystemTime,
) -> Reply {
    let keep_alives = facts.keep_alives;
    let finish = |status, headers, body| finish(req, status, headers, body, now, keep_alives);
    let error = |status, message: &str| error(req, status, message, now, keep_alives);
    match route(req) {
        Route::Whoami => finish(200, vec![], whoami_page(req, facts, peer)),
        Route::Bench => {
            let headers = vec![("Connection", "keep-alive"), ("Content-Type", "text/plain")];
            finish(200, headers, b"1".to_vec())
        }
        Route::Asterisk => {
            let headers = if req.minor >= 1 {
                vec![("Connection", "close")]
            } else {
                vec![]
            };
            finish(400, headers, vec![])
        }
        Route::Unsupported => error(501, "swarmnet whoami serves /, /health and /bench only"),
        Route::Health if req.method == "POST" => {
            let mut codes = serde_json::Deserializer::from_slice(&req.body).into_iter::<i64>();
            match codes.next() {
                Some(Ok(code)) => Reply {
                    set_health: Some(code),
                    ..finish(200, vec![], vec![])
                },
                Some(Err(err)) => error(400, &err.to_string()),
                None => error(400, "EOF"),
            }
        }
        Route::Health => match u16::try_from(health) {
            Ok(code @ 100..=999) => finish(code, vec![], vec![]),
            // Go's handler panics on such a code and the server drops the connection.
            _ => Reply {
                bytes: Vec::new(),
                close: true,
                set_health: None,
            },
        },
    }
}

/// The whoami page: host facts with `\n`, then the request as Go's
/// `Request.Write` re-serialises it with `\r\n`, body included.
fn whoami_page(req: &Request, facts: &Facts, peer: SocketAddr) -> Vec<u8> {
    let mut out = String::new();
    if let Some(name) = facts.name {
        let _ = writeln!(out, "Name: {name}");
    }
    let _ = writeln!(out, "Hostname: {}", facts.hostname);
    for ip in facts.ips {
        let _ = writeln!(out, "IP: {ip}");
    }
    let _ = writeln!(out, "RemoteAddr: {peer}");
    if req.host.is_empty() {
        out.push_str("http: Request.Write on Request with no Host or URL set\n");
        return out.into_bytes();
    }
    let _ = write!(
        out,
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        req.method, req.uri, req.host
    );
    match req.header("User-Agent") {
        None => out.push_str("User-Agent: Go-http-client/1.1\r\n"),
        Some("") => {}
        Some(agent) => {
            let _ = write!(out, "User-Agent: {agent}\r\n");
        }
    }
    if req.close()
        && !req
            .header("Connection")
            .is_some_and(|v| has_token(v, "close"))
    {
        out.push_str("Connection: close\r\n");
    }
    if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
        let _ = write!(out, "Content-Length: {}\r\n", req.body.len());
    }
    const WRITTEN_ABOVE: [&str; 5] = [
        "Host",
        "User-Agent",
        "Content-Length",
        "Transfer-Encoding",
        "Trailer",
    ];
    let mut fields: Vec<_> = req
        .headers
        .iter()
        .filter(|(n, _)| !WRITTEN_ABOVE.contains(&n.as_str()))
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0)); // stable: repeated names keep their order
    for (name, value) in fields {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&req.body);
    bytes
}

/// Go's `http.Error`.
fn error(req: &Request, status: u16, message: &str, now: SystemTime, keep_alives: bool) -> Reply {
    let headers = vec![
        ("Content-Type", "text/plain; charset=utf-8"),
        ("X-Content-Type-Options", "nosniff"),
    ];
    finish(
        req,
        status,
        headers,
        format!("{message}\n").into_bytes(),
        now,
        keep_alives,
    )
}

/// Adds the status line and the headers Go's server adds around a handler's
/// own (`headers`): Date, Content-Length, a sniffed Content-Type, Connection.
/// Without `keep_alives` (a server shutting down) the reply closes the
/// connection, saying so to an HTTP/1.1 client.
fn finish(
    req: &Request,
    status: u16,
    mut headers: Vec<(&str, &str)>,
    body: Vec<u8>,
    now: SystemTime,
    keep_alives: bool,
) -> Reply {
    let head_only = req.method == "HEAD";
    let body_allowed = !(100..200).contains(&status) && status != 204 && status != 304;
    let length = (body_allowed && (!head_only || !body.is_empty())).then_some(body.len());
    let sniffed =
        body_allowed && !body.is_empty() && !headers.iter().any(|(n, _)| *n == "Content-Type");
    let own_connection = headers
        .iter()
        .find(|(n, _)| *n == "Connection")
        .map(|(_, v)| *v);
    let mut connection = None;
    let mut close = false;
    if req.minor == 0
        && req.connection_has("keep-alive")
        && (head_only || length.is_some() || !body_allowed)
    {
        connection = own_connection.is_none().then_some("keep-alive");
    } else if req.minor == 0 || req.close() {
        close = true;
    }
    close |= own_connection == Some("close") || !keep_alives;
    if close && (!keep_alives || !own_connection.is_some_and(|v| has_token(v, "close"))) {
        headers.retain(|(n, _)| *n != "Connection");
        if req.minor >= 1 {
            connection = Some("close");
        }
    }
    headers.sort_by_key(|(name, _)| *name);
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "Date: {}\r\n", http_date(now));
    if let Some(length) = length {
        let _ = write!(out, "Content-Length: {length}\r\n");
    }
    if sniffed {
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    if let Some(connection) = connection {
        let _ = write!(out, "Connection: {connection}\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if body_allowed && !head_only {
        bytes.extend_from_slice(&body);
    }
    Reply {
        bytes,
        close,
        set_health: None,
    }
}

#[cfg(test)]
mod tests;
