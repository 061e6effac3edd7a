//! Pending, approved and denied enrollment requests.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_admin::api::{EnrollmentInfo, EnrollmentStatus};
use sonde_protocol::attestation::Attestation;

use super::{Result, StoreError, from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentRow {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub remote_addr: String,
    pub token_id: String,
    pub csr_pem: String,
    pub tls_key_sha256: String,
    pub signing_key: String,
    pub attestation: Attestation,
    pub auto_approved: bool,
    pub requested_at_ms: i64,
    pub status: EnrollmentStatus,
    pub decided_at_ms: Option<i64>,
    pub decided_by: Option<String>,
    pub agent_id: Option<String>,
}

const COLUMNS: &str = "id, name, hostname, remote_addr, token_id, csr_pem, tls_key_sha256, signing_key, attestation, \
     auto_approved, requested_at_ms, status, decided_at_ms, decided_by, agent_id";

fn status_str(s: EnrollmentStatus) -> &'static str {
    match s {
        EnrollmentStatus::Pending => "pending",
        EnrollmentStatus::Approved => "approved",
        EnrollmentStatus::Denied => "denied",
    }
}

fn row(r: &Row<'_>) -> rusqlite::Result<(EnrollmentRow, String, String)> {
    let attestation: String = r.get(8)?;
    let status: String = r.get(11)?;
    Ok((
        EnrollmentRow {
            id: r.get(0)?,
            name: r.get(1)?,
            hostname: r.get(2)?,
            remote_addr: r.get(3)?,
            token_id: r.get(4)?,
            csr_pem: r.get(5)?,
            tls_key_sha256: r.get(6)?,
            signing_key: r.get(7)?,
            attestation: placeholder_attestation(),
            auto_approved: r.get(9)?,
            requested_at_ms: r.get(10)?,
            status: EnrollmentStatus::Pending,
            decided_at_ms: r.get(12)?,
            decided_by: r.get(13)?,
            agent_id: r.get(14)?,
        },
        attestation,
        status,
    ))
}

pub(crate) fn placeholder_attestation() -> Attestation {
    Attestation {
        os_release: String::new(),
        kernel: String::new(),
        arch: String::new(),
        binary_sha256: sonde_protocol::Digest([0; 32]),
        packs: Vec::new(),
        config_sha256: sonde_protocol::Digest([0; 32]),
        machine_id: String::new(),
        sandbox: String::new(),
        config: Default::default(),
    }
}

fn finish((mut e, attestation, status): (EnrollmentRow, String, String)) -> Result<EnrollmentRow> {
    e.attestation = from_json("enrollments.attestation", &attestation)?;
    e.status = match status.as_str() {
        "pending" => EnrollmentStatus::Pending,
        "approved" => EnrollmentStatus::Approved,
        "denied" => EnrollmentStatus::Denied,
        other => return Err(StoreError::Corrupt(format!("enrollments.status {other:?}"))),
    };
    Ok(e)
}

impl EnrollmentRow {
    pub fn info(&self, token_label: &str) -> EnrollmentInfo {
        let a = &self.attestation;
        let packs: Vec<&str> = a.packs.iter().map(|p| p.name.as_str()).collect();
        EnrollmentInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            hostname: self.hostname.clone(),
            remote_addr: self.remote_addr.clone(),
            key_fingerprint: sonde_protocol::keys::decode_public_key(&self.signing_key)
                .map(|k| sonde_protocol::keys::fingerprint(&k).to_hex())
                .unwrap_or_default(),
            tls_key_fingerprint: self.tls_key_sha256.clone(),
            attestation_summary: format!(
                "{} · kernel {} · {} · packs: {}",
                a.os_release,
                a.kernel,
                a.arch,
                packs.join(", ")
            ),
            attestation_fingerprint: a.fingerprint().to_hex(),
            attestation: a.clone(),
            token_id: self.token_id.clone(),
            token_label: token_label.to_owned(),
            auto_approved: self.auto_approved,
            requested_at_ms: self.requested_at_ms,
            status: self.status,
            decided_at_ms: self.decided_at_ms,
            decided_by: self.decided_by.clone(),
        }
    }
}

pub fn insert(conn: &Connection, e: &EnrollmentRow) -> Result<()> {
    conn.execute(
        "INSERT INTO enrollments (id, name, hostname, remote_addr, token_id, csr_pem, tls_key_sha256, signing_key, attestation, \
         attestation_sha256, auto_approved, requested_at_ms, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            e.id,
            e.name,
            e.hostname,
            e.remote_addr,
            e.token_id,
            e.csr_pem,
            e.tls_key_sha256,
            e.signing_key,
            to_json(&e.attestation)?,
            e.attestation.fingerprint().to_hex(),
            e.auto_approved,
            e.requested_at_ms,
            status_str(e.status),
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<EnrollmentRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM enrollments WHERE id = ?1"),
        [id],
        row,
    )
    .optional()?
    .map(finish)
    .transpose()
}

/// Pending (or, with `all`, every) enrollment, newest first, with token labels.
pub fn list(conn: &Connection, all: bool) -> Result<Vec<(EnrollmentRow, String)>> {
    let sql = format!(
        "SELECT {cols}, COALESCE(t.label, '') FROM enrollments e LEFT JOIN tokens t ON t.id = e.token_id {filter} ORDER BY e.requested_at_ms DESC LIMIT 1000",
        cols = COLUMNS
            .split(", ")
            .map(|c| format!("e.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", "),
        filter = if all {
            ""
        } else {
            "WHERE e.status = 'pending'"
        }
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map([], |r| Ok((row(r)?, r.get::<_, String>(15)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(e, label)| Ok((finish(e)?, label)))
        .collect()
}

/// The one pending enrollment called `name_or_id` (an id always matches
/// exactly; a name must be unambiguous among pending requests).
pub fn find_pending(conn: &Connection, name_or_id: &str) -> Result<EnrollmentRow> {
    if let Some(e) = get(conn, name_or_id)? {
        return match e.status {
            EnrollmentStatus::Pending => Ok(e),
            other => Err(StoreError::Conflict(format!(
                "enrollment {} is already {}",
                e.id,
                status_str(other)
            ))),
        };
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM enrollments WHERE name = ?1 AND status = 'pending'"
    ))?;
    let mut found = stmt
        .query_map([name_or_id], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    match found.len() {
        0 => Err(StoreError::NotFound(format!(
            "no pending enrollment named {name_or_id:?}; see `sonde-hub enrollments list`"
        ))),
        1 => finish(found.remove(0)),
        n => Err(StoreError::Conflict(format!(
            "{n} pending enrollments are named {name_or_id:?}; approve or deny one by its id (see `sonde-hub enrollments list`)"
        ))),
    }
}

pub fn decide(
    conn: &Connection,
    id: &str,
    status: EnrollmentStatus,
    by: &str,
    at_ms: i64,
    agent_id: Option<&str>,
) -> Result<()> {
    let changed = conn.execute(
        "UPDATE enrollments SET status = ?2, decided_by = ?3, decided_at_ms = ?4, agent_id = ?5 WHERE id = ?1 AND status = 'pending'",
        params![id, status_str(status), by, at_ms, agent_id],
    )?;
    if changed != 1 {
        return Err(StoreError::Conflict(format!(
            "enrollment {id} is no longer pending"
        )));
    }
    Ok(())
}
