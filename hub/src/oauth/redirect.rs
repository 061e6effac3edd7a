//! Redirect URIs: which may be registered, and how a presented one is
//! matched against the registered ones.
//!
//! Matching is exact, byte for byte, with one exception from RFC 8252 §7.3:
//! for a loopback redirect (`http://127.0.0.1`, `http://[::1]`, and
//! `http://localhost`, which native MCP clients use) the port may differ,
//! since native apps bind an ephemeral port per sign-in. Everything else —
//! scheme, host, path, query — must be identical. Nothing is normalised
//! (no case folding, no percent-decoding, no default ports), so two URIs
//! that differ by any byte outside a loopback port never match.

/// The loopback origins whose port may vary.
const LOOPBACK: &[&str] = &["http://127.0.0.1", "http://[::1]", "http://localhost"];

/// Why a redirect URI cannot be registered, if it cannot.
pub fn check_registrable(uri: &str) -> Result<(), String> {
    if uri.is_empty() || uri.len() > 512 {
        return Err("a redirect URI must be 1-512 characters".into());
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "redirect URI {uri:?} must be printable ASCII without spaces"
        ));
    }
    if uri.contains('#') {
        return Err(format!("redirect URI {uri:?} must not have a fragment"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(format!("redirect URI {uri:?} is not an absolute URI"));
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    if !scheme_ok {
        return Err(format!("redirect URI {uri:?} has an invalid scheme"));
    }
    match scheme {
        "https" => {
            let authority = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?']).next().unwrap_or_default())
                .unwrap_or_default();
            if authority.is_empty() || authority.contains('@') {
                return Err(format!(
                    "redirect URI {uri:?} needs a host (and no user info)"
                ));
            }
            Ok(())
        }
        "http" => {
            if loopback_rest(uri).is_some() {
                Ok(())
            } else {
                Err(format!(
                    "redirect URI {uri:?}: plain http is allowed only for loopback (http://127.0.0.1, http://[::1], http://localhost; RFC 8252)"
                ))
            }
        }
        // Private-use schemes of native apps (RFC 8252 §7.1) are reverse
        // domain names; well-known dangerous schemes are not.
        s if s.contains('.') => Ok(()),
        _ => Err(format!(
            "redirect URI {uri:?}: the scheme must be https, http on loopback, or a reverse-domain private-use scheme (com.example.app:/cb)"
        )),
    }
}

/// For a loopback URI, what follows the optional port (path, query), which
/// must then start with `/` or `?` or be empty; `None` otherwise.
fn loopback_rest(uri: &str) -> Option<(&'static str, &str)> {
    for origin in LOOPBACK {
        if let Some(after) = uri.strip_prefix(origin) {
            let after = match after.strip_prefix(':') {
                Some(p) => {
                    let digits = p.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 || digits > 5 || p[..digits].parse::<u16>().is_err() {
                        return None;
                    }
                    &p[digits..]
                }
                None => after,
            };
            if after.is_empty() || after.starts_with('/') || after.starts_with('?') {
                return Some((origin, after));
            }
            return None;
        }
    }
    None
}

/// Whether a presented redirect URI matches one registered URI.
pub fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (loopback_rest(registered), loopback_rest(presented)) {
        (Some((o1, r1)), Some((o2, r2))) => o1 == o2 && r1 == r2,
        _ => false,
    }
}

/// The registered URI a presented one matches, if any.
pub fn find<'a>(registered: &'a [String], presented: &str) -> Option<&'a str> {
    registered
        .iter()
        .find(|r| matches(r, presented))
        .map(String::as_str)
}

/// The host (and port) of a redirect URI, for the operator and the page.
pub fn host_of(uri: &str) -> String {
    match uri.split_once("://") {
        Some((_, rest)) => rest
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => uri.split(':').next().unwrap_or_default().to_owned() + ":",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_redirect_match_with_loopback_ports() {
        let reg = "http://127.0.0.1:33418/callback";
        assert!(matches(reg, "http://127.0.0.1:33418/callback"));
        assert!(
            matches(reg, "http://127.0.0.1:5000/callback"),
            "RFC 8252: any port"
        );
        assert!(matches(reg, "http://127.0.0.1/callback"));
        assert!(matches(
            "http://localhost:1/cb?x=1",
            "http://localhost:65535/cb?x=1"
        ));
        assert!(matches("http://[::1]/cb", "http://[::1]:8080/cb"));
        for bad in [
            "http://127.0.0.1:5000/callback/",
            "http://127.0.0.1:5000/Callback",
            "http://127.0.0.1:5000/callback?x",
            "http://127.0.0.2:5000/callback",
            "http://localhost:5000/callback",
            "https://127.0.0.1:5000/callback",
            "http://127.0.0.1:5000@evil.com/callback",
            "http://127.0.0.1.evil.com/callback",
            "http://127.0.0.1:99999/callback",
            "http://127.0.0.1:/callback",
        ] {
            assert!(!matches(reg, bad), "{bad}");
        }
        let https = "https://claude.ai/api/mcp/auth_callback";
        assert!(matches(https, https));
        assert!(!matches(https, "https://claude.ai/api/mcp/auth_callback/"));
        assert!(!matches(https, "https://CLAUDE.ai/api/mcp/auth_callback"));
        assert!(!matches(
            https,
            "https://claude.ai:443/api/mcp/auth_callback"
        ));
        assert!(!matches(https, "https://claude.ai/api/mcp/auth%5Fcallback"));
    }

    #[test]
    fn what_may_be_registered() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:8080/cb",
            "http://localhost/callback",
            "http://[::1]:9/x",
            "com.example.app:/oauth",
        ] {
            assert!(check_registrable(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "http://example.com/cb",
            "http://127.0.0.1.evil.com/cb",
            "https://x/cb#frag",
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "https:///nohost",
            "https://user@host/cb",
            "https://host/a b",
            "https://host/\u{e9}",
        ] {
            assert!(check_registrable(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Registered URIs that differ from the presented one by any byte
        /// (outside a loopback port) never match.
        #[test]
        fn redirect_uris_differing_by_any_byte_are_refused(
            uri in prop_oneof![
                "https://[a-z]{1,10}\\.example/[a-z/_]{0,20}(\\?[a-z=&]{0,10})?",
                "http://127\\.0\\.0\\.1:[1-9][0-9]{0,3}/[a-z/_]{0,20}",
                "com\\.example\\.[a-z]{1,5}:/[a-z]{0,10}",
            ],
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let bytes = uri.as_bytes();
            let i = at.index(bytes.len());
            let mut changed = bytes.to_vec();
            prop_assume!(changed[i] != byte);
            changed[i] = byte;
            let Ok(changed) = String::from_utf8(changed) else { return Ok(()); };
            // A change inside a loopback port is allowed by RFC 8252.
            let port_change = loopback_rest(&uri).is_some() && loopback_rest(&changed).is_some()
                && loopback_rest(&uri).map(|x| x.1) == loopback_rest(&changed).map(|x| x.1);
            prop_assert_eq!(matches(&uri, &changed), port_change, "{} vs {}", uri, changed);
        }

        #[test]
        fn any_byte_inserted_or_removed_is_refused(
            uri in "https://[a-z]{1,10}\\.example/[a-z/_]{0,20}",
            at in any::<prop::sample::Index>(),
        ) {
            let i = at.index(uri.len());
            let mut shorter = uri.clone();
            shorter.remove(i);
            prop_assert!(!matches(&uri, &shorter));
            let mut longer = uri.clone();
            longer.insert(i, 'x');
            prop_assert!(!matches(&uri, &longer));
        }
    }

    #[test]
    fn hosts_for_the_operator() {
        assert_eq!(host_of("https://claude.ai/api/cb"), "claude.ai");
        assert_eq!(host_of("http://127.0.0.1:5000/cb"), "127.0.0.1:5000");
        assert_eq!(host_of("com.example.app:/cb"), "com.example.app:");
    }
}
