//! The agent's scrubber: the default rules (`sonde_packs::scrub`, where
//! the engine lives so that handlers can filter on scrubbed text), the
//! config's own rules, and this agent's own secrets in every form it keeps
//! or shows them — so that even a copy of its key in a snapshot, a backup
//! or a log is redacted (rule `sonde_agent_secret`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ed25519_dalek::SigningKey;
use sonde_packs::scrub::{RuleSpec, ScrubError, Scrubber};

use crate::config::AgentConfig;
use crate::identity::DataDir;

pub use sonde_packs::scrub::Redactions;

/// The literal forms of the agent's secrets: the signing key's seed (raw,
/// base64, hex) and its TLS private keys (each base64 line of their PEM
/// bodies, and the DER bytes).
pub fn own_secrets(data: &DataDir, signing_key: &SigningKey) -> Vec<Vec<u8>> {
    let seed = signing_key.to_bytes();
    let mut out = vec![
        seed.to_vec(),
        STANDARD_NO_PAD.encode(seed).into_bytes(),
        hex::encode(seed).into_bytes(),
    ];
    for path in [data.tls_key(), data.identity()] {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for body in private_key_bodies(&text) {
            if let Ok(der) = STANDARD.decode(body.concat()) {
                out.push(der);
            }
            out.extend(body.into_iter().map(|l| l.as_bytes().to_vec()));
        }
    }
    out
}

/// The base64 lines of every `PRIVATE KEY` PEM block in `text`.
fn private_key_bodies(text: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            current = Some(Vec::new());
        } else if line.starts_with("-----END") {
            if let Some(body) = current.take() {
                out.push(body);
            }
        } else if let Some(body) = current.as_mut()
            && !line.is_empty()
            && !line.contains(':')
        {
            body.push(line);
        }
    }
    out
}

/// The scrubber this agent applies to every result.
pub fn agent_scrubber(
    config: &AgentConfig,
    data: &DataDir,
    signing_key: &SigningKey,
) -> Result<Scrubber, ScrubError> {
    let extra: Vec<RuleSpec> = config
        .scrub
        .rules
        .iter()
        .map(|r| RuleSpec {
            name: r.name.clone(),
            pattern: r.pattern.0.clone(),
            keywords: r.keywords.clone(),
        })
        .collect();
    Scrubber::new(&extra)?.with_own_secrets(&own_secrets(data, signing_key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_rules_from_config_and_own_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let key = SigningKey::from_bytes(&[7u8; 32]);
        std::fs::write(
            data.tls_key(),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let config =
            AgentConfig::parse("[[scrub.rules]]\nname = \"ticket\"\npattern = \"TKT-[0-9]{4}\"")
                .unwrap();
        let s = agent_scrubber(&config, &data, &key).unwrap();
        let mut v = json!({
            "a": "see TKT-1234",
            "b": format!("copy of the key: {}", STANDARD.encode([7u8; 32])),
            "c": "tls line MC4CAQAwBQYDK2VwBCIEIBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb in a backup",
        });
        let counts = s.scrub_value(&mut v);
        assert_eq!(counts["ticket"], 1);
        assert_eq!(counts[sonde_packs::scrub::OWN_SECRET_RULE], 2, "{v}");
        assert!(!v.to_string().contains(&STANDARD_NO_PAD.encode([7u8; 32])));
    }
}
