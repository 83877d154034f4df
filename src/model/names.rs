//! Host names as the cluster accepts them (RFC 1123), and the escaping that
//! keeps control characters in any name out of tables and log lines.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::ApiError;

/// The longest host name (RFC 1123).
const MAX_HOSTNAME: usize = 253;
/// The longest label of a host name (RFC 1123).
const MAX_LABEL: usize = 63;
/// How much of a refused name a refusal quotes.
const QUOTED: usize = 64;

/// A host name of dot-separated labels, each 1 to 63 letters, digits or
/// hyphens, not starting or ending with a hyphen, 253 characters in all.
pub fn check_hostname(name: &str) -> Result<(), ApiError> {
    let why = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_HOSTNAME {
        Some(format!(
            "it is {} characters long and the limit is {MAX_HOSTNAME}",
            name.len()
        ))
    } else {
        name.split('.').find_map(label_fault)
    };
    match why {
        None => Ok(()),
        Some(why) => Err(ApiError::InvalidArgument(format!(
            "hostname \"{}\" is not a valid host name: {why}; use letters, digits and hyphens in dot-separated labels of at most {MAX_LABEL} characters",
            quote(name)
        ))),
    }
}

/// What is wrong with one label, if anything.
fn label_fault(label: &str) -> Option<String> {
    if label.is_empty() {
        Some("it has an empty label".into())
    } else if label.len() > MAX_LABEL {
        Some(format!("a label is {} characters long", label.len()))
    } else if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        Some(format!("it contains \"{}\"", escape(&c.to_string())))
    } else if label.starts_with('-') || label.ends_with('-') {
        Some("a label starts or ends with a hyphen".into())
    } else {
        None
    }
}

/// A name escaped and cut short enough to quote in one sentence.
fn quote(name: &str) -> String {
    let mut cut: String = name.chars().take(QUOTED).collect();
    if cut.len() < name.len() {
        cut.push('…');
    }
    escape(&cut).into_owned()
}

/// True for characters that move the cursor, recolour a terminal or reorder
/// text: control characters and Unicode's bidirectional overrides.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The text with each control character written as an escape (`\n`, `\t`,
/// `\r`, `\u{1b}`), so a name prints on one line in plain colours.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1123_names_are_accepted() {
        for name in ["vm1", "a", "node-2.example.com", "1host", &"a".repeat(63)] {
            check_hostname(name).unwrap();
        }
        let longest = vec!["a".repeat(63); 4].join(".")[..253].to_string();
        check_hostname(longest.trim_end_matches('.')).unwrap();
    }

    #[test]
    fn other_names_are_refused_with_one_sentence() {
        let cases = [
            ("", "it is empty"),
            ("vm2\n\u{1b}[31mFAKE", "it contains \"\\n\""),
            ("a_b", "it contains \"_\""),
            ("a b", "it contains \" \""),
            ("-vm", "starts or ends with a hyphen"),
            ("vm-", "starts or ends with a hyphen"),
            ("a..b", "empty label"),
            ("vm.", "empty label"),
            (&"a".repeat(64), "a label is 64 characters long"),
            (&"a.".repeat(127), "254 characters long"),
            (&"x".repeat(100_000), "100000 characters long"),
            ("vm\u{e9}", "it contains \"\u{e9}\""),
        ];
        for (name, why) in cases {
            let err = check_hostname(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
            assert!(!err.contains('\n') && !err.contains('\u{1b}'), "{err:?}");
            assert!(err.len() < 400, "{} characters", err.len());
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(escape("vm1.local"), Cow::Borrowed("vm1.local")));
        assert_eq!(
            escape("vm2\n\u{1b}[31mFAKE\tx\r"),
            "vm2\\n\\u{1b}[31mFAKE\\tx\\r"
        );
        assert_eq!(
            escape("a\u{7f}\u{85}\u{202e}b"),
            "a\\u{7f}\\u{85}\\u{202e}b"
        );
        assert_eq!(escape("caf\u{e9} \\n"), "caf\u{e9} \\n");
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("vm1"), "vm1");
        let long = quote(&"\n".repeat(1000));
        assert_eq!(long, format!("{}…", "\\n".repeat(64)));
    }
}
