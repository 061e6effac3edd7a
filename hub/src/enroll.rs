//! Enrollment: a single-use token, then the operator's approval.
//!
//! 1. `POST /v1/enroll` with a token, a CSR, the agent's Ed25519 key, a name
//!    and an attestation. Everything is validated *before* the token is
//!    touched; then the token is burnt (even if the request is later denied)
//!    and a pending enrollment recorded, in one transaction. A token made
//!    with `--auto-approve` approves at once.
//! 2. The agent polls `POST /v1/enroll/status`, signing each poll with the
//!    Ed25519 key it sent, so nobody else can collect its certificate.
//! 3. The operator approves (admin API, CLI, console): the CA signs the CSR's
//!    key into a client certificate naming the new agent id.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rusqlite::TransactionBehavior;
use sonde_admin::api::EnrollmentInfo;
use sonde_protocol::audit::NewEntry;
use sonde_protocol::keys::{decode_public_key, encode_public_key};
use sonde_protocol::messages::{
    AgentCredentials, EnrollRequest, EnrollResponse, EnrollStatusRequest, EnrollmentStatus,
};
use sonde_protocol::time::now_ms;

use crate::ca::CertificateAuthority;
use crate::error::HubError;
use crate::hub::{Hub, SharedHub};
use crate::link::listener::{ConnInfo, error};
use crate::store::{self, agents::AgentRow, enrollments::EnrollmentRow, tokens::TokenRefusal};

/// Agent names: `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`.
pub fn validate_agent_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "agent name {name:?} must be 1-63 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"
        ))
    }
}

/// Why an enrollment request was refused.
#[derive(Debug)]
pub enum EnrollRefusal {
    BadRequest(String),
    Token(TokenRefusal),
    Conflict(String),
    Internal(String),
}

impl From<store::StoreError> for EnrollRefusal {
    fn from(e: store::StoreError) -> Self {
        EnrollRefusal::Internal(e.to_string())
    }
}

/// Handles an enrollment request (step 1).
pub async fn request(
    hub: &Hub,
    req: EnrollRequest,
    remote: String,
) -> Result<EnrollResponse, EnrollRefusal> {
    validate_agent_name(&req.name).map_err(EnrollRefusal::BadRequest)?;
    if req.hostname.len() > 253 {
        return Err(EnrollRefusal::BadRequest(
            "hostname longer than 253 bytes".into(),
        ));
    }
    decode_public_key(&req.signing_key)
        .map_err(|e| EnrollRefusal::BadRequest(format!("signing_key: {e}")))?;
    let (_, tls_key) = CertificateAuthority::check_csr(&req.csr_pem)
        .map_err(|e| EnrollRefusal::BadRequest(e.to_string()))?;
    let enrollment_id = store::new_id("enr-", 6);
    let agent_id = store::new_id("agt-", 6);
    let now = now_ms();
    let mut row = EnrollmentRow {
        id: enrollment_id.clone(),
        name: req.name.clone(),
        hostname: req.hostname.clone(),
        remote_addr: remote.clone(),
        token_id: String::new(),
        csr_pem: req.csr_pem.clone(),
        tls_key_sha256: tls_key.to_hex(),
        signing_key: req.signing_key.clone(),
        attestation: req.attestation.clone(),
        auto_approved: false,
        requested_at_ms: now,
        status: EnrollmentStatus::Pending,
        decided_at_ms: None,
        decided_by: None,
        agent_id: None,
    };
    // Certificates are issued outside the DB lock; the CA is cheap to call.
    let preissued = hub
        .ca
        .issue_agent(&req.csr_pem, &agent_id)
        .map_err(|e| EnrollRefusal::BadRequest(e.to_string()))?;
    let secret = req.token.clone();
    let name = req.name.clone();
    let result = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let token = match store::tokens::consume(&tx, &secret, now)? {
                Ok(t) => t,
                Err(refusal) => {
                    let mut entry = NewEntry::new("hub", "enrollment.refused", "refused")
                        .detail("reason", refusal.code())
                        .detail("name", name.clone())
                        .detail("remote_addr", remote.clone());
                    if let Some(id) = refusal.token_id() {
                        entry = entry.detail("token_id", id);
                    }
                    store::audit::append(&tx, entry, now)?;
                    tx.commit()?;
                    return Ok(Err(EnrollRefusal::Token(refusal)));
                }
            };
            let live: Option<String> = tx
                .query_row("SELECT id FROM agents WHERE name = ?1 AND revoked_at_ms IS NULL", [&name], |r| r.get(0))
                .ok();
            if let Some(existing) = live {
                // Dropping the transaction un-burns the token: the operator can
                // retry with another name.
                return Ok(Err(EnrollRefusal::Conflict(format!(
                    "an agent named {name:?} is already enrolled ({existing}); revoke it first or enroll with another --name"
                ))));
            }
            row.token_id = token.id.clone();
            row.auto_approved = token.auto_approve;
            store::enrollments::insert(&tx, &row)?;
            let mut appended = 2;
            store::audit::append(&tx, NewEntry::new(format!("token:{}", token.id), "token.used", "ok").detail("enrollment_id", row.id.clone()), now)?;
            store::audit::append(
                &tx,
                NewEntry::new(format!("token:{}", token.id), "enrollment.requested", "pending")
                    .detail("enrollment_id", row.id.clone())
                    .detail("name", row.name.clone())
                    .detail("remote_addr", row.remote_addr.clone())
                    .detail("attestation", row.attestation.fingerprint().to_hex()),
                now,
            )?;
            let credentials_agent = if token.auto_approve {
                let agent = approve_in(&tx, &row, &agent_id, preissued, "auto-approve", now)?;
                appended += 2;
                Some(agent)
            } else {
                None
            };
            tx.commit()?;
            Ok(Ok((row, credentials_agent, appended)))
        })
        .await?;
    let (row, agent, appended) = result?;
    hub.audit.appended(appended).await;
    tracing::info!(name = %row.name, enrollment = %row.id, auto = agent.is_some(), "enrollment requested");
    Ok(match agent {
        Some(agent) => approved_response(hub, &row, &agent),
        None => EnrollResponse {
            enrollment_id: row.id,
            status: EnrollmentStatus::Pending,
            message: "waiting for an operator to approve this enrollment (`sonde-hub enrollments approve NAME` or the console)".into(),
            credentials: None,
        },
    })
}

fn approved_response(hub: &Hub, row: &EnrollmentRow, agent: &AgentRow) -> EnrollResponse {
    EnrollResponse {
        enrollment_id: row.id.clone(),
        status: EnrollmentStatus::Approved,
        message: format!("approved: enrolled as agent {} ({})", agent.name, agent.id),
        credentials: Some(AgentCredentials {
            agent_id: agent.id.clone(),
            cert_pem: agent.cert_pem.clone(),
            ca_pem: hub.ca.cert_pem().to_owned(),
            hub_signing_key: encode_public_key(&hub.signing_key.verifying_key()),
            hub_id: hub.hub_id.clone(),
        }),
    }
}

/// Creates the agent for an enrollment inside a transaction.
fn approve_in(
    tx: &rusqlite::Connection,
    row: &EnrollmentRow,
    agent_id: &str,
    (cert_pem, cert_sha, expires): (String, sonde_protocol::Digest, i64),
    by: &str,
    now: i64,
) -> store::Result<AgentRow> {
    let agent = AgentRow {
        id: agent_id.to_owned(),
        name: row.name.clone(),
        hostname: row.hostname.clone(),
        signing_key: row.signing_key.clone(),
        cert_pem,
        cert_sha256: cert_sha.to_hex(),
        cert_expires_ms: expires,
        enrolled_at_ms: now,
        enrollment_id: row.id.clone(),
        baseline: row.attestation.clone(),
        current: None,
        quarantined: false,
        quarantine_reason: None,
        revoked_at_ms: None,
        last_seen_ms: None,
        remote_addr: None,
        agent_version: String::new(),
        os: row.attestation.os_release.clone(),
        max_capability: sonde_protocol::Capability::Observe,
        packs: Vec::new(),
        agent_audit_head: None,
        tags: Vec::new(),
    };
    store::agents::insert(tx, &agent)?;
    store::enrollments::decide(
        tx,
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
    store::audit::append(
        tx,
        NewEntry::new(actor.clone(), "enrollment.approved", "ok")
            .agent(agent_id)
            .detail("enrollment_id", row.id.clone())
            .detail("name", row.name.clone())
            .detail("auto", by == "auto-approve"),
        now,
    )?;
    store::audit::append(
        tx,
        NewEntry::new(actor, "certificate.issued", "ok")
            .agent(agent_id)
            .detail("cert_sha256", agent.cert_sha256.clone())
            .detail("expires_at_ms", expires),
        now,
    )?;
    Ok(agent)
}

/// Operator approval (step 3).
pub async fn approve(hub: &Hub, name_or_id: &str, by: &str) -> Result<EnrollmentInfo, HubError> {
    let key = name_or_id.to_owned();
    let pending = hub
        .store
        .read(move |c| store::enrollments::find_pending(c, &key))
        .await?;
    let agent_id = store::new_id("agt-", 6);
    let issued = hub.ca.issue_agent(&pending.csr_pem, &agent_id)?;
    let by = by.to_owned();
    let id = pending.id.clone();
    let info = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = store::enrollments::find_pending(&tx, &id)?;
            approve_in(&tx, &row, &agent_id, issued, &by, now_ms())?;
            let row = store::enrollments::get(&tx, &id)?
                .ok_or_else(|| store::StoreError::NotFound(id.clone()))?;
            let label = store::tokens::get(&tx, &row.token_id)?
                .map(|t| t.label)
                .unwrap_or_default();
            tx.commit()?;
            Ok(row.info(&label))
        })
        .await?;
    hub.audit.appended(2).await;
    tracing::info!(name = %info.name, "enrollment approved");
    Ok(info)
}

/// Operator denial.
pub async fn deny(hub: &Hub, name_or_id: &str, by: &str) -> Result<EnrollmentInfo, HubError> {
    let (key, by) = (name_or_id.to_owned(), by.to_owned());
    let info = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = store::enrollments::find_pending(&tx, &key)?;
            store::enrollments::decide(
                &tx,
                &row.id,
                EnrollmentStatus::Denied,
                &by,
                now_ms(),
                None,
            )?;
            store::audit::append(
                &tx,
                NewEntry::new(by.clone(), "enrollment.denied", "ok")
                    .detail("enrollment_id", row.id.clone())
                    .detail("name", row.name.clone()),
                now_ms(),
            )?;
            let row = store::enrollments::get(&tx, &row.id)?
                .ok_or_else(|| store::StoreError::NotFound(key.clone()))?;
            let label = store::tokens::get(&tx, &row.token_id)?
                .map(|t| t.label)
                .unwrap_or_default();
            tx.commit()?;
            Ok(row.info(&label))
        })
        .await?;
    hub.audit.appended(1).await;
    Ok(info)
}

/// Polling (step 2).
pub async fn status(hub: &Hub, req: EnrollStatusRequest) -> Result<EnrollResponse, HubError> {
    let id = req.enrollment_id.clone();
    let (row, agent) = hub
        .store
        .read(move |c| {
            let row = store::enrollments::get(c, &id)?;
            let agent = match row.as_ref().and_then(|r| r.agent_id.clone()) {
                Some(agent_id) => store::agents::get(c, &agent_id)?,
                None => None,
            };
            Ok((row, agent))
        })
        .await?;
    let forbidden = || HubError::Forbidden("unknown enrollment or bad signature".into());
    let row = row.ok_or_else(forbidden)?;
    let key = decode_public_key(&row.signing_key).map_err(|_| forbidden())?;
    if !req.verify(&key) {
        return Err(forbidden());
    }
    if (req.timestamp_ms - now_ms()).abs() > 5 * 60_000 {
        return Err(HubError::Forbidden(
            "the status request's timestamp is more than 5 minutes off; check the clock".into(),
        ));
    }
    Ok(match (row.status, agent) {
        (EnrollmentStatus::Approved, Some(agent)) if agent.revoked_at_ms.is_none() => approved_response(hub, &row, &agent),
        (EnrollmentStatus::Approved, _) => EnrollResponse {
            enrollment_id: row.id,
            status: EnrollmentStatus::Denied,
            message: "this enrollment was approved but the agent has since been revoked; enroll again with a new token".into(),
            credentials: None,
        },
        (EnrollmentStatus::Denied, _) => EnrollResponse {
            enrollment_id: row.id,
            status: EnrollmentStatus::Denied,
            message: format!("denied by {}", row.decided_by.unwrap_or_else(|| "the operator".into())),
            credentials: None,
        },
        (EnrollmentStatus::Pending, _) => EnrollResponse {
            enrollment_id: row.id,
            status: EnrollmentStatus::Pending,
            message: "waiting for an operator to approve this enrollment".into(),
            credentials: None,
        },
    })
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid request body: {e}"),
        ))
    })
}

pub async fn http_request(
    State(hub): State<SharedHub>,
    Extension(info): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    let req: EnrollRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match request(&hub, req, info.remote.to_string()).await {
        Ok(resp) => Json(resp).into_response(),
        Err(EnrollRefusal::BadRequest(m)) => error(StatusCode::BAD_REQUEST, "bad_request", m),
        Err(EnrollRefusal::Token(t)) => error(StatusCode::UNAUTHORIZED, t.code(), t.message()),
        Err(EnrollRefusal::Conflict(m)) => error(StatusCode::CONFLICT, "conflict", m),
        Err(EnrollRefusal::Internal(m)) => {
            tracing::error!(error = %m, "enrollment failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the hub could not record the enrollment; see its log",
            )
        }
    }
}

pub async fn http_status(State(hub): State<SharedHub>, body: Bytes) -> Response {
    let req: EnrollStatusRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match status(&hub, req).await {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => error(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.code(),
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names() {
        for ok in ["nas", "nas-01.lan", "A_b"] {
            assert!(validate_agent_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-nas", "nas 01", "nas/01", &"a".repeat(64), "nás"] {
            assert!(validate_agent_name(bad).is_err(), "{bad}");
        }
    }
}
