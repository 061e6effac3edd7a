//! Enrolled agents: identity, certificate, attestation baseline, last hello.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_protocol::Capability;
use sonde_protocol::attestation::Attestation;
use sonde_protocol::audit::ChainHead;
use sonde_protocol::messages::PackReport;

use super::{Result, StoreError, from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub signing_key: String,
    pub cert_pem: String,
    pub cert_sha256: String,
    pub cert_expires_ms: i64,
    pub enrolled_at_ms: i64,
    pub enrollment_id: String,
    pub baseline: Attestation,
    pub current: Option<Attestation>,
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
    pub revoked_at_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub remote_addr: Option<String>,
    pub agent_version: String,
    pub os: String,
    pub max_capability: Capability,
    pub packs: Vec<PackReport>,
    pub agent_audit_head: Option<ChainHead>,
    pub tags: Vec<String>,
}

const COLUMNS: &str = "id, name, hostname, signing_key, cert_pem, cert_sha256, cert_expires_ms, enrolled_at_ms, enrollment_id, \
     baseline, current, quarantined, quarantine_reason, revoked_at_ms, last_seen_ms, remote_addr, agent_version, os, \
     max_capability, packs, agent_audit_head, tags";

type RawAgent = (AgentRow, [Option<String>; 6]);

fn row(r: &Row<'_>) -> rusqlite::Result<RawAgent> {
    Ok((
        AgentRow {
            id: r.get(0)?,
            name: r.get(1)?,
            hostname: r.get(2)?,
            signing_key: r.get(3)?,
            cert_pem: r.get(4)?,
            cert_sha256: r.get(5)?,
            cert_expires_ms: r.get(6)?,
            enrolled_at_ms: r.get(7)?,
            enrollment_id: r.get(8)?,
            baseline: crate::store::enrollments_placeholder(),
            current: None,
            quarantined: r.get(11)?,
            quarantine_reason: r.get(12)?,
            revoked_at_ms: r.get(13)?,
            last_seen_ms: r.get(14)?,
            remote_addr: r.get(15)?,
            agent_version: r.get(16)?,
            os: r.get(17)?,
            max_capability: Capability::Observe,
            packs: Vec::new(),
            agent_audit_head: None,
            tags: Vec::new(),
        },
        [
            r.get(9)?,
            r.get(10)?,
            r.get(18)?,
            r.get(19)?,
            r.get(20)?,
            r.get(21)?,
        ],
    ))
}

fn finish(
    (mut a, [baseline, current, capability, packs, head, tags]): RawAgent,
) -> Result<AgentRow> {
    a.baseline = from_json("agents.baseline", baseline.as_deref().unwrap_or("null"))?;
    a.current = current
        .map(|c| from_json("agents.current", &c))
        .transpose()?;
    a.max_capability = capability
        .unwrap_or_default()
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("agents.max_capability: {e}")))?;
    a.packs = from_json("agents.packs", packs.as_deref().unwrap_or("[]"))?;
    a.agent_audit_head = head
        .map(|h| from_json("agents.agent_audit_head", &h))
        .transpose()?;
    a.tags = from_json("agents.tags", tags.as_deref().unwrap_or("[]"))?;
    Ok(a)
}

pub fn insert(conn: &Connection, a: &AgentRow) -> Result<()> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT id FROM agents WHERE name = ?1 AND revoked_at_ms IS NULL",
            [&a.name],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = exists {
        return Err(StoreError::Conflict(format!(
            "an agent named {:?} is already enrolled ({id}); revoke it first (`sonde-hub agents revoke {}`) or enroll under another --name",
            a.name, a.name
        )));
    }
    conn.execute(
        &format!(
            "INSERT INTO agents ({COLUMNS}, baseline_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
        ),
        params![
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
            a.last_seen_ms,
            a.remote_addr,
            a.agent_version,
            a.os,
            a.max_capability.as_str(),
            to_json(&a.packs)?,
            a.agent_audit_head.as_ref().map(to_json).transpose()?,
            to_json(&a.tags)?,
            a.baseline.fingerprint().to_hex(),
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<AgentRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM agents WHERE id = ?1"),
        [id],
        row,
    )
    .optional()?
    .map(finish)
    .transpose()
}

/// The agent called `name_or_id`: an id, or the name of a live agent, or
/// the most recently revoked agent with that name.
pub fn find(conn: &Connection, name_or_id: &str) -> Result<AgentRow> {
    if let Some(a) = get(conn, name_or_id)? {
        return Ok(a);
    }
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM agents WHERE name = ?1 ORDER BY (revoked_at_ms IS NULL) DESC, enrolled_at_ms DESC LIMIT 1"),
        [name_or_id],
        row,
    )
    .optional()?
    .map(finish)
    .transpose()?
    .ok_or_else(|| StoreError::NotFound(format!("no agent named {name_or_id:?}; see `sonde-hub agents list`")))
}

pub fn list(conn: &Connection) -> Result<Vec<AgentRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM agents ORDER BY (revoked_at_ms IS NULL) DESC, name"
    ))?;
    let raw = stmt
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(finish).collect()
}

/// What a hello tells the hub.
#[derive(Debug, Clone)]
pub struct HelloUpdate<'a> {
    pub hostname: &'a str,
    pub agent_version: &'a str,
    pub os: &'a str,
    pub current: &'a Attestation,
    pub max_capability: Capability,
    pub packs: &'a [PackReport],
    pub audit_head: &'a ChainHead,
    pub remote_addr: &'a str,
    pub now_ms: i64,
}

pub fn record_hello(conn: &Connection, id: &str, h: &HelloUpdate<'_>) -> Result<()> {
    conn.execute(
        "UPDATE agents SET hostname = ?2, agent_version = ?3, os = ?4, current = ?5, max_capability = ?6, packs = ?7, \
         agent_audit_head = ?8, remote_addr = ?9, last_seen_ms = ?10 WHERE id = ?1",
        params![
            id,
            h.hostname,
            h.agent_version,
            h.os,
            to_json(h.current)?,
            h.max_capability.as_str(),
            to_json(&h.packs)?,
            to_json(h.audit_head)?,
            h.remote_addr,
            h.now_ms
        ],
    )?;
    Ok(())
}

pub fn record_packs(
    conn: &Connection,
    id: &str,
    packs: &[PackReport],
    head: &ChainHead,
    now_ms: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE agents SET packs = ?2, agent_audit_head = ?3, last_seen_ms = ?4 WHERE id = ?1",
        params![id, to_json(&packs)?, to_json(head)?, now_ms],
    )?;
    Ok(())
}

pub fn touch(conn: &Connection, id: &str, head: Option<&ChainHead>, now_ms: i64) -> Result<()> {
    match head {
        Some(h) => conn.execute(
            "UPDATE agents SET last_seen_ms = ?2, agent_audit_head = ?3 WHERE id = ?1",
            params![id, now_ms, to_json(h)?],
        )?,
        None => conn.execute(
            "UPDATE agents SET last_seen_ms = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?,
    };
    Ok(())
}

pub fn set_quarantine(conn: &Connection, id: &str, reason: Option<&str>) -> Result<()> {
    conn.execute(
        "UPDATE agents SET quarantined = ?2, quarantine_reason = ?3 WHERE id = ?1",
        params![id, reason.is_some(), reason],
    )?;
    Ok(())
}

/// Makes `current` the new baseline and lifts the quarantine.
pub fn accept_baseline(conn: &Connection, id: &str, baseline: &Attestation) -> Result<()> {
    conn.execute(
        "UPDATE agents SET baseline = ?2, baseline_sha256 = ?3, quarantined = 0, quarantine_reason = NULL WHERE id = ?1",
        params![id, to_json(baseline)?, baseline.fingerprint().to_hex()],
    )?;
    Ok(())
}

pub fn revoke(conn: &Connection, id: &str, now_ms: i64) -> Result<()> {
    conn.execute(
        "UPDATE agents SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
        params![id, now_ms],
    )?;
    Ok(())
}

/// Replaces the agent's certificate (renewal).
pub fn set_certificate(
    conn: &Connection,
    id: &str,
    pem: &str,
    sha256: &str,
    expires_ms: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE agents SET cert_pem = ?2, cert_sha256 = ?3, cert_expires_ms = ?4 WHERE id = ?1",
        params![id, pem, sha256, expires_ms],
    )?;
    Ok(())
}

pub fn set_tags(conn: &Connection, id: &str, tags: &[String]) -> Result<()> {
    conn.execute(
        "UPDATE agents SET tags = ?2 WHERE id = ?1",
        params![id, to_json(&tags)?],
    )?;
    Ok(())
}
