//! The operator's pack decisions, as signed grants.

use rusqlite::{Connection, Row, params};
use sonde_admin::api::PackAction;
use sonde_protocol::Digest;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::{GrantDecision, PackGrant};

use super::{Audited, Grant, HubStore, Result, StoreError};

fn row(r: &Row<'_>) -> rusqlite::Result<(Grant, String, String)> {
    Ok((
        Grant {
            grant: PackGrant {
                agent_id: r.get(0)?,
                pack: r.get(1)?,
                manifest_sha256: Digest([0; 32]),
                decision: GrantDecision::Revoked,
                issued_at_ms: r.get(4)?,
                signature: r.get(5)?,
            },
            action: r.get::<_, String>(6)?.parse().map_err(
                |e: sonde_admin::api::UnknownPackAction| {
                    rusqlite::Error::FromSqlConversionFailure(
                        6,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                },
            )?,
            decided_by: r.get(7)?,
        },
        r.get(2)?,
        r.get(3)?,
    ))
}

fn finish((mut g, manifest, decision): (Grant, String, String)) -> Result<Grant> {
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

fn upsert(conn: &Connection, g: &Grant) -> Result<()> {
    let decision = match g.grant.decision {
        GrantDecision::Approved => "approved",
        GrantDecision::Revoked => "revoked",
    };
    conn.prepare_cached(
        "INSERT INTO pack_grants (agent_id, pack, manifest_sha256, decision, action, issued_at_ms, decided_by, signature) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(agent_id, pack) DO UPDATE SET manifest_sha256 = excluded.manifest_sha256, \
         decision = excluded.decision, action = excluded.action, issued_at_ms = excluded.issued_at_ms, decided_by = excluded.decided_by, \
         signature = excluded.signature",
    )?
    .execute(params![
        g.grant.agent_id,
        g.grant.pack,
        g.grant.manifest_sha256.to_hex(),
        decision,
        g.action.as_str(),
        g.grant.issued_at_ms,
        g.decided_by,
        g.grant.signature
    ])?;
    Ok(())
}

pub(super) fn for_agent(conn: &Connection, agent_id: &str) -> Result<Vec<Grant>> {
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id, pack, manifest_sha256, decision, issued_at_ms, signature, action, decided_by FROM pack_grants WHERE agent_id = ?1 ORDER BY pack",
    )?;
    let raw = stmt
        .query_map([agent_id], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(finish).collect()
}

impl HubStore {
    /// Stores the operator's signed decision on one pack of one agent,
    /// audited as `pack.approved` / `pack.denied` / `pack.revoked`; returns
    /// every grant of that agent (to push to it).
    pub async fn decide_pack(&self, grant: Grant) -> Result<Vec<PackGrant>> {
        let (grants, _) = self
            .commit(move |c| {
                upsert(c, &grant)?;
                let verb = match grant.action {
                    PackAction::Approve => AuditAction::PackApproved,
                    PackAction::Deny => AuditAction::PackDenied,
                    PackAction::Revoke => AuditAction::PackRevoked,
                };
                let entry = NewEntry::new(grant.decided_by.clone(), verb, "ok")
                    .agent(grant.grant.agent_id.clone())
                    .detail("pack", grant.grant.pack.clone())
                    .detail("manifest_sha256", grant.grant.manifest_sha256.to_hex());
                let grants = for_agent(c, &grant.grant.agent_id)?
                    .into_iter()
                    .map(|g| g.grant)
                    .collect();
                Ok(Audited::new(grants, entry))
            })
            .await?;
        Ok(grants)
    }

    /// Every grant of every agent (one query, for fleet-wide lists).
    pub async fn all_grants(&self) -> Result<Vec<Grant>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT agent_id, pack, manifest_sha256, decision, issued_at_ms, signature, action, decided_by FROM pack_grants ORDER BY agent_id, pack",
            )?;
            let raw = stmt
                .query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raw.into_iter().map(finish).collect()
        })
        .await
    }

    /// The grants of one agent, by pack name.
    pub async fn grants(&self, agent_id: &str) -> Result<Vec<Grant>> {
        let id = agent_id.to_owned();
        self.read(move |c| for_agent(c, &id)).await
    }
}
