//! Sans-IO HTTP/1.x request parsing for `swarmnet whoami`: bytes in, a parsed
//! [`Request`] or the rejection Go's net/http would send, out.

use super::target::request_uri;

/// Go's net/http limit on the request line plus header fields.
const MAX_HEAD: usize = (1 << 20) + 4096;
/// Bodies are buffered so they can be echoed; larger ones get a 413.
const MAX_BODY: usize = 8 << 20;

/// One request, normalised the way Go's server sees it.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    /// The target as Go's `URL.RequestURI()` prints it: path re-escaped, query verbatim.
    pub uri: String,
    /// Host of an absolute-form target, else the Host header ("" when neither).
    pub host: String,
    /// The `y` of HTTP/1.y.
    pub minor: u8,
    /// Fields in arrival order with canonical names ("x-foo" becomes "X-Foo").
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header, by canonical name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether some `Connection` field lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n == "Connection" && has_token(v, token))
    }

    /// Go's `Request.Close`: HTTP/1.0 closes unless asked to keep alive.
    pub fn close(&self) -> bool {
        self.connection_has("close") || (self.minor == 0 && !self.connection_has("keep-alive"))
    }
}

/// Whether a comma-separated header value lists `token`, ignoring case.
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq)]
pub enum Parse {
    /// A whole request, and how many bytes of the buffer it used.
    Done(Request, usize),
    /// More bytes are needed: `needed` is the buffer length worth parsing
    /// again at (0 while the head is incomplete); `expects_continue` once the
    /// head asked for `100-continue`.
    Partial {
        needed: usize,
        expects_continue: bool,
    },
    /// Send this status line ("400 Bad Request", ...) and close.
    Bad(&'static str),
}

/// The values of the fields named `name`, in arrival order.
fn values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Go's reply to a request it cannot read, which it then closes.
pub fn rejection(status: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\n\r\n{status}"
    )
    .into_bytes()
}

/// Parses the request at the start of `buf`. Like Go's server, blank lines
/// before a request line are skipped.
pub fn parse(buf: &[u8]) -> Parse {
    let start = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let mut lines = Vec::new();
    let mut at = start;
    let head_len = loop {
        let Some(end) = buf[at..].iter().position(|&b| b == b'\n') else {
            if buf.len() - start > MAX_HEAD {
                return Parse::Bad("431 Request Header Fields Too Large");
            }
            return Parse::Partial {
                needed: 0,
                expects_continue: false,
            };
        };
        let line = &buf[at..at + end];
        at += end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break at;
        }
        lines.push(line);
    };
    if head_len - start > MAX_HEAD {
        return Parse::Bad("431 Request Header Fields Too Large");
    }
    let (mut request, length, expects_continue) = match parse_head(&lines) {
        Ok(head) => head,
        Err(status) => return Parse::Bad(status),
    };
    if length > MAX_BODY {
        return Parse::Bad("413 Request Entity Too Large");
    }
    let needed = head_len + length;
    if buf.len() < needed {
        return Parse::Partial {
            needed,
            expects_continue,
        };
    }
    request.body = buf[head_len..needed].to_vec();
    Parse::Done(request, needed)
}

/// Parses the request line and fields; returns the request without its body,
/// the body length and whether a `100 Continue` is expected.
fn parse_head(lines: &[&[u8]]) -> Result<(Request, usize, bool), &'static str> {
    const BAD: &str = "400 Bad Request";
    let mut parts = lines[0].splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(BAD);
    }
    let minor = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                return Err("505 HTTP Version Not Supported: unsupported protocol version");
            }
            minor - b'0'
        }
        _ => return Err(BAD),
    };
    let (uri, target_host) = request_uri(target).ok_or(BAD)?;
    let mut headers = Vec::with_capacity(lines.len() - 1);
    for line in &lines[1..] {
        let colon = line.iter().position(|&b| b == b':').ok_or(BAD)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() {
            continue; // Go skips a field with an empty name.
        }
        if !name.iter().all(|&b| is_token(b)) {
            return Err(BAD); // Also rejects obsolete line folding.
        }
        let value = String::from_utf8_lossy(value);
        headers.push((canonical(name), value.trim_matches([' ', '\t']).to_string()));
    }
    let hosts: Vec<&str> = values(&headers, "Host").collect();
    if hosts.len() > 1 {
        return Err(BAD);
    }
    let header_host = hosts.first().map(|h| h.to_string());
    if header_host.is_none() && minor >= 1 && method != b"CONNECT" {
        return Err("400 Bad Request: missing required Host header");
    }
    let lengths: Vec<&str> = values(&headers, "Content-Length").collect();
    let length = match lengths.first() {
        None => 0,
        Some(first) if lengths.iter().all(|other| other == first) => {
            if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BAD);
            }
            first.parse().unwrap_or(usize::MAX)
        }
        Some(_) => return Err(BAD),
    };
    if minor >= 1 && values(&headers, "Transfer-Encoding").next().is_some() {
        return Err("501 Not Implemented: unsupported transfer encoding");
    }
    let expects_continue = minor >= 1
        && length > 0
        && values(&headers, "Expect").any(|v| v.eq_ignore_ascii_case("100-continue"));
    if values(&headers, "Pragma").next() == Some("no-cache")
        && values(&headers, "Cache-Control").next().is_none()
    {
        headers.push(("Cache-Control".into(), "no-cache".into()));
    }
    let host = target_host.filter(|h| !h.is_empty()).or(header_host);
    let method = String::from_utf8_lossy(method).into_owned();
    let request = Request {
        method,
        uri,
        host: host.unwrap_or_default(),
        minor,
        headers,
        body: Vec::new(),
    };
    Ok((request, length, expects_continue))
}

fn is_token(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b)
}

/// Go's `CanonicalMIMEHeaderKey` for a valid field name.
fn canonical(name: &[u8]) -> String {
    let mut upper = true;
    name.iter()
        .map(|&b| {
            let c = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            char::from(c)
        })
        .collect()
}

#[cfg(test)]
mod tests;
