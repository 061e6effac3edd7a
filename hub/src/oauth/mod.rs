//! OAuth 2.1 for MCP clients, the MCP authorization way (spec 2025-06-18 /
//! 2025-11-25): the hub is both the protected resource (`/mcp`) and its own
//! authorization server, and the only "user" who consents is the operator.
//!
//! - [`metadata`]: protected-resource metadata (RFC 9728) and
//!   authorization-server metadata (RFC 8414); the `WWW-Authenticate`
//!   challenge on 401 points at the former.
//! - [`registration`]: dynamic client registration (RFC 7591), public
//!   clients only (`token_endpoint_auth_method = none`, PKCE instead).
//! - [`redirect`]: which redirect URIs may be registered and how a presented
//!   one is matched (exactly; loopback on any port, RFC 8252 §7.3).
//! - [`authorize`]: the authorization endpoint: validates the request,
//!   records it for the operator, and holds the browser on a page showing
//!   the client, the redirect host and a short code until the operator
//!   approves (302 with code and state), denies, or nobody decides in time.
//! - [`pending`]: the operator's side (admin API, CLI, console): list,
//!   approve with a policy (an API key's scopes), deny, clients, revoke.
//! - [`token`]: code exchange (PKCE S256), refresh with rotation and replay
//!   detection, revocation (RFC 7009); and the bearer check the MCP guard
//!   uses ([`token::authenticate`]).
//!
//! Why no client ID metadata documents: they make the hub fetch URLs
//! chosen by whoever calls it (an SSRF path from the MCP port into the
//! operator's network). Dynamic registration is enough because every grant
//! is approved by the operator anyway. Every secret is random (OS source),
//! shown once and stored as its SHA-256.

pub mod authorize;
pub mod metadata;
pub mod pending;
pub mod pkce;
pub mod redirect;
pub mod registration;
pub mod token;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::hub::{Hub, SharedHub};

/// An authorization code is valid this long after the browser gets it.
pub const CODE_TTL_MS: i64 = 60_000;
/// Access tokens live one hour.
pub const ACCESS_TTL_S: i64 = 3600;
/// Refresh tokens live 30 days (each is used once: rotation).
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// How long the operator has to decide on a request
/// (`mcp.oauth_approval_timeout_s`, default five minutes).
pub fn request_ttl_ms(config: &crate::config::HubConfig) -> i64 {
    i64::try_from(config.mcp.oauth_approval_timeout_s)
        .unwrap_or(86_400)
        .saturating_mul(1000)
}
/// At most this many requests wait for the operator at once.
pub const MAX_PENDING: usize = 32;
/// Client registrations allowed per minute (all callers together).
pub const REGISTRATIONS_PER_MINUTE: u32 = 20;
/// Authorization requests allowed per minute (all callers together).
pub const REQUESTS_PER_MINUTE: u32 = 30;
/// Largest body of a registration or token request.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The one scope: access to the MCP tools under the operator's policy.
pub const SCOPE: &str = "mcp";

/// The OAuth state shared by the endpoints.
#[derive(Debug)]
pub struct OAuth {
    pub hub: SharedHub,
    registrations: Window,
    requests: Window,
    /// Audit entries for guessed (unknown) codes and tokens, per minute.
    guesses: crate::rate_limit::AuditBudget,
}

/// A fixed one-minute window counter (a global brake on unauthenticated
/// endpoints that create state).
#[derive(Debug)]
struct Window {
    per_minute: u32,
    state: Mutex<(Instant, u32)>,
}

impl Window {
    fn new(per_minute: u32) -> Self {
        Window {
            per_minute,
            state: Mutex::new((Instant::now(), 0)),
        }
    }

    fn take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0.elapsed().as_secs() >= 60 {
            *s = (Instant::now(), 0);
        }
        if s.1 >= self.per_minute {
            return false;
        }
        s.1 += 1;
        true
    }
}

impl OAuth {
    pub fn new(hub: SharedHub) -> Arc<Self> {
        Arc::new(OAuth {
            hub,
            registrations: Window::new(REGISTRATIONS_PER_MINUTE),
            requests: Window::new(REQUESTS_PER_MINUTE),
            guesses: crate::rate_limit::AuditBudget::per_minute(60),
        })
    }
}

/// The public origin of this hub's MCP endpoint: `mcp.public_url`, else the
/// listener's URL without `/mcp`. The OAuth issuer.
pub fn issuer(hub: &Hub) -> String {
    if let Some(url) = &hub.config.mcp.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    hub.endpoints()
        .mcp_url
        .map(|u| u.trim_end_matches("/mcp").to_owned())
        .unwrap_or_else(|| format!("https://localhost:{}", hub.config.mcp_listen.port()))
}

/// The protected resource every token is bound to (its audience).
pub fn resource(hub: &Hub) -> String {
    format!("{}/mcp", issuer(hub))
}

/// Where the protected-resource metadata is (for `WWW-Authenticate`).
pub fn resource_metadata_url(hub: &Hub) -> String {
    format!("{}/.well-known/oauth-protected-resource/mcp", issuer(hub))
}

/// A random secret: `<prefix><hex of `bytes` random bytes>`.
pub fn new_secret(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    sonde_protocol::keys::random_bytes(&mut buf).expect("the OS random source failed");
    format!("{prefix}{}", hex::encode(buf))
}

/// How every OAuth secret is stored: SHA-256, hex.
pub fn hash(secret: &str) -> String {
    sonde_protocol::Digest::of(secret.as_bytes()).to_hex()
}

/// The peer address of the request, when the server recorded it.
#[derive(Debug, Clone)]
pub struct Remote(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Remote(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// Parses `application/x-www-form-urlencoded` text (a query string or a
/// body) into single-valued parameters: a repeated parameter is an error
/// (RFC 6749 §3.1), as is a body that does not parse.
pub fn parse_params(text: &str) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
        .map_err(|e| format!("the parameters do not parse: {e}"))?;
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(other, _)| other == k) {
            return Err(format!("parameter {k:?} is repeated"));
        }
    }
    Ok(pairs)
}

/// The value of one parameter (empty counts as absent).
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A JSON answer that must never be cached (tokens, registrations, errors).
pub fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An OAuth error response (RFC 6749 §5.2).
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        status,
        serde_json::json!({"error": error, "error_description": description}),
    )
}

/// CORS for browser-based MCP clients, on the discovery, registration,
/// token and revocation endpoints only: an `Origin` the operator allowed
/// for `/mcp` (`mcp.allowed_origins`) is allowed here too (echoed, never
/// `*`); any other origin gets no CORS headers, so browsers keep its pages
/// from reading the answers. No cookies are involved: no credentials.
pub async fn cors(
    State(o): State<Arc<OAuth>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_end_matches('/').to_owned())
        .filter(|origin| {
            o.hub
                .config
                .mcp
                .allowed_origins
                .iter()
                .any(|a| a.trim_end_matches('/') == origin)
        })
        .and_then(|origin| HeaderValue::from_str(&origin).ok());
    let preflight = request.method() == axum::http::Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, authorization, mcp-protocol-version"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    response
}

/// The OAuth routes, mounted beside `/mcp` (outside its API-key guard).
pub fn router(hub: SharedHub) -> axum::Router {
    let state = OAuth::new(hub);
    let preflight = || axum::routing::options(|| async { StatusCode::NO_CONTENT });
    // The browser-facing pages (authorize, wait) are navigations: no CORS.
    let api = axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(metadata::protected_resource).merge(preflight()),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(metadata::protected_resource).merge(preflight()),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server).merge(preflight()),
        )
        .route(
            "/oauth/register",
            post(registration::register).merge(preflight()),
        )
        .route("/oauth/token", post(token::token).merge(preflight()))
        .route("/oauth/revoke", post(token::revoke).merge(preflight()))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            cors,
        ));
    axum::Router::new()
        .route("/oauth/authorize", get(authorize::authorize))
        .route("/oauth/authorize/wait", get(authorize::wait))
        .merge(api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let p = parse_params("a=1&b=2").unwrap();
        assert_eq!(param(&p, "a"), Some("1"));
        assert_eq!(param(&p, "c"), None);
        assert!(parse_params("a=1&a=2").unwrap_err().contains("repeated"));
        assert_eq!(param(&parse_params("a=").unwrap(), "a"), None);
    }

    #[test]
    fn secrets_are_random_and_stored_hashed() {
        let a = new_secret("sonde_at_", 32);
        let b = new_secret("sonde_at_", 32);
        assert_ne!(a, b);
        assert_eq!(a.len(), "sonde_at_".len() + 64);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
    }
}
