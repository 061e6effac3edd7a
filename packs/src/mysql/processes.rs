//! `processlist` (who is connected and what they run) and `innodb.status`
//! (open transactions, who waits for whose locks, and the summary of
//! `SHOW ENGINE INNODB STATUS`: history list, checkpoint age, the latest
//! deadlock). Statement texts have credentials redacted and are cut.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;

use super::client::{My, codes, num, server_code, session, text};
use crate::database::{clip, redact_sql_secrets};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// `?`s: minimum time, include sleeping (0/1), user (or NULL, twice),
/// limit.
pub const PROCESSLIST: &str =
    "SELECT ID AS id, USER AS user, HOST AS host, DB AS db, COMMAND AS command,
       TIME AS time_s, STATE AS state, LEFT(INFO, 4096) AS query
  FROM information_schema.PROCESSLIST
 WHERE ID <> CONNECTION_ID() AND TIME >= ? AND (? = 1 OR COMMAND <> 'Sleep')
   AND (? IS NULL OR USER = ?)
 ORDER BY TIME DESC, ID LIMIT ?";

pub const PROCESS_COUNTS: &str = "SELECT USER AS user, COMMAND AS command, COUNT(*) AS n
  FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()
 GROUP BY USER, COMMAND LIMIT 10000";

pub const TRANSACTIONS: &str = "SELECT CAST(trx_id AS CHAR) AS trx_id, trx_state AS state, CAST(trx_started AS CHAR) AS started,
       TIMESTAMPDIFF(SECOND, trx_started, NOW()) AS age_s,
       trx_mysql_thread_id AS thread_id, LEFT(trx_query, 4096) AS query,
       trx_operation_state AS operation, trx_tables_locked AS tables_locked,
       trx_rows_locked AS rows_locked, trx_rows_modified AS rows_modified,
       trx_isolation_level AS isolation,
       TIMESTAMPDIFF(SECOND, trx_wait_started, NOW()) AS wait_s
  FROM information_schema.INNODB_TRX ORDER BY trx_started LIMIT 200";

/// MariaDB (and MySQL 5.7).
pub const LOCK_WAITS_IS: &str =
    "SELECT CAST(requesting_trx_id AS CHAR) AS waiting, CAST(blocking_trx_id AS CHAR) AS blocking
  FROM information_schema.INNODB_LOCK_WAITS LIMIT 1000";
/// MySQL 8.
pub const LOCK_WAITS_PS: &str = "SELECT CAST(REQUESTING_ENGINE_TRANSACTION_ID AS CHAR) AS waiting, CAST(BLOCKING_ENGINE_TRANSACTION_ID AS CHAR) AS blocking
  FROM performance_schema.data_lock_waits LIMIT 1000";

pub const ENGINE_STATUS: &str = "SHOW ENGINE INNODB STATUS";

pub const QUERIES: &[&str] = &[
    PROCESSLIST,
    PROCESS_COUNTS,
    TRANSACTIONS,
    LOCK_WAITS_IS,
    LOCK_WAITS_PS,
    ENGINE_STATUS,
];

/// Redacts and cuts the `query` field.
pub fn clean_query(row: &mut Map<String, Value>) {
    if let Some(Value::String(q)) = row.get_mut("query") {
        *q = clip(&redact_sql_secrets(q), 2000);
    }
}

pub fn processlist(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let min_time = params.i64("min_time_s").unwrap_or(0);
    let sleeping = i64::from(params.bool("include_sleeping").unwrap_or(false));
    let user = params.str("user").map(str::to_owned);
    let limit = params.i64("limit").unwrap_or(100);
    session(ctx, async |mut my: My| {
        let mut rows = my
            .exec(
                PROCESSLIST,
                (min_time, sleeping, user.clone(), user.clone(), limit),
            )
            .await
            .map_err(|e| my.fail(e))?;
        for r in &mut rows {
            clean_query(r);
        }
        let counts = my.query(PROCESS_COUNTS).await.map_err(|e| my.fail(e))?;
        let mut by_command: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_user: BTreeMap<String, i64> = BTreeMap::new();
        for c in &counts {
            let n = num(c, "n").unwrap_or(0.0) as i64;
            *by_command
                .entry(text(c, "command").unwrap_or("?").to_owned())
                .or_default() += n;
            *by_user
                .entry(text(c, "user").unwrap_or("?").to_owned())
                .or_default() += n;
        }
        let total: i64 = by_command.values().sum();
        let mut findings = Vec::new();
        let mut locked = 0;
        for r in &rows {
            let state = text(r, "state").unwrap_or("");
            let t = num(r, "time_s").unwrap_or(0.0);
            if state.contains("lock") && !state.is_empty() {
                locked += 1;
            }
            if text(r, "command") == Some("Query") && t >= 60.0 && !is_replication_thread(r) {
                findings.push(finding(
                    if t >= 600.0 { "error" } else { "warning" },
                    format!(
                        "thread {} ({}@{}) has run one statement for {t:.0} s: {}",
                        r.get("id").cloned().unwrap_or_default(),
                        text(r, "user").unwrap_or("?"),
                        text(r, "host").unwrap_or("?"),
                        clip(text(r, "query").unwrap_or(""), 160)
                    ),
                ));
            }
        }
        if locked > 0 {
            findings.push(finding("warning", format!(
                "{locked} thread(s) wait for a lock (state mentions a lock): innodb.status shows who holds it"
            )));
        }
        if !my.account.is_empty() && total <= 1 && rows.is_empty() {
            findings.push(finding("info", format!(
                "only this account's threads are visible: without the PROCESS privilege an account sees its own threads only ({})",
                super::client::grant_hint(my.account.split('@').next().unwrap_or("sonde"))
            )));
        }
        let truncated = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
        Ok(ProbeOutput {
            data: json!({
                "threads_total": total,
                "by_command": by_command,
                "by_user": by_user,
                "threads": rows,
                "count": rows.len(),
                "findings": findings,
            }),
            truncated,
        })
    })
}

fn is_replication_thread(r: &Map<String, Value>) -> bool {
    text(r, "user") == Some("system user")
        || matches!(
            text(r, "command"),
            Some("Binlog Dump" | "Binlog Dump GTID" | "Slave_IO" | "Slave_SQL" | "Slave_worker")
        )
}

/// The sections of `SHOW ENGINE INNODB STATUS` (title → text).
pub fn sections(status: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = status.lines().collect();
    let rule = |l: &str| l.len() >= 3 && l.bytes().all(|b| b == b'-' || b == b'=');
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    let mut i = 0;
    while i < lines.len() {
        if i + 2 < lines.len() && rule(lines[i]) && !rule(lines[i + 1]) && rule(lines[i + 2]) {
            if let Some((title, body)) = current.take() {
                out.insert(title, body.join("\n").trim().to_owned());
            }
            current = Some((lines[i + 1].trim().to_owned(), Vec::new()));
            i += 3;
            continue;
        }
        if let Some((_, body)) = current.as_mut() {
            body.push(lines[i]);
        }
        i += 1;
    }
    if let Some((title, body)) = current {
        out.insert(title, body.join("\n").trim().to_owned());
    }
    out
}

/// The first integer after `label` in `text`.
fn number_after(text: &str, label: &str) -> Option<i64> {
    let at = text.find(label)? + label.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())?
        .parse()
        .ok()
}

/// Key figures of the engine status text.
pub fn engine_summary(status: &str) -> Map<String, Value> {
    let s = sections(status);
    let mut out = Map::new();
    let all = status;
    out.insert(
        "history_list_length".into(),
        json!(number_after(all, "History list length")),
    );
    let lsn = number_after(all, "Log sequence number");
    let checkpoint = number_after(all, "Last checkpoint at");
    out.insert("log_sequence_number".into(), json!(lsn));
    out.insert("last_checkpoint".into(), json!(checkpoint));
    if let (Some(l), Some(c)) = (lsn, checkpoint) {
        out.insert("checkpoint_age_bytes".into(), json!(l - c));
    }
    out.insert(
        "pending_reads".into(),
        json!(number_after(all, "Pending normal aio reads:")),
    );
    out.insert(
        "semaphore_waits".into(),
        json!(all.matches("has waited at").count()),
    );
    let deadlock = s.get("LATEST DETECTED DEADLOCK").map(|d| {
        json!({
            "when": d.lines().next().unwrap_or("").trim(),
            "text": clip(&redact_sql_secrets(d), 6000),
        })
    });
    out.insert("latest_deadlock".into(), deadlock.unwrap_or(Value::Null));
    let fk = s
        .get("LATEST FOREIGN KEY ERROR")
        .map(|d| clip(&redact_sql_secrets(d), 3000));
    out.insert("latest_foreign_key_error".into(), json!(fk));
    out.insert("sections".into(), json!(s.keys().collect::<Vec<_>>()));
    out
}

pub fn innodb(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, async |mut my: My| {
        let mut trx = my.query(TRANSACTIONS).await.map_err(|e| my.fail(e))?;
        for t in &mut trx {
            clean_query(t);
        }
        let waits = match my.query(LOCK_WAITS_IS).await {
            Ok(w) => w,
            Err(e)
                if matches!(
                    server_code(&e),
                    Some(codes::UNKNOWN_TABLE | codes::NO_SUCH_TABLE)
                ) =>
            {
                my.query(LOCK_WAITS_PS).await.map_err(|e| my.fail(e))?
            }
            Err(e) => return Err(my.fail(e)),
        };
        let status = my.first(ENGINE_STATUS).await.map_err(|e| my.fail(e))?;
        let engine = engine_summary(text(&status, "Status").unwrap_or(""));
        // Who blocks whom, by transaction id.
        let thread_of: BTreeMap<String, Value> = trx
            .iter()
            .filter_map(|t| Some((text(t, "trx_id")?.to_owned(), t.get("thread_id")?.clone())))
            .collect();
        let mut blocked_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for w in &waits {
            if let (Some(a), Some(b)) = (text(w, "waiting"), text(w, "blocking")) {
                let list = blocked_by.entry(a.to_owned()).or_default();
                if !list.iter().any(|x| x == b) {
                    list.push(b.to_owned());
                }
            }
        }
        let mut blockers: BTreeMap<String, usize> = BTreeMap::new();
        for t in &mut trx {
            let id = text(t, "trx_id").unwrap_or("").to_owned();
            let by = blocked_by.get(&id).cloned().unwrap_or_default();
            for b in &by {
                *blockers.entry(b.clone()).or_default() += 1;
            }
            let threads: Vec<Value> = by
                .iter()
                .filter_map(|b| thread_of.get(b).cloned())
                .collect();
            t.insert("blocked_by_trx".into(), json!(by));
            t.insert("blocked_by_thread".into(), json!(threads));
        }
        let mut findings = Vec::new();
        for (b, n) in &blockers {
            let t = trx.iter().find(|t| text(t, "trx_id") == Some(b.as_str()));
            let (thread, age, query) = t.map_or((Value::Null, 0.0, ""), |t| {
                (
                    t.get("thread_id").cloned().unwrap_or_default(),
                    num(t, "age_s").unwrap_or(0.0),
                    text(t, "query").unwrap_or(""),
                )
            });
            findings.push(finding("warning", format!(
                "transaction {b} (thread {thread}, open {age:.0} s{}) blocks {n} transaction(s); `KILL {thread}` would release its locks",
                if query.is_empty() { ", idle".to_owned() } else { format!(", running {}", clip(query, 120)) }
            )));
        }
        for t in &trx {
            let age = num(t, "age_s").unwrap_or(0.0);
            if age >= 600.0 {
                findings.push(finding("warning", format!(
                    "transaction {} (thread {}) has been open for {age:.0} s: it holds its locks and keeps purge from cleaning up",
                    text(t, "trx_id").unwrap_or("?"),
                    t.get("thread_id").cloned().unwrap_or_default()
                )));
            }
        }
        if let Some(h) = engine.get("history_list_length").and_then(Value::as_i64)
            && h >= 1_000_000
        {
            findings.push(finding(
                "warning",
                format!(
                    "history list length {h}: purge is far behind (usually a long-open transaction)"
                ),
            ));
        }
        if let Some(when) = engine.get("latest_deadlock").and_then(|d| d.get("when")) {
            findings.push(finding(
                "info",
                format!(
                    "the latest deadlock was at {}: see latest_deadlock",
                    when.as_str().unwrap_or("?")
                ),
            ));
        }
        Ok(ProbeOutput::new(json!({
            "transactions": trx,
            "lock_waits": waits.len(),
            "engine": engine,
            "findings": findings,
        })))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn engine_status_sections_are_found() {
        let status = "\n=====================================\n2024-01-01 00:00:00 INNODB MONITOR OUTPUT\n=====================================\nPer second averages\n------------------------\nLATEST DETECTED DEADLOCK\n------------------------\n2024-01-01 00:00:00 0x7f\n*** (1) TRANSACTION:\nALTER USER x IDENTIFIED BY 'pw'\n------------\nTRANSACTIONS\n------------\nTrx id counter 1234\nHistory list length 42\n---\nLOG\n---\nLog sequence number 5000\nLast checkpoint at  4000\n";
        let s = engine_summary(status);
        assert_eq!(s["history_list_length"], 42);
        assert_eq!(s["checkpoint_age_bytes"], 1000);
        assert_eq!(s["latest_deadlock"]["when"], "2024-01-01 00:00:00 0x7f");
        assert!(!Value::Object(s.clone()).to_string().contains("'pw'"));
        assert!(
            s["latest_deadlock"]["text"]
                .as_str()
                .unwrap()
                .contains("[REDACTED]")
        );
    }
}
