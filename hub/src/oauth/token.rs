//! The token endpoint (`authorization_code` with PKCE, `refresh_token` with
//! rotation), revocation (RFC 7009), and the check of an OAuth access token
//! presented to `/mcp` ([`authenticate`]).
//!
//! Access tokens (`sonde_at_…`) live [`super::ACCESS_TTL_S`]; refresh tokens
//! (`sonde_rt_…`) are single-use: each refresh returns a new pair, and a
//! refresh token presented twice revokes the whole grant (someone holds a
//! copy). Tokens are bound to the resource they were issued for (RFC 8707):
//! `/mcp` accepts only tokens whose grant names this hub's resource URL.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use sonde_protocol::audit::AuditAction;
use std::sync::Arc;

use super::{
    ACCESS_TTL_S, OAuth, REFRESH_TTL_MS, SCOPE, hash, new_secret, no_store, oauth_error, param,
    parse_params, pkce, resource,
};
use crate::hub::Hub;
use crate::mcp::policy::KeyPolicy;
use crate::store::ApiKey;
use crate::store::oauth::{GrantCheck, GrantStatus, NewTokens, OAuthGrant, Refusal, TokenOutcome};

/// The prefix of every OAuth access token.
pub const ACCESS_PREFIX: &str = "sonde_at_";
const REFRESH_PREFIX: &str = "sonde_rt_";

fn refused(r: &Refusal) -> Response {
    let status = if r.error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    oauth_error(status, r.error, &r.description)
}

/// The `resource` parameter, when present, must name this hub's resource.
fn check_resource(hub: &Hub, presented: Option<&str>) -> Result<String, Refusal> {
    let ours = resource(hub);
    match presented {
        None => Ok(ours),
        Some(r) if r == ours => Ok(ours),
        Some(r) => Err(Refusal::new(
            "invalid_target",
            format!("tokens are issued only for {ours}, not {r:?}"),
        )),
    }
}

/// `POST /oauth/token`
pub async fn token(State(o): State<Arc<OAuth>>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not UTF-8",
        );
    };
    let params = match parse_params(text) {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let Some(client_id) = param(&params, "client_id").map(str::to_owned) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is required (public clients authenticate with PKCE)",
        );
    };
    if client_id.len() > 64 || !client_id.bytes().all(|b| b.is_ascii_graphic()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        );
    }
    if param(&params, "client_secret").is_some() {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "this hub registers public clients only: send no client_secret",
        );
    }
    let resource = match check_resource(&o.hub, param(&params, "resource")) {
        Ok(r) => r,
        Err(r) => return refused(&r),
    };
    let now = o.hub.clock.now_ms();
    let access = new_secret(ACCESS_PREFIX, 32);
    let refresh = new_secret(REFRESH_PREFIX, 32);
    let new = NewTokens {
        access_sha256: hash(&access),
        access_expires_at_ms: now + ACCESS_TTL_S * 1000,
        refresh_sha256: hash(&refresh),
        refresh_expires_at_ms: now + REFRESH_TTL_MS,
    };
    let outcome: Result<TokenOutcome, _> = match param(&params, "grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(verifier), Some(redirect_uri)) = (
                param(&params, "code"),
                param(&params, "code_verifier"),
                param(&params, "redirect_uri"),
            ) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code, code_verifier and redirect_uri are required",
                );
            };
            let (cid, verifier, redirect_uri) = (
                client_id.clone(),
                verifier.to_owned(),
                redirect_uri.to_owned(),
            );
            let check: GrantCheck = Box::new(move |g: &OAuthGrant| {
                if g.client_id != cid {
                    return Err(Refusal::new(
                        "invalid_grant",
                        "the code was issued to another client",
                    ));
                }
                // The token request repeats the authorization request's
                // redirect URI verbatim (RFC 6749 §4.1.3), port included.
                if g.redirect_uri != redirect_uri {
                    return Err(Refusal::new(
                        "invalid_grant",
                        "redirect_uri must be the one of the authorization request, exactly",
                    ));
                }
                if !pkce::verify(&verifier, &g.code_challenge) {
                    return Err(Refusal::new(
                        "invalid_grant",
                        "PKCE verification failed (code_verifier does not match the S256 code_challenge)",
                    ));
                }
                if g.resource != resource {
                    return Err(Refusal::new(
                        "invalid_target",
                        "the resource differs from the authorization request's",
                    ));
                }
                Ok(())
            });
            o.hub
                .store
                .exchange_oauth_code(&hash(code), &client_id, check, new, now)
                .await
        }
        Some("refresh_token") => {
            let Some(old) = param(&params, "refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                );
            };
            if let Some(scope) = param(&params, "scope")
                && scope.split(' ').any(|s| !s.is_empty() && s != SCOPE)
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "the only scope is \"mcp\"",
                );
            }
            let check: GrantCheck = Box::new(move |g: &OAuthGrant| {
                if g.resource != resource {
                    return Err(Refusal::new(
                        "invalid_target",
                        "the resource differs from the grant's",
                    ));
                }
                Ok(())
            });
            o.hub
                .store
                .refresh_oauth_token(&hash(old), &client_id, check, new, now)
                .await
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!(
                    "grant_type {other:?} is not supported (authorization_code, refresh_token)"
                ),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            );
        }
    };
    match outcome {
        Ok(Ok(_grant)) => no_store(
            StatusCode::OK,
            json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": ACCESS_TTL_S,
                "refresh_token": refresh,
                "scope": SCOPE,
            }),
        ),
        Ok(Err(r)) => {
            if r.description.starts_with("unknown ") {
                // Nothing was committed for a guess: audit it under a budget.
                if let Some(suppressed) = o.guesses.take() {
                    let mut e = sonde_protocol::audit::NewEntry::new(
                        format!("oauth:{client_id}"),
                        AuditAction::OauthTokenRefused,
                        "denied",
                    )
                    .detail("error", r.error)
                    .detail("reason", r.description.clone());
                    if suppressed > 0 {
                        e = e.detail("refusals_not_audited_before_this", suppressed);
                    }
                    o.hub.audit(e).await;
                }
            }
            refused(&r)
        }
        Err(e) => {
            tracing::error!(error = %e, "OAuth token request failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the hub could not record the request; see its log",
            )
        }
    }
}

/// `POST /oauth/revoke` (RFC 7009): revokes the grant the token belongs to
/// (its access and refresh tokens). Answers 200 for unknown tokens too.
pub async fn revoke(State(o): State<Arc<OAuth>>, body: Bytes) -> Response {
    let params = match std::str::from_utf8(&body)
        .map_err(|_| "the body is not UTF-8".to_owned())
        .and_then(parse_params)
    {
        Ok(p) => p,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let Some(token) = param(&params, "token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    match o
        .hub
        .store
        .revoke_oauth_token(&hash(token), o.hub.clock.now_ms())
        .await
    {
        Ok(_) => no_store(StatusCode::OK, json!({})),
        Err(e) => {
            tracing::error!(error = %e, "OAuth revocation failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the hub could not record the revocation; see its log",
            )
        }
    }
}

/// Why an OAuth access token is not accepted at `/mcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRefused {
    /// Unknown, expired or revoked token.
    Invalid,
    /// The grant was revoked, expired, or its client revoked.
    Inactive(&'static str),
    /// Bound to another resource (audience).
    WrongAudience,
}

/// Checks a grant an access token resolved to; `resource` is this hub's.
pub fn check_grant(g: &OAuthGrant, resource: &str, now: i64) -> Result<(), AccessRefused> {
    if g.client_revoked {
        return Err(AccessRefused::Inactive("the client was revoked"));
    }
    if g.status != GrantStatus::Approved {
        return Err(AccessRefused::Inactive("the grant is not active"));
    }
    if g.policy.expires_at_ms.is_some_and(|e| e <= now) {
        return Err(AccessRefused::Inactive("the grant has expired"));
    }
    if g.resource != resource {
        return Err(AccessRefused::WrongAudience);
    }
    Ok(())
}

/// The policy an approved grant carries, in the shape the tools enforce
/// (an API key's): the actor in audit entries is `oauth:<client id>`.
pub fn policy_of(g: &OAuthGrant) -> KeyPolicy {
    KeyPolicy {
        key: ApiKey {
            id: g.id.clone(),
            name: format!("{} (OAuth)", g.client_name),
            prefix: format!("oauth:{}", g.client_id),
            agents: g.policy.agents.clone(),
            probes: g.policy.probes.clone(),
            tools: g.policy.tools.clone(),
            max_capability: g.policy.max_capability,
            created_at_ms: g.decided_at_ms.unwrap_or(g.requested_at_ms),
            expires_at_ms: g.policy.expires_at_ms,
            last_used_at_ms: None,
            revoked_at_ms: g.revoked_at_ms,
        },
    }
}

/// The policy of an OAuth access token presented to `/mcp`.
pub async fn authenticate(
    hub: &Hub,
    token: &str,
) -> Result<Result<KeyPolicy, AccessRefused>, crate::store::StoreError> {
    let now = hub.clock.now_ms();
    let Some(grant) = hub.store.oauth_access(&hash(token), now).await? else {
        return Ok(Err(AccessRefused::Invalid));
    };
    Ok(check_grant(&grant, &resource(hub), now).map(|()| policy_of(&grant)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::oauth::OAuthPolicy;

    fn grant() -> OAuthGrant {
        OAuthGrant {
            id: "oag-1".into(),
            client_id: "oac-1".into(),
            client_name: "Claude".into(),
            client_revoked: false,
            status: GrantStatus::Approved,
            user_code: "BCDF-GHJK".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            state: "s".into(),
            code_challenge: "c".into(),
            resource: "https://localhost:7444/mcp".into(),
            scope: "mcp".into(),
            remote_addr: "127.0.0.1".into(),
            requested_at_ms: 1,
            decided_at_ms: Some(2),
            decided_by: Some("operator:root".into()),
            deny_reason: None,
            policy: OAuthPolicy {
                agents: vec!["nas*".into()],
                ..OAuthPolicy::default()
            },
            code_issued: true,
            code_expires_at_ms: Some(3),
            code_used_at_ms: Some(3),
            revoked_at_ms: None,
        }
    }

    #[test]
    fn audience_bound_tokens() {
        let g = grant();
        assert!(check_grant(&g, "https://localhost:7444/mcp", 10).is_ok());
        assert_eq!(
            check_grant(&g, "https://other.example/mcp", 10),
            Err(AccessRefused::WrongAudience)
        );
        assert_eq!(
            check_grant(&g, "https://localhost:7444/mcp/", 10),
            Err(AccessRefused::WrongAudience),
            "no normalisation"
        );
        let mut revoked = g.clone();
        revoked.client_revoked = true;
        assert!(check_grant(&revoked, "https://localhost:7444/mcp", 10).is_err());
        let mut expired = g.clone();
        expired.policy.expires_at_ms = Some(10);
        assert!(check_grant(&expired, "https://localhost:7444/mcp", 10).is_err());
        let mut pending = g;
        pending.status = GrantStatus::Revoked;
        assert!(check_grant(&pending, "https://localhost:7444/mcp", 10).is_err());
    }

    #[test]
    fn oauth_grants_carry_the_operators_policy() {
        let p = policy_of(&grant());
        assert_eq!(p.actor(), "oauth:oac-1");
        assert!(p.allows_agent("nas1") && !p.allows_agent("web1"));
    }
}
