//! `slowlog`: the slowest recent commands (`SLOWLOG GET`), with credential
//! arguments redacted (`AUTH`, `HELLO … AUTH`, `ACL SETUSER >…`,
//! `CONFIG SET requirepass …`) and every argument cut.

use serde_json::{Value, json};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;

use super::client::{Command, Rc, session};
use crate::database::redact_redis_args;
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// Longest argument shown (bytes).
const MAX_ARG: usize = 256;

fn int(v: Option<&redis::Value>) -> Option<i64> {
    match v {
        Some(redis::Value::Int(i)) => Some(*i),
        _ => None,
    }
}

fn bytes(v: Option<&redis::Value>) -> Option<Vec<u8>> {
    match v {
        Some(redis::Value::BulkString(b)) => Some(b.clone()),
        Some(redis::Value::SimpleString(s)) => Some(s.as_bytes().to_vec()),
        Some(redis::Value::VerbatimString { text, .. }) => Some(text.as_bytes().to_vec()),
        _ => None,
    }
}

/// One `SLOWLOG GET` entry as JSON, credentials redacted.
pub fn entry(v: &redis::Value) -> Option<Value> {
    let redis::Value::Array(items) = v else {
        return None;
    };
    let args: Vec<Vec<u8>> = match items.get(3) {
        Some(redis::Value::Array(a)) => a.iter().filter_map(|x| bytes(Some(x))).collect(),
        _ => Vec::new(),
    };
    let args = redact_redis_args(&args);
    let shown: Vec<Value> = args
        .iter()
        .map(|a| {
            if a.len() > MAX_ARG {
                let mut cut = a[..MAX_ARG].to_vec();
                cut.extend_from_slice("…".as_bytes());
                PathBytes(cut).to_json()
            } else {
                PathBytes(a.clone()).to_json()
            }
        })
        .collect();
    let command = args
        .first()
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .unwrap_or_default();
    Some(json!({
        "id": int(items.first()),
        "time_ms": int(items.get(1)).map(|t| t * 1000),
        "duration_us": int(items.get(2)),
        "command": command,
        "args": shown,
        "client": bytes(items.get(4)).map(|b| PathBytes(b).to_json()),
        "client_name": bytes(items.get(5)).map(|b| PathBytes(b).to_json()),
    }))
}

pub fn slowlog(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let limit = u32::try_from(params.i64("limit").unwrap_or(50)).unwrap_or(50);
    session(ctx, async |mut rc: Rc| {
        let got = rc.run(Command::SlowlogGet(limit)).await?;
        let len = int(Some(&rc.run(Command::SlowlogLen).await?));
        let entries: Vec<Value> = match &got {
            redis::Value::Array(items) => items.iter().filter_map(entry).collect(),
            _ => Vec::new(),
        };
        let mut by_command: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for e in &entries {
            let c = by_command
                .entry(e["command"].as_str().unwrap_or("").to_owned())
                .or_default();
            c.0 += 1;
            c.1 = c.1.max(e["duration_us"].as_i64().unwrap_or(0));
        }
        let mut findings = Vec::new();
        for (cmd, (n, max)) in &by_command {
            if matches!(
                cmd.as_str(),
                "KEYS" | "FLUSHALL" | "FLUSHDB" | "SMEMBERS" | "HGETALL" | "LRANGE" | "SORT"
            ) && *max >= 10_000
            {
                findings.push(finding("warning", format!(
                    "{cmd} appears {n} time(s) in the slowlog (up to {:.1} ms): it walks a whole key or keyspace and blocks every other client while it runs",
                    *max as f64 / 1000.0
                )));
            } else if *max >= 100_000 {
                findings.push(finding("warning", format!(
                    "{cmd} took up to {:.0} ms ({n} slow run(s)): Redis serves one command at a time, so every client waited",
                    *max as f64 / 1000.0
                )));
            }
        }
        Ok(ProbeOutput {
            truncated: len.is_some_and(|l| l > i64::from(limit)),
            data: json!({
                "entries": entries,
                "count": entries.len(),
                "slowlog_length": len,
                "by_command": by_command.iter().map(|(k, (n, max))| (k.clone(), json!({"count": n, "max_us": max}))).collect::<serde_json::Map<_, _>>(),
                "findings": findings,
            }),
        })
    })
}
