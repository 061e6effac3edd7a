//! `replication.status`: on a primary, each standby's state and lag (bytes
//! and time) and the WAL archiver; on a standby, what it received and
//! replayed and its WAL receiver; on both, replication slots and the WAL
//! they retain.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::client::{Pg, int, num, session, text};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

pub const ROLE: &str = "SELECT pg_is_in_recovery() AS in_recovery";

/// Standbys of this server (a primary, or a cascading standby).
pub const STANDBYS: &str = "SELECT r.pid, r.usename AS user, r.application_name AS name,
       host(r.client_addr) AS client, r.state, r.sync_state, r.sync_priority::int8 AS sync_priority,
       r.sent_lsn::text AS sent_lsn, r.write_lsn::text AS write_lsn,
       r.flush_lsn::text AS flush_lsn, r.replay_lsn::text AS replay_lsn,
       pg_wal_lsn_diff(w.lsn, r.sent_lsn)::int8 AS send_lag_bytes,
       pg_wal_lsn_diff(w.lsn, r.flush_lsn)::int8 AS flush_lag_bytes,
       pg_wal_lsn_diff(w.lsn, r.replay_lsn)::int8 AS replay_lag_bytes,
       extract(epoch FROM r.write_lag)::float8 AS write_lag_s,
       extract(epoch FROM r.flush_lag)::float8 AS flush_lag_s,
       extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s,
       (extract(epoch FROM r.backend_start) * 1000)::int8 AS connected_since_ms,
       extract(epoch FROM now() - r.reply_time)::float8 AS last_reply_age_s
  FROM pg_stat_replication r
 CROSS JOIN (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                         ELSE pg_current_wal_lsn() END AS lsn) w
 ORDER BY r.application_name LIMIT 100";

pub const SLOTS: &str = "SELECT s.slot_name AS name, s.slot_type AS type, s.plugin, s.database,
       s.active, s.active_pid::int8 AS active_pid, s.temporary,
       s.restart_lsn::text AS restart_lsn,
       pg_wal_lsn_diff(w.lsn, s.restart_lsn)::int8 AS retained_bytes,
       to_jsonb(s)->>'wal_status' AS wal_status,
       (to_jsonb(s)->>'safe_wal_size')::int8 AS safe_wal_size,
       age(s.xmin)::int8 AS xmin_age, age(s.catalog_xmin)::int8 AS catalog_xmin_age
  FROM pg_replication_slots s
 CROSS JOIN (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                         ELSE pg_current_wal_lsn() END AS lsn) w
 ORDER BY s.slot_name LIMIT 100";

pub const PRIMARY: &str = "SELECT pg_current_wal_lsn()::text AS current_lsn,
       a.archived_count::int8 AS archived_count, a.last_archived_wal,
       (extract(epoch FROM a.last_archived_time) * 1000)::int8 AS last_archived_ms,
       a.failed_count::int8 AS archive_failed_count, a.last_failed_wal,
       (extract(epoch FROM a.last_failed_time) * 1000)::int8 AS last_archive_failure_ms,
       current_setting('archive_mode') AS archive_mode,
       current_setting('synchronous_standby_names') AS synchronous_standby_names
  FROM pg_stat_archiver a";

pub const STANDBY: &str = "SELECT pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8 AS replay_lag_bytes,
       (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::int8 AS last_replayed_xact_ms,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS last_replayed_xact_age_s,
       pg_is_wal_replay_paused() AS replay_paused";

pub const RECEIVER: &str =
    "SELECT status, sender_host, sender_port::int8 AS sender_port, slot_name,
       (extract(epoch FROM last_msg_receipt_time) * 1000)::int8 AS last_message_ms,
       extract(epoch FROM now() - last_msg_receipt_time)::float8 AS last_message_age_s,
       latest_end_lsn::text AS latest_end_lsn
  FROM pg_stat_wal_receiver";

const GIB: f64 = 1_073_741_824.0;

/// Findings for a primary: standbys, slots, archiver.
pub fn primary_findings(
    standbys: &[Map<String, Value>],
    slots: &[Map<String, Value>],
    primary: &Map<String, Value>,
) -> Vec<Value> {
    let mut out = Vec::new();
    for s in standbys {
        let name = text(s, "name").filter(|n| !n.is_empty()).unwrap_or("?");
        let client = text(s, "client").unwrap_or("local");
        if let Some(state) = text(s, "state").filter(|st| *st != "streaming") {
            out.push(finding(
                "warning",
                format!("standby {name} ({client}) is in state {state:?}, not streaming"),
            ));
        }
        let lag = num(s, "replay_lag_s").unwrap_or(0.0);
        let bytes = num(s, "replay_lag_bytes").unwrap_or(0.0);
        if lag >= 300.0 {
            out.push(finding(
                "error",
                format!("standby {name} ({client}) replays {lag:.0} s behind ({bytes:.0} bytes)"),
            ));
        } else if lag >= 30.0 || bytes >= GIB {
            out.push(finding(
                "warning",
                format!("standby {name} ({client}) replays {lag:.0} s ({bytes:.0} bytes) behind"),
            ));
        }
    }
    for s in slots {
        let name = text(s, "name").unwrap_or("?");
        let retained = num(s, "retained_bytes").unwrap_or(0.0);
        match text(s, "wal_status") {
            Some("lost") => out.push(finding("error", format!(
                "replication slot {name} has lost WAL its consumer still needs: that standby must be rebuilt"
            ))),
            Some("unreserved") => out.push(finding("warning", format!(
                "replication slot {name} retains more WAL than max_slot_wal_keep_size: it will be invalidated at the next checkpoint"
            ))),
            _ => {}
        }
        if s.get("active") == Some(&Value::Bool(false)) && retained >= GIB {
            out.push(finding("warning", format!(
                "inactive replication slot {name} retains {:.1} GiB of WAL: the disk fills until its consumer comes back or the slot is dropped",
                retained / GIB
            )));
        }
    }
    let failed = int(primary, "last_archive_failure_ms").unwrap_or(0);
    let archived = int(primary, "last_archived_ms").unwrap_or(0);
    if failed > archived {
        out.push(finding("error", format!(
            "WAL archiving is failing (last failure on {}, {} failure(s) in total): check archive_command; WAL piles up in pg_wal until it works",
            text(primary, "last_failed_wal").unwrap_or("?"),
            int(primary, "archive_failed_count").unwrap_or(0)
        )));
    }
    out
}

/// Findings for a standby.
pub fn standby_findings(
    standby: &Map<String, Value>,
    receiver: Option<&Map<String, Value>>,
) -> Vec<Value> {
    let mut out = Vec::new();
    match receiver.and_then(|r| text(r, "status")) {
        None => out.push(finding(
            "error",
            "this standby has no WAL receiver: it is not streaming from a primary (check primary_conninfo and the server log)",
        )),
        Some("streaming") => {}
        Some(status) => out.push(finding(
            "warning",
            format!("the WAL receiver is in state {status:?}, not streaming"),
        )),
    }
    if standby.get("replay_paused") == Some(&Value::Bool(true)) {
        out.push(finding(
            "warning",
            "WAL replay is paused (pg_wal_replay_pause): the standby falls further behind until it is resumed",
        ));
    }
    let bytes = num(standby, "replay_lag_bytes").unwrap_or(0.0);
    let age = num(standby, "last_replayed_xact_age_s").unwrap_or(0.0);
    // An idle primary sends nothing to replay: age alone is no lag.
    if bytes > 0.0 && age >= 30.0 {
        out.push(finding(
            if age >= 300.0 { "error" } else { "warning" },
            format!("replay is {bytes:.0} bytes behind what was received; the last replayed transaction is {age:.0} s old"),
        ));
    }
    if let Some(r) = receiver
        && num(r, "last_message_age_s").unwrap_or(0.0) >= 60.0
    {
        out.push(finding(
            "warning",
            format!(
                "no message from the primary for {:.0} s",
                num(r, "last_message_age_s").unwrap_or(0.0)
            ),
        ));
    }
    out
}

pub fn status(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    session(ctx, None, async |pg: Pg| {
        let role = pg.row(ROLE, &[]).await.map_err(|e| pg.fail(e))?;
        let in_recovery = role.get("in_recovery") == Some(&Value::Bool(true));
        let standbys = pg.rows(STANDBYS, &[]).await.map_err(|e| pg.fail(e))?;
        let slots = pg.rows(SLOTS, &[]).await.map_err(|e| pg.fail(e))?;
        let data = if in_recovery {
            let standby = pg.row(STANDBY, &[]).await.map_err(|e| pg.fail(e))?;
            let receiver = pg.rows(RECEIVER, &[]).await.map_err(|e| pg.fail(e))?;
            let mut findings = standby_findings(&standby, receiver.first());
            findings.extend(primary_findings(&standbys, &slots, &Map::new()));
            json!({
                "role": "standby",
                "standby": standby,
                "wal_receiver": receiver.first(),
                "standbys": standbys,
                "slots": slots,
                "findings": findings,
            })
        } else {
            let primary = pg.row(PRIMARY, &[]).await.map_err(|e| pg.fail(e))?;
            let mut findings = primary_findings(&standbys, &slots, &primary);
            if standbys.is_empty() && slots.is_empty() {
                findings.push(finding(
                    "info",
                    "no standby is connected and there are no replication slots",
                ));
            }
            json!({
                "role": "primary",
                "primary": primary,
                "standbys": standbys,
                "slots": slots,
                "findings": findings,
            })
        };
        Ok(ProbeOutput::new(data))
    })
}
