//! `databases.list` (sizes, activity counters, transaction-id wraparound
//! age and what holds the oldest xmin back) and `tables.health` (per
//! table: dead rows and their estimated space, vacuum and analyze age,
//! freeze age; measured bloat through `pgstattuple_approx` when asked and
//! installed; vacuums in progress).

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::activity::clean_query;
use super::client::{Pg, int, num, session, text};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// Transaction ids are 32-bit and compared modulo 2^31: at an age of
/// 2^31 the server would stop; it refuses writes a few million before.
pub const WRAPAROUND_AT: f64 = 2_147_483_648.0;

pub const DATABASES: &str = "SELECT d.datname AS name,
       CASE WHEN has_database_privilege(d.oid, 'CONNECT')
              OR pg_has_role('pg_read_all_stats', 'MEMBER')
            THEN pg_database_size(d.oid)::int8 END AS size_bytes,
       pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collation,
       d.datallowconn AS allow_connections, d.datconnlimit::int8 AS connection_limit,
       d.datistemplate AS is_template,
       age(d.datfrozenxid)::int8 AS xid_age, mxid_age(d.datminmxid)::int8 AS multixact_age,
       s.numbackends::int8 AS connections, s.xact_commit::int8 AS commits,
       s.xact_rollback::int8 AS rollbacks, s.blks_read::int8 AS blocks_read,
       s.blks_hit::int8 AS blocks_hit, s.deadlocks::int8 AS deadlocks,
       s.temp_files::int8 AS temp_files, s.temp_bytes::int8 AS temp_bytes,
       s.conflicts::int8 AS conflicts, s.checksum_failures::int8 AS checksum_failures,
       (extract(epoch FROM s.stats_reset) * 1000)::int8 AS stats_reset_ms
  FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
 ORDER BY 2 DESC NULLS LAST, d.datname
 LIMIT 1000";

pub const FREEZE: &str = "SELECT current_setting('autovacuum_freeze_max_age')::int8 AS autovacuum_freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::int8 AS autovacuum_multixact_freeze_max_age";

/// What keeps the oldest transaction ids alive (and so vacuum from
/// freezing them): sessions, prepared transactions, replication slots.
pub const XMIN_HOLDERS: &str = "SELECT * FROM (
  SELECT 'session' AS kind, a.pid::text AS id, a.usename AS owner, a.datname AS database,
         age(a.backend_xmin)::int8 AS xmin_age, a.state AS state,
         extract(epoch FROM now() - a.xact_start)::float8 AS age_s
    FROM pg_stat_activity a
   WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_backend_pid()
  UNION ALL
  SELECT 'prepared_transaction', p.gid, p.owner, p.database, age(p.transaction)::int8,
         NULL, extract(epoch FROM now() - p.prepared)::float8
    FROM pg_prepared_xacts p
  UNION ALL
  SELECT 'replication_slot', r.slot_name, NULL, r.database,
         greatest(age(r.xmin), age(r.catalog_xmin))::int8,
         CASE WHEN r.active THEN 'active' ELSE 'inactive' END, NULL
    FROM pg_replication_slots r
   WHERE r.xmin IS NOT NULL OR r.catalog_xmin IS NOT NULL
) h ORDER BY xmin_age DESC NULLS LAST LIMIT 10";

fn pct(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        0.0
    } else {
        (part / whole * 1000.0).round() / 10.0
    }
}

/// Adds derived figures to each database and returns the findings.
pub fn database_findings(
    dbs: &mut [Map<String, Value>],
    freeze: &Map<String, Value>,
    holders: &[Map<String, Value>],
) -> Vec<Value> {
    let freeze_max = num(freeze, "autovacuum_freeze_max_age").unwrap_or(200_000_000.0);
    let mut out = Vec::new();
    for db in dbs.iter_mut() {
        let name = text(db, "name").unwrap_or("?").to_owned();
        let age = num(db, "xid_age").unwrap_or(0.0);
        let wrap = pct(age, WRAPAROUND_AT);
        db.insert("wraparound_percent".into(), json!(wrap));
        let hit = num(db, "blocks_hit").unwrap_or(0.0);
        let read = num(db, "blocks_read").unwrap_or(0.0);
        let hit_ratio = (hit + read > 0.0).then(|| pct(hit, hit + read));
        db.insert("cache_hit_percent".into(), json!(hit_ratio));
        if wrap >= 75.0 {
            out.push(finding("error", format!(
                "database {name}: transaction id age {age:.0} is {wrap}% of the way to wraparound; the server will refuse writes near 100%: find what holds the oldest xmin (see xmin_holders) and VACUUM (FREEZE) the oldest tables"
            )));
        } else if wrap >= 50.0 {
            out.push(finding("warning", format!(
                "database {name}: transaction id age {age:.0} is {wrap}% of the way to wraparound"
            )));
        } else if age > freeze_max * 1.5 && !db.get("allow_connections").is_some_and(|v| v == false)
        {
            out.push(finding("warning", format!(
                "database {name}: transaction id age {age:.0} is well past autovacuum_freeze_max_age ({freeze_max:.0}): autovacuum is not keeping up with freezing"
            )));
        }
        if let Some(m) = num(db, "multixact_age")
            && m > freeze_max * 2.0
        {
            out.push(finding("warning", format!(
                "database {name}: multixact age {m:.0} is high: multixact wraparound also stops writes"
            )));
        }
        if int(db, "checksum_failures").unwrap_or(0) > 0 {
            out.push(finding(
                "error",
                format!(
                    "database {name}: {} data checksum failure(s): storage is corrupting pages",
                    int(db, "checksum_failures").unwrap_or(0)
                ),
            ));
        }
        if int(db, "deadlocks").unwrap_or(0) > 0 {
            out.push(finding(
                "info",
                format!(
                    "database {name}: {} deadlock(s) since statistics were reset",
                    int(db, "deadlocks").unwrap_or(0)
                ),
            ));
        }
        if let Some(h) = hit_ratio
            && h < 90.0
            && read > 100_000.0
        {
            out.push(finding(
                "info",
                format!("database {name}: only {h}% of block reads come from shared buffers"),
            ));
        }
    }
    for h in holders {
        let age_s = num(h, "age_s").unwrap_or(0.0);
        let xmin_age = num(h, "xmin_age").unwrap_or(0.0);
        let id = text(h, "id").unwrap_or("?");
        match text(h, "kind") {
            Some("prepared_transaction") if age_s >= 3600.0 => out.push(finding("warning", format!(
                "prepared transaction {id:?} has been waiting for COMMIT PREPARED / ROLLBACK PREPARED for {age_s:.0} s: it holds locks and the xmin horizon"
            ))),
            Some("replication_slot") if text(h, "state") == Some("inactive") && xmin_age > 1_000_000.0 => out.push(finding("warning", format!(
                "inactive replication slot {id:?} holds the xmin horizon back by {xmin_age:.0} transactions: drop it if its consumer is gone"
            ))),
            Some("session") if age_s >= 3600.0 => out.push(finding("warning", format!(
                "session {id} has held a snapshot for {age_s:.0} s (xmin age {xmin_age:.0}): vacuum cannot remove rows newer than it"
            ))),
            _ => {}
        }
    }
    out
}

pub fn list(ctx: &ProbeContext<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    session(ctx, None, async |pg: Pg| {
        let mut dbs = pg.rows(DATABASES, &[]).await.map_err(|e| pg.fail(e))?;
        let freeze = pg.row(FREEZE, &[]).await.map_err(|e| pg.fail(e))?;
        let holders = pg.rows(XMIN_HOLDERS, &[]).await.map_err(|e| pg.fail(e))?;
        let findings = database_findings(&mut dbs, &freeze, &holders);
        let total: i64 = dbs.iter().filter_map(|d| int(d, "size_bytes")).sum();
        Ok(ProbeOutput::new(json!({
            "databases": dbs,
            "count": dbs.len(),
            "total_size_bytes": total,
            "autovacuum_freeze_max_age": freeze.get("autovacuum_freeze_max_age"),
            "xmin_holders": holders,
            "findings": findings,
        })))
    })
}

/// Per-table health, ordered by `$1` (a name from the `order_by` enum,
/// bound, never SQL), at most `$2` rows.
pub const TABLES: &str = "SELECT s.schemaname AS schema, s.relname AS table, s.relid::int8 AS relid,
       pg_total_relation_size(s.relid)::int8 AS total_bytes,
       pg_relation_size(s.relid)::int8 AS table_bytes,
       s.n_live_tup::int8 AS live_rows, s.n_dead_tup::int8 AS dead_rows,
       s.n_mod_since_analyze::int8 AS modified_since_analyze,
       (extract(epoch FROM s.last_vacuum) * 1000)::int8 AS last_vacuum_ms,
       (extract(epoch FROM s.last_autovacuum) * 1000)::int8 AS last_autovacuum_ms,
       (extract(epoch FROM s.last_analyze) * 1000)::int8 AS last_analyze_ms,
       (extract(epoch FROM s.last_autoanalyze) * 1000)::int8 AS last_autoanalyze_ms,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8 AS vacuum_age_s,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 AS analyze_age_s,
       s.vacuum_count::int8 AS vacuum_count, s.autovacuum_count::int8 AS autovacuum_count,
       s.analyze_count::int8 AS analyze_count, s.autoanalyze_count::int8 AS autoanalyze_count,
       age(c.relfrozenxid)::int8 AS xid_age,
       (current_setting('autovacuum_vacuum_threshold')::float8
        + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0))::float8
         AS autovacuum_threshold_rows,
       array_to_string(c.reloptions, ', ') AS options
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
 ORDER BY CASE $1::text
            WHEN 'dead_rows' THEN s.n_dead_tup::float8
            WHEN 'dead_ratio' THEN s.n_dead_tup::float8 / greatest(s.n_live_tup + s.n_dead_tup, 1)
            WHEN 'size' THEN pg_total_relation_size(s.relid)::float8
            WHEN 'xid_age' THEN age(c.relfrozenxid)::float8
            WHEN 'vacuum_age' THEN coalesce(extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8, 1e18)
          END DESC NULLS LAST, s.schemaname, s.relname
 LIMIT $2";

pub const TABLE_COUNT: &str = "SELECT count(*)::int8 AS tables,
       coalesce(sum(n_dead_tup), 0)::int8 AS dead_rows,
       coalesce(sum(n_live_tup), 0)::int8 AS live_rows
  FROM pg_stat_user_tables";

pub const VACUUMS: &str = "SELECT p.pid, p.datname AS database,
       CASE WHEN p.datname = current_database() THEN p.relid::regclass::text ELSE p.relid::text END AS table,
       p.phase, p.heap_blks_total::int8 AS heap_blocks_total,
       p.heap_blks_scanned::int8 AS heap_blocks_scanned,
       p.heap_blks_vacuumed::int8 AS heap_blocks_vacuumed,
       p.index_vacuum_count::int8 AS index_vacuum_count,
       extract(epoch FROM now() - a.xact_start)::float8 AS running_s,
       left(a.query, 4096) AS query
  FROM pg_stat_progress_vacuum p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
 LIMIT 100";

pub const CURRENT_DATABASE: &str = "SELECT current_database() AS name";

pub const HAS_PGSTATTUPLE: &str =
    "SELECT count(*)::int8 AS n FROM pg_extension WHERE extname = 'pgstattuple'";

/// Measured (approximately: pages all-visible are estimated) space use of
/// one table; `$1` is a relid this probe read from the catalog.
pub const MEASURE: &str =
    "SELECT table_len::int8 AS table_bytes, scanned_percent::float8 AS scanned_percent,
       approx_tuple_percent::float8 AS live_percent,
       dead_tuple_count::int8 AS dead_rows, dead_tuple_len::int8 AS dead_bytes,
       dead_tuple_percent::float8 AS dead_percent,
       approx_free_space::int8 AS free_bytes, approx_free_percent::float8 AS free_percent
  FROM pgstattuple_approx($1::int8::oid::regclass)";

/// Adds derived figures to each table and returns the findings.
pub fn table_findings(tables: &mut [Map<String, Value>], freeze_max: f64) -> Vec<Value> {
    let mut out = Vec::new();
    for t in tables.iter_mut() {
        let name = format!(
            "{}.{}",
            text(t, "schema").unwrap_or("?"),
            text(t, "table").unwrap_or("?")
        );
        let live = num(t, "live_rows").unwrap_or(0.0);
        let dead = num(t, "dead_rows").unwrap_or(0.0);
        let ratio = pct(dead, live + dead);
        let bytes = num(t, "table_bytes").unwrap_or(0.0);
        // Dead rows take about their share of the heap.
        let dead_bytes = if live + dead > 0.0 {
            (bytes * dead / (live + dead)).round()
        } else {
            0.0
        };
        t.insert("dead_percent".into(), json!(ratio));
        t.insert("dead_bytes_estimate".into(), json!(dead_bytes as i64));
        let threshold = num(t, "autovacuum_threshold_rows").unwrap_or(f64::MAX);
        t.insert("needs_vacuum".into(), json!(dead > threshold));
        if dead >= 10_000.0 && ratio >= 20.0 {
            let since = num(t, "vacuum_age_s")
                .map(|s| format!("last vacuumed {s:.0} s ago"))
                .unwrap_or_else(|| "never vacuumed".into());
            out.push(finding("warning", format!(
                "table {name}: {dead:.0} dead rows ({ratio}% of its rows, about {} MiB), {since}{}",
                (dead_bytes / 1_048_576.0).round(),
                if dead > threshold { "; over the autovacuum threshold, so autovacuum should be on it (check for long transactions or a busy autovacuum)" } else { "" }
            )));
        }
        let xid_age = num(t, "xid_age").unwrap_or(0.0);
        if xid_age > freeze_max {
            out.push(finding("warning", format!(
                "table {name}: transaction id age {xid_age:.0} is past autovacuum_freeze_max_age ({freeze_max:.0}): an anti-wraparound vacuum is due or running"
            )));
        }
        if live >= 1000.0
            && t.get("last_analyze_ms").is_some_and(Value::is_null)
            && t.get("last_autoanalyze_ms").is_some_and(Value::is_null)
        {
            out.push(finding(
                "info",
                format!("table {name} has never been analyzed: the planner guesses its row counts"),
            ));
        }
        if let Some(m) = t.get("measured").and_then(Value::as_object) {
            let free = m.get("free_percent").and_then(Value::as_f64).unwrap_or(0.0);
            let dead_pct = m.get("dead_percent").and_then(Value::as_f64).unwrap_or(0.0);
            if free + dead_pct >= 30.0 && bytes >= 100.0 * 1_048_576.0 {
                out.push(finding("warning", format!(
                    "table {name} is bloated: {free}% free space and {dead_pct}% dead rows in {} MiB (VACUUM reclaims dead rows; only VACUUM FULL or pg_repack gives space back)",
                    (bytes / 1_048_576.0).round()
                )));
            }
        }
    }
    out
}

pub fn tables(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let database = params.str("database").map(str::to_owned);
    let order = params.str("order_by").unwrap_or("dead_rows").to_owned();
    let limit = params.i64("limit").unwrap_or(20);
    let measure = params.bool("measure").unwrap_or(false);
    session(ctx, database.as_deref(), async |pg: Pg| {
        let mut tables = pg
            .rows(TABLES, &[&order, &limit])
            .await
            .map_err(|e| pg.fail(e))?;
        let totals = pg.row(TABLE_COUNT, &[]).await.map_err(|e| pg.fail(e))?;
        let freeze = pg.row(FREEZE, &[]).await.map_err(|e| pg.fail(e))?;
        let mut vacuums = pg.rows(VACUUMS, &[]).await.map_err(|e| pg.fail(e))?;
        for v in &mut vacuums {
            clean_query(v);
        }
        let mut notes = Vec::new();
        // A top-N list is complete by design (`totals` says how many tables
        // there are); only a measurement cut short by the deadline is partial.
        let mut truncated = false;
        if measure {
            let has = pg.row(HAS_PGSTATTUPLE, &[]).await.map_err(|e| pg.fail(e))?;
            if int(&has, "n") == Some(0) {
                notes.push("measure: the pgstattuple extension is not installed in this database (`CREATE EXTENSION pgstattuple;` as a superuser); the figures are estimates from the statistics".to_owned());
            } else {
                for t in tables.iter_mut() {
                    if ctx.time_left() < std::time::Duration::from_secs(2) {
                        notes.push("measure: stopped before the deadline; the remaining tables are not measured".into());
                        truncated = true;
                        break;
                    }
                    let Some(relid) = int(t, "relid") else {
                        continue;
                    };
                    match pg.row(MEASURE, &[&relid]).await {
                        Ok(m) => {
                            t.insert("measured".into(), Value::Object(m));
                        }
                        Err(e) => {
                            let err = pg.fail(e);
                            notes.push(format!("measure: {err}"));
                            if matches!(err, ProbeError::Denied(_) | ProbeError::Timeout) {
                                break;
                            }
                        }
                    }
                }
            }
        }
        let freeze_max = num(&freeze, "autovacuum_freeze_max_age").unwrap_or(200_000_000.0);
        let mut findings = table_findings(&mut tables, freeze_max);
        for v in &vacuums {
            if text(v, "query").is_some_and(|q| q.contains("wraparound")) {
                findings.push(finding(
                    "warning",
                    format!(
                        "an anti-wraparound autovacuum is running on {} in {}",
                        text(v, "table").unwrap_or("?"),
                        text(v, "database").unwrap_or("?")
                    ),
                ));
            }
        }
        let db = pg
            .row(CURRENT_DATABASE, &[])
            .await
            .map_err(|e| pg.fail(e))?;
        ProbeOutput::from_serialize(
            &json!({
                "database": db.get("name"),
                "order_by": order,
                "tables": tables,
                "totals": totals,
                "vacuums_running": vacuums,
                "autovacuum_freeze_max_age": freeze.get("autovacuum_freeze_max_age"),
                "notes": notes,
                "findings": findings,
            }),
            truncated,
        )
    })
}
