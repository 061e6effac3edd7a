//! PKCE (RFC 7636), S256 only: `plain` is refused, as OAuth 2.1 and the MCP
//! authorization spec require.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A code verifier: 43-128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A code challenge: BASE64URL(SHA-256(verifier)), 43 characters, no padding.
pub fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// BASE64URL(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sonde_protocol::Digest::of(verifier.as_bytes()).0)
}

/// Whether `verifier` answers `challenge` (compared in constant time).
pub fn verify(verifier: &str, challenge: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    valid_verifier(verifier) && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pkce_rfc7636_appendix_b_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(verify(verifier, challenge));
        assert!(valid_challenge(challenge));
    }

    #[test]
    fn pkce_required_and_plain_is_refused() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        // `plain` would send the verifier itself as the challenge.
        assert!(!verify(verifier, verifier));
        assert!(!verify("", &s256("")), "an empty verifier never passes");
        assert!(!verify("short", &s256("short")), "too short");
        assert!(!valid_challenge(""));
        assert!(!valid_challenge(&"a".repeat(44)));
    }

    proptest! {
        #[test]
        fn pkce_any_other_verifier_is_refused(
            v in "[A-Za-z0-9._~-]{43,128}",
            w in "[A-Za-z0-9._~-]{43,128}",
        ) {
            let c = s256(&v);
            prop_assert!(verify(&v, &c));
            prop_assert_eq!(verify(&w, &c), v == w);
        }
    }
}
