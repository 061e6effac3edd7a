#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn scrubber() -> Scrubber {
    Scrubber::default_rules()
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
        "{\\\"password\\\":\\\"esc4ped-pw\\\"}",
        "esc4ped-pw",
        "password",
    ),
    (
        "secret_assignment",
        "api_key = 'k-123456'",
        "k-123456",
        "api_key",
    ),
    (
        "secret_assignment",
        "password: correct horse battery staple",
        "battery",
        "password:",
    ),
    (
        "secret_assignment",
        "SLACK_BOT_TOKEN=xyz987",
        "xyz987",
        "SLACK_BOT_TOKEN",
    ),
    (
        "secret_assignment",
        "login ok password=abc123 user=bob",
        "abc123",
        "user=bob",
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
        "sonde_secret",
        "signing.key: sonde-ed25519-secret-v1:q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
        "q83vEjRWeJq83vEjRWeJ",
        "signing.key:",
    ),
    (
        "sonde_secret",
        "claude mcp add --header 'X: sonde_sk_0123abcd_0123456789abcdef0123456789abcdef01234567'",
        "0123456789abcdef0123456789",
        "claude mcp add",
    ),
    (
        "sonde_secret",
        "sonde-agent enroll --token sonde-enroll-0123456789abcdef0123456789abcdef01234567 --hub x",
        "0123456789abcdef0123456789",
        "--hub x",
    ),
    (
        "aws_access_key",
        "key id AKIAIOSFODNN7EXAMPLE in use",
        "AKIAIOSFODNN7EXAMPLE",
        "in use",
    ),
    (
        "cloud_api_key",
        "key ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
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
        "cookie_header",
        "GET / HTTP/1.1\r\nCookie: session=8f9a7b6c5d4e\r\nHost: x",
        "8f9a7b6c5d4e",
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
        "url_password",
        "redis://:r3disPw@cache:6379/0",
        "r3disPw",
        "@cache",
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
    "Failed password for invalid user admin from 10.0.0.7 port 22 ssh2",
    "sk-short",
    "ed25519:q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80= is a public key",
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
    let counts = scrubber().scrub_value(&mut v);
    assert_eq!(counts["secret_assignment"], 2);
    assert_eq!(counts["aws_access_key"], 1);
    assert_eq!(v["env"][2], "HOME=/root");
    assert_eq!(v["n"], 5);
    assert!(!v.to_string().contains("x1"));
}

#[test]
fn extra_rules_and_names() {
    let s = Scrubber::new(&[RuleSpec {
        name: "ticket".into(),
        pattern: "TKT-[0-9]{4}".into(),
        keywords: vec![],
    }])
    .unwrap();
    let mut counts = Redactions::new();
    assert_eq!(
        s.scrub_str("see TKT-1234", &mut counts).unwrap(),
        "see [REDACTED:ticket]"
    );
    assert_eq!(counts["ticket"], 1);
    let twice = Scrubber::new(&[RuleSpec {
        name: "jwt".into(),
        pattern: "x".into(),
        keywords: vec![],
    }]);
    assert!(matches!(twice, Err(ScrubError::Rule { .. })), "{twice:?}");
    let bad = Scrubber::new(&[RuleSpec {
        name: "bad".into(),
        pattern: "(".into(),
        keywords: vec![],
    }]);
    assert!(matches!(bad, Err(ScrubError::Rule { .. })), "{bad:?}");
}

const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAAAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIFxy\nQmV0dGVyIG5vdCBsZWFrIHRoaXMgbGluZSBlaXRoZXI\n-----END OPENSSH PRIVATE KEY-----";

#[test]
fn a_pem_block_split_over_array_items_is_redacted_whole() {
    let mut lines = vec![json!("log starts")];
    lines.extend(PEM.lines().map(|l| json!(l)));
    lines.push(json!("log goes on"));
    let mut v = json!({"path": "/var/log/app.log", "lines": lines});
    let counts = scrubber().scrub_value(&mut v);
    let text = v.to_string();
    for body in PEM.lines().skip(1).take(3) {
        assert!(!text.contains(body), "{body} leaked: {text}");
    }
    assert_eq!(counts["pem_private_key"], 1);
    assert_eq!(v["lines"][0], "log starts");
    assert_eq!(v["lines"][6], "log goes on", "{text}");
    assert_eq!(v["path"], "/var/log/app.log");
}

#[test]
fn a_pem_block_split_over_objects_is_redacted_whole() {
    let entries: Vec<Value> = PEM
        .lines()
        .enumerate()
        .map(|(i, l)| json!({"time_ms": i, "unit": "app.service", "message": l}))
        .collect();
    let mut v = json!({"entries": entries});
    scrubber().scrub_value(&mut v);
    let text = v.to_string();
    for body in PEM.lines().skip(1).take(3) {
        assert!(!text.contains(body), "{body} leaked: {text}");
    }
}

#[test]
fn bytes_that_are_not_utf8_are_scrubbed_before_they_are_encoded() {
    let mut line = b"\xff\xfe DB_PASSWORD=hunter2-".to_vec();
    line.push(0xfa);
    line.extend_from_slice(b"tail and more");
    let mut v = json!({"lines": [PathBytes(line).to_json()]});
    let counts = scrubber().scrub_value(&mut v);
    assert_eq!(counts["secret_assignment"], 1);
    let item = &v["lines"][0];
    let bytes = PathBytes::from_json(item).unwrap().0;
    assert!(memchr::memmem::find(&bytes, b"hunter2").is_none(), "{item}");
    assert!(
        memchr::memmem::find(&bytes, b"tail").is_none(),
        "a value with an odd byte is one value: {item}"
    );
    assert!(!item.to_string().contains("hunter2"));
    assert!(
        bytes.starts_with(b"\xff\xfe DB_PASSWORD=[REDACTED:"),
        "{item}"
    );
}

#[test]
fn keys_and_values_are_seen_together() {
    let mut v = json!({"Env": {"DB_PASSWORD": "hunter2", "HOME": "/root"}, "labels": {"com.example.api_token": "t0ps3cret"}});
    let counts = scrubber().scrub_value(&mut v);
    let text = v.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("t0ps3cret"),
        "{text}"
    );
    assert_eq!(v["Env"]["HOME"], "/root");
    assert_eq!(counts["secret_assignment"], 2);
}

#[test]
fn a_secret_in_a_key_is_redacted() {
    let mut v = json!({"sonde_sk_0123abcd_0123456789abcdef0123456789abcdef01234567": 1});
    scrubber().scrub_value(&mut v);
    assert!(!v.to_string().contains("0123456789abcdef0123"), "{v}");
}

#[test]
fn base64_strings_are_decoded_scrubbed_and_reencoded() {
    let content = B64.encode(b"\x00\x01binary\nAWS_SECRET_KEY=wJalrXUtnFEMIK7MDENG\n\xff");
    let mut v = json!({"encoding": "base64", "content": content});
    let counts = scrubber().scrub_value(&mut v);
    assert_eq!(counts["secret_assignment"], 1);
    let back = B64.decode(v["content"].as_str().unwrap()).unwrap();
    assert!(memchr::memmem::find(&back, b"wJalrXUtnFEMI").is_none());
    assert!(back.starts_with(b"\x00\x01binary\nAWS_SECRET_KEY=[REDACTED:"));
}

#[test]
fn scrubbing_is_idempotent() {
    let mut v = json!({"lines": ["DB_PASSWORD=hunter2", "Authorization: Bearer abcdefghijklmnop0123", PEM]});
    let first = scrubber().scrub_value(&mut v);
    assert!(!first.is_empty());
    let once = v.clone();
    let second = scrubber().scrub_value(&mut v);
    assert_eq!(v, once);
    assert!(second.is_empty(), "{second:?}");
}

#[test]
fn a_marker_does_not_hide_what_follows_it() {
    let (out, _) = scrub("password=[REDACTED:x]hunter2");
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn own_secrets_are_redacted_in_every_form() {
    let seed = [0xabu8; 32];
    let s = scrubber()
        .with_own_secrets(&[
            seed.to_vec(),
            B64.encode(seed).into_bytes(),
            hex::encode(seed).into_bytes(),
        ])
        .unwrap();
    let mut v = json!({
        "raw": PathBytes(seed.to_vec()).to_json(),
        "b64": format!("key {}", B64.encode(seed)),
        "hex": format!("{} end", hex::encode(seed)),
    });
    let counts = s.scrub_value(&mut v);
    assert_eq!(counts[OWN_SECRET_RULE], 3, "{v}");
    let text = v.to_string();
    assert!(
        !text.contains(&B64.encode(seed)) && !text.contains(&hex::encode(seed)),
        "{text}"
    );
    assert!(!text.contains(&B64.encode(&seed[..24])), "{text}");
}

#[test]
fn utf8_text_stays_utf8_when_a_rule_cuts_inside_a_character() {
    let s = Scrubber::new(&[RuleSpec {
        name: "middle".into(),
        pattern: "\\xa9".into(),
        keywords: vec![],
    }])
    .unwrap();
    let mut v = json!(["caf\u{e9} \u{a9} done"]);
    s.scrub_value(&mut v);
    let out = v[0].as_str().unwrap();
    assert!(
        out.contains("[REDACTED:middle]") && out.ends_with(" done"),
        "{out}"
    );
}

// ---- properties -------------------------------------------------------

/// A secret of one rule's kind: (the full text to plant, the part that must
/// never come back).
fn secret_of_kind() -> impl Strategy<Value = (String, String)> {
    let word = "[A-Za-z0-9]{16,24}";
    prop_oneof![
        (
            word,
            prop::sample::select(vec![
                "DB_PASSWORD",
                "api_key",
                "CLIENT_SECRET",
                "GITHUB_TOKEN",
                "password",
                "smtp_pass"
            ])
        )
            .prop_map(|(v, k)| (format!("{k}={v}"), v)),
        word.prop_map(|v| (format!("\"password\": \"{v}\""), v)),
        word.prop_map(|v| (format!("Authorization: Basic {v}"), v)),
        word.prop_map(|v| (format!("Bearer {v}"), v)),
        word.prop_map(|v| (format!("postgres://app:{v}@db.lan/x"), v)),
        "[A-Z0-9]{16}".prop_map(|v| (format!("AKIA{v}"), format!("AKIA{v}"))),
        "[A-Za-z0-9]{36}".prop_map(|v| (format!("ghp_{v}"), v)),
        (word, word).prop_map(|(a, b)| (format!("eyJ{a}.eyJ{b}.{a}"), b)),
        word.prop_map(|v| (format!("Server=x;Pwd={v};"), v)),
        "[0-9a-f]{40}".prop_map(|v| (format!("sonde_sk_0123abcd_{v}"), v)),
        "[0-9a-f]{40}".prop_map(|v| (format!("sonde-enroll-{v}"), v)),
        prop::collection::vec("[A-Za-z0-9+/]{64}", 2..6).prop_map(|body| {
            let b = body.join("\n");
            (
                format!("-----BEGIN RSA PRIVATE KEY-----\n{b}\n-----END RSA PRIVATE KEY-----"),
                body[1].clone(),
            )
        }),
    ]
}

/// Every form in which `needle` could come back from `v`: the JSON text,
/// every string decoded as base64, every `{"base64"}` item's bytes.
fn recoverable(v: &Value, needle: &[u8]) -> bool {
    fn walk(v: &Value, needle: &[u8]) -> bool {
        match v {
            Value::String(s) => {
                memchr::memmem::find(s.as_bytes(), needle).is_some()
                    || B64
                        .decode(s)
                        .ok()
                        .is_some_and(|b| memchr::memmem::find(&b, needle).is_some())
            }
            Value::Array(items) => items.iter().any(|i| walk(i, needle)),
            Value::Object(map) => {
                map.keys()
                    .any(|k| memchr::memmem::find(k.as_bytes(), needle).is_some())
                    || map.values().any(|i| walk(i, needle))
            }
            _ => false,
        }
    }
    memchr::memmem::find(v.to_string().as_bytes(), needle).is_some() || walk(v, needle)
}

/// How a probe might carry the text around the secret.
#[derive(Debug, Clone)]
enum Shape {
    /// One string.
    Single,
    /// Lines, each an array item.
    Lines,
    /// Lines as `{"message": …}` objects with other fields.
    Entries,
    /// One line with bytes that are not UTF-8 around the secret.
    NotUtf8,
    /// Lines where every line carries an odd byte (all `{"base64"}`).
    NotUtf8Lines,
    /// The whole text base64-encoded (binary file content).
    Base64,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Single),
        Just(Shape::Lines),
        Just(Shape::Entries),
        Just(Shape::NotUtf8),
        Just(Shape::NotUtf8Lines),
        Just(Shape::Base64),
    ]
}

fn build(shape: &Shape, before: &str, secret: &str, after: &str) -> Value {
    let text = format!("{before}{secret}{after}");
    match shape {
        Shape::Single => json!({"text": text}),
        Shape::Lines => json!({"lines": text.split('\n').collect::<Vec<_>>()}),
        Shape::Entries => json!({"entries": text
            .split('\n')
            .enumerate()
            .map(|(i, l)| json!({"n": i, "unit": "x.service", "message": l}))
            .collect::<Vec<_>>()}),
        Shape::NotUtf8 => {
            let mut b = vec![0xff];
            b.extend_from_slice(text.as_bytes());
            b.push(0xfe);
            json!({"line": PathBytes(b).to_json()})
        }
        Shape::NotUtf8Lines => json!({"lines": text
            .split('\n')
            .map(|l| {
                let mut b = l.as_bytes().to_vec();
                b.push(0xff);
                PathBytes(b).to_json()
            })
            .collect::<Vec<_>>()}),
        Shape::Base64 => {
            let mut b = text.into_bytes();
            b.push(0);
            json!({"encoding": "base64", "content": B64.encode(b)})
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_a_planted_secret_is_never_recoverable(
        (planted, core) in secret_of_kind(),
        shape in shape(),
        before in "([a-z ]{0,20}(\n[a-z ]{0,20}){0,3}[ \n])?",
        after in "( [a-z]{0,10})?(\n[a-z ]{0,20}){0,3}",
    ) {
        let mut v = build(&shape, &before, &planted, &after);
        prop_assert!(recoverable(&v, core.as_bytes()));
        let counts = scrubber().scrub_value(&mut v);
        prop_assert!(!counts.is_empty());
        prop_assert!(!recoverable(&v, core.as_bytes()), "{:?} leaked from {}", core, v);
    }

    #[test]
    fn prop_scrubbing_never_panics_and_is_idempotent(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut v = json!({"a": PathBytes(bytes.clone()).to_json(), "b": [String::from_utf8_lossy(&bytes)]});
        scrubber().scrub_value(&mut v);
        let once = v.clone();
        let again = scrubber().scrub_value(&mut v);
        prop_assert_eq!(&v, &once);
        prop_assert!(again.is_empty());
    }
}

/// The default rules with every `keywords` hint removed: each rule then
/// runs over the whole text.
fn without_keywords() -> Scrubber {
    #[derive(serde::Deserialize)]
    struct File {
        rules: Vec<RuleSpec>,
    }
    let file: File = toml::from_str(DEFAULT_RULES).unwrap();
    let mut specs = file.rules;
    for s in &mut specs {
        s.keywords.clear();
    }
    Scrubber::from_specs(specs.iter()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Keywords only make scrubbing faster: with and without them, every
    /// text comes out the same.
    #[test]
    fn prop_keywords_never_change_what_is_redacted(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(b"password".to_vec()), Just(b"DB_PASSWORD".to_vec()),
                Just(b"api_key".to_vec()), Just(b"Token".to_vec()),
                Just(b"secret".to_vec()), Just(b"x-auth".to_vec()),
                Just(b"=".to_vec()), Just(b":".to_vec()), Just(b"\n".to_vec()),
                Just(b" ".to_vec()), Just(b"\t".to_vec()), Just(b"\"".to_vec()),
                Just(b"'".to_vec()), Just(b"\\".to_vec()), Just(b";".to_vec()),
                Just(b"export ".to_vec()), Just(vec![0xff, 0xfe]),
                Just(b"\n\n\n\n\n".to_vec()), Just(b" \r\n \n\t\n \n".to_vec()),
                "[a-zA-Z0-9/+_.-]{1,12}".prop_map(String::into_bytes),
            ],
            0..40,
        )
    ) {
        let text: Vec<u8> = parts.concat();
        let fast = scrubber();
        let slow = without_keywords();
        let (mut a, mut b) = (Redactions::new(), Redactions::new());
        let fa = fast.scrub_bytes(&text, &mut a);
        let sb = slow.scrub_bytes(&text, &mut b);
        prop_assert_eq!(fa, sb);
        prop_assert_eq!(a, b);
    }
}
