//! Dynamic client registration (RFC 7591), for public clients: no client
//! secret is issued (`token_endpoint_auth_method = none`); PKCE and the
//! operator's approval are what protect a grant. A registration grants
//! nothing by itself. Registrations are capped per minute (all callers
//! together) so an unauthenticated caller cannot fill the database.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use super::{OAuth, Remote, SCOPE, no_store, redirect};
use crate::store::oauth::OAuthClient;

/// At most this many redirect URIs per client.
const MAX_REDIRECT_URIS: usize = 10;

/// The registration request fields Sonde reads; others are ignored (RFC
/// 7591 §2: the server may ignore metadata it does not support).
#[derive(Debug, Deserialize)]
pub struct RegistrationRequest {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

fn invalid(error: &str, description: &str) -> Response {
    super::oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// Checks a registration; returns the client name and redirect URIs.
pub fn validate(
    req: &RegistrationRequest,
) -> Result<(String, Vec<String>), (&'static str, String)> {
    if req.redirect_uris.is_empty() {
        return Err((
            "invalid_redirect_uri",
            "redirect_uris is required (at least one)".into(),
        ));
    }
    if req.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err((
            "invalid_redirect_uri",
            format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    for uri in &req.redirect_uris {
        redirect::check_registrable(uri).map_err(|e| ("invalid_redirect_uri", e))?;
    }
    let name = req
        .client_name
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_owned();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err((
            "invalid_client_metadata",
            "client_name must be at most 100 printable characters".into(),
        ));
    }
    let name = if name.is_empty() {
        "unnamed client".to_owned()
    } else {
        name
    };
    if let Some(g) = &req.grant_types
        && let Some(bad) = g
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err((
            "invalid_client_metadata",
            format!("grant type {bad:?} is not supported (authorization_code, refresh_token)"),
        ));
    }
    if let Some(r) = &req.response_types
        && r.iter().any(|r| r != "code")
    {
        return Err((
            "invalid_client_metadata",
            "only the \"code\" response type is supported".into(),
        ));
    }
    if let Some(s) = &req.scope
        && s.split(' ').any(|s| !s.is_empty() && s != SCOPE)
    {
        return Err((
            "invalid_client_metadata",
            format!("the only scope is {SCOPE:?}"),
        ));
    }
    let mut uris = req.redirect_uris.clone();
    uris.dedup();
    Ok((name, uris))
}

/// `POST /oauth/register`
pub async fn register(
    State(o): State<Arc<OAuth>>,
    Remote(remote): Remote,
    body: Bytes,
) -> Response {
    let req: RegistrationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return invalid(
                "invalid_client_metadata",
                &format!("the registration must be a JSON object: {e}"),
            );
        }
    };
    let (name, redirect_uris) = match validate(&req) {
        Ok(v) => v,
        Err((code, message)) => return invalid(code, &message),
    };
    if !o.registrations.take() {
        return super::oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many client registrations this minute; try again later",
        );
    }
    let client = OAuthClient {
        client_id: crate::store::new_id("oac-", 16),
        name,
        redirect_uris,
        registered_at_ms: o.hub.clock.now_ms(),
        remote_addr: remote,
        revoked_at_ms: None,
    };
    let client = match o.hub.store.register_oauth_client(client).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "OAuth client registration failed");
            return super::oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the hub could not record the registration; see its log",
            );
        }
    };
    no_store(
        StatusCode::CREATED,
        json!({
            "client_id": client.client_id,
            "client_id_issued_at": client.registered_at_ms / 1000,
            "client_name": client.name,
            "redirect_uris": client.redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": SCOPE,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> RegistrationRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn registrations_are_validated() {
        let (name, uris) = validate(&req(json!({
            "redirect_uris": ["http://127.0.0.1:9999/cb"],
            "client_name": "Claude",
            "token_endpoint_auth_method": "client_secret_post",
        })))
        .unwrap();
        assert_eq!((name.as_str(), uris.len()), ("Claude", 1));
        for bad in [
            json!({}),
            json!({"redirect_uris": []}),
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            json!({"redirect_uris": ["https://x/cb"], "grant_types": ["implicit"]}),
            json!({"redirect_uris": ["https://x/cb"], "grant_types": ["client_credentials"]}),
            json!({"redirect_uris": ["https://x/cb"], "response_types": ["token"]}),
            json!({"redirect_uris": ["https://x/cb"], "client_name": "a\u{1b}[2Jb"}),
            json!({"redirect_uris": ["https://x/cb"], "scope": "admin"}),
        ] {
            assert!(validate(&req(bad.clone())).is_err(), "{bad}");
        }
    }
}
