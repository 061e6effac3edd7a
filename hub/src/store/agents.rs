//! Enrolled agents: identity, certificate, attestation baseline, catalog,
//! tags, quarantine, revocation, liveness.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_protocol::attestation::Attestation;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::{PackGrant, PackReport};
use sonde_protocol::time::now_ms;
use std::collections::HashMap;
use std::sync::Arc;

use super::{
    Agent, Audited, Catalog, CatalogCache, DriftStatus, Hello, HubStore, IssuedCert, Liveness,
    Result, StoreError, drift, from_json, grants, to_json,
};

const COLUMNS: &str = "id, name, hostname, signing_key, cert_pem, cert_sha256, cert_expires_ms, enrolled_at_ms, enrollment_id, \
     baseline, current, quarantined, quarantine_reason, revoked_at_ms, last_seen_ms, remote_addr, agent_version, os, \
     max_capability, packs, agent_audit_head, tags, catalog_sha256";

/// A row before its JSON columns and catalog are decoded.
struct Raw {
    agent: Agent,
    baseline: String,
    current: Option<String>,
    capability: String,
    packs: String,
    head: Option<String>,
    tags: String,
    catalog: Option<String>,
}

fn row(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        agent: Agent {
            id: r.get(0)?,
            name: r.get(1)?,
            hostname: r.get(2)?,
            signing_key: r.get(3)?,
            cert_pem: r.get(4)?,
            cert_sha256: r.get(5)?,
            cert_expires_ms: r.get(6)?,
            enrolled_at_ms: r.get(7)?,
            enrollment_id: r.get(8)?,
            baseline: super::enrollments::placeholder_attestation(),
            current: None,
            quarantined: r.get(11)?,
            quarantine_reason: r.get(12)?,
            revoked_at_ms: r.get(13)?,
            agent_version: r.get(16)?,
            os: r.get(17)?,
            max_capability: sonde_protocol::Capability::Observe,
            catalog: Catalog::empty(),
            tags: Vec::new(),
            liveness: Liveness {
                last_seen_ms: r.get(14)?,
                remote_addr: r.get(15)?,
                audit_head: None,
            },
        },
        baseline: r.get(9)?,
        current: r.get(10)?,
        capability: r.get(18)?,
        packs: r.get(19)?,
        head: r.get(20)?,
        tags: r.get(21)?,
        catalog: r.get(22)?,
    })
}

/// Resolves catalog references, decoding each distinct catalog once.
struct Catalogs<'a> {
    conn: &'a Connection,
    cache: &'a CatalogCache,
    seen: HashMap<String, Arc<Catalog>>,
}

impl Catalogs<'_> {
    fn resolve(&mut self, sha: Option<&str>, legacy_packs: &str) -> Result<Arc<Catalog>> {
        let Some(sha) = sha else {
            // Written before catalogs were shared: the packs column.
            let packs: Vec<PackReport> = from_json("agents.packs", legacy_packs)?;
            return Ok(self.cache.intern(packs));
        };
        if let Some(c) = self.seen.get(sha) {
            return Ok(Arc::clone(c));
        }
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT packs FROM pack_catalogs WHERE sha256 = ?1")?
            .query_row([sha], |r| r.get(0))
            .optional()?;
        let text = text.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "agents.catalog_sha256 {sha} has no pack_catalogs row"
            ))
        })?;
        let packs: Vec<PackReport> = from_json("pack_catalogs.packs", &text)?;
        let catalog = self.cache.intern(packs);
        self.seen.insert(sha.to_owned(), Arc::clone(&catalog));
        Ok(catalog)
    }

    fn finish(&mut self, raw: Raw) -> Result<Agent> {
        let mut a = raw.agent;
        a.baseline = from_json("agents.baseline", &raw.baseline)?;
        a.current = raw
            .current
            .map(|c| from_json("agents.current", &c))
            .transpose()?;
        a.max_capability = raw
            .capability
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("agents.max_capability: {e}")))?;
        a.liveness.audit_head = raw
            .head
            .map(|h| from_json("agents.agent_audit_head", &h))
            .transpose()?;
        a.tags = from_json("agents.tags", &raw.tags)?;
        a.catalog = self.resolve(raw.catalog.as_deref(), &raw.packs)?;
        Ok(a)
    }
}

pub(super) fn get(conn: &Connection, cache: &CatalogCache, id: &str) -> Result<Option<Agent>> {
    let raw = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM agents WHERE id = ?1"))?
        .query_row([id], row)
        .optional()?;
    let mut catalogs = Catalogs {
        conn,
        cache,
        seen: HashMap::new(),
    };
    raw.map(|r| catalogs.finish(r)).transpose()
}

fn must_get(conn: &Connection, cache: &CatalogCache, id: &str) -> Result<Agent> {
    get(conn, cache, id)?.ok_or_else(|| StoreError::NotFound(format!("no agent {id:?}")))
}

fn all(conn: &Connection, cache: &CatalogCache) -> Result<Vec<Agent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM agents ORDER BY (revoked_at_ms IS NULL) DESC, name"
    ))?;
    let raw = stmt
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut catalogs = Catalogs {
        conn,
        cache,
        seen: HashMap::new(),
    };
    raw.into_iter().map(|r| catalogs.finish(r)).collect()
}

/// The id of the live (not revoked) agent called `name`, if any.
pub(super) fn live_name_owner(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM agents WHERE name = ?1 AND revoked_at_ms IS NULL")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Stores the catalog (once per content) and returns its reference.
fn store_catalog(conn: &Connection, catalog: &Catalog) -> Result<String> {
    let sha = catalog.digest().to_hex();
    conn.prepare_cached("INSERT OR IGNORE INTO pack_catalogs (sha256, packs) VALUES (?1, ?2)")?
        .execute(params![sha, catalog.json()])?;
    Ok(sha)
}

pub(super) fn insert(conn: &Connection, a: &Agent) -> Result<()> {
    if let Some(id) = live_name_owner(conn, &a.name)? {
        return Err(StoreError::Conflict(format!(
            "an agent named {:?} is already enrolled ({id}); revoke it first (`sonde-hub agents revoke {}`) or enroll under another --name",
            a.name, a.name
        )));
    }
    let catalog = store_catalog(conn, &a.catalog)?;
    conn.prepare_cached(
        "INSERT INTO agents (id, name, hostname, signing_key, cert_pem, cert_sha256, cert_expires_ms, enrolled_at_ms, enrollment_id, \
         baseline, current, quarantined, quarantine_reason, revoked_at_ms, last_seen_ms, remote_addr, agent_version, os, \
         max_capability, packs, agent_audit_head, tags, catalog_sha256, baseline_sha256) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, '[]', ?20, ?21, ?22, ?23)",
    )?
    .execute(params![
        a.id,
        a.name,
        a.hostname,
        a.signing_key,
        a.cert_pem,
        a.cert_sha256,
        a.cert_expires_ms,
        a.enrolled_at_ms,
        a.enrollment_id,
        to_json(&a.baseline)?,
        a.current.as_ref().map(to_json).transpose()?,
        a.quarantined,
        a.quarantine_reason,
        a.revoked_at_ms,
        a.liveness.last_seen_ms,
        a.liveness.remote_addr,
        a.agent_version,
        a.os,
        a.max_capability.as_str(),
        a.liveness.audit_head.as_ref().map(to_json).transpose()?,
        to_json(&a.tags)?,
        catalog,
        a.baseline.fingerprint().to_hex(),
    ])?;
    Ok(())
}

fn set_liveness(conn: &Connection, id: &str, l: &Liveness) -> Result<()> {
    conn.prepare_cached(
        "UPDATE agents SET last_seen_ms = COALESCE(?2, last_seen_ms), remote_addr = COALESCE(?3, remote_addr), \
         agent_audit_head = COALESCE(?4, agent_audit_head) WHERE id = ?1",
    )?
    .execute(params![
        id,
        l.last_seen_ms,
        l.remote_addr,
        l.audit_head.as_ref().map(to_json).transpose()?
    ])?;
    Ok(())
}

/// A change to one agent that records its own audit entry and hands back
/// the agent as it now is.
fn changed(
    conn: &Connection,
    cache: &CatalogCache,
    id: &str,
    entry: NewEntry,
) -> Result<Audited<Agent>> {
    Ok(Audited::new(must_get(conn, cache, id)?, entry))
}

impl HubStore {
    /// Every agent, revoked ones last (each distinct catalog decoded once).
    pub async fn agents(&self) -> Result<Vec<Agent>> {
        let cache = Arc::clone(&self.inner.catalogs);
        self.read(move |c| all(c, &cache)).await
    }

    pub async fn agent(&self, id: &str) -> Result<Option<Agent>> {
        let (cache, id) = (Arc::clone(&self.inner.catalogs), id.to_owned());
        self.read(move |c| get(c, &cache, &id)).await
    }

    /// A verified hello: records what the agent reported and the accepted
    /// connection (`entry`); returns the agent and its grants for the ack.
    pub async fn agent_connected(
        &self,
        id: &str,
        hello: Hello,
        entry: NewEntry,
    ) -> Result<(Agent, Vec<PackGrant>)> {
        let (cache, id) = (Arc::clone(&self.inner.catalogs), id.to_owned());
        let (out, _) = self
            .commit(move |c| {
                let catalog = store_catalog(c, &hello.catalog)?;
                c.prepare_cached(
                    "UPDATE agents SET hostname = ?2, agent_version = ?3, os = ?4, current = ?5, max_capability = ?6, \
                     catalog_sha256 = ?7, packs = '[]' WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    hello.hostname,
                    hello.agent_version,
                    hello.current.os_release,
                    to_json(&hello.current)?,
                    hello.max_capability.as_str(),
                    catalog,
                ])?;
                set_liveness(c, &id, &hello.liveness)?;
                let grants = grants::for_agent(c, &id)?
                    .into_iter()
                    .map(|g| g.grant)
                    .collect();
                Ok(Audited::new((must_get(c, &cache, &id)?, grants), entry))
            })
            .await?;
        Ok(out)
    }

    /// The agent's packs changed (after a grants update): stores the new
    /// catalog, audited as `agent.packs` with each pack's state.
    pub async fn packs_reported(
        &self,
        id: &str,
        catalog: Arc<Catalog>,
        liveness: Liveness,
    ) -> Result<Agent> {
        let (cache, id) = (Arc::clone(&self.inner.catalogs), id.to_owned());
        let states: serde_json::Map<String, serde_json::Value> = catalog
            .packs()
            .iter()
            .map(|p| (p.name.clone(), p.state.as_str().into()))
            .collect();
        let entry = NewEntry::new(format!("agent:{id}"), AuditAction::AgentPacks, "ok")
            .agent(id.clone())
            .detail("packs", states)
            .detail("catalog_sha256", catalog.digest().to_hex());
        let (agent, _) = self
            .commit(move |c| {
                let sha = store_catalog(c, &catalog)?;
                c.prepare_cached(
                    "UPDATE agents SET catalog_sha256 = ?2, packs = '[]' WHERE id = ?1",
                )?
                .execute(params![id, sha])?;
                set_liveness(c, &id, &liveness)?;
                changed(c, &cache, &id, entry)
            })
            .await?;
        Ok(agent)
    }

    /// Attestation drift seen on connect: records the event (one open event
    /// per distinct current attestation), quarantines the agent when
    /// `quarantine_reason` is given, and audits `attestation.drift`.
    /// Returns the drift event id and the agent.
    pub async fn record_drift(
        &self,
        id: &str,
        current: Attestation,
        changes: serde_json::Value,
        quarantine_reason: Option<String>,
    ) -> Result<(i64, Agent)> {
        let (cache, id) = (Arc::clone(&self.inner.catalogs), id.to_owned());
        let (out, _) = self
            .commit(move |c| {
                let before = must_get(c, &cache, &id)?;
                let now = now_ms();
                let drift_id = drift::record(c, &id, &before.baseline, &current, now)?;
                if let Some(reason) = &quarantine_reason {
                    c.prepare_cached(
                        "UPDATE agents SET quarantined = 1, quarantine_reason = ?2 WHERE id = ?1",
                    )?
                    .execute(params![id, reason])?;
                }
                let entry = NewEntry::new(
                    format!("agent:{id}"),
                    AuditAction::AttestationDrift,
                    if quarantine_reason.is_some() {
                        "quarantined"
                    } else {
                        "recorded"
                    },
                )
                .agent(id.clone())
                .detail("drift_id", drift_id)
                .detail("baseline", before.baseline.fingerprint().to_hex())
                .detail("current", current.fingerprint().to_hex())
                .detail("changes", changes);
                Ok(Audited::new((drift_id, must_get(c, &cache, &id)?), entry))
            })
            .await?;
        Ok(out)
    }

    /// Revokes an agent and closes its open drift events.
    pub async fn revoke_agent(&self, id: &str, by: &str) -> Result<Agent> {
        let (cache, id, by) = (
            Arc::clone(&self.inner.catalogs),
            id.to_owned(),
            by.to_owned(),
        );
        let (agent, _) = self
            .commit(move |c| {
                let now = now_ms();
                let changed_rows = c
                    .prepare_cached(
                        "UPDATE agents SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
                    )?
                    .execute(params![id, now])?;
                if changed_rows != 1 {
                    let a = must_get(c, &cache, &id)?;
                    return Err(StoreError::Conflict(format!(
                        "agent {} is already revoked",
                        a.name
                    )));
                }
                drift::resolve_open(c, &id, DriftStatus::Revoked, &by, now)?;
                changed(
                    c,
                    &cache,
                    &id,
                    NewEntry::new(by.clone(), AuditAction::AgentRevoked, "ok").agent(id.clone()),
                )
            })
            .await?;
        Ok(agent)
    }

    /// Makes the agent's current attestation its baseline and lifts the
    /// quarantine; closes open drift events as accepted.
    pub async fn accept_baseline(&self, id: &str, by: &str) -> Result<Agent> {
        let (cache, id, by) = (
            Arc::clone(&self.inner.catalogs),
            id.to_owned(),
            by.to_owned(),
        );
        let (agent, _) = self
            .commit(move |c| {
                let a = must_get(c, &cache, &id)?;
                if a.is_revoked() {
                    return Err(StoreError::Conflict(format!("agent {} is revoked", a.name)));
                }
                let current = a.current.clone().ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "agent {} has not connected since enrollment; nothing to accept",
                        a.name
                    ))
                })?;
                c.prepare_cached(
                    "UPDATE agents SET baseline = ?2, baseline_sha256 = ?3, quarantined = 0, quarantine_reason = NULL WHERE id = ?1",
                )?
                .execute(params![id, to_json(&current)?, current.fingerprint().to_hex()])?;
                let closed = drift::resolve_open(c, &id, DriftStatus::Accepted, &by, now_ms())?;
                changed(
                    c,
                    &cache,
                    &id,
                    NewEntry::new(by.clone(), AuditAction::AttestationAccepted, "ok")
                        .agent(id.clone())
                        .detail("old_baseline", a.baseline.fingerprint().to_hex())
                        .detail("new_baseline", current.fingerprint().to_hex())
                        .detail("drift_events_closed", closed as u64),
                )
            })
            .await?;
        Ok(agent)
    }

    /// Closes the agent's open drift events as "kept" (it stays
    /// quarantined). Refused when there is no open drift.
    pub async fn keep_quarantined(&self, id: &str, by: &str) -> Result<Agent> {
        let (cache, id, by) = (
            Arc::clone(&self.inner.catalogs),
            id.to_owned(),
            by.to_owned(),
        );
        let (agent, _) = self
            .commit(move |c| {
                let a = must_get(c, &cache, &id)?;
                if a.is_revoked() {
                    return Err(StoreError::Conflict(format!("agent {} is revoked", a.name)));
                }
                let closed = drift::resolve_open(c, &id, DriftStatus::Kept, &by, now_ms())?;
                if closed == 0 {
                    return Err(StoreError::Conflict(format!(
                        "agent {} has no open attestation drift to decide on",
                        a.name
                    )));
                }
                changed(
                    c,
                    &cache,
                    &id,
                    NewEntry::new(by.clone(), AuditAction::AttestationKeptQuarantined, "ok")
                        .agent(id.clone())
                        .detail("drift_events_closed", closed as u64),
                )
            })
            .await?;
        Ok(agent)
    }

    pub async fn set_tags(&self, id: &str, tags: Vec<String>, by: &str) -> Result<Agent> {
        let (cache, id, by) = (
            Arc::clone(&self.inner.catalogs),
            id.to_owned(),
            by.to_owned(),
        );
        let (agent, _) = self
            .commit(move |c| {
                c.prepare_cached("UPDATE agents SET tags = ?2 WHERE id = ?1")?
                    .execute(params![id, to_json(&tags)?])?;
                changed(
                    c,
                    &cache,
                    &id,
                    NewEntry::new(by.clone(), AuditAction::AgentTags, "ok")
                        .agent(id.clone())
                        .detail("tags", tags.clone()),
                )
            })
            .await?;
        Ok(agent)
    }

    /// Replaces the agent's certificate (renewal over the link).
    pub async fn renew_certificate(&self, id: &str, cert: IssuedCert) -> Result<Agent> {
        let (cache, id) = (Arc::clone(&self.inner.catalogs), id.to_owned());
        let (agent, _) = self
            .commit(move |c| {
                c.prepare_cached(
                    "UPDATE agents SET cert_pem = ?2, cert_sha256 = ?3, cert_expires_ms = ?4 WHERE id = ?1",
                )?
                .execute(params![id, cert.pem, cert.sha256.to_hex(), cert.expires_ms])?;
                changed(
                    c,
                    &cache,
                    &id,
                    NewEntry::new(format!("agent:{id}"), AuditAction::CertificateRenewed, "ok")
                        .agent(id.clone())
                        .detail("cert_sha256", cert.sha256.to_hex())
                        .detail("expires_at_ms", cert.expires_ms),
                )
            })
            .await?;
        Ok(agent)
    }

    /// Persists the liveness of many agents in one transaction (telemetry:
    /// not audited; the fleet batches heartbeats into these).
    pub async fn persist_liveness(&self, batch: Vec<(String, Liveness)>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.telemetry(move |c| {
            for (id, l) in &batch {
                set_liveness(c, id, l)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{raw, store};

    #[tokio::test]
    async fn liveness_batches_are_written_without_audit_entries() {
        let (dir, store) = store();
        crate::store::enrollments::tests::enrolled_agent(&store, "nas").await;
        let head_before = store.audit_head().await.unwrap();
        let agents = store.agents().await.unwrap();
        let id = agents[0].id.clone();
        store
            .persist_liveness(vec![(
                id.clone(),
                Liveness {
                    last_seen_ms: Some(42),
                    remote_addr: Some("127.0.0.1:5".into()),
                    audit_head: None,
                },
            )])
            .await
            .unwrap();
        assert_eq!(store.audit_head().await.unwrap(), head_before);
        let a = store.agent(&id).await.unwrap().unwrap();
        assert_eq!(a.liveness.last_seen_ms, Some(42));
        let seen: i64 = raw(&dir)
            .query_row("SELECT last_seen_ms FROM agents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 42);
    }
}
