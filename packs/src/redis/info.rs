//! Probes built on `INFO`: `info` (any section), `memory.status`,
//! `keyspace`, `persistence.status` and `replication.status`, with the
//! findings an operator looks for (fragmentation, memory near maxmemory,
//! evictions, failed saves, broken replication links).

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;

use super::client::{Rc, info_section, session};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// `INFO` text as section → field → value (numbers as numbers; keyspace
/// and replica lines as objects).
pub fn parse_info(text: &str) -> BTreeMap<String, Map<String, Value>> {
    let mut out: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut section = String::from("unknown");
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            section = name.trim().to_ascii_lowercase();
            out.entry(section.clone()).or_default();
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let value = if v.contains('=')
            && (section == "keyspace"
                || k.starts_with("slave")
                || section == "commandstats"
                || section == "errorstats"
                || section == "latencystats")
        {
            Value::Object(
                v.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(a, b)| (a.to_owned(), typed(b)))
                    .collect(),
            )
        } else {
            typed(v)
        };
        out.entry(section.clone())
            .or_default()
            .insert(k.to_owned(), value);
    }
    out
}

/// A value as a JSON number when it is one.
pub fn typed(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = v.parse::<f64>()
        && f.is_finite()
        && !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return serde_json::Number::from_f64(f).map_or(Value::from(v), Value::Number);
    }
    Value::from(v)
}

fn f(section: &Map<String, Value>, key: &str) -> Option<f64> {
    section.get(key).and_then(Value::as_f64)
}

fn s<'a>(section: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    section.get(key).and_then(Value::as_str)
}

const MIB: f64 = 1_048_576.0;

/// Findings on memory (the `memory` section, and `stats` for evictions).
pub fn memory_findings(
    memory: &Map<String, Value>,
    stats: Option<&Map<String, Value>>,
) -> Vec<Value> {
    let mut out = Vec::new();
    let used = f(memory, "used_memory").unwrap_or(0.0);
    let rss = f(memory, "used_memory_rss").unwrap_or(0.0);
    let max = f(memory, "maxmemory").unwrap_or(0.0);
    let policy = s(memory, "maxmemory_policy").unwrap_or("?");
    let frag = f(memory, "mem_fragmentation_ratio").unwrap_or(1.0);
    if frag >= 1.5 && rss - used >= 100.0 * MIB {
        out.push(finding("warning", format!(
            "memory fragmentation ratio {frag:.2}: the process holds {:.0} MiB more than its data needs (activedefrag yes can reclaim it; a restart does too)",
            (rss - used) / MIB
        )));
    } else if frag < 1.0 && rss > 0.0 && used >= 10.0 * MIB {
        out.push(finding("error", format!(
            "memory fragmentation ratio {frag:.2} is below 1: part of Redis's memory is swapped out, which makes it slow"
        )));
    }
    if max > 0.0 {
        let pct = 100.0 * used / max;
        if pct >= 90.0 {
            out.push(finding(
                if policy == "noeviction" {
                    "error"
                } else {
                    "warning"
                },
                format!(
                    "memory at {pct:.0}% of maxmemory ({:.0} of {:.0} MiB, policy {policy}){}",
                    used / MIB,
                    max / MIB,
                    if policy == "noeviction" {
                        ": writes will fail with OOM errors"
                    } else {
                        ": keys are being evicted"
                    }
                ),
            ));
        }
    }
    if let Some(stats) = stats {
        let evicted = f(stats, "evicted_keys").unwrap_or(0.0);
        if evicted > 0.0 {
            out.push(finding("warning", format!(
                "{evicted:.0} keys were evicted since the server started (maxmemory {:.0} MiB, policy {policy}): the dataset does not fit",
                max / MIB
            )));
        }
        let rejected = f(stats, "rejected_connections").unwrap_or(0.0);
        if rejected > 0.0 {
            out.push(finding(
                "warning",
                format!("{rejected:.0} connections were rejected (maxclients reached)"),
            ));
        }
    }
    out
}

/// Findings on persistence.
pub fn persistence_findings(p: &Map<String, Value>, now_s: f64) -> Vec<Value> {
    let mut out = Vec::new();
    if s(p, "rdb_last_bgsave_status").is_some_and(|v| v != "ok") {
        out.push(finding("error", format!(
            "the last background save (RDB) failed ({} changes not saved since the last good save): check the server log and the dump directory's permissions and free space",
            f(p, "rdb_changes_since_last_save").unwrap_or(0.0)
        )));
    }
    if f(p, "aof_enabled") == Some(1.0) {
        if s(p, "aof_last_write_status").is_some_and(|v| v != "ok") {
            out.push(finding("error", "writing the append-only file failed: writes may be refused until it works (disk full or permissions?)"));
        }
        if s(p, "aof_last_bgrewrite_status").is_some_and(|v| v != "ok") {
            out.push(finding(
                "warning",
                "the last AOF rewrite failed: the append-only file keeps growing",
            ));
        }
    }
    let changes = f(p, "rdb_changes_since_last_save").unwrap_or(0.0);
    let last = f(p, "rdb_last_save_time").unwrap_or(0.0);
    if f(p, "aof_enabled") != Some(1.0) && changes > 0.0 && last > 0.0 && now_s - last >= 3600.0 {
        out.push(finding("warning", format!(
            "{changes:.0} changes since the last save {:.1} h ago, and no append-only file: a crash now loses them",
            (now_s - last) / 3600.0
        )));
    }
    if f(p, "loading") == Some(1.0) {
        out.push(finding("info", "the server is loading its dataset"));
    }
    out
}

/// Findings on replication.
pub fn replication_findings(r: &Map<String, Value>) -> Vec<Value> {
    let mut out = Vec::new();
    match s(r, "role") {
        Some("slave") => {
            if s(r, "master_link_status") != Some("up") {
                out.push(finding(
                    "error",
                    format!(
                        "this replica's link to its master {}:{} is {} (down for {} s)",
                        s(r, "master_host").unwrap_or("?"),
                        r.get("master_port").cloned().unwrap_or_default(),
                        s(r, "master_link_status").unwrap_or("?"),
                        r.get("master_link_down_since_seconds")
                            .cloned()
                            .unwrap_or(json!("?"))
                    ),
                ));
            } else if f(r, "master_last_io_seconds_ago").unwrap_or(0.0) >= 30.0 {
                out.push(finding(
                    "warning",
                    format!(
                        "no data from the master for {} s",
                        f(r, "master_last_io_seconds_ago").unwrap_or(0.0)
                    ),
                ));
            }
            if f(r, "master_sync_in_progress") == Some(1.0) {
                out.push(finding(
                    "info",
                    "a full resynchronization from the master is in progress",
                ));
            }
        }
        Some("master") => {
            for (k, v) in r {
                if !k.starts_with("slave") || !v.is_object() {
                    continue;
                }
                let state = v["state"].as_str().unwrap_or("?");
                if state != "online" {
                    out.push(finding(
                        "warning",
                        format!("replica {} is in state {state}", v["ip"]),
                    ));
                }
                if let Some(lag) = v["lag"].as_i64()
                    && lag >= 10
                {
                    out.push(finding(
                        "warning",
                        format!("replica {}:{} lags {lag} s", v["ip"], v["port"]),
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn info(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let asked = params.str("section").unwrap_or("default");
    let section = info_section(asked)
        .ok_or_else(|| ProbeError::InvalidInput(format!("unknown INFO section {asked:?}")))?;
    session(ctx, async |mut rc: Rc| {
        let sections = parse_info(&rc.info(section).await?);
        let mut findings = Vec::new();
        if let Some(m) = sections.get("memory") {
            findings.extend(memory_findings(m, sections.get("stats")));
        }
        if let Some(p) = sections.get("persistence") {
            findings.extend(persistence_findings(p, now_s()));
        }
        if let Some(r) = sections.get("replication") {
            findings.extend(replication_findings(r));
        }
        Ok(ProbeOutput::new(json!({
            "section": section,
            "sections": sections,
            "findings": findings,
        })))
    })
}

pub fn memory(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, async |mut rc: Rc| {
        let memory = parse_info(&rc.info("memory").await?)
            .remove("memory")
            .unwrap_or_default();
        let stats = parse_info(&rc.info("stats").await?)
            .remove("stats")
            .unwrap_or_default();
        let findings = memory_findings(&memory, Some(&stats));
        let pick = |m: &Map<String, Value>, k: &str| m.get(k).cloned().unwrap_or(Value::Null);
        let used = f(&memory, "used_memory").unwrap_or(0.0);
        let max = f(&memory, "maxmemory").unwrap_or(0.0);
        Ok(ProbeOutput::new(json!({
            "used_bytes": pick(&memory, "used_memory"),
            "rss_bytes": pick(&memory, "used_memory_rss"),
            "peak_bytes": pick(&memory, "used_memory_peak"),
            "dataset_bytes": pick(&memory, "used_memory_dataset"),
            "lua_bytes": pick(&memory, "used_memory_lua"),
            "maxmemory_bytes": pick(&memory, "maxmemory"),
            "maxmemory_policy": pick(&memory, "maxmemory_policy"),
            "maxmemory_percent": if max > 0.0 { json!((1000.0 * used / max).round() / 10.0) } else { Value::Null },
            "fragmentation_ratio": pick(&memory, "mem_fragmentation_ratio"),
            "fragmentation_bytes": pick(&memory, "mem_fragmentation_bytes"),
            "allocator": pick(&memory, "mem_allocator"),
            "active_defrag_running": pick(&memory, "active_defrag_running"),
            "system_memory_bytes": pick(&memory, "total_system_memory"),
            "evicted_keys": pick(&stats, "evicted_keys"),
            "expired_keys": pick(&stats, "expired_keys"),
            "rejected_connections": pick(&stats, "rejected_connections"),
            "findings": findings,
        })))
    })
}

pub fn keyspace(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, async |mut rc: Rc| {
        let ks = parse_info(&rc.info("keyspace").await?)
            .remove("keyspace")
            .unwrap_or_default();
        let stats = parse_info(&rc.info("stats").await?)
            .remove("stats")
            .unwrap_or_default();
        let mut dbs = Vec::new();
        let mut total = 0;
        for (name, v) in &ks {
            let Some(db) = name.strip_prefix("db").and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let keys = v["keys"].as_i64().unwrap_or(0);
            total += keys;
            dbs.push(json!({
                "db": db,
                "keys": keys,
                "expires": v["expires"],
                "avg_ttl_ms": v["avg_ttl"],
            }));
        }
        dbs.sort_by_key(|d| d["db"].as_u64().unwrap_or(0));
        let hits = f(&stats, "keyspace_hits").unwrap_or(0.0);
        let misses = f(&stats, "keyspace_misses").unwrap_or(0.0);
        let mut findings = Vec::new();
        let hit = if hits + misses > 0.0 {
            Some(100.0 * hits / (hits + misses))
        } else {
            None
        };
        if let Some(h) = hit
            && hits + misses >= 10_000.0
            && h < 50.0
        {
            findings.push(finding("info", format!(
                "only {h:.0}% of key lookups find their key (if this is a cache, it is not holding what clients ask for)"
            )));
        }
        Ok(ProbeOutput::new(json!({
            "databases": dbs,
            "total_keys": total,
            "keyspace_hits": stats.get("keyspace_hits"),
            "keyspace_misses": stats.get("keyspace_misses"),
            "hit_percent": hit.map(|h| (h * 10.0).round() / 10.0),
            "expired_keys": stats.get("expired_keys"),
            "evicted_keys": stats.get("evicted_keys"),
            "findings": findings,
        })))
    })
}

pub fn persistence(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, async |mut rc: Rc| {
        let p = parse_info(&rc.info("persistence").await?)
            .remove("persistence")
            .unwrap_or_default();
        let now = now_s();
        let findings = persistence_findings(&p, now);
        let last = f(&p, "rdb_last_save_time");
        Ok(ProbeOutput::new(json!({
            "rdb": {
                "last_save_ms": last.map(|t| (t * 1000.0) as i64),
                "last_save_age_s": last.map(|t| (now - t).max(0.0).round()),
                "changes_since_last_save": p.get("rdb_changes_since_last_save"),
                "bgsave_in_progress": p.get("rdb_bgsave_in_progress"),
                "last_bgsave_status": p.get("rdb_last_bgsave_status"),
                "last_bgsave_duration_s": p.get("rdb_last_bgsave_time_sec"),
            },
            "aof": {
                "enabled": p.get("aof_enabled"),
                "rewrite_in_progress": p.get("aof_rewrite_in_progress"),
                "last_bgrewrite_status": p.get("aof_last_bgrewrite_status"),
                "last_write_status": p.get("aof_last_write_status"),
            },
            "loading": p.get("loading"),
            "fields": p,
            "findings": findings,
        })))
    })
}

pub fn replication(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, async |mut rc: Rc| {
        let r = parse_info(&rc.info("replication").await?)
            .remove("replication")
            .unwrap_or_default();
        let findings = replication_findings(&r);
        let replicas: Vec<&Value> = r
            .iter()
            .filter(|(k, v)| {
                k.starts_with("slave") && k[5..].parse::<u32>().is_ok() && v.is_object()
            })
            .map(|(_, v)| v)
            .collect();
        Ok(ProbeOutput::new(json!({
            "role": r.get("role"),
            "connected_replicas": r.get("connected_slaves"),
            "replicas": replicas,
            "master": if r.get("role").and_then(Value::as_str) == Some("slave") {
                json!({
                    "host": r.get("master_host"),
                    "port": r.get("master_port"),
                    "link_status": r.get("master_link_status"),
                    "last_io_seconds_ago": r.get("master_last_io_seconds_ago"),
                    "sync_in_progress": r.get("master_sync_in_progress"),
                    "link_down_since_seconds": r.get("master_link_down_since_seconds"),
                })
            } else { Value::Null },
            "replication_offset": r.get("master_repl_offset"),
            "fields": r,
            "findings": findings,
        })))
    })
}
