//! Output scrubbing: secrets never leave the machine.
//!
//! Every string in a probe result (recursively, object keys excluded) passes
//! through the rules before the result is digested, signed and sent. A match
//! is replaced by `[REDACTED:<rule>]` — only its `redact` capture group when
//! the rule has one, so `DB_PASSWORD=[REDACTED:secret_assignment]` stays
//! readable. The caller learns how many redactions each rule made.
//!
//! Default rules: `assets/scrub-rules.toml` (compiled in). Extra rules come
//! from the agent config.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

use crate::config::ScrubRuleConfig;

/// The default rule file, compiled in.
pub const DEFAULT_RULES: &str = include_str!("../../assets/scrub-rules.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<RuleText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    name: String,
    pattern: String,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    regex: Regex,
    /// Index of the `redact` group, if the pattern has one.
    group: Option<usize>,
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct Scrubber {
    rules: Vec<Rule>,
}

/// What a scrub pass did.
pub type Redactions = BTreeMap<String, u64>;

impl Scrubber {
    /// The default rules plus `extra`.
    pub fn new(extra: &[ScrubRuleConfig]) -> Result<Self, String> {
        let file: RuleFile =
            toml::from_str(DEFAULT_RULES).map_err(|e| format!("default scrub rules: {e}"))?;
        let mut rules = Vec::new();
        let texts = file
            .rules
            .into_iter()
            .map(|r| (r.name, r.pattern))
            .chain(extra.iter().map(|r| (r.name.clone(), r.pattern.0.clone())));
        for (name, pattern) in texts {
            let regex = Regex::new(&pattern).map_err(|e| format!("scrub rule {name:?}: {e}"))?;
            let group = regex.capture_names().position(|n| n == Some("redact"));
            rules.push(Rule { name, regex, group });
        }
        Ok(Scrubber { rules })
    }

    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// Scrubs one string; counts into `counts`.
    pub fn scrub_str(&self, text: &str, counts: &mut Redactions) -> Option<String> {
        let mut current: Option<String> = None;
        for rule in &self.rules {
            let input = current.as_deref().unwrap_or(text);
            let mut out = String::with_capacity(input.len());
            let mut last = 0;
            let mut n = 0u64;
            for caps in rule.regex.captures_iter(input) {
                let span = match rule.group {
                    Some(g) => caps.get(g).or_else(|| caps.get(0)),
                    None => caps.get(0),
                };
                let Some(span) = span else { continue };
                if span.start() < last || span.is_empty() {
                    continue;
                }
                out.push_str(&input[last..span.start()]);
                out.push_str("[REDACTED:");
                out.push_str(&rule.name);
                out.push(']');
                last = span.end();
                n += 1;
            }
            if n > 0 {
                out.push_str(&input[last..]);
                *counts.entry(rule.name.clone()).or_default() += n;
                current = Some(out);
            }
        }
        current
    }

    /// Scrubs every string in `value` in place; returns the counts.
    pub fn scrub(&self, value: &mut Value) -> Redactions {
        let mut counts = Redactions::new();
        self.walk(value, &mut counts);
        counts
    }

    fn walk(&self, value: &mut Value, counts: &mut Redactions) {
        match value {
            Value::String(s) => {
                if let Some(clean) = self.scrub_str(s, counts) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.walk(v, counts)),
            Value::Object(map) => map.values_mut().for_each(|v| self.walk(v, counts)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scrubber() -> Scrubber {
        Scrubber::new(&[]).unwrap()
    }

    fn scrub(text: &str) -> (String, Redactions) {
        let mut counts = Redactions::new();
        let out = scrubber()
            .scrub_str(text, &mut counts)
            .unwrap_or_else(|| text.to_owned());
        (out, counts)
    }

    /// (rule, input, a secret that must be gone, text that must remain)
    const MUST_REDACT: &[(&str, &str, &str, &str)] = &[
        (
            "secret_assignment",
            "DB_PASSWORD=hunter2",
            "hunter2",
            "DB_PASSWORD=",
        ),
        (
            "secret_assignment",
            "export AWS_SECRET_ACCESS_KEY=\"wJalrXUtnFEMI/K7MDENG\"",
            "wJalrXUtnFEMI",
            "AWS_SECRET_ACCESS_KEY=",
        ),
        (
            "secret_assignment",
            "github_token: abc123def",
            "abc123def",
            "github_token:",
        ),
        (
            "secret_assignment",
            "{\"client_secret\": \"s3cr3t-value\"}",
            "s3cr3t-value",
            "client_secret",
        ),
        (
            "secret_assignment",
            "api_key = 'k-123456'",
            "k-123456",
            "api_key",
        ),
        (
            "secret_assignment",
            "password: correct horse",
            "correct",
            "password:",
        ),
        (
            "secret_assignment",
            "SLACK_BOT_TOKEN=xyz987",
            "xyz987",
            "SLACK_BOT_TOKEN",
        ),
        (
            "pem_private_key",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEA",
            "",
        ),
        (
            "pem_private_key",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA (truncated",
            "b3BlbnNzaC1rZXktdjEAAAA",
            "",
        ),
        (
            "pem_private_key",
            "x\n-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA\n-----END PRIVATE KEY-----\ny",
            "MC4CAQAwBQYDK2VwBCIEIA",
            "y",
        ),
        (
            "aws_access_key",
            "key id AKIAIOSFODNN7EXAMPLE in use",
            "AKIAIOSFODNN7EXAMPLE",
            "in use",
        ),
        (
            "cloud_api_key",
            "token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
            "ghp_0123456789",
            "",
        ),
        (
            "cloud_api_key",
            "AIzaSyA-1234567890abcdefghijklmnopqrstu",
            "AIzaSyA-1234567890",
            "",
        ),
        (
            "cloud_api_key",
            "OPENAI=sk-proj-abcdefghijklmnopqrstuvwx",
            "abcdefghijklmnop",
            "",
        ),
        (
            "cloud_api_key",
            "xoxb-1234567890-abcdefghij",
            "xoxb-1234567890",
            "",
        ),
        (
            "jwt",
            "cookie=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "dozjgNryP4J3",
            "cookie=",
        ),
        (
            "authorization_header",
            "GET / HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\nHost: x",
            "dXNlcjpwYXNz",
            "Host: x",
        ),
        (
            "bearer_token",
            "curl -H 'x: Bearer abcdefghijklmnop0123'",
            "abcdefghijklmnop0123",
            "curl",
        ),
        (
            "url_password",
            "postgres://app:Pa55w0rd@db.lan:5432/app",
            "Pa55w0rd",
            "postgres://app:",
        ),
        (
            "url_password",
            "https://user:tok3n@github.com/x.git",
            "tok3n",
            "@github.com",
        ),
        (
            "connection_string_password",
            "Server=db;Database=x;User Id=sa;Pwd=Sup3r;",
            "Sup3r",
            "Server=db",
        ),
    ];

    const MUST_NOT_REDACT: &[&str] = &[
        "KEY_COUNT=5",
        "monkey: banana",
        "tokens: 42",
        "password_policy: strict",
        "Passwordless login enabled for user bob",
        "SSH_KEY_PATH_EXISTS is a flag",
        "https://example.com/path?q=1",
        "user@example.com wrote: hello",
        "eyJhbGciOiJIUzI1NiJ9 alone is just base64",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE public key",
        "tank/home@autosnap_2024-01-01_00:00:00_daily",
        "Accepted publickey for root from 192.168.1.5 port 51234",
        "sk-short",
    ];

    #[test]
    fn every_default_rule_redacts_its_corpus() {
        for (rule, input, secret, kept) in MUST_REDACT {
            let (out, counts) = scrub(input);
            assert!(
                !out.contains(secret),
                "rule {rule}: {secret:?} survived in {out:?}"
            );
            assert!(
                out.contains(kept),
                "rule {rule}: {kept:?} was lost from {out:?}"
            );
            assert!(
                counts.get(*rule).is_some_and(|n| *n >= 1),
                "rule {rule} did not count on {input:?}: {counts:?}"
            );
            assert!(out.contains(&format!("[REDACTED:{rule}]")), "{out}");
        }
        let covered: std::collections::BTreeSet<&str> = MUST_REDACT.iter().map(|c| c.0).collect();
        for name in scrubber().rule_names() {
            assert!(
                covered.contains(name),
                "default rule {name} has no corpus case"
            );
        }
    }

    #[test]
    fn innocent_text_is_untouched() {
        for text in MUST_NOT_REDACT {
            let (out, counts) = scrub(text);
            assert_eq!(&out, text, "{counts:?}");
            assert!(counts.is_empty());
        }
    }

    #[test]
    fn scrubs_nested_values_and_counts_per_rule() {
        let mut v = json!({"env": ["DB_PASSWORD=x1", "API_TOKEN=y2", "HOME=/root"], "nested": {"k": "AKIAIOSFODNN7EXAMPLE"}, "n": 5});
        let counts = scrubber().scrub(&mut v);
        assert_eq!(counts["secret_assignment"], 2);
        assert_eq!(counts["aws_access_key"], 1);
        assert_eq!(v["env"][2], "HOME=/root");
        assert!(!v.to_string().contains("x1"));
    }

    #[test]
    fn extra_rules_from_config() {
        let extra: Vec<ScrubRuleConfig> = toml::from_str::<crate::config::ScrubConfig>(
            "[[rules]]\nname = \"ticket\"\npattern = \"TKT-[0-9]{4}\"",
        )
        .unwrap()
        .rules;
        let s = Scrubber::new(&extra).unwrap();
        let mut counts = Redactions::new();
        assert_eq!(
            s.scrub_str("see TKT-1234", &mut counts).unwrap(),
            "see [REDACTED:ticket]"
        );
        assert_eq!(counts["ticket"], 1);
    }
}
