//! `keys.scan` (opt-in: `key_scan = true` under [packs.redis]): key names
//! of one database matching a glob pattern, found by a bounded `SCAN`.
//!
//! The pattern never reaches the server: `SCAN` runs without `MATCH`, each
//! key name goes through the agent's scrubber, and the pattern is matched
//! here against the scrubbed name, so a key that matches only because of
//! a secret in its name is no match. Bounded by keys scanned, keys
//! returned and the probe's deadline (whichever comes first; the answer
//! says which).

use serde_json::{Value, json};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::time::Duration;

use super::Settings;
use super::client::{Command, Rc, session, text_of};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};

/// Keys asked for per `SCAN` call.
const SCAN_COUNT: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Any,
    One,
    Byte(u8),
    Class { negated: bool, items: Vec<(u8, u8)> },
}

/// A Redis-style glob (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), compiled.
#[derive(Debug, Clone)]
pub struct Glob(Vec<Token>);

impl Glob {
    pub fn new(pattern: &[u8]) -> Glob {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::Any) {
                        tokens.push(Token::Any);
                    }
                }
                b'?' => tokens.push(Token::One),
                b'\\' if i + 1 < pattern.len() => {
                    i += 1;
                    tokens.push(Token::Byte(pattern[i]));
                }
                b'[' => {
                    let mut j = i + 1;
                    let negated = pattern.get(j) == Some(&b'^');
                    if negated {
                        j += 1;
                    }
                    let mut items = Vec::new();
                    while j < pattern.len() && pattern[j] != b']' {
                        let mut c = pattern[j];
                        if c == b'\\' && j + 1 < pattern.len() {
                            j += 1;
                            c = pattern[j];
                        }
                        if pattern.get(j + 1) == Some(&b'-')
                            && j + 2 < pattern.len()
                            && pattern[j + 2] != b']'
                        {
                            let (a, b) = (c, pattern[j + 2]);
                            items.push((a.min(b), a.max(b)));
                            j += 3;
                        } else {
                            items.push((c, c));
                            j += 1;
                        }
                    }
                    tokens.push(Token::Class { negated, items });
                    i = j;
                }
                c => tokens.push(Token::Byte(c)),
            }
            i += 1;
        }
        Glob(tokens)
    }

    /// Whether `name` matches, in O(len(name) × len(pattern)).
    pub fn matches(&self, name: &[u8]) -> bool {
        let t = &self.0;
        // reach[j]: the first j tokens match the name read so far.
        let mut reach = vec![false; t.len() + 1];
        reach[0] = true;
        for j in 0..t.len() {
            if t[j] == Token::Any && reach[j] {
                reach[j + 1] = true;
            }
        }
        for &c in name {
            let mut next = vec![false; t.len() + 1];
            for j in 0..t.len() {
                let ok = match &t[j] {
                    Token::Any => reach[j + 1] || reach[j],
                    Token::One => reach[j],
                    Token::Byte(b) => reach[j] && *b == c,
                    Token::Class { negated, items } => {
                        reach[j] && (items.iter().any(|(a, b)| (*a..=*b).contains(&c)) != *negated)
                    }
                };
                if ok {
                    next[j + 1] = true;
                }
            }
            for j in 0..t.len() {
                if t[j] == Token::Any && next[j] {
                    next[j + 1] = true;
                }
            }
            reach = next;
            if !reach.iter().any(|r| *r) {
                return false;
            }
        }
        reach[t.len()]
    }
}

fn parse_scan(v: &redis::Value) -> Option<(u64, Vec<Vec<u8>>)> {
    let redis::Value::Array(parts) = v else {
        return None;
    };
    let cursor = text_of(parts.first()?)?.parse().ok()?;
    let keys = match parts.get(1)? {
        redis::Value::Array(keys) => keys
            .iter()
            .filter_map(|k| match k {
                redis::Value::BulkString(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((cursor, keys))
}

pub fn scan(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    if !settings.key_scan {
        return Err(ProbeError::Denied(
            "key listing is off: key names are data. An operator turns it on with `key_scan = true` under [packs.redis] in agent.toml".into(),
        ));
    }
    let db = u16::try_from(params.i64("db").unwrap_or(0)).unwrap_or(0);
    let glob = Glob::new(params.str("pattern").unwrap_or("*").as_bytes());
    let limit = usize::try_from(params.i64("limit").unwrap_or(100)).unwrap_or(100);
    let max_scanned =
        usize::try_from(params.i64("max_scanned").unwrap_or(100_000)).unwrap_or(100_000);
    let with_types = params.bool("types").unwrap_or(false);
    session(ctx, async |mut rc: Rc| {
        if db != 0 {
            rc.run(Command::Select(db)).await.map_err(|e| match e {
                ProbeError::Failed(m) if m.contains("out of range") || m.contains("DB index") => {
                    ProbeError::NotFound(format!(
                        "database {db} does not exist on this server: {m}"
                    ))
                }
                e => e,
            })?;
        }
        let mut cursor = 0u64;
        let mut scanned = 0usize;
        let mut found: Vec<Vec<u8>> = Vec::new();
        let mut more = false;
        let stopped = loop {
            // Keep a quarter second for the answer.
            if ctx.time_left() < Duration::from_millis(250) {
                break "deadline";
            }
            let reply = rc
                .run(Command::Scan {
                    cursor,
                    count: SCAN_COUNT,
                })
                .await?;
            let (next, keys) = parse_scan(&reply)
                .ok_or_else(|| ProbeError::Failed("unexpected SCAN reply".into()))?;
            for key in keys {
                scanned += 1;
                let shown = ctx.secrets.scrub(&key).into_owned();
                if glob.matches(&shown) {
                    if found.len() < limit {
                        found.push(shown);
                    } else {
                        more = true;
                    }
                }
            }
            cursor = next;
            if more || (found.len() >= limit && cursor != 0) {
                break "limit";
            }
            if cursor == 0 {
                break "complete";
            }
            if scanned >= max_scanned {
                break "max_scanned";
            }
        };
        let mut keys = Vec::new();
        for k in &found {
            let mut entry = json!({"key": PathBytes(k.clone()).to_json()});
            if with_types && ctx.time_left() >= Duration::from_millis(250) {
                // The scrubbed name may differ from the real one; TYPE
                // then says "none", which is shown as it is.
                let t = rc.run(Command::Type(k)).await?;
                entry["type"] = Value::from(text_of(&t).unwrap_or_default());
            }
            keys.push(entry);
        }
        Ok(ProbeOutput {
            truncated: stopped != "complete",
            data: json!({
                "db": db,
                "keys": keys,
                "count": keys.len(),
                "scanned": scanned,
                "complete": stopped == "complete",
                "stopped_by": stopped,
            }),
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn globs_match_like_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("user:*", "user:42", true),
            ("user:*", "order:42", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("*a*a*a*a*a*b", &"a".repeat(200), false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                Glob::new(pattern.as_bytes()).matches(name.as_bytes()),
                *want,
                "{pattern} {name}"
            );
        }
    }
}
