//! Property tests over what a stranger controls: arbitrary bytes as the
//! manager's request lines, and arbitrary join requests. Nothing panics,
//! every refusal is one clean sentence, and no control character survives
//! into one.

use std::net::IpAddr;

use proptest::prelude::*;

use super::join::check_request;
use crate::model::{check_hostname, escape, ApiError};
use crate::proto::{read_msg_within, JoinRequest, ManagerRequest, RawEnvelope, MAX_GUEST_MESSAGE};

/// A refusal is one line with no control characters.
fn clean(err: &ApiError) -> Result<(), TestCaseError> {
    let text = err.to_string();
    prop_assert!(!text.is_empty());
    prop_assert!(!text.chars().any(char::is_control), "{text:?}");
    Ok(())
}

/// Decodes one line as the manager does for a guest.
fn decode(bytes: &[u8]) -> Result<Option<ManagerRequest>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let read = runtime.block_on(read_msg_within::<_, RawEnvelope>(
        &mut tokio::io::BufReader::new(bytes),
        MAX_GUEST_MESSAGE,
    ));
    match read {
        Ok(None) => Ok(None),
        Ok(Some(raw)) => raw
            .open("calling node")
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        Just("127.0.0.1".parse().unwrap()),
    ]
}

/// Bodies shaped like requests, with arbitrary pieces where a stranger picks.
fn request_line() -> impl Strategy<Value = String> {
    let text = any::<String>;
    prop_oneof![
        text().prop_map(|v| serde_json::json!({"protocol": 1, "body": v}).to_string()),
        (text(), any::<i64>()).prop_map(|(k, n)| {
            serde_json::json!({"protocol": 1, "body": {k: {"since": n}}}).to_string()
        }),
        (text(), text(), any::<u32>(), any::<u16>()).prop_map(|(t, h, p, port)| {
            serde_json::json!({"protocol": p % 3, "swarmnet": h, "body": {"Join": {
                "token": t, "csr_pem": h, "hostname": h, "addr": t,
                "wg_public_key": h, "wg_port": port}}})
            .to_string()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn request_shaped_lines_decode_or_are_refused(line in request_line()) {
        let decoded = decode(format!("{line}\n").as_bytes());
        if let Err(e) = decoded {
            prop_assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn over_long_lines_are_refused(extra in 1usize..4096, fill in any::<u8>()) {
        let fill = if fill == b'\n' { b'x' } else { fill };
        let line = vec![fill; MAX_GUEST_MESSAGE + extra];
        let refused = decode(&line).unwrap_err();
        prop_assert!(refused.contains("longer than 16384 bytes") || refused.to_lowercase().contains("utf-8"), "{refused}");
    }

    #[test]
    fn hostnames_are_checked_without_panic(name in any::<String>()) {
        match check_hostname(&name) {
            Ok(()) => {
                prop_assert!(name.len() <= 253);
                prop_assert!(name.split('.').all(|l| !l.is_empty() && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
            }
            Err(e) => clean(&e)?,
        }
        prop_assert!(!escape(&name).chars().any(char::is_control));
    }

    #[test]
    fn join_requests_are_checked_without_panic(
        token in any::<String>(),
        hostname in "[a-z0-9.\\-\\n\\x1b]{0,80}",
        addr in ip(),
        source in ip(),
        key in prop_oneof![any::<String>(), "[0-9a-f]{64}"],
        port in any::<u16>(),
    ) {
        let req = JoinRequest {
            token,
            csr_pem: String::new(),
            hostname,
            addr,
            wg_public_key: key,
            wg_port: port,
        };
        match check_request(&req, source) {
            Ok(_) => {
                prop_assert!(check_hostname(&req.hostname).is_ok());
                prop_assert_eq!(req.addr.to_canonical(), source.to_canonical());
            }
            Err(refusal) => clean(&refusal.error)?,
        }
    }
}
