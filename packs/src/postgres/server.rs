//! `server.info` (version, uptime, role, the settings that matter) and
//! `settings.list` (any setting, changed ones by default).

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::client::{Pg, session, text};
use crate::database::{clip, redact_sql_secrets};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// The settings an operator asks about first.
pub const KEY_SETTINGS: &[&str] = &[
    "max_connections",
    "superuser_reserved_connections",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "wal_level",
    "max_wal_size",
    "min_wal_size",
    "checkpoint_timeout",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "archive_mode",
    "max_wal_senders",
    "max_replication_slots",
    "wal_keep_size",
    "hot_standby",
    "hot_standby_feedback",
    "synchronous_standby_names",
    "autovacuum",
    "autovacuum_max_workers",
    "autovacuum_naptime",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor",
    "autovacuum_freeze_max_age",
    "track_counts",
    "track_io_timing",
    "track_activity_query_size",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "lock_timeout",
    "deadlock_timeout",
    "log_min_duration_statement",
    "log_lock_waits",
    "shared_preload_libraries",
    "max_parallel_workers",
    "random_page_cost",
    "huge_pages",
    "listen_addresses",
    "port",
    "data_directory",
    "ssl",
    "password_encryption",
];

pub const SERVER: &str = "SELECT version() AS version,
       current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int8 AS server_version_num,
       (extract(epoch FROM pg_postmaster_start_time()) * 1000)::int8 AS started_ms,
       extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_s,
       (extract(epoch FROM pg_conf_load_time()) * 1000)::int8 AS config_loaded_ms,
       pg_is_in_recovery() AS in_recovery,
       current_user AS connected_as,
       current_database() AS database,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pg_has_role(current_user, 'pg_monitor', 'MEMBER') AS has_pg_monitor,
       (SELECT count(*) FROM pg_database WHERE NOT datistemplate)::int8 AS databases,
       (SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart) AS pending_restart";

/// Settings our own session changed (startup options, SET) are marked:
/// they show the session's value, not the server's.
pub const SETTINGS_BY_NAME: &str =
    "SELECT name, setting, unit, current_setting(name) AS value, source,
       pending_restart, context, short_desc AS description,
       source IN ('client', 'session') AS set_by_this_session
  FROM pg_settings WHERE name = ANY($1) ORDER BY name";

pub const SETTINGS_LIST: &str =
    "SELECT name, setting, unit, current_setting(name) AS value, category, source,
       sourcefile AS file, sourceline::int8 AS line, pending_restart, context,
       boot_val AS default_value, short_desc AS description,
       source IN ('client', 'session') AS set_by_this_session
  FROM pg_settings
 WHERE ($1::text IS NULL OR strpos(lower(name), lower($1::text)) > 0)
   AND (NOT $2::bool OR source NOT IN ('default', 'override', 'client', 'session'))
 ORDER BY name LIMIT $3";

/// Findings about the server and its key settings.
pub fn server_findings(server: &Map<String, Value>, settings: &Map<String, Value>) -> Vec<Value> {
    let mut out = Vec::new();
    let value = |name: &str| settings.get(name).and_then(|s| s["value"].as_str());
    if value("fsync") == Some("off") {
        out.push(finding(
            "error",
            "fsync is off: a crash or power loss can corrupt the database",
        ));
    }
    if value("full_page_writes") == Some("off") {
        out.push(finding(
            "warning",
            "full_page_writes is off: a crash can leave torn pages",
        ));
    }
    if value("autovacuum") == Some("off") {
        out.push(finding(
            "warning",
            "autovacuum is off: dead rows pile up and transaction ids are not frozen (wraparound risk)",
        ));
    }
    if value("track_counts") == Some("off") {
        out.push(finding(
            "warning",
            "track_counts is off: autovacuum cannot work and table statistics are empty",
        ));
    }
    if let Some(names) = text(server, "pending_restart") {
        out.push(finding(
            "warning",
            format!("settings changed but waiting for a restart: {names}"),
        ));
    }
    if server.get("has_pg_monitor") == Some(&Value::Bool(false))
        && server.get("superuser") != Some(&Value::Bool(true))
    {
        out.push(finding(
            "warning",
            format!(
                "the pack's role {} is not a member of pg_monitor: other sessions' queries, sizes and replication details are hidden (`GRANT pg_monitor TO {};`)",
                text(server, "connected_as").unwrap_or("?"),
                text(server, "connected_as").unwrap_or("sonde")
            ),
        ));
    }
    if server.get("in_recovery") == Some(&Value::Bool(true)) {
        out.push(finding(
            "info",
            "this server is a standby (in recovery): see replication.status for its lag",
        ));
    }
    out
}

async fn key_settings(pg: &Pg) -> Result<Map<String, Value>, ProbeError> {
    let rows = pg
        .rows(SETTINGS_BY_NAME, &[&KEY_SETTINGS])
        .await
        .map_err(|e| pg.fail(e))?;
    Ok(rows
        .into_iter()
        .filter_map(|mut r| {
            let name = r.remove("name")?.as_str()?.to_owned();
            Some((name, Value::Object(r)))
        })
        .collect())
}

pub fn info(ctx: &ProbeContext<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    session(ctx, None, async |pg: Pg| {
        let mut server = pg.row(SERVER, &[]).await.map_err(|e| pg.fail(e))?;
        let settings = key_settings(&pg).await?;
        let findings = server_findings(&server, &settings);
        let pending: Vec<Value> = text(&server, "pending_restart")
            .map(|s| s.split(", ").map(|n| json!(n)).collect())
            .unwrap_or_default();
        server.insert("pending_restart".into(), Value::Array(pending));
        server.insert("settings".into(), Value::Object(settings));
        server.insert("findings".into(), Value::Array(findings));
        Ok(ProbeOutput::new(Value::Object(server)))
    })
}

/// `primary_conninfo` and friends may hold a password.
fn redact_setting(row: &mut Map<String, Value>) {
    for key in ["setting", "value", "default_value"] {
        if let Some(Value::String(s)) = row.get_mut(key) {
            let clean = redact_sql_secrets(s).into_owned();
            *s = clip(&clean, 2000);
        }
    }
}

pub fn settings(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let name = params.str("name").map(str::to_owned);
    let changed_only = params.bool("changed_only").unwrap_or(true);
    let limit = params.i64("limit").unwrap_or(500);
    session(ctx, None, async |pg: Pg| {
        let mut rows = pg
            .rows(SETTINGS_LIST, &[&name, &changed_only, &(limit + 1)])
            .await
            .map_err(|e| pg.fail(e))?;
        let truncated = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        for r in &mut rows {
            redact_setting(r);
        }
        let pending: Vec<&str> = rows
            .iter()
            .filter(|r| r.get("pending_restart") == Some(&Value::Bool(true)))
            .filter_map(|r| text(r, "name"))
            .collect();
        let findings: Vec<Value> = if pending.is_empty() {
            Vec::new()
        } else {
            vec![finding(
                "warning",
                format!(
                    "settings changed but waiting for a restart: {}",
                    pending.join(", ")
                ),
            )]
        };
        let count = rows.len();
        ProbeOutput::from_serialize(
            &json!({
                "settings": rows,
                "count": count,
                "changed_only": changed_only,
                "findings": findings,
            }),
            truncated,
        )
    })
}
