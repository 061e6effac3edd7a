//! Guarantee: no zfs probe returns or reveals a secret in a file, whatever
//! its kind, wherever it sits (one line, a multi-line block, a line with
//! bytes that are not UTF-8), in any encoding a result uses — and no
//! parameter that searches or compares content works as an oracle for it
//! (`content_grep`, `find_files` names, `bisect_change` contains/hash,
//! `versions_of` and `file_diff` digests and diffs).
//!
//! Each case plants a random secret of one rule's kind in a file that
//! changes it between snapshots, runs every content probe as the agent
//! does (handler, then the agent's whole-result scrub) and checks the
//! secret's tail is nowhere in the result, in its text or in any base64 in
//! it, and that searching for it finds nothing.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sonde_pack_zfs::fixture::{Content, Fixture, STANDARD_START, Tree};
use sonde_packs::scrub::Scrubber;
use support::{Env, fake_binary, list};

/// A secret of one rule's kind: (the text put in the file, the part that
/// must never come back).
fn secret_kinds() -> impl Strategy<Value = (String, String)> {
    let word = "[A-Za-z0-9]{12,20}";
    prop_oneof![
        word.prop_map(|w| (format!("DB_PASSWORD={w}"), w)),
        word.prop_map(|w| (format!("api_key: \"{w}\""), w)),
        word.prop_map(|w| (format!("postgres://app:{w}@db.lan/app"), w)),
        word.prop_map(|w| (format!("Authorization: Bearer {w}xyzw"), w)),
        "[A-Z0-9]{16}".prop_map(|w| (format!("AKIA{w}"), format!("AKIA{w}"))),
        "[A-Za-z0-9]{36}".prop_map(|w| (format!("ghp_{w}"), w)),
        "[A-Za-z0-9+/]{43}".prop_map(|w| (format!("sonde-ed25519-secret-v1:{w}="), w)),
        proptest::collection::vec("[A-Za-z0-9+/]{64}", 3..6).prop_map(|lines| {
            let body = lines.join("\n");
            (
                format!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----"
                ),
                lines[1].clone(),
            )
        }),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Placement {
    Alone,
    MidLine,
    NotUtf8,
}

fn placement() -> impl Strategy<Value = Placement> {
    prop_oneof![
        Just(Placement::Alone),
        Just(Placement::MidLine),
        Just(Placement::NotUtf8)
    ]
}

fn file_with(secret: &str, place: Placement, version: u8) -> Content {
    let mut b = format!("# app config, version {version}\nlisten = 8080\n").into_bytes();
    match place {
        Placement::Alone => b.extend_from_slice(secret.as_bytes()),
        Placement::MidLine => {
            b.extend_from_slice(b"2026-12-01 app[12]: loaded ");
            b.extend_from_slice(secret.as_bytes());
            b.extend_from_slice(b" from env");
        }
        Placement::NotUtf8 => {
            b.extend_from_slice(b"caf\xe9 \xff ");
            b.extend_from_slice(secret.as_bytes());
        }
    }
    b.extend_from_slice(b"\nworkers = 4\n");
    match place {
        Placement::NotUtf8 => Content::Bytes(b),
        _ => match String::from_utf8(b) {
            Ok(t) => Content::Text(t),
            Err(e) => Content::Bytes(e.into_bytes()),
        },
    }
}

fn raw(c: &Content) -> Vec<u8> {
    match c {
        Content::Text(t) => t.clone().into_bytes(),
        Content::Bytes(b) => b.clone(),
        _ => Vec::new(),
    }
}

/// Every string in `v`, and what every base64-looking one decodes to.
fn texts(v: &Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::String(s) => {
            out.push(s.clone().into_bytes());
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s) {
                out.push(b);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone().into_bytes());
            texts(x, out);
        }),
        _ => {}
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What leaves the agent: the handler's result, then the whole-result scrub.
fn as_sent(env: &Env, probe: &str, params: Value) -> Value {
    let mut v = match env.run(probe, params.clone()) {
        Ok((v, _)) => v,
        Err(e) => json!({"error": e.to_string()}),
    };
    Scrubber::default_rules().scrub_value(&mut v);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn prop_no_probe_returns_or_reveals_a_planted_secret(
        (s1, tail1) in secret_kinds(),
        (s2, tail2) in secret_kinds(),
        place in placement(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let old = file_with(&s1, place, 1);
        let new = file_with(&s2, place, 2);
        let t1: Tree = [(b"app/app.conf".to_vec(), old.clone())].into();
        let t2: Tree = [(b"app/app.conf".to_vec(), new.clone())].into();
        let fixture = Fixture::from_trees(
            dir.path(), &fake_binary(), "tank/app",
            &[t1.clone(), t2.clone(), t2], &["s1", "s2"], STANDARD_START,
        ).unwrap();
        let env = Env::new(dir, fixture);
        let ds = |extra: Value| {
            let mut v = json!({"dataset": "tank/app", "path": "app/app.conf"});
            for (k, x) in extra.as_object().unwrap() { v[k] = x.clone(); }
            v
        };
        let raw_hashes: Vec<String> = [&old, &new]
            .iter()
            .map(|c| hex::encode(Sha256::digest(raw(c))))
            .collect();
        let mut results = vec![
            as_sent(&env, "read_file", ds(json!({"snapshot": "s1"}))),
            as_sent(&env, "read_file", ds(json!({"snapshot": "s2"}))),
            as_sent(&env, "versions_of", ds(json!({"include_content": true}))),
            as_sent(&env, "file_diff", ds(json!({"from": "s1", "to": "s2"}))),
            as_sent(&env, "content_grep", ds(json!({"text": "app", "snapshot": "s1"}))),
        ];
        // Oracles: a search for the secret, or for its raw file's hash,
        // finds nothing.
        for (tail, snapshot, h) in [(&tail1, "s1", &raw_hashes[0]), (&tail2, "s2", &raw_hashes[1])] {
            let guess = &tail[..tail.len().min(200)];
            let grep = as_sent(&env, "content_grep", ds(json!({"text": guess, "snapshot": snapshot})));
            prop_assert!(list(&grep, "matches").is_empty(), "grep found the secret: {grep}");
            let grep = as_sent(&env, "content_grep", ds(json!({"text": &guess[..6], "snapshot": snapshot})));
            prop_assert!(grep["matches"].as_array().is_none_or(|m| m.iter().all(|x| !contains(x["line"].to_string().as_bytes(), &guess.as_bytes()[..6]))), "{grep}");
            let bisect = as_sent(&env, "bisect_change", ds(json!({"predicate": "contains", "value": guess})));
            prop_assert_ne!(&bisect["predicate_at_from"], &json!(true), "{}", bisect);
            prop_assert_ne!(&bisect["predicate_at_to"], &json!(true), "{}", bisect);
            let bisect = as_sent(&env, "bisect_change", ds(json!({"predicate": "hash", "value": h})));
            prop_assert_ne!(&bisect["predicate_at_from"], &json!(true), "{}", bisect);
            prop_assert_ne!(&bisect["predicate_at_to"], &json!(true), "{}", bisect);
            results.push(grep);
            results.push(bisect);
        }
        for r in &mut results {
            // The caller's own words echoed back are not a leak.
            if let Some(m) = r.as_object_mut() {
                m.remove("value");
                m.remove("text");
            }
        }
        for r in &results {
            let mut all = Vec::new();
            texts(r, &mut all);
            for t in &all {
                for tail in [&tail1, &tail2] {
                    prop_assert!(!contains(t, tail.as_bytes()), "secret {tail:?} in {r}");
                }
                for h in &raw_hashes {
                    prop_assert!(!contains(t, h.as_bytes()), "the raw file's SHA-256 {h} in {r}");
                }
            }
        }
    }
}
