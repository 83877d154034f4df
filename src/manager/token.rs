//! Join tokens in Docker's form: `SWMTKN-1-<CA digest>-<secret>`, where the
//! digest is the SHA-256 of the cluster CA's certificate and the secret picks
//! the role. A joining node checks the manager's CA against the digest before
//! it sends anything secret.

use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "SWMTKN-1-";
/// Width of the base-36 digest, as Docker pads it.
const DIGEST_LEN: usize = 50;
/// Width of the base-36 secret (128 random bits).
const SECRET_LEN: usize = 25;

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_digest: String,
    pub secret: String,
}

impl JoinToken {
    /// A new token for the CA whose certificate (DER) is given.
    pub fn generate(ca_cert_der: &[u8]) -> Self {
        let mut secret = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut secret);
        JoinToken {
            ca_digest: ca_digest(ca_cert_der),
            secret: base36(&secret, SECRET_LEN),
        }
    }

    /// Parses a token, or says in one sentence what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let invalid = || {
            "invalid join token: it should look like SWMTKN-1-<50 characters>-<25 characters>; print a valid one with \"swarmnet swarm join-token worker\" on a manager".to_string()
        };
        let rest = s.trim().strip_prefix(PREFIX).ok_or_else(invalid)?;
        let (digest, secret) = rest.split_once('-').ok_or_else(invalid)?;
        let is_base36 = |p: &str| {
            p.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        };
        if digest.len() != DIGEST_LEN
            || secret.len() != SECRET_LEN
            || !is_base36(digest)
            || !is_base36(secret)
        {
            return Err(invalid());
        }
        Ok(JoinToken {
            ca_digest: digest.to_string(),
            secret: secret.to_string(),
        })
    }

    /// True when the token was made for the CA whose certificate (DER) is given.
    pub fn matches_ca(&self, ca_cert_der: &[u8]) -> bool {
        self.ca_digest == ca_digest(ca_cert_der)
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}-{}", self.ca_digest, self.secret)
    }
}

/// The base-36 SHA-256 digest of a CA certificate.
pub fn ca_digest(ca_cert_der: &[u8]) -> String {
    base36(&Sha256::digest(ca_cert_der), DIGEST_LEN)
}

/// Big-endian bytes as a base-36 number, left-padded with zeros to `width`.
fn base36(bytes: &[u8], width: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut num = bytes.to_vec();
    let mut digits = Vec::new();
    while num.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 36) as u8;
            rem = acc % 36;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("base36 alphabet is ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_of_known_values() {
        assert_eq!(base36(&[0], 3), "000");
        assert_eq!(base36(&[35], 1), "z");
        assert_eq!(base36(&[1, 0], 1), "74"); // 256 = 7*36 + 4
        assert_eq!(base36(&[0xff; 32], 0).len(), 50); // 2^256 needs 50 digits
    }

    #[test]
    fn token_round_trips() {
        let token = JoinToken::generate(b"ca certificate");
        let text = token.to_string();
        assert!(text.starts_with("SWMTKN-1-"));
        assert_eq!(text.len(), 9 + 50 + 1 + 25);
        assert_eq!(JoinToken::parse(&text).unwrap(), token);
        assert!(token.matches_ca(b"ca certificate"));
        assert!(!token.matches_ca(b"another ca"));
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_sentence() {
        for bad in [
            "",
            "SWMTKN-1-",
            "SWMTKN-2-abc-def",
            "SWMTKN-1-short-secret",
            &format!("SWMTKN-1-{}-{}", "A".repeat(50), "b".repeat(25)),
        ] {
            let err = JoinToken::parse(bad).unwrap_err();
            assert!(err.starts_with("invalid join token"), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_differ() {
        assert_ne!(JoinToken::generate(b"x"), JoinToken::generate(b"x"));
    }
}
