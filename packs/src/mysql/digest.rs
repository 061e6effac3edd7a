//! `queries.digest`: the statements that cost the most, from
//! `performance_schema.events_statements_summary_by_digest` (normalized
//! texts: literals are `?`), or how to turn that on.

use serde_json::json;
use sonde_protocol::schema::ValidatedParams;

use super::client::{My, codes, num, server_code, session, text};
use super::processes::clean_query;
use crate::database::clip;
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

pub const PERFORMANCE_SCHEMA: &str = "SELECT @@GLOBAL.performance_schema AS enabled, @@GLOBAL.slow_query_log AS slow_query_log, @@GLOBAL.long_query_time AS long_query_time";

/// `?`s: the order (an enum value, bound), the schema (or NULL, twice),
/// the limit. Timers are picoseconds.
pub const DIGESTS: &str = "SELECT SCHEMA_NAME AS db, DIGEST AS digest, COUNT_STAR AS calls,
       ROUND(SUM_TIMER_WAIT / 1000000000, 3) AS total_ms,
       ROUND(AVG_TIMER_WAIT / 1000000000, 3) AS mean_ms,
       ROUND(MAX_TIMER_WAIT / 1000000000, 3) AS max_ms,
       ROUND(SUM_LOCK_TIME / 1000000000, 3) AS lock_ms,
       SUM_ROWS_EXAMINED AS rows_examined, SUM_ROWS_SENT AS rows_sent, SUM_ROWS_AFFECTED AS rows_affected,
       SUM_NO_INDEX_USED AS no_index_used, SUM_CREATED_TMP_DISK_TABLES AS tmp_disk_tables,
       SUM_ERRORS AS errors, CAST(FIRST_SEEN AS CHAR) AS first_seen, CAST(LAST_SEEN AS CHAR) AS last_seen,
       ROUND(100 * SUM_TIMER_WAIT / NULLIF((SELECT SUM(SUM_TIMER_WAIT) FROM performance_schema.events_statements_summary_by_digest), 0), 2) AS percent_of_total_time,
       LEFT(DIGEST_TEXT, 4096) AS query
  FROM performance_schema.events_statements_summary_by_digest
 WHERE DIGEST IS NOT NULL AND (? IS NULL OR SCHEMA_NAME = ?)
 ORDER BY CASE ?
            WHEN 'total_time' THEN SUM_TIMER_WAIT
            WHEN 'mean_time' THEN AVG_TIMER_WAIT
            WHEN 'max_time' THEN MAX_TIMER_WAIT
            WHEN 'calls' THEN COUNT_STAR
            WHEN 'rows_examined' THEN SUM_ROWS_EXAMINED
            WHEN 'no_index' THEN SUM_NO_INDEX_USED
            WHEN 'errors' THEN SUM_ERRORS
          END DESC
 LIMIT ?";

pub const QUERIES: &[&str] = &[PERFORMANCE_SCHEMA, DIGESTS];

pub fn digest(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let order = params.str("order_by").unwrap_or("total_time").to_owned();
    let db = params.str("database").map(str::to_owned);
    let limit = params.i64("limit").unwrap_or(20);
    session(ctx, async |mut my: My| {
        let ps = my.first(PERFORMANCE_SCHEMA).await.map_err(|e| my.fail(e))?;
        let unavailable = |why: String| {
            ProbeOutput::new(json!({
                "available": false,
                "slow_query_log": ps.get("slow_query_log"),
                "long_query_time": ps.get("long_query_time"),
                "statements": [],
                "findings": [finding("info", why)],
            }))
        };
        if num(&ps, "enabled") != Some(1.0) {
            return Ok(unavailable(
                "performance_schema is off: set `performance_schema = ON` in the server's configuration ([mysqld] section) and restart it; until then the slow query log (slow_query_log, long_query_time) is where slow statements go".into(),
            ));
        }
        let mut rows = match my
            .exec(DIGESTS, (db.clone(), db.clone(), order.clone(), limit))
            .await
        {
            Ok(r) => r,
            Err(e)
                if matches!(
                    server_code(&e),
                    Some(codes::TABLE_ACCESS_DENIED | codes::DB_ACCESS_DENIED)
                ) =>
            {
                return Ok(unavailable(format!(
                    "this account may not read performance_schema: `GRANT SELECT ON performance_schema.* TO {};`",
                    my.account
                )));
            }
            Err(e) => return Err(my.fail(e)),
        };
        let mut findings = Vec::new();
        for r in &mut rows {
            clean_query(r);
            let q = clip(text(r, "query").unwrap_or(""), 160);
            let calls = num(r, "calls").unwrap_or(0.0);
            let mean = num(r, "mean_ms").unwrap_or(0.0);
            if num(r, "percent_of_total_time").unwrap_or(0.0) >= 50.0 && calls > 0.0 {
                findings.push(finding("warning", format!(
                    "one statement takes {:.0}% of all statement time ({calls:.0} calls, {mean:.1} ms each): {q}",
                    num(r, "percent_of_total_time").unwrap_or(0.0)
                )));
            }
            if mean >= 1000.0 && calls >= 10.0 {
                findings.push(finding(
                    "warning",
                    format!("statement averages {mean:.0} ms over {calls:.0} calls: {q}"),
                ));
            }
            let no_index = num(r, "no_index_used").unwrap_or(0.0);
            if no_index >= 100.0 && no_index >= calls * 0.5 {
                findings.push(finding(
                    "info",
                    format!(
                        "statement runs without an index ({no_index:.0} of {calls:.0} calls): {q}"
                    ),
                ));
            }
        }
        let truncated = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
        Ok(ProbeOutput {
            data: json!({
                "available": true,
                "order_by": order,
                "statements": rows,
                "slow_query_log": ps.get("slow_query_log"),
                "long_query_time": ps.get("long_query_time"),
                "findings": findings,
            }),
            truncated,
        })
    })
}
