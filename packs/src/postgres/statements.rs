//! `queries.slow`: the statements that cost the most, from
//! `pg_stat_statements` when it is installed; otherwise what to do to get
//! it, and the slow-statement log setting.
//!
//! One query serves PostgreSQL 12 (`total_time`) and 13+
//! (`total_exec_time`): columns are read through `to_jsonb(row)`, so a
//! column that does not exist is NULL rather than an error.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::activity::clean_query;
use super::client::{Pg, int, num, session, text};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

pub const EXTENSION: &str =
    "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements') AS version,
       current_setting('shared_preload_libraries') AS shared_preload_libraries,
       current_setting('log_min_duration_statement') AS log_min_duration_statement,
       current_database() AS database";

/// `$1`: the order (a value of the `order_by` enum, bound); `$2`: the
/// database name or NULL; `$3`: the row limit.
pub const STATEMENTS: &str = "WITH s AS (
  SELECT j, (j->>'userid')::oid AS userid, (j->>'dbid')::oid AS dbid,
         (j->>'calls')::float8 AS calls,
         coalesce((j->>'total_exec_time')::float8, (j->>'total_time')::float8) AS total_ms,
         coalesce((j->>'mean_exec_time')::float8, (j->>'mean_time')::float8) AS mean_ms,
         coalesce((j->>'max_exec_time')::float8, (j->>'max_time')::float8) AS max_ms,
         coalesce((j->>'stddev_exec_time')::float8, (j->>'stddev_time')::float8) AS stddev_ms,
         (j->>'rows')::float8 AS rows,
         (j->>'shared_blks_hit')::float8 AS shared_blks_hit,
         (j->>'shared_blks_read')::float8 AS shared_blks_read,
         (j->>'temp_blks_written')::float8 AS temp_blks_written
    FROM (SELECT to_jsonb(p) AS j FROM pg_stat_statements p) x
), t AS (SELECT sum(total_ms) AS all_ms, sum(calls) AS all_calls FROM s)
SELECT s.j->>'queryid' AS queryid, r.rolname AS user, d.datname AS database,
       s.calls::int8 AS calls, s.total_ms, s.mean_ms, s.max_ms, s.stddev_ms,
       s.rows::int8 AS rows, s.shared_blks_hit::int8 AS shared_blks_hit,
       s.shared_blks_read::int8 AS shared_blks_read,
       s.temp_blks_written::int8 AS temp_blks_written,
       (100 * s.total_ms / nullif(t.all_ms, 0))::float8 AS percent_of_total_time,
       left(s.j->>'query', 4096) AS query
  FROM s CROSS JOIN t
  LEFT JOIN pg_roles r ON r.oid = s.userid
  LEFT JOIN pg_database d ON d.oid = s.dbid
 WHERE ($2::text IS NULL OR d.datname = $2::text)
 ORDER BY CASE $1::text
            WHEN 'total_time' THEN s.total_ms
            WHEN 'mean_time' THEN s.mean_ms
            WHEN 'max_time' THEN s.max_ms
            WHEN 'calls' THEN s.calls
            WHEN 'rows' THEN s.rows
            WHEN 'io' THEN s.shared_blks_read
            WHEN 'temp' THEN s.temp_blks_written
          END DESC NULLS LAST
 LIMIT $3";

pub const TOTALS: &str = "SELECT count(*)::int8 AS statements,
       coalesce(sum(calls), 0)::int8 AS calls
  FROM pg_stat_statements";

/// Findings for the statements read.
pub fn statement_findings(rows: &[Map<String, Value>]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in rows {
        let q = text(r, "query")
            .map(|q| crate::database::clip(q, 160))
            .unwrap_or_default();
        let calls = int(r, "calls").unwrap_or(0);
        let mean = num(r, "mean_ms").unwrap_or(0.0);
        if let Some(share) = num(r, "percent_of_total_time")
            && share >= 50.0
            && calls > 0
        {
            out.push(finding("warning", format!(
                "one statement takes {share:.0}% of all statement time ({calls} calls, {mean:.1} ms each): {q}"
            )));
        }
        if mean >= 1000.0 && calls >= 10 {
            out.push(finding(
                "warning",
                format!("statement averages {mean:.0} ms over {calls} calls: {q}"),
            ));
        }
        if int(r, "temp_blks_written").unwrap_or(0) > 100_000 {
            out.push(finding("info", format!(
                "statement spills to temporary files ({} blocks written; work_mem may be too small for it): {q}",
                int(r, "temp_blks_written").unwrap_or(0)
            )));
        }
    }
    out
}

pub fn slow(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let order = params.str("order_by").unwrap_or("total_time").to_owned();
    let database = params.str("database").map(str::to_owned);
    let limit = params.i64("limit").unwrap_or(20);
    session(ctx, None, async |pg: Pg| {
        let ext = pg.row(EXTENSION, &[]).await.map_err(|e| pg.fail(e))?;
        let preloaded = text(&ext, "shared_preload_libraries")
            .is_some_and(|l| l.split(',').any(|x| x.trim() == "pg_stat_statements"));
        let unavailable = |why: String| {
            ProbeOutput::from_serialize(
                &json!({
                    "available": false,
                    "log_min_duration_statement": ext.get("log_min_duration_statement"),
                    "statements": [],
                    "findings": [finding("info", why)],
                }),
                false,
            )
        };
        if ext.get("version").is_none_or(Value::is_null) {
            let db = text(&ext, "database").unwrap_or("postgres");
            return unavailable(if preloaded {
                format!(
                    "pg_stat_statements is loaded but not created in database {db}: run `CREATE EXTENSION pg_stat_statements;` there as a superuser (the pack reads it from the database of its DSN)"
                )
            } else {
                "pg_stat_statements is not installed: add it to shared_preload_libraries in postgresql.conf, restart PostgreSQL, then `CREATE EXTENSION pg_stat_statements;` in the DSN's database. Until then, log_min_duration_statement logs slow statements to the server log".into()
            });
        }
        let rows = match pg.rows(STATEMENTS, &[&order, &database, &limit]).await {
            Ok(rows) => rows,
            Err(e)
                if e.code()
                    == Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) =>
            {
                return unavailable("pg_stat_statements is created but not loaded: add it to shared_preload_libraries in postgresql.conf and restart PostgreSQL".into());
            }
            Err(e) => return Err(pg.fail(e)),
        };
        let mut rows = rows;
        for r in &mut rows {
            clean_query(r);
        }
        let totals = pg.row(TOTALS, &[]).await.map_err(|e| pg.fail(e))?;
        let findings = statement_findings(&rows);
        Ok(ProbeOutput::new(json!({
            "available": true,
            "extension_version": ext.get("version"),
            "order_by": order,
            "statements": rows,
            "totals": totals,
            "log_min_duration_statement": ext.get("log_min_duration_statement"),
            "findings": findings,
        })))
    })
}
