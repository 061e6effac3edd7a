//! Pending, approved and denied enrollment requests, and the token burn
//! and agent creation that go with them.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_protocol::attestation::Attestation;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::EnrollmentStatus;
use std::sync::Arc;

use super::{
    Agent, Audited, Catalog, CatalogCache, EnrollOutcome, Enrollment, HubStore, IssuedCert,
    Liveness, Result, StoreError, agents, from_json, to_json, tokens,
};

const COLUMNS: &str = "e.id, e.name, e.hostname, e.remote_addr, e.token_id, e.csr_pem, e.tls_key_sha256, e.signing_key, e.attestation, \
     e.auto_approved, e.requested_at_ms, e.status, e.decided_at_ms, e.decided_by, e.agent_id, COALESCE(t.label, '')";

const FROM: &str = "enrollments e LEFT JOIN tokens t ON t.id = e.token_id";

fn status_str(s: EnrollmentStatus) -> &'static str {
    match s {
        EnrollmentStatus::Pending => "pending",
        EnrollmentStatus::Approved => "approved",
        EnrollmentStatus::Denied => "denied",
    }
}

fn row(r: &Row<'_>) -> rusqlite::Result<(Enrollment, String, String)> {
    let attestation: String = r.get(8)?;
    let status: String = r.get(11)?;
    Ok((
        Enrollment {
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
            token_label: r.get(15)?,
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

fn finish((mut e, attestation, status): (Enrollment, String, String)) -> Result<Enrollment> {
    e.attestation = from_json("enrollments.attestation", &attestation)?;
    e.status = match status.as_str() {
        "pending" => EnrollmentStatus::Pending,
        "approved" => EnrollmentStatus::Approved,
        "denied" => EnrollmentStatus::Denied,
        other => return Err(StoreError::Corrupt(format!("enrollments.status {other:?}"))),
    };
    Ok(e)
}

fn insert(conn: &Connection, e: &Enrollment) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO enrollments (id, name, hostname, remote_addr, token_id, csr_pem, tls_key_sha256, signing_key, attestation, \
         attestation_sha256, auto_approved, requested_at_ms, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
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
    ])?;
    Ok(())
}

fn get(conn: &Connection, id: &str) -> Result<Option<Enrollment>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} WHERE e.id = ?1"))?
        .query_row([id], row)
        .optional()?
        .map(finish)
        .transpose()
}

fn list(conn: &Connection, all: bool) -> Result<Vec<Enrollment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} {filter} ORDER BY e.requested_at_ms DESC LIMIT 1000",
        filter = if all {
            ""
        } else {
            "WHERE e.status = 'pending'"
        }
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(finish).collect()
}

/// The one pending enrollment called `name_or_id` (an id always matches
/// exactly; a name must be unambiguous among pending requests).
fn find_pending(conn: &Connection, name_or_id: &str) -> Result<Enrollment> {
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
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE e.name = ?1 AND e.status = 'pending'"
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

fn decide(
    conn: &Connection,
    id: &str,
    status: EnrollmentStatus,
    by: &str,
    at_ms: i64,
    agent_id: Option<&str>,
) -> Result<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE enrollments SET status = ?2, decided_by = ?3, decided_at_ms = ?4, agent_id = ?5 WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![id, status_str(status), by, at_ms, agent_id])?;
    if changed != 1 {
        return Err(StoreError::Conflict(format!(
            "enrollment {id} is no longer pending"
        )));
    }
    Ok(())
}

/// Creates the agent for a pending enrollment; returns it with the two
/// audit entries (approval, certificate issued).
fn approve_in(
    conn: &Connection,
    cache: &CatalogCache,
    row: &Enrollment,
    agent_id: &str,
    cert: IssuedCert,
    by: &str,
    now: i64,
) -> Result<(Agent, [NewEntry; 2])> {
    let agent = Agent {
        id: agent_id.to_owned(),
        name: row.name.clone(),
        hostname: row.hostname.clone(),
        signing_key: row.signing_key.clone(),
        cert_pem: cert.pem,
        cert_sha256: cert.sha256.to_hex(),
        cert_expires_ms: cert.expires_ms,
        enrolled_at_ms: now,
        enrollment_id: row.id.clone(),
        baseline: row.attestation.clone(),
        current: None,
        quarantined: false,
        quarantine_reason: None,
        revoked_at_ms: None,
        agent_version: String::new(),
        os: row.attestation.os_release.clone(),
        max_capability: sonde_protocol::Capability::Observe,
        catalog: Catalog::empty(),
        tags: Vec::new(),
        liveness: Liveness::default(),
    };
    agents::insert(conn, &agent)?;
    decide(
        conn,
        &row.id,
        EnrollmentStatus::Approved,
        by,
        now,
        Some(agent_id),
    )?;
    let actor = if by == "auto-approve" {
        format!("token:{}", row.token_id)
    } else {
        by.to_owned()
    };
    let entries = [
        NewEntry::new(actor.clone(), AuditAction::EnrollmentApproved, "ok")
            .agent(agent_id)
            .detail("enrollment_id", row.id.clone())
            .detail("name", row.name.clone())
            .detail("auto", by == "auto-approve"),
        NewEntry::new(actor, AuditAction::CertificateIssued, "ok")
            .agent(agent_id)
            .detail("cert_sha256", agent.cert_sha256.clone())
            .detail("expires_at_ms", agent.cert_expires_ms),
    ];
    let agent = agents::get(conn, cache, agent_id)?
        .ok_or_else(|| StoreError::NotFound(agent_id.to_owned()))?;
    Ok((agent, entries))
}

/// An enrollment request, validated by the caller.
#[derive(Debug, Clone)]
pub struct NewEnrollment {
    pub enrollment: Enrollment,
    /// The agent id and certificate to use if the token auto-approves
    /// (issued beforehand, outside the write).
    pub agent_id: String,
    pub preissued: IssuedCert,
}

impl HubStore {
    /// Step 1 of enrollment, in one transaction: burns the token (even if
    /// the request is later denied), records the pending enrollment, and
    /// approves it at once when the token says so. A refused token is
    /// audited and changes nothing else. A name already taken by a live
    /// agent is a [`StoreError::Conflict`] and leaves the token unburnt.
    pub async fn enroll(
        &self,
        request: NewEnrollment,
        secret: String,
        now: i64,
    ) -> Result<EnrollOutcome> {
        let cache = Arc::clone(&self.inner.catalogs);
        let (outcome, _) = self
            .commit(move |c| {
                let mut row = request.enrollment;
                let token = match tokens::consume(c, &secret, now)? {
                    Ok(t) => t,
                    Err(refusal) => {
                        let mut entry = NewEntry::new("hub", AuditAction::EnrollmentRefused, "refused")
                            .detail("reason", refusal.code())
                            .detail("name", row.name.clone())
                            .detail("remote_addr", row.remote_addr.clone());
                        if let Some(id) = refusal.token_id() {
                            entry = entry.detail("token_id", id);
                        }
                        return Ok(Audited::new(EnrollOutcome::Refused(refusal), entry));
                    }
                };
                if let Some(existing) = agents::live_name_owner(c, &row.name)? {
                    // Failing rolls the whole change back: the token is not
                    // burnt and the operator can retry with another name.
                    return Err(StoreError::Conflict(format!(
                        "an agent named {:?} is already enrolled ({existing}); revoke it first or enroll with another --name",
                        row.name
                    )));
                }
                row.token_id = token.id.clone();
                row.token_label = token.label.clone();
                row.auto_approved = token.auto_approve;
                insert(c, &row)?;
                let used = NewEntry::new(format!("token:{}", token.id), AuditAction::TokenUsed, "ok")
                    .detail("enrollment_id", row.id.clone());
                let requested =
                    NewEntry::new(format!("token:{}", token.id), AuditAction::EnrollmentRequested, "pending")
                        .detail("enrollment_id", row.id.clone())
                        .detail("name", row.name.clone())
                        .detail("remote_addr", row.remote_addr.clone())
                        .detail("attestation", row.attestation.fingerprint().to_hex());
                if !token.auto_approve {
                    return Ok(Audited::new(EnrollOutcome::Pending(row), used).and(requested));
                }
                let (agent, [approved, issued]) = approve_in(
                    c,
                    &cache,
                    &row,
                    &request.agent_id,
                    request.preissued,
                    "auto-approve",
                    now,
                )?;
                let row = get(c, &row.id)?.ok_or_else(|| StoreError::NotFound(row.id.clone()))?;
                Ok(Audited::new(EnrollOutcome::Approved(row, Box::new(agent)), used)
                    .and(requested)
                    .and(approved)
                    .and(issued))
            })
            .await?;
        Ok(outcome)
    }

    /// The pending enrollment called `name_or_id`.
    pub async fn pending_enrollment(&self, name_or_id: &str) -> Result<Enrollment> {
        let key = name_or_id.to_owned();
        self.read(move |c| find_pending(c, &key)).await
    }

    /// Operator approval: creates the agent with `cert` (issued for
    /// `agent_id` from the pending request's CSR).
    pub async fn approve_enrollment(
        &self,
        enrollment_id: &str,
        agent_id: &str,
        cert: IssuedCert,
        by: &str,
        now: i64,
    ) -> Result<(Enrollment, Agent)> {
        let cache = Arc::clone(&self.inner.catalogs);
        let (id, agent_id, by) = (enrollment_id.to_owned(), agent_id.to_owned(), by.to_owned());
        let (out, _) = self
            .commit(move |c| {
                let row = find_pending(c, &id)?;
                let (agent, [approved, issued]) =
                    approve_in(c, &cache, &row, &agent_id, cert, &by, now)?;
                let row = get(c, &id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
                Ok(Audited::new((row, agent), approved).and(issued))
            })
            .await?;
        Ok(out)
    }

    /// Operator denial.
    pub async fn deny_enrollment(
        &self,
        name_or_id: &str,
        by: &str,
        now: i64,
    ) -> Result<Enrollment> {
        let (key, by) = (name_or_id.to_owned(), by.to_owned());
        let (row, _) = self
            .commit(move |c| {
                let row = find_pending(c, &key)?;
                decide(c, &row.id, EnrollmentStatus::Denied, &by, now, None)?;
                let entry = NewEntry::new(by.clone(), AuditAction::EnrollmentDenied, "ok")
                    .detail("enrollment_id", row.id.clone())
                    .detail("name", row.name.clone());
                let row = get(c, &row.id)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
                Ok(Audited::new(row, entry))
            })
            .await?;
        Ok(row)
    }

    pub async fn enrollment(&self, id: &str) -> Result<Option<Enrollment>> {
        let id = id.to_owned();
        self.read(move |c| get(c, &id)).await
    }

    /// Pending (or, with `all`, every) enrollment, newest first.
    pub async fn enrollments(&self, all: bool) -> Result<Vec<Enrollment>> {
        self.read(move |c| list(c, all)).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::test_support::{raw, store};
    use crate::store::{EnrollmentToken, model::TokenRefusal};

    pub(crate) fn request(name: &str) -> NewEnrollment {
        NewEnrollment {
            enrollment: Enrollment {
                id: crate::store::new_id("enr-", 6),
                name: name.into(),
                hostname: name.into(),
                remote_addr: "127.0.0.1:9".into(),
                token_id: String::new(),
                token_label: String::new(),
                csr_pem: "csr".into(),
                tls_key_sha256: "tls".into(),
                signing_key: "key".into(),
                attestation: placeholder_attestation(),
                auto_approved: false,
                requested_at_ms: 1,
                status: EnrollmentStatus::Pending,
                decided_at_ms: None,
                decided_by: None,
                agent_id: None,
            },
            agent_id: crate::store::new_id("agt-", 6),
            preissued: IssuedCert {
                pem: "cert".into(),
                sha256: sonde_protocol::Digest::of(name.as_bytes()),
                expires_ms: 10,
            },
        }
    }

    pub(crate) async fn token(store: &HubStore, auto: bool) -> String {
        let secret = tokens::new_secret();
        store
            .create_token(
                EnrollmentToken {
                    id: crate::store::new_id("tok-", 5),
                    label: "l".into(),
                    auto_approve: auto,
                    created_at_ms: 0,
                    expires_at_ms: i64::MAX,
                    used_at_ms: None,
                    revoked_at_ms: None,
                },
                secret.clone(),
                "operator:test",
            )
            .await
            .unwrap();
        secret
    }

    /// An agent enrolled with an auto-approved token.
    pub(crate) async fn enrolled_agent(store: &HubStore, name: &str) -> Agent {
        let secret = token(store, true).await;
        match store.enroll(request(name), secret, 5).await.unwrap() {
            EnrollOutcome::Approved(_, agent) => *agent,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_taken_name_leaves_the_token_unburnt_and_a_refusal_is_audited() {
        let (dir, store) = store();
        enrolled_agent(&store, "nas").await;
        let secret = token(&store, false).await;
        let err = store
            .enroll(request("nas"), secret.clone(), 6)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        // Not burnt: it still works for another name.
        assert!(matches!(
            store
                .enroll(request("nas2"), secret.clone(), 7)
                .await
                .unwrap(),
            EnrollOutcome::Pending(_)
        ));
        assert!(matches!(
            store.enroll(request("nas3"), secret, 8).await.unwrap(),
            EnrollOutcome::Refused(TokenRefusal::Reused { .. })
        ));
        let refused: i64 = raw(&dir)
            .query_row(
                "SELECT COUNT(*) FROM audit_entries WHERE action = 'enrollment.refused'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(refused, 1);
    }
}
