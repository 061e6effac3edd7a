//! `clients.list`: connected clients (`CLIENT LIST`) with counts by user,
//! name and command, against `maxclients`; blocked clients and big output
//! buffers first.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;

use super::client::{Command, Rc, session, text_of};
use super::info::{parse_info, typed};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// The fields of a `CLIENT LIST` line that are shown.
const FIELDS: &[&str] = &[
    "id", "addr", "laddr", "name", "age", "idle", "flags", "db", "sub", "psub", "multi", "qbuf",
    "obl", "oll", "omem", "tot-mem", "cmd", "user", "resp", "lib-name", "lib-ver",
];

/// One `CLIENT LIST` line as an object.
pub fn parse_client(line: &str) -> Map<String, Value> {
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| FIELDS.contains(k))
        .map(|(k, v)| {
            let v = if matches!(
                k,
                "name" | "addr" | "laddr" | "flags" | "cmd" | "user" | "lib-name" | "lib-ver"
            ) {
                Value::from(v)
            } else {
                typed(v)
            };
            (k.to_owned(), v)
        })
        .collect()
}

pub fn list(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let limit = usize::try_from(params.i64("limit").unwrap_or(100)).unwrap_or(100);
    let min_idle = params.i64("min_idle_s").unwrap_or(0);
    session(ctx, async |mut rc: Rc| {
        let text = text_of(&rc.run(Command::ClientList).await?).unwrap_or_default();
        let info = parse_info(&rc.info("clients").await?)
            .remove("clients")
            .unwrap_or_default();
        let mut clients: Vec<Map<String, Value>> = text.lines().map(parse_client).collect();
        let total = clients.len();
        let mut by_user: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_cmd: BTreeMap<String, u64> = BTreeMap::new();
        let mut findings = Vec::new();
        for c in &clients {
            let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            *by_user.entry(g("user")).or_default() += 1;
            *by_name.entry(g("name")).or_default() += 1;
            *by_cmd.entry(g("cmd")).or_default() += 1;
            let omem = c.get("omem").and_then(Value::as_f64).unwrap_or(0.0);
            if omem >= 32.0 * 1_048_576.0 {
                findings.push(finding("warning", format!(
                    "client {} ({}) has {:.0} MiB waiting in its output buffer: it reads slower than it asks",
                    g("addr"), g("name"), omem / 1_048_576.0
                )));
            }
        }
        let blocked = clients
            .iter()
            .filter(|c| {
                c.get("flags")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.contains('b'))
            })
            .count();
        if blocked > 0 {
            findings.push(finding("info", format!(
                "{blocked} client(s) are blocked in a blocking command (BLPOP, XREAD BLOCK, WAIT…)"
            )));
        }
        let max = info.get("maxclients").and_then(Value::as_f64);
        if let Some(max) = max
            && max > 0.0
        {
            let pct = 100.0 * total as f64 / max;
            if pct >= 80.0 {
                findings.push(finding(
                    if pct >= 95.0 { "error" } else { "warning" },
                    format!("{total} of maxclients {max:.0} connections in use ({pct:.0}%)"),
                ));
            }
        }
        clients.retain(|c| c.get("idle").and_then(Value::as_i64).unwrap_or(0) >= min_idle);
        let matching = clients.len();
        // Blocked and big-buffer clients first, then the longest idle.
        clients.sort_by_key(|c| {
            let blocked = c
                .get("flags")
                .and_then(Value::as_str)
                .is_some_and(|f| f.contains('b'));
            let omem = c.get("omem").and_then(Value::as_i64).unwrap_or(0);
            let idle = c.get("idle").and_then(Value::as_i64).unwrap_or(0);
            (
                std::cmp::Reverse(blocked),
                std::cmp::Reverse(omem),
                std::cmp::Reverse(idle),
            )
        });
        clients.truncate(limit);
        Ok(ProbeOutput {
            truncated: matching > limit,
            data: json!({
                "connected": total,
                "maxclients": info.get("maxclients"),
                "blocked": blocked,
                "by_user": by_user,
                "by_name": by_name,
                "by_command": by_cmd,
                "matching": matching,
                "clients": clients,
                "findings": findings,
            }),
        })
    })
}
