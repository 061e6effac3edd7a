//! Sessions: `connections.list` (who is connected, in what state, waiting
//! on what, against `max_connections`), `locks.blocking` (who blocks whom,
//! as chains from the root blocker) and `queries.running` (the longest
//! running statements and open transactions).
//!
//! Statement texts are redacted ([`redact_sql_secrets`]) and cut to
//! [`QUERY_CHARS`] characters. Name filters compare against the scrubbed
//! names (what the caller will see).

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::collections::{BTreeMap, BTreeSet};

use super::client::{Pg, int, num, session, text};
use crate::database::{clip, redact_sql_secrets};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// Longest statement text returned, in characters.
pub const QUERY_CHARS: usize = 2000;
/// Most sessions read from `pg_stat_activity`.
pub const MAX_SESSIONS: i64 = 10_000;

/// Every session but ours. `blocked_by` is computed only for sessions that
/// wait on a lock (`pg_blocking_pids` is not free).
pub const SESSIONS: &str = "SELECT a.pid, a.usename AS user, a.datname AS database,
       a.application_name AS application,
       CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr)
            WHEN a.client_port = -1 THEN 'local' END AS client,
       a.backend_type, a.state, a.wait_event_type, a.wait_event,
       (extract(epoch FROM a.backend_start) * 1000)::int8 AS backend_start_ms,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_age_s,
       extract(epoch FROM now() - a.query_start)::float8 AS query_age_s,
       extract(epoch FROM now() - a.state_change)::float8 AS state_age_s,
       age(a.backend_xmin)::int8 AS xmin_age,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blocked_by,
       left(a.query, 4096) AS query
  FROM pg_stat_activity a
 WHERE a.pid <> pg_backend_pid()
 ORDER BY a.backend_start NULLS FIRST
 LIMIT $1";

pub const LIMITS: &str = "SELECT current_setting('max_connections')::int8 AS max_connections,
       current_setting('superuser_reserved_connections')::int8 AS superuser_reserved_connections";

/// The locks sessions are waiting for.
pub const WAITING_LOCKS: &str = "SELECT l.pid, l.locktype, l.mode,
       CASE WHEN l.relation IS NULL THEN NULL
            WHEN l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              THEN l.relation::regclass::text
            ELSE l.relation::text END AS relation,
       l.transactionid::text AS transaction_id, l.virtualxid AS virtual_xid,
       (SELECT datname FROM pg_database d WHERE d.oid = l.database) AS database
  FROM pg_locks l WHERE NOT l.granted LIMIT 1000";

/// Reads every session (bounded), with texts redacted and cut.
async fn sessions(pg: &Pg) -> Result<(Vec<Map<String, Value>>, bool), ProbeError> {
    let mut rows = pg
        .rows(SESSIONS, &[&(MAX_SESSIONS + 1)])
        .await
        .map_err(|e| pg.fail(e))?;
    let truncated = rows.len() as i64 > MAX_SESSIONS;
    rows.truncate(MAX_SESSIONS as usize);
    for r in &mut rows {
        clean_query(r);
    }
    Ok((rows, truncated))
}

/// Redacts credentials in `query` and cuts it.
pub fn clean_query(row: &mut Map<String, Value>) {
    if let Some(Value::String(q)) = row.get_mut("query") {
        let clean = clip(&redact_sql_secrets(q), QUERY_CHARS);
        *q = clean;
    }
}

fn is_client(row: &Map<String, Value>) -> bool {
    text(row, "backend_type") == Some("client backend")
}

/// The state filter of `connections.list`.
fn state_matches(row: &Map<String, Value>, state: &str) -> bool {
    let s = text(row, "state").unwrap_or("");
    match state {
        "all" => true,
        "non_idle" => is_client(row) && s != "idle",
        "active" => s == "active",
        "idle" => s == "idle",
        "idle_in_transaction" => s.starts_with("idle in transaction"),
        "waiting" => text(row, "wait_event_type") == Some("Lock"),
        _ => false,
    }
}

fn count_by(rows: &[&Map<String, Value>], key: &str) -> Value {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        let k = text(r, key).unwrap_or("(none)").to_owned();
        *counts.entry(k).or_default() += 1;
    }
    json!(counts)
}

/// Connection counts, usage of `max_connections`, and findings.
pub fn summarise_connections(rows: &[Map<String, Value>], limits: &Map<String, Value>) -> Value {
    let clients: Vec<&Map<String, Value>> = rows.iter().filter(|r| is_client(r)).collect();
    // Our own session counts against the limit too.
    let used = clients.len() as i64 + 1;
    let max = int(limits, "max_connections").unwrap_or(0);
    let reserved = int(limits, "superuser_reserved_connections").unwrap_or(0);
    let available = (max - reserved).max(1);
    let usage_percent = (used as f64 / available as f64 * 1000.0).round() / 10.0;
    let mut findings = Vec::new();
    if usage_percent >= 95.0 {
        findings.push(finding(
            "error",
            format!("{used} of {available} connection slots are in use ({usage_percent}%): new connections will soon be refused"),
        ));
    } else if usage_percent >= 80.0 {
        findings.push(finding(
            "warning",
            format!("{used} of {available} connection slots are in use ({usage_percent}%)"),
        ));
    }
    let idle_tx: Vec<&&Map<String, Value>> = clients
        .iter()
        .filter(|r| text(r, "state").is_some_and(|s| s.starts_with("idle in transaction")))
        .filter(|r| num(r, "state_age_s").unwrap_or(0.0) >= 300.0)
        .collect();
    for r in idle_tx.iter().take(5) {
        findings.push(finding(
            "warning",
            format!(
                "session {} ({} on {}, {}) has been idle in transaction for {:.0} s: it holds its locks and keeps vacuum from removing rows",
                int(r, "pid").unwrap_or(0),
                text(r, "user").unwrap_or("?"),
                text(r, "database").unwrap_or("?"),
                text(r, "application").filter(|a| !a.is_empty()).unwrap_or("no application name"),
                num(r, "state_age_s").unwrap_or(0.0)
            ),
        ));
    }
    let waiting = rows
        .iter()
        .filter(|r| text(r, "wait_event_type") == Some("Lock"))
        .count();
    if waiting > 0 {
        findings.push(finding(
            "warning",
            format!("{waiting} session(s) wait for a lock: see locks.blocking for who blocks them"),
        ));
    }
    json!({
        "max_connections": max,
        "superuser_reserved_connections": reserved,
        "client_connections": used,
        "usage_percent": usage_percent,
        "by_state": count_by(&clients, "state"),
        "by_database": count_by(&clients, "database"),
        "by_user": count_by(&clients, "user"),
        "by_client": count_by(&clients, "client"),
        "by_wait_event_type": count_by(&clients, "wait_event_type"),
        "other_backends": count_by(&rows.iter().filter(|r| !is_client(r)).collect::<Vec<_>>(), "backend_type"),
        "findings": findings,
    })
}

pub fn connections(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let state = params.str("state").unwrap_or("non_idle").to_owned();
    let database = params.str("database").map(str::to_owned);
    let user = params.str("user").map(str::to_owned);
    let limit = params.i64("limit").unwrap_or(100).max(1) as usize;
    session(ctx, None, async |pg: Pg| {
        let limits = pg.row(LIMITS, &[]).await.map_err(|e| pg.fail(e))?;
        let (rows, cut) = sessions(&pg).await?;
        let mut summary = summarise_connections(&rows, &limits);
        let scrubbed_is = |row: &Map<String, Value>, key: &str, want: &Option<String>| match want {
            None => true,
            Some(w) => text(row, key).is_some_and(|v| ctx.secrets.scrub_str(v) == w.as_str()),
        };
        let selected: Vec<&Map<String, Value>> = rows
            .iter()
            .filter(|r| state_matches(r, &state))
            .filter(|r| scrubbed_is(r, "database", &database))
            .filter(|r| scrubbed_is(r, "user", &user))
            .collect();
        let truncated = cut || selected.len() > limit;
        let listed: Vec<Value> = selected
            .iter()
            .take(limit)
            .map(|r| {
                let mut r = (*r).clone();
                r.remove("blocked_by");
                Value::Object(r)
            })
            .collect();
        summary["matching"] = json!(selected.len());
        summary["sessions"] = Value::Array(listed);
        ProbeOutput::from_serialize(&summary, truncated)
    })
}

/// Blocked sessions, their blockers, and the chains from each root
/// blocker (a blocker that waits for nobody), with findings.
pub fn blocking_report(rows: &[Map<String, Value>], locks: &[Map<String, Value>]) -> Value {
    let by_pid: BTreeMap<i64, &Map<String, Value>> = rows
        .iter()
        .filter_map(|r| Some((int(r, "pid")?, r)))
        .collect();
    let blocked_by = |pid: i64| -> Vec<i64> {
        by_pid
            .get(&pid)
            .and_then(|r| r.get("blocked_by"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default()
    };
    // Who each pid directly blocks.
    let mut blocks: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &pid in by_pid.keys() {
        for b in blocked_by(pid) {
            blocks.entry(b).or_default().push(pid);
        }
    }
    let waiting_for = |pid: i64| -> Value {
        locks
            .iter()
            .find(|l| int(l, "pid") == Some(pid))
            .map(|l| {
                let mut l = l.clone();
                l.remove("pid");
                Value::Object(l)
            })
            .unwrap_or(Value::Null)
    };
    let describe = |pid: i64| -> Value {
        let r = by_pid.get(&pid);
        let get = |k: &str| r.and_then(|r| r.get(k)).cloned().unwrap_or(Value::Null);
        json!({
            "pid": pid,
            "user": get("user"),
            "database": get("database"),
            "application": get("application"),
            "client": get("client"),
            "state": get("state"),
            "wait_event_type": get("wait_event_type"),
            "wait_event": get("wait_event"),
            "xact_age_s": get("xact_age_s"),
            "state_age_s": get("state_age_s"),
            "query": get("query"),
        })
    };
    // Everyone a pid blocks, directly or not (cycles stop the walk).
    let all_blocked = |root: i64| -> BTreeSet<i64> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(p) = stack.pop() {
            for &c in blocks.get(&p).map(Vec::as_slice).unwrap_or_default() {
                if c != root && seen.insert(c) {
                    stack.push(c);
                }
            }
        }
        seen
    };
    fn tree(
        pid: i64,
        blocks: &BTreeMap<i64, Vec<i64>>,
        path: &mut Vec<i64>,
        depth: usize,
    ) -> Value {
        let mut children = Vec::new();
        if depth < 16 {
            for &c in blocks.get(&pid).map(Vec::as_slice).unwrap_or_default() {
                if path.contains(&c) {
                    continue;
                }
                path.push(c);
                children.push(tree(c, blocks, path, depth + 1));
                path.pop();
            }
        }
        json!({"pid": pid, "blocks": children})
    }
    let blocked: Vec<Value> = by_pid
        .keys()
        .filter(|p| !blocked_by(**p).is_empty())
        .map(|&p| {
            let mut d = describe(p);
            d["blocked_by"] = json!(blocked_by(p));
            d["waiting_for"] = waiting_for(p);
            d["wait_s"] = by_pid
                .get(&p)
                .and_then(|r| r.get("state_age_s"))
                .cloned()
                .unwrap_or(Value::Null);
            d
        })
        .collect();
    let mut roots: Vec<i64> = blocks
        .keys()
        .copied()
        .filter(|b| blocked_by(*b).is_empty())
        .collect();
    // A cycle (a deadlock the server has not broken yet) has no root:
    // its lowest pid stands for it.
    let mut reached: BTreeSet<i64> = roots
        .iter()
        .flat_map(|r| all_blocked(*r).into_iter().chain([*r]))
        .collect();
    for &b in blocks.keys() {
        if !reached.contains(&b) {
            roots.push(b);
            reached.insert(b);
            reached.extend(all_blocked(b));
        }
    }
    roots.sort_by_key(|r| std::cmp::Reverse(all_blocked(*r).len()));
    let mut findings = Vec::new();
    let mut blockers = Vec::new();
    let mut chains = Vec::new();
    for &root in &roots {
        let victims = all_blocked(root);
        let longest_wait = victims
            .iter()
            .filter_map(|v| by_pid.get(v).and_then(|r| num(r, "state_age_s")))
            .fold(0.0_f64, f64::max);
        let r = by_pid.get(&root);
        let state = r.and_then(|r| text(r, "state")).unwrap_or("?");
        let severity = if longest_wait >= 60.0 {
            "error"
        } else {
            "warning"
        };
        findings.push(finding(
            severity,
            format!(
                "session {root} ({} on {}, {}, state {state:?}{}) blocks {} session(s), the longest waiting {:.0} s; its last statement: {}",
                r.and_then(|r| text(r, "user")).unwrap_or("?"),
                r.and_then(|r| text(r, "database")).unwrap_or("?"),
                r.and_then(|r| text(r, "application")).filter(|a| !a.is_empty()).unwrap_or("no application name"),
                r.and_then(|r| num(r, "xact_age_s")).map(|a| format!(", transaction open {a:.0} s")).unwrap_or_default(),
                victims.len(),
                longest_wait,
                r.and_then(|r| text(r, "query")).map(|q| clip(q, 200)).unwrap_or_default(),
            ),
        ));
        let mut d = describe(root);
        d["blocks_directly"] = json!(blocks.get(&root).map(Vec::len).unwrap_or(0));
        d["blocks_total"] = json!(victims.len());
        d["longest_wait_s"] = json!(longest_wait);
        blockers.push(d);
        chains.push(tree(root, &blocks, &mut vec![root], 0));
    }
    json!({
        "blocked": blocked,
        "blockers": blockers,
        "chains": chains,
        "counts": {"blocked": blocked.len(), "root_blockers": roots.len()},
        "findings": findings,
    })
}

pub fn blocking(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, None, async |pg: Pg| {
        let (rows, cut) = sessions(&pg).await?;
        let locks = pg.rows(WAITING_LOCKS, &[]).await.map_err(|e| pg.fail(e))?;
        ProbeOutput::from_serialize(&blocking_report(&rows, &locks), cut)
    })
}

/// Active statements and open transactions older than `$1` seconds,
/// oldest first.
pub const RUNNING: &str = "SELECT a.pid, a.usename AS user, a.datname AS database,
       a.application_name AS application,
       CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr)
            WHEN a.client_port = -1 THEN 'local' END AS client,
       a.backend_type, a.state, a.wait_event_type, a.wait_event,
       extract(epoch FROM now() - a.query_start)::float8 AS query_age_s,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_age_s,
       extract(epoch FROM now() - a.state_change)::float8 AS state_age_s,
       age(a.backend_xmin)::int8 AS xmin_age,
       left(a.query, 4096) AS query
  FROM pg_stat_activity a
 WHERE a.pid <> pg_backend_pid()
   AND ((a.state = 'active' AND a.query_start <= now() - make_interval(secs => $1::float8))
     OR ($2::bool AND a.state LIKE 'idle in transaction%'
         AND a.xact_start <= now() - make_interval(secs => $1::float8)))
 ORDER BY least(a.query_start, a.xact_start) ASC NULLS LAST
 LIMIT $3";

/// Findings for long statements and transactions.
pub fn running_findings(rows: &[Map<String, Value>]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in rows {
        let pid = int(r, "pid").unwrap_or(0);
        let who = format!(
            "{} on {}",
            text(r, "user").unwrap_or("?"),
            text(r, "database").unwrap_or("?")
        );
        let query = text(r, "query").map(|q| clip(q, 200)).unwrap_or_default();
        let state = text(r, "state").unwrap_or("");
        if text(r, "backend_type") == Some("autovacuum worker") {
            if query.contains("wraparound") {
                out.push(finding(
                    "warning",
                    format!("autovacuum (pid {pid}) is running to prevent transaction id wraparound: {query}"),
                ));
            }
            continue;
        }
        if state == "active" {
            let age = num(r, "query_age_s").unwrap_or(0.0);
            if age >= 300.0 {
                out.push(finding(
                    if age >= 3600.0 { "error" } else { "warning" },
                    format!("statement of session {pid} ({who}) has run for {age:.0} s: {query}"),
                ));
            }
        } else if state.starts_with("idle in transaction") {
            let age = num(r, "xact_age_s").unwrap_or(0.0);
            if age >= 300.0 {
                out.push(finding(
                    "warning",
                    format!("session {pid} ({who}) has kept a transaction open for {age:.0} s while idle; last statement: {query}"),
                ));
            }
        }
    }
    out
}

pub fn running(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let min = params.i64("min_duration_s").unwrap_or(5) as f64;
    let idle_tx = params.bool("include_idle_in_transaction").unwrap_or(true);
    let limit = params.i64("limit").unwrap_or(50);
    session(ctx, None, async |pg: Pg| {
        let mut rows = pg
            .rows(RUNNING, &[&min, &idle_tx, &(limit + 1)])
            .await
            .map_err(|e| pg.fail(e))?;
        let truncated = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        for r in &mut rows {
            clean_query(r);
        }
        let findings = running_findings(&rows);
        ProbeOutput::from_serialize(
            &json!({
                "min_duration_s": min,
                "queries": rows,
                "count": rows.len(),
                "findings": findings,
            }),
            truncated,
        )
    })
}
