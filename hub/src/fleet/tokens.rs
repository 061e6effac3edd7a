//! Enrollment tokens: created (secret shown once), listed, revoked.

use sonde_admin::api::{TokenCreate, TokenCreated, TokenInfo, TokenState};

use crate::error::HubError;
use crate::hub::Hub;
use crate::store::{self, EnrollmentToken};

/// Default token lifetime: 15 minutes.
pub const DEFAULT_TOKEN_TTL_S: u64 = 900;

/// A token as the admin API lists it.
pub fn token_info(t: &EnrollmentToken, now_ms: i64) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        label: t.label.clone(),
        state: match t.state(now_ms) {
            store::TokenState::Active => TokenState::Active,
            store::TokenState::Used => TokenState::Used,
            store::TokenState::Expired => TokenState::Expired,
            store::TokenState::Revoked => TokenState::Revoked,
        },
        auto_approve: t.auto_approve,
        created_at_ms: t.created_at_ms,
        expires_at_ms: t.expires_at_ms,
        used_at_ms: t.used_at_ms,
        revoked_at_ms: t.revoked_at_ms,
    }
}

pub async fn create_token(hub: &Hub, req: TokenCreate, by: &str) -> Result<TokenCreated, HubError> {
    let ttl = req.ttl_s.unwrap_or(DEFAULT_TOKEN_TTL_S);
    if ttl == 0 || ttl > 30 * 86_400 {
        return Err(HubError::BadRequest(
            "token ttl must be between 1 second and 30 days".into(),
        ));
    }
    let label = req.label.unwrap_or_default();
    if label.len() > 128 || label.chars().any(char::is_control) {
        return Err(HubError::BadRequest(
            "token label must be at most 128 printable characters".into(),
        ));
    }
    let secret = store::tokens::new_secret();
    let now = hub.clock.now_ms();
    let token = hub
        .store
        .create_token(
            EnrollmentToken {
                id: store::new_id("tok-", 5),
                label,
                auto_approve: req.auto_approve,
                created_at_ms: now,
                expires_at_ms: now + (ttl as i64) * 1000,
                used_at_ms: None,
                revoked_at_ms: None,
            },
            secret.clone(),
            by,
        )
        .await?;
    let fp = hub.ca.fingerprint().to_hex();
    Ok(TokenCreated {
        enroll_command: format!(
            "sonde-agent enroll --hub {} --token {secret} --ca-sha256 {fp}",
            hub.agent_address()
        ),
        token: secret,
        info: token_info(&token, hub.clock.now_ms()),
        ca_sha256: fp,
    })
}

pub async fn tokens(hub: &Hub) -> Result<Vec<TokenInfo>, HubError> {
    let now = hub.clock.now_ms();
    Ok(hub
        .store
        .tokens()
        .await?
        .iter()
        .map(|t| token_info(t, now))
        .collect())
}

pub async fn revoke_token(hub: &Hub, id: &str, by: &str) -> Result<TokenInfo, HubError> {
    let token = hub.store.revoke_token(id, by).await?;
    Ok(token_info(&token, hub.clock.now_ms()))
}
