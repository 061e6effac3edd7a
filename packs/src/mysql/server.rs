//! `server.info` (version, uptime, the variables that matter, derived
//! health figures from the status counters) and `status.variables` (any
//! status counter or server variable, by name).

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;

use super::client::{My, session};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

pub const STATUS: &str = "SHOW GLOBAL STATUS";
pub const VARIABLES: &str = "SHOW GLOBAL VARIABLES";
pub const QUERIES: &[&str] = &[STATUS, VARIABLES];

/// The variables an operator asks about first.
pub const KEY_VARIABLES: &[&str] = &[
    "version",
    "version_comment",
    "hostname",
    "port",
    "socket",
    "datadir",
    "read_only",
    "super_read_only",
    "max_connections",
    "max_user_connections",
    "thread_cache_size",
    "innodb_buffer_pool_size",
    "innodb_log_file_size",
    "innodb_flush_log_at_trx_commit",
    "innodb_file_per_table",
    "sync_binlog",
    "log_bin",
    "binlog_format",
    "server_id",
    "gtid_mode",
    "gtid_strict_mode",
    "slow_query_log",
    "long_query_time",
    "performance_schema",
    "max_allowed_packet",
    "wait_timeout",
    "table_open_cache",
    "open_files_limit",
    "tmp_table_size",
    "max_heap_table_size",
    "query_cache_type",
    "query_cache_size",
    "character_set_server",
    "collation_server",
    "time_zone",
    "sql_mode",
];

/// The status counters shown by `server.info`.
pub const KEY_STATUS: &[&str] = &[
    "Uptime",
    "Threads_connected",
    "Threads_running",
    "Threads_created",
    "Max_used_connections",
    "Connections",
    "Aborted_connects",
    "Aborted_clients",
    "Questions",
    "Slow_queries",
    "Com_select",
    "Com_insert",
    "Com_update",
    "Com_delete",
    "Innodb_buffer_pool_read_requests",
    "Innodb_buffer_pool_reads",
    "Innodb_buffer_pool_pages_total",
    "Innodb_buffer_pool_pages_free",
    "Innodb_buffer_pool_pages_dirty",
    "Innodb_row_lock_waits",
    "Innodb_row_lock_time",
    "Innodb_deadlocks",
    "Created_tmp_tables",
    "Created_tmp_disk_tables",
    "Select_full_join",
    "Sort_merge_passes",
    "Table_locks_waited",
    "Open_tables",
    "Opened_tables",
    "Open_files",
    "Bytes_received",
    "Bytes_sent",
];

/// `SHOW` output as a name → value map.
pub fn name_values(rows: &[Map<String, Value>]) -> BTreeMap<String, String> {
    rows.iter()
        .filter_map(|r| {
            let name = r.get("Variable_name")?.as_str()?.to_owned();
            let value = match r.get("Value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            Some((name, value))
        })
        .collect()
}

fn as_f64(map: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    map.get(key).and_then(|v| v.parse().ok())
}

/// A value as a JSON number when it is one.
fn typed(value: &str) -> Value {
    value
        .parse::<i64>()
        .map(Value::from)
        .or_else(|_| value.parse::<u64>().map(Value::from))
        .unwrap_or_else(|_| Value::from(value))
}

/// Derived figures and findings from status counters and variables.
pub fn health(
    status: &BTreeMap<String, String>,
    vars: &BTreeMap<String, String>,
) -> (Map<String, Value>, Vec<Value>) {
    let mut derived = Map::new();
    let mut findings = Vec::new();
    let max = as_f64(vars, "max_connections").unwrap_or(0.0);
    let connected = as_f64(status, "Threads_connected").unwrap_or(0.0);
    let max_used = as_f64(status, "Max_used_connections").unwrap_or(0.0);
    if max > 0.0 {
        let pct = 100.0 * connected / max;
        derived.insert(
            "connections_percent".into(),
            json!((pct * 10.0).round() / 10.0),
        );
        derived.insert(
            "max_used_connections_percent".into(),
            json!((1000.0 * max_used / max).round() / 10.0),
        );
        if pct >= 90.0 {
            findings.push(finding("error", format!(
                "{connected:.0} of max_connections {max:.0} connections in use ({pct:.0}%): new clients will be refused"
            )));
        } else if pct >= 75.0 {
            findings.push(finding(
                "warning",
                format!(
                    "{connected:.0} of max_connections {max:.0} connections in use ({pct:.0}%)"
                ),
            ));
        } else if max_used >= max {
            findings.push(finding("warning", format!(
                "connections reached max_connections ({max:.0}) since the server started: clients were probably refused"
            )));
        }
    }
    let running = as_f64(status, "Threads_running").unwrap_or(0.0);
    if running >= 32.0 {
        findings.push(finding("warning", format!(
            "{running:.0} threads running at once: the server is saturated or queries pile up behind locks (see processlist)"
        )));
    }
    let requests = as_f64(status, "Innodb_buffer_pool_read_requests").unwrap_or(0.0);
    let disk = as_f64(status, "Innodb_buffer_pool_reads").unwrap_or(0.0);
    if requests > 0.0 {
        let hit = 100.0 * (1.0 - disk / requests);
        derived.insert(
            "buffer_pool_hit_percent".into(),
            json!((hit * 100.0).round() / 100.0),
        );
        if requests >= 1_000_000.0 && hit < 95.0 {
            findings.push(finding("warning", format!(
                "the InnoDB buffer pool serves only {hit:.1}% of reads from memory: innodb_buffer_pool_size may be too small for the working set"
            )));
        }
    }
    let uptime = as_f64(status, "Uptime").unwrap_or(0.0);
    let slow = as_f64(status, "Slow_queries").unwrap_or(0.0);
    let questions = as_f64(status, "Questions").unwrap_or(0.0);
    if uptime > 0.0 {
        derived.insert(
            "queries_per_second".into(),
            json!((100.0 * questions / uptime).round() / 100.0),
        );
    }
    derived.insert("slow_queries".into(), json!(slow));
    if slow > 0.0 {
        findings.push(finding("info", format!(
            "{slow:.0} statements took longer than long_query_time ({} s) since the server started; queries.digest shows which (performance_schema)",
            vars.get("long_query_time").map(String::as_str).unwrap_or("?")
        )));
    }
    let tmp = as_f64(status, "Created_tmp_tables").unwrap_or(0.0);
    let tmp_disk = as_f64(status, "Created_tmp_disk_tables").unwrap_or(0.0);
    if tmp > 0.0 {
        let pct = 100.0 * tmp_disk / tmp;
        derived.insert(
            "tmp_tables_on_disk_percent".into(),
            json!((pct * 10.0).round() / 10.0),
        );
        if tmp >= 1000.0 && pct >= 25.0 {
            findings.push(finding("info", format!(
                "{pct:.0}% of temporary tables go to disk: tmp_table_size/max_heap_table_size may be too small, or queries sort TEXT/BLOB columns"
            )));
        }
    }
    let connections = as_f64(status, "Connections").unwrap_or(0.0);
    let aborted = as_f64(status, "Aborted_connects").unwrap_or(0.0);
    if connections >= 100.0 && aborted / connections >= 0.1 {
        findings.push(finding("warning", format!(
            "{aborted:.0} of {connections:.0} connection attempts failed (bad passwords, missing grants, or timeouts)"
        )));
    }
    if vars.get("read_only").is_some_and(|v| v == "ON") {
        findings.push(finding(
            "info",
            "the server is read_only (a replica, or writes are being kept out)",
        ));
    }
    if vars
        .get("innodb_flush_log_at_trx_commit")
        .is_some_and(|v| v != "1")
    {
        findings.push(finding("info", format!(
            "innodb_flush_log_at_trx_commit = {}: up to a second of committed transactions can be lost in a crash",
            vars["innodb_flush_log_at_trx_commit"]
        )));
    }
    (derived, findings)
}

pub fn info(ctx: &ProbeContext<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    session(ctx, async |mut my: My| {
        let status = name_values(&my.query(STATUS).await.map_err(|e| my.fail(e))?);
        let vars = name_values(&my.query(VARIABLES).await.map_err(|e| my.fail(e))?);
        let (derived, findings) = health(&status, &vars);
        let pick = |map: &BTreeMap<String, String>, keys: &[&str]| -> Map<String, Value> {
            keys.iter()
                .filter_map(|k| map.get(*k).map(|v| ((*k).to_owned(), typed(v))))
                .collect()
        };
        Ok(ProbeOutput::new(json!({
            "version": my.version,
            "version_comment": my.version_comment,
            "flavor": if my.mariadb { "mariadb" } else { "mysql" },
            "connected_as": my.account,
            "uptime_s": as_f64(&status, "Uptime"),
            "variables": pick(&vars, KEY_VARIABLES),
            "status": pick(&status, KEY_STATUS),
            "derived": derived,
            "findings": findings,
        })))
    })
}

pub fn status_variables(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let kind = params.str("kind").unwrap_or("status").to_owned();
    let name = params.str("name").map(str::to_ascii_lowercase);
    let limit = usize::try_from(params.i64("limit").unwrap_or(200)).unwrap_or(200);
    session(ctx, async |mut my: My| {
        let sql = if kind == "variables" {
            VARIABLES
        } else {
            STATUS
        };
        let all = name_values(&my.query(sql).await.map_err(|e| my.fail(e))?);
        let matching: Vec<(&String, &String)> = all
            .iter()
            .filter(|(k, _)| {
                name.as_ref()
                    .is_none_or(|n| k.to_ascii_lowercase().contains(n))
            })
            .collect();
        let total = matching.len();
        let values: Map<String, Value> = matching
            .into_iter()
            .take(limit)
            .map(|(k, v)| (k.clone(), typed(v)))
            .collect();
        Ok(ProbeOutput {
            data: json!({"kind": kind, "values": values, "matching": total}),
            truncated: total > limit,
        })
    })
}
