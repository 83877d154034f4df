//! How Go's net/http reads a request target: the `URL.RequestURI()` the
//! whoami page echoes, and `%XX` decoding.

/// Go's `URL.RequestURI()` of a request target, and the host of an
/// absolute-form target; `None` where Go answers 400.
pub fn request_uri(target: &[u8]) -> Option<(String, Option<String>)> {
    if target == b"*" {
        return Some(("*".into(), None));
    }
    if target.is_empty() || target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let (rest, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    };
    let (host, path) = if rest.starts_with(b"/") {
        (None, rest)
    } else {
        absolute_form(rest)?
    };
    let mut uri = escape_path(path)?;
    if uri.is_empty() {
        uri.push('/');
    }
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(&String::from_utf8_lossy(query));
    }
    Some((uri, host))
}

/// Splits `scheme://authority/path` (or `scheme:/path`) into host and path.
fn absolute_form(rest: &[u8]) -> Option<(Option<String>, &[u8])> {
    let colon = rest.iter().position(|&b| b == b':')?;
    let scheme = &rest[..colon];
    let scheme_ok = scheme.first()?.is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let rest = &rest[colon + 1..];
    match rest.strip_prefix(b"//") {
        Some(rest) if scheme_ok => {
            let slash = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let authority = &rest[..slash];
            let host = authority.rsplit(|&b| b == b'@').next().unwrap_or(authority);
            Some((
                Some(String::from_utf8_lossy(host).into_owned()),
                &rest[slash..],
            ))
        }
        None if scheme_ok && rest.starts_with(b"/") => Some((None, rest)),
        _ => None,
    }
}

/// Go's `URL.EscapedPath()`: a path already validly escaped stays as sent,
/// any other is decoded and escaped again; `None` for a bad `%` escape.
fn escape_path(raw: &[u8]) -> Option<String> {
    let decoded = percent_decode(raw, false)?;
    let kept = |b: u8| b"!$&'()*+,;=:@[]%".contains(&b) || !escapes(b);
    if raw.iter().all(|&b| kept(b)) {
        return Some(String::from_utf8_lossy(raw).into_owned());
    }
    let mut out = String::with_capacity(decoded.len() * 3);
    for b in decoded {
        if escapes(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    Some(out)
}

/// Whether Go escapes this byte in a path.
fn escapes(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b))
}

/// Decodes `%XX` escapes (and `+` as a space in a query); `None` if malformed.
pub fn percent_decode(raw: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_targets_like_go() {
        let uri = |t: &[u8]| request_uri(t).map(|(uri, host)| (uri, host.unwrap_or_default()));
        let pair = |u: &str, h: &str| Some((u.to_string(), h.to_string()));
        assert_eq!(uri(b"/a/b?x=1&y=%20#f"), pair("/a/b?x=1&y=%20#f", ""));
        assert_eq!(uri(b"/a%2Fb"), pair("/a%2Fb", ""));
        assert_eq!(uri(b"/caf\xc3\xa9#x"), pair("/caf%C3%A9%23x", ""));
        assert_eq!(uri(b"/x?"), pair("/x?", ""));
        assert_eq!(uri(b"http://user@h:8/p?q"), pair("/p?q", "h:8"));
        assert_eq!(uri(b"http://h"), pair("/", "h"));
        assert_eq!(uri(b"*"), pair("*", ""));
    }
}
