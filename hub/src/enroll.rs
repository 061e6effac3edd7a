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
use sonde_admin::api::EnrollmentInfo;
use sonde_protocol::keys::{decode_public_key, encode_public_key};
use sonde_protocol::messages::{
    AgentCredentials, EnrollRequest, EnrollResponse, EnrollStatusRequest, EnrollmentStatus,
};

use crate::ca::CertificateAuthority;
use crate::error::HubError;
use crate::hub::{Hub, SharedHub};
use crate::link::listener::{ConnInfo, error};
use crate::store::{
    self, Agent, EnrollOutcome, Enrollment, IssuedCert, TokenRefusal, enrollments::NewEnrollment,
};

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
    let now = hub.clock.now_ms();
    let enrollment = Enrollment {
        id: enrollment_id,
        name: req.name.clone(),
        hostname: req.hostname.clone(),
        remote_addr: remote,
        token_id: String::new(),
        token_label: String::new(),
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
    // Certificates are issued outside the write (the CA is cheap to call);
    // used only if the token auto-approves.
    let (pem, sha256, expires_ms) = hub
        .ca
        .issue_agent(&req.csr_pem, &agent_id)
        .map_err(|e| EnrollRefusal::BadRequest(e.to_string()))?;
    let outcome = hub
        .store
        .enroll(
            NewEnrollment {
                enrollment,
                agent_id,
                preissued: IssuedCert {
                    pem,
                    sha256,
                    expires_ms,
                },
            },
            req.token.clone(),
            now,
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(m) => EnrollRefusal::Conflict(m),
            other => EnrollRefusal::Internal(other.to_string()),
        })?;
    let (row, agent) = match outcome {
        EnrollOutcome::Refused(refusal) => return Err(EnrollRefusal::Token(refusal)),
        EnrollOutcome::Pending(row) => (row, None),
        EnrollOutcome::Approved(row, agent) => {
            hub.fleet.enrolled((*agent).clone());
            (row, Some(agent))
        }
    };
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

fn approved_response(hub: &Hub, row: &Enrollment, agent: &Agent) -> EnrollResponse {
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

/// An enrollment as the admin API shows it.
pub fn enrollment_info(e: &Enrollment) -> EnrollmentInfo {
    let a = &e.attestation;
    let packs: Vec<&str> = a.packs.iter().map(|p| p.name.as_str()).collect();
    EnrollmentInfo {
        id: e.id.clone(),
        name: e.name.clone(),
        hostname: e.hostname.clone(),
        remote_addr: e.remote_addr.clone(),
        key_fingerprint: sonde_protocol::keys::decode_public_key(&e.signing_key)
            .map(|k| sonde_protocol::keys::fingerprint(&k).to_hex())
            .unwrap_or_default(),
        tls_key_fingerprint: e.tls_key_sha256.clone(),
        attestation_summary: format!(
            "{} · kernel {} · {} · packs: {}",
            a.os_release,
            a.kernel,
            a.arch,
            packs.join(", ")
        ),
        attestation_fingerprint: a.fingerprint().to_hex(),
        attestation: a.clone(),
        token_id: e.token_id.clone(),
        token_label: e.token_label.clone(),
        auto_approved: e.auto_approved,
        requested_at_ms: e.requested_at_ms,
        status: e.status,
        decided_at_ms: e.decided_at_ms,
        decided_by: e.decided_by.clone(),
    }
}

/// Operator approval (step 3).
pub async fn approve(hub: &Hub, name_or_id: &str, by: &str) -> Result<EnrollmentInfo, HubError> {
    let pending = hub.store.pending_enrollment(name_or_id).await?;
    let agent_id = store::new_id("agt-", 6);
    let (pem, sha256, expires_ms) = hub.ca.issue_agent(&pending.csr_pem, &agent_id)?;
    let (row, agent) = hub
        .store
        .approve_enrollment(
            &pending.id,
            &agent_id,
            IssuedCert {
                pem,
                sha256,
                expires_ms,
            },
            by,
            hub.clock.now_ms(),
        )
        .await?;
    hub.fleet.enrolled(agent);
    tracing::info!(name = %row.name, "enrollment approved");
    Ok(enrollment_info(&row))
}

/// Operator denial.
pub async fn deny(hub: &Hub, name_or_id: &str, by: &str) -> Result<EnrollmentInfo, HubError> {
    let row = hub
        .store
        .deny_enrollment(name_or_id, by, hub.clock.now_ms())
        .await?;
    Ok(enrollment_info(&row))
}

/// Polling (step 2).
pub async fn status(hub: &Hub, req: EnrollStatusRequest) -> Result<EnrollResponse, HubError> {
    let row = hub.store.enrollment(&req.enrollment_id).await?;
    let agent = match row.as_ref().and_then(|r| r.agent_id.as_deref()) {
        // The fleet learns of an approval just after its commit; the store
        // answers in between.
        Some(id) => match hub.fleet.get(id) {
            Some(live) => Some(live.agent()),
            None => hub.store.agent(id).await?.map(std::sync::Arc::new),
        },
        None => None,
    };
    let forbidden = || HubError::Forbidden("unknown enrollment or bad signature".into());
    let row = row.ok_or_else(forbidden)?;
    let key = decode_public_key(&row.signing_key).map_err(|_| forbidden())?;
    if !req.verify(&key) {
        return Err(forbidden());
    }
    if (req.timestamp_ms - hub.clock.now_ms()).abs() > 5 * 60_000 {
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
    use sonde_admin::api::TokenCreate;
    use sonde_protocol::audit_action::AuditAction;
    use sonde_protocol::time::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    fn request_with(token: &str, name: &str) -> EnrollRequest {
        let tls_key = rcgen::KeyPair::generate().unwrap();
        let csr_pem = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&tls_key)
            .unwrap()
            .pem()
            .unwrap();
        let signing = sonde_protocol::keys::generate_signing_key().unwrap();
        EnrollRequest {
            token: token.into(),
            csr_pem,
            signing_key: encode_public_key(&signing.verifying_key()),
            name: name.into(),
            hostname: format!("{name}.lan"),
            attestation: crate::store::enrollments::placeholder_attestation(),
        }
    }

    /// An enrollment token runs out by the hub's clock: one step before its
    /// end it is accepted, at its end it is refused as expired (and
    /// audited so), with no sleeping.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_enrollment_token_expires_by_the_hubs_clock() {
        let time = ManualClock::now();
        let (_dir, hub) = crate::hub::testing::hub(time.clock()).await;
        let token = |label: &str| {
            let hub = Arc::clone(&hub);
            let label = label.to_owned();
            async move {
                crate::fleet::create_token(
                    &hub,
                    TokenCreate {
                        ttl_s: Some(60),
                        label: Some(label),
                        auto_approve: false,
                    },
                    "test",
                )
                .await
                .unwrap()
                .token
            }
        };
        let (early, late) = (token("early").await, token("late").await);
        time.advance(Duration::from_millis(59_999));
        let accepted = request(&hub, request_with(&early, "early"), "127.0.0.1".into())
            .await
            .unwrap();
        assert_eq!(accepted.status, EnrollmentStatus::Pending);
        time.advance(Duration::from_millis(1));
        let refused = request(&hub, request_with(&late, "late"), "127.0.0.1".into())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, EnrollRefusal::Token(TokenRefusal::Expired { .. })),
            "{refused:?}"
        );
        let entries = crate::hub::testing::audited(&hub, AuditAction::EnrollmentRefused).await;
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].detail["reason"], "token_expired");
    }

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
