//! Formats as Go prints or reads them, for replies that match traefik/whoami:
//! status texts, HTTP dates and `time.ParseDuration` durations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Go's `http.StatusText`, or its fallback for codes it does not know.
pub fn reason(status: u16) -> String {
    const REASONS: &str = "100 Continue|101 Switching Protocols|102 Processing|103 Early Hints|\
        200 OK|201 Created|202 Accepted|203 Non-Authoritative Information|204 No Content|\
        205 Reset Content|206 Partial Content|207 Multi-Status|208 Already Reported|226 IM Used|\
        300 Multiple Choices|301 Moved Permanently|302 Found|303 See Other|304 Not Modified|\
        305 Use Proxy|307 Temporary Redirect|308 Permanent Redirect|400 Bad Request|\
        401 Unauthorized|402 Payment Required|403 Forbidden|404 Not Found|405 Method Not Allowed|\
        406 Not Acceptable|407 Proxy Authentication Required|408 Request Timeout|409 Conflict|\
        410 Gone|411 Length Required|412 Precondition Failed|413 Request Entity Too Large|\
        414 Request URI Too Long|415 Unsupported Media Type|416 Requested Range Not Satisfiable|\
        417 Expectation Failed|418 I'm a teapot|421 Misdirected Request|422 Unprocessable Entity|\
        423 Locked|424 Failed Dependency|425 Too Early|426 Upgrade Required|\
        428 Precondition Required|429 Too Many Requests|431 Request Header Fields Too Large|\
        451 Unavailable For Legal Reasons|500 Internal Server Error|501 Not Implemented|\
        502 Bad Gateway|503 Service Unavailable|504 Gateway Timeout|\
        505 HTTP Version Not Supported|506 Variant Also Negotiates|507 Insufficient Storage|\
        508 Loop Detected|510 Not Extended|511 Network Authentication Required";
    let known = REASONS.split('|').find_map(|entry| {
        let (code, text) = entry.split_once(' ')?;
        (code.parse() == Ok(status)).then_some(text)
    });
    known.map_or_else(|| format!("status code {status}"), str::to_string)
}

/// An HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT").
pub fn http_date(now: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (weekday, month) = (DAYS[(days % 7) as usize], MONTHS[(month - 1) as usize]);
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("{weekday}, {day:02} {month} {year} {h:02}:{m:02}:{s:02} GMT")
}

/// Go's `time.ParseDuration`; a negative duration means no wait.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos = 0.0;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(split);
        let value: f64 = if number == "." {
            None
        } else {
            number.parse().ok()
        }?;
        let split = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(split);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += value * scale;
        rest = tail;
    }
    if nanos > i64::MAX as f64 {
        return None;
    }
    Some(if negative {
        Duration::ZERO
    } else {
        Duration::from_nanos(nanos as u64)
    })
}
