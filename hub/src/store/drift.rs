//! Attestation drift events.

use rusqlite::{Connection, OptionalExtension, params};
use sonde_protocol::attestation::Attestation;

use super::{DriftRecord, DriftStatus, HubStore, Result, StoreError, from_json, to_json};

/// Records a drift event, unless an open one for the same current
/// fingerprint exists (reconnects don't pile up duplicates). Returns its id.
pub(super) fn record(
    conn: &Connection,
    agent_id: &str,
    baseline: &Attestation,
    current: &Attestation,
    now_ms: i64,
) -> Result<i64> {
    let existing: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM drift_events WHERE agent_id = ?1 AND status = 'open' AND current_sha256 = ?2",
        )?
        .query_row(params![agent_id, current.fingerprint().to_hex()], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    conn.prepare_cached(
        "INSERT INTO drift_events (agent_id, detected_at_ms, baseline, current, baseline_sha256, current_sha256, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open')",
    )?
    .execute(params![
        agent_id,
        now_ms,
        to_json(baseline)?,
        to_json(current)?,
        baseline.fingerprint().to_hex(),
        current.fingerprint().to_hex()
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Closes every open event of an agent.
pub(super) fn resolve_open(
    conn: &Connection,
    agent_id: &str,
    status: DriftStatus,
    by: &str,
    now_ms: i64,
) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE drift_events SET status = ?2, resolved_by = ?3, resolved_at_ms = ?4 WHERE agent_id = ?1 AND status = 'open'",
        )?
        .execute(params![agent_id, status.as_str(), by, now_ms])?)
}

type RawDrift = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
);

fn list(conn: &Connection, all: bool) -> Result<Vec<DriftRecord>> {
    let sql = format!(
        "SELECT id, agent_id, detected_at_ms, baseline, current, status, resolved_at_ms, resolved_by FROM drift_events {} ORDER BY detected_at_ms DESC LIMIT 1000",
        if all { "" } else { "WHERE status = 'open'" }
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let raw: Vec<RawDrift> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
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
                Ok(DriftRecord {
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

impl HubStore {
    /// Open (or, with `all`, every) drift events, newest first.
    pub async fn drift_events(&self, all: bool) -> Result<Vec<DriftRecord>> {
        self.read(move |c| list(c, all)).await
    }
}
