//! Flag values as Docker's CLI reads them: Go durations, shell-split words,
//! `KEY=VALUE` lists, `--filter` pairs, replica counts, and the natural order
//! Docker sorts names in.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Nanoseconds in each unit Go's `time.ParseDuration` knows.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's `time.ParseDuration` ("5s", "1m30s", "500ms", "1.5h") in
/// nanoseconds; a negative one is refused, as Docker's duration flags do.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let digits_end = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, after) = rest.split_at(digits_end(rest));
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(digits_end(a)),
            None => ("", after),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_end = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| format!("time: unknown unit {unit:?} in duration {s:?}"))?;
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let frac = &frac[..frac.len().min(18)];
        let fraction = match frac.parse::<u128>() {
            Ok(f) => f * scale / 10u128.pow(frac.len() as u32),
            Err(_) => 0,
        };
        total = whole
            .checked_mul(scale)
            .and_then(|n| n.checked_add(fraction))
            .and_then(|n| n.checked_add(total))
            .filter(|n| *n <= i64::MAX as u128)
            .ok_or_else(invalid)?;
        rest = after;
    }
    if negative && total > 0 {
        return Err("duration cannot be negative".into());
    }
    Ok(total as i64)
}

/// `v / div` with its fraction, trailing zeros dropped, as Go prints durations.
fn with_fraction(v: u64, div: u64) -> String {
    let (whole, frac) = (v / div, v % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.Duration.String()`: "5s", "1m30s", "500ms", "1h0m0s".
pub fn format_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n == 0 {
        return "0s".into();
    }
    match n {
        ..1_000 => format!("{sign}{n}ns"),
        1_000..1_000_000 => format!("{sign}{}µs", with_fraction(n, 1_000)),
        1_000_000..1_000_000_000 => format!("{sign}{}ms", with_fraction(n, 1_000_000)),
        _ => {
            let secs = n / 1_000_000_000;
            let s = with_fraction(n % 60_000_000_000, 1_000_000_000);
            match (secs / 3600, secs / 60 % 60) {
                (0, 0) => format!("{sign}{s}s"),
                (0, m) => format!("{sign}{m}m{s}s"),
                (h, m) => format!("{sign}{h}h{m}m{s}s"),
            }
        }
    }
}

/// A replica count: a whole number, 0 or more.
pub fn parse_replicas(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| {
        if s.starts_with('-') {
            "the number of replicas cannot be negative: give 0 or more".to_string()
        } else {
            format!("{s:?} is not a number of replicas: give a whole number, 0 or more")
        }
    })
}

/// Go's `strconv.ParseUint(s, 10, 64)`, with its error words.
pub fn parse_uint(s: &str) -> Result<u64, String> {
    if s.starts_with('+') {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse::<u64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => {
            format!("strconv.ParseUint: parsing {s:?}: value out of range")
        }
        _ => format!("strconv.ParseUint: parsing {s:?}: invalid syntax"),
    })
}

/// Splits a flag value into words as a POSIX shell would (Docker's
/// `ShlexOpt`): blanks separate, quotes group, a backslash escapes.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    const UNCLOSED: &str = "EOF found when expecting closing quote";
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            words.extend(word.take());
            continue;
        }
        let w = word.get_or_insert_with(String::new);
        match c {
            '\'' => loop {
                match chars.next().ok_or(UNCLOSED)? {
                    '\'' => break,
                    c => w.push(c),
                }
            },
            '"' => loop {
                match chars.next().ok_or(UNCLOSED)? {
                    '"' => break,
                    '\\' => w.push(chars.next().ok_or(UNCLOSED)?),
                    c => w.push(c),
                }
            },
            '\\' => w.push(chars.next().ok_or("EOF found after escape character")?),
            c => w.push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// `-e KEY=VALUE` as Docker's `ValidateEnv`: a bare `KEY` takes this
/// process's value if it has one.
pub fn env_entry(value: &str) -> anyhow::Result<String> {
    match value.split_once('=') {
        Some(("", _)) => anyhow::bail!("invalid environment variable: {value}"),
        Some(_) => Ok(value.to_string()),
        None if value.is_empty() => anyhow::bail!("invalid environment variable: {value}"),
        None => Ok(std::env::var(value)
            .map(|v| format!("{value}={v}"))
            .unwrap_or_else(|_| value.to_string())),
    }
}

/// The key of an `-e` entry (`KEY=VALUE` or `KEY`).
pub fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// `-l key=value` pairs as a map (a bare key has an empty value), checked
/// as Docker's `ValidateLabel`.
pub fn labels(values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| {
            let (key, value) = v.split_once('=').unwrap_or((v.as_str(), ""));
            let trimmed = key.trim_start();
            if trimmed.is_empty() {
                anyhow::bail!("invalid label '{v}': empty name");
            }
            if trimmed.contains(char::is_whitespace) {
                anyhow::bail!("label '{trimmed}' contains whitespaces");
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// `--filter key=value` flags as the `filters` query parameter Docker sends:
/// `{"key":{"value":true}}`.
pub fn filters(values: &[String]) -> anyhow::Result<BTreeMap<String, BTreeMap<String, bool>>> {
    let mut out: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for v in values {
        let (key, value) = v
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        out.entry(key.trim().to_lowercase())
            .or_default()
            .insert(value.trim().to_string(), true);
    }
    Ok(out)
}

/// Orders names as people read them ("web.2" before "web.10"), as the
/// `sortorder.NaturalLess` Docker sorts tasks and services with.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let (Some(ca), Some(cb)) = (a.chars().next(), b.chars().next()) else {
            return a.len().cmp(&b.len());
        };
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let end_a = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let end_b = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let (na, nb) = (&a[..end_a], &b[..end_b]);
            let (ta, tb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
            let order = ta
                .len()
                .cmp(&tb.len())
                .then_with(|| ta.cmp(tb))
                .then_with(|| na.len().cmp(&nb.len()));
            if order != Ordering::Equal {
                return order;
            }
            (a, b) = (&a[end_a..], &b[end_b..]);
        } else {
            if ca != cb {
                return ca.cmp(&cb);
            }
            (a, b) = (&a[ca.len_utf8()..], &b[cb.len_utf8()..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go() {
        assert_eq!(parse_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("2µs"), Ok(2_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(
            parse_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        assert_eq!(
            parse_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert_eq!(
            parse_duration("-5s"),
            Err("duration cannot be negative".into())
        );
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn durations_print_as_go() {
        let cases = [
            (0, "0s"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (500_000_000, "500ms"),
            (5_000_000_000, "5s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_600_500_000_000, "1h0m0.5s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_duration(nanos), text);
            assert_eq!(parse_duration(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn replicas_and_uints() {
        assert_eq!(parse_replicas("3"), Ok(3));
        assert!(parse_replicas("-1")
            .unwrap_err()
            .contains("cannot be negative"));
        assert!(parse_replicas("x").unwrap_err().contains("not a number"));
        assert_eq!(
            parse_uint("x"),
            Err("strconv.ParseUint: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            parse_uint("99999999999999999999"),
            Err("strconv.ParseUint: parsing \"99999999999999999999\": value out of range".into())
        );
        assert!(parse_uint("+1").is_err());
    }

    #[test]
    fn words_split_as_a_shell() {
        let words = split_words(r#"swarmnet whoami --port 3000 "a b" 'c d' e\ f"#).unwrap();
        assert_eq!(
            words,
            ["swarmnet", "whoami", "--port", "3000", "a b", "c d", "e f"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), [""]);
        assert!(split_words("\"open").is_err());
    }

    #[test]
    fn env_labels_and_filters() {
        assert_eq!(env_entry("A=1").unwrap(), "A=1");
        assert!(env_entry("=1").is_err());
        assert_eq!(env_key("A=1=2"), "A");
        let l = labels(&["a=1".into(), "b".into()]).unwrap();
        assert_eq!(l.get("b").map(String::as_str), Some(""));
        assert!(labels(&["=x".into()]).is_err());
        let f = filters(&["desired-state=running".into(), "node=vm2".into()]).unwrap();
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"desired-state":{"running":true},"node":{"vm2":true}}"#
        );
        assert!(filters(&["nope".into()]).is_err());
    }

    #[test]
    fn natural_order() {
        let mut names = vec!["web.10", "web.2", "api.1", "web.1"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["api.1", "web.1", "web.2", "web.10"]);
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "ab"), Ordering::Less);
    }
}
