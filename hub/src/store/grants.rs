//! The operator's pack decisions, as signed grants.

use rusqlite::{Connection, Row, params};
use sonde_protocol::Digest;
use sonde_protocol::messages::{GrantDecision, PackGrant};

use super::{Result, StoreError};

/// A grant and who decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRow {
    pub grant: PackGrant,
    /// `approve`, `deny` or `revoke`.
    pub action: String,
    pub decided_by: String,
}

fn row(r: &Row<'_>) -> rusqlite::Result<(GrantRow, String, String)> {
    Ok((
        GrantRow {
            grant: PackGrant {
                agent_id: r.get(0)?,
                pack: r.get(1)?,
                manifest_sha256: Digest([0; 32]),
                decision: GrantDecision::Revoked,
                issued_at_ms: r.get(4)?,
                signature: r.get(5)?,
            },
            action: r.get(6)?,
            decided_by: r.get(7)?,
        },
        r.get(2)?,
        r.get(3)?,
    ))
}

fn finish((mut g, manifest, decision): (GrantRow, String, String)) -> Result<GrantRow> {
    g.grant.manifest_sha256 = Digest::from_hex(&manifest)
        .map_err(|e| StoreError::Corrupt(format!("pack_grants.manifest_sha256: {e}")))?;
    g.grant.decision = match decision.as_str() {
        "approved" => GrantDecision::Approved,
        "revoked" => GrantDecision::Revoked,
        other => {
            return Err(StoreError::Corrupt(format!(
                "pack_grants.decision {other:?}"
            )));
        }
    };
    Ok(g)
}

pub fn upsert(conn: &Connection, g: &GrantRow) -> Result<()> {
    let decision = match g.grant.decision {
        GrantDecision::Approved => "approved",
        GrantDecision::Revoked => "revoked",
    };
    conn.execute(
        "INSERT INTO pack_grants (agent_id, pack, manifest_sha256, decision, action, issued_at_ms, decided_by, signature) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(agent_id, pack) DO UPDATE SET manifest_sha256 = excluded.manifest_sha256, \
         decision = excluded.decision, action = excluded.action, issued_at_ms = excluded.issued_at_ms, decided_by = excluded.decided_by, \
         signature = excluded.signature",
        params![
            g.grant.agent_id,
            g.grant.pack,
            g.grant.manifest_sha256.to_hex(),
            decision,
            g.action,
            g.grant.issued_at_ms,
            g.decided_by,
            g.grant.signature
        ],
    )?;
    Ok(())
}

pub fn for_agent(conn: &Connection, agent_id: &str) -> Result<Vec<GrantRow>> {
    let mut stmt = conn.prepare(
        "SELECT agent_id, pack, manifest_sha256, decision, issued_at_ms, signature, action, decided_by FROM pack_grants WHERE agent_id = ?1 ORDER BY pack",
    )?;
    let raw = stmt
        .query_map([agent_id], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(finish).collect()
}
