//! Attestation drift events.

use rusqlite::{Connection, OptionalExtension, params};
use sonde_admin::api::DriftStatus;
use sonde_protocol::attestation::Attestation;

use super::{Result, StoreError, from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct DriftRow {
    pub id: i64,
    pub agent_id: String,
    pub detected_at_ms: i64,
    pub baseline: Attestation,
    pub current: Attestation,
    pub status: DriftStatus,
    pub resolved_at_ms: Option<i64>,
    pub resolved_by: Option<String>,
}

fn status_str(s: DriftStatus) -> &'static str {
    match s {
        DriftStatus::Open => "open",
        DriftStatus::Accepted => "accepted",
        DriftStatus::Revoked => "revoked",
        DriftStatus::Kept => "kept",
    }
}

/// Records a drift event, unless an open one for the same current
/// fingerprint exists (reconnects don't pile up duplicates). Returns its id.
pub fn record(
    conn: &Connection,
    agent_id: &str,
    baseline: &Attestation,
    current: &Attestation,
    now_ms: i64,
) -> Result<i64> {
    let existing: Option<i64> = conn
        .query_row(
            "SELECT id FROM drift_events WHERE agent_id = ?1 AND status = 'open' AND current_sha256 = ?2",
            params![agent_id, current.fingerprint().to_hex()],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    conn.execute(
        "INSERT INTO drift_events (agent_id, detected_at_ms, baseline, current, baseline_sha256, current_sha256, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open')",
        params![
            agent_id,
            now_ms,
            to_json(baseline)?,
            to_json(current)?,
            baseline.fingerprint().to_hex(),
            current.fingerprint().to_hex()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Closes every open event of an agent.
pub fn resolve_open(
    conn: &Connection,
    agent_id: &str,
    status: DriftStatus,
    by: &str,
    now_ms: i64,
) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE drift_events SET status = ?2, resolved_by = ?3, resolved_at_ms = ?4 WHERE agent_id = ?1 AND status = 'open'",
        params![agent_id, status_str(status), by, now_ms],
    )?)
}

pub fn list(conn: &Connection, all: bool) -> Result<Vec<DriftRow>> {
    let sql = format!(
        "SELECT id, agent_id, detected_at_ms, baseline, current, status, resolved_at_ms, resolved_by FROM drift_events {} ORDER BY detected_at_ms DESC LIMIT 1000",
        if all { "" } else { "WHERE status = 'open'" }
    );
    let mut stmt = conn.prepare(&sql)?;
    let raw = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter()
        .map(
            |(
                id,
                agent_id,
                detected_at_ms,
                baseline,
                current,
                status,
                resolved_at_ms,
                resolved_by,
            )| {
                Ok(DriftRow {
                    id,
                    agent_id,
                    detected_at_ms,
                    baseline: from_json("drift_events.baseline", &baseline)?,
                    current: from_json("drift_events.current", &current)?,
                    status: match status.as_str() {
                        "open" => DriftStatus::Open,
                        "accepted" => DriftStatus::Accepted,
                        "revoked" => DriftStatus::Revoked,
                        "kept" => DriftStatus::Kept,
                        other => {
                            return Err(StoreError::Corrupt(format!(
                                "drift_events.status {other:?}"
                            )));
                        }
                    },
                    resolved_at_ms,
                    resolved_by,
                })
            },
        )
        .collect()
}

pub fn count_open(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM drift_events WHERE status = 'open'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}
