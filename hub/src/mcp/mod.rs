//! The MCP endpoint: Streamable HTTP at `/mcp` (rmcp), on HTTPS with the hub
//! certificate, or plain HTTP on loopback for a reverse proxy.
//!
//! Every request passes [`guard`] first: `Host` must be one of the hub's
//! names (DNS-rebinding protection), a present `Origin` must be allowlisted,
//! the body must be within the limit, the bearer API key must be valid
//! (not unknown, revoked or expired) and within its rate limit. Failures get
//! a JSON error with 403/413/401/429 and never reach a tool. The key's
//! policy then travels with the request to the tools ([`tools`]), which
//! enforce it on every call.

pub mod policy;
pub mod prompts;
pub mod tools;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::ErrorBody;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::hub::SharedHub;
use crate::rate_limit::AuditBudget;
use crate::store;
use policy::KeyPolicy;

/// A bound MCP listener.
#[derive(Debug)]
pub struct McpListener {
    pub listener: TcpListener,
    pub url: String,
    pub tls: bool,
}

/// Binds the MCP port and works out its URL.
pub async fn bind(hub: &SharedHub) -> anyhow::Result<Option<McpListener>> {
    let addr = hub.config.mcp_listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for MCP clients on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let tls = !hub.config.mcp.plain_http;
    let host = hub
        .config
        .public_host
        .clone()
        .or_else(|| hub.hostnames.first().cloned())
        .unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                "127.0.0.1".into()
            } else {
                local.ip().to_string()
            }
        });
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!(
        "{}://{host}:{}/mcp",
        if tls { "https" } else { "http" },
        local.port()
    );
    Ok(Some(McpListener { listener, url, tls }))
}

/// Per-key token buckets.
#[derive(Debug, Default)]
struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `Ok` if a request is allowed now, else the seconds until one is.
    fn check(&self, key: &str, per_minute: u32) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let refill = capacity / 60.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = map.entry(key.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * refill).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / refill).ceil() as u64)
        }
    }
}

/// State shared by the guard.
#[derive(Debug)]
pub struct Gate {
    hub: SharedHub,
    hosts: Vec<String>,
    limiter: RateLimiter,
    budget: AuditBudget,
    touched: Mutex<HashMap<String, Instant>>,
}

fn deny(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut r = (
        status,
        axum::Json(ErrorBody {
            error: code.into(),
            message: message.into(),
        }),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"sonde\""),
        );
    }
    r
}

/// The host part of a `Host` header (`[::1]:7444` → `::1`).
fn host_name(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    match v.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_owned(),
        _ => v,
    }
}

impl Gate {
    fn new(hub: SharedHub, local: SocketAddr) -> Self {
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        hosts.extend(hub.hostnames.iter().cloned());
        hosts.extend(hub.config.mcp.allowed_hosts.iter().cloned());
        hosts.extend(hub.config.public_host.iter().cloned());
        // The public origin OAuth tokens are bound to is one of its names.
        hosts.extend(
            hub.config
                .mcp
                .public_url
                .as_deref()
                .and_then(|u| u.split_once("://"))
                .map(|(_, authority)| authority.to_owned()),
        );
        if !local.ip().is_unspecified() {
            hosts.push(local.ip().to_string());
        }
        let hosts = hosts.into_iter().map(|h| host_name(&h)).collect();
        Gate {
            hub,
            hosts,
            limiter: RateLimiter::default(),
            budget: AuditBudget::per_minute(60),
            touched: Mutex::new(HashMap::new()),
        }
    }

    async fn audit_denial(&self, action: AuditAction, reason: &str, detail: &[(&str, String)]) {
        let Some(suppressed) = self.budget.take() else {
            return;
        };
        let mut e = NewEntry::new("mcp", action, "denied").detail("reason", reason);
        for (k, v) in detail {
            e = e.detail(k, v.clone());
        }
        if suppressed > 0 {
            e = e.detail("denials_not_audited_before_this", suppressed);
        }
        self.hub.audit(e).await;
    }

    /// Finds the key presented in `Authorization: Bearer …`.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<KeyPolicy, Response> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(deny(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "send the API key as `Authorization: Bearer <key>` (create one with `sonde-hub keys create`)",
            ));
        };
        let presented = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or("")
            .trim()
            .to_owned();
        let invalid = || {
            deny(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "the API key is not valid",
            )
        };
        if presented.starts_with(crate::oauth::token::ACCESS_PREFIX) {
            return self.authenticate_oauth(&presented).await;
        }
        let Some(prefix) = store::keys::prefix_of(&presented).map(str::to_owned) else {
            self.audit_denial(AuditAction::McpAuthFailed, "malformed key", &[])
                .await;
            return Err(invalid());
        };
        let row = self.hub.store.key_by_prefix(&prefix).await.map_err(|e| {
            tracing::error!(error = %e, "API key lookup failed");
            deny(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the hub could not check the key; see its log",
            )
        })?;
        let Some((key, _)) = row.filter(|(_, secret_sha256)| {
            constant_time_eq(
                secret_sha256.as_bytes(),
                store::keys::hash(&presented).as_bytes(),
            )
        }) else {
            self.audit_denial(
                AuditAction::McpAuthFailed,
                "unknown key",
                &[("prefix", prefix)],
            )
            .await;
            return Err(invalid());
        };
        if key.revoked_at_ms.is_some() {
            self.audit_denial(
                AuditAction::McpAuthFailed,
                "revoked key",
                &[("prefix", prefix)],
            )
            .await;
            return Err(deny(
                StatusCode::UNAUTHORIZED,
                "revoked_api_key",
                "this API key was revoked",
            ));
        }
        if key
            .expires_at_ms
            .is_some_and(|e| e <= self.hub.clock.now_ms())
        {
            self.audit_denial(
                AuditAction::McpAuthFailed,
                "expired key",
                &[("prefix", prefix)],
            )
            .await;
            return Err(deny(
                StatusCode::UNAUTHORIZED,
                "expired_api_key",
                "this API key has expired; create a new one with `sonde-hub keys create`",
            ));
        }
        Ok(KeyPolicy { key })
    }

    /// An OAuth access token: known, not expired or revoked, its grant
    /// approved and active, its client not revoked, and bound to this hub's
    /// resource URL (audience). Yields the policy the operator approved.
    async fn authenticate_oauth(&self, token: &str) -> Result<KeyPolicy, Response> {
        use crate::oauth::token::AccessRefused;
        let outcome = crate::oauth::token::authenticate(&self.hub, token)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "OAuth token lookup failed");
                deny(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the hub could not check the token; see its log",
                )
            })?;
        match outcome {
            Ok(policy) => Ok(policy),
            Err(refused) => {
                let (reason, message) = match refused {
                    AccessRefused::Invalid => (
                        "unknown, expired or revoked OAuth token",
                        "the access token is not valid (unknown, expired or revoked); refresh it or authorize again",
                    ),
                    AccessRefused::Inactive(why) => (why, why),
                    AccessRefused::WrongAudience => (
                        "OAuth token for another resource",
                        "the access token was issued for another resource than this hub's MCP endpoint",
                    ),
                };
                self.audit_denial(AuditAction::McpAuthFailed, reason, &[])
                    .await;
                Err(deny(StatusCode::UNAUTHORIZED, "invalid_token", message))
            }
        }
    }

    /// Records last use at most once a minute per key.
    async fn touch(&self, key_id: &str) {
        let due = {
            let mut t = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            let due = t
                .get(key_id)
                .is_none_or(|at| at.elapsed() > Duration::from_secs(60));
            if due {
                t.insert(key_id.to_owned(), Instant::now());
            }
            due
        };
        if due
            && let Err(e) = self
                .hub
                .store
                .touch_key(key_id, self.hub.clock.now_ms())
                .await
        {
            tracing::warn!(error = %e, "could not record an API key's last use");
        }
    }
}

/// Equal, in time that does not depend on where they differ (`subtle`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

/// The checks every MCP request passes before rmcp sees it.
pub async fn guard(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name)
        .unwrap_or_default();
    if !gate.hosts.contains(&host) {
        gate.audit_denial(
            AuditAction::McpRequestRefused,
            "host not allowed",
            &[("host", host.clone())],
        )
        .await;
        return deny(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "Host {host:?} is not one of this hub's names (add it to mcp.allowed_hosts in hub.toml)"
            ),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin
            .to_str()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        if !gate
            .hub
            .config
            .mcp
            .allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
        {
            gate.audit_denial(
                AuditAction::McpRequestRefused,
                "origin not allowed",
                &[("origin", origin.clone())],
            )
            .await;
            return deny(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!("Origin {origin:?} is not allowed (mcp.allowed_origins in hub.toml)"),
            );
        }
    }
    let limit = gate.hub.config.mcp.max_body_bytes;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > limit) {
        return deny(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {limit} bytes"),
        );
    }
    let policy = match gate.authenticate(request.headers()).await {
        Ok(p) => p,
        Err(mut resp) => {
            if resp.status() == StatusCode::UNAUTHORIZED {
                // Where an MCP client finds how to get a token (RFC 9728 §5.1).
                let token_presented = request.headers().contains_key(header::AUTHORIZATION);
                let challenge = format!(
                    "Bearer realm=\"sonde\", resource_metadata=\"{}\"{}",
                    crate::oauth::resource_metadata_url(&gate.hub),
                    if token_presented {
                        ", error=\"invalid_token\""
                    } else {
                        ""
                    }
                );
                if let Ok(v) = header::HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            return resp;
        }
    };
    if let Err(wait) = gate
        .limiter
        .check(&policy.key.id, gate.hub.config.mcp.rate_limit_per_minute)
    {
        let mut r = deny(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this key is limited to {} requests per minute; retry in {wait}s",
                gate.hub.config.mcp.rate_limit_per_minute
            ),
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    if !policy.key.prefix.starts_with("oauth:") {
        gate.touch(&policy.key.id).await;
    }
    request.extensions_mut().insert(policy);
    let (parts, body) = request.into_parts();
    if parts.method != axum::http::Method::POST {
        return next.run(Request::from_parts(parts, body)).await;
    }
    // Read the (bounded) body so malformed JSON-RPC gets a JSON-RPC error.
    let bytes =
        match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return deny(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request bodies are limited to {limit} bytes"),
                );
            }
        };
    if let Err((code, message)) = check_json_rpc(&bytes) {
        return json_rpc_error(code, message);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A JSON-RPC error response (HTTP 400) for a message that is not JSON-RPC.
fn json_rpc_error(code: i64, message: String) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Refuses bodies that are not one JSON-RPC 2.0 message.
fn check_json_rpc(bytes: &[u8]) -> Result<(), (i64, String)> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| (-32700, format!("Parse error: {e}")))?;
    let obj = value.as_object().ok_or((
        -32600,
        "Invalid Request: expected one JSON-RPC message (an object)".to_owned(),
    ))?;
    if obj.get("jsonrpc").and_then(|v| v.as_str()) != Some("2.0") {
        return Err((
            -32600,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"".into(),
        ));
    }
    if obj.contains_key("method") && !obj.get("method").is_some_and(|m| m.is_string()) {
        return Err((
            -32600,
            "Invalid Request: \"method\" must be a string".into(),
        ));
    }
    Ok(())
}

/// The `/mcp` router.
pub fn router(hub: SharedHub, local: SocketAddr, cancel: CancellationToken) -> axum::Router {
    let gate = Arc::new(Gate::new(Arc::clone(&hub), local));
    let mut config = StreamableHttpServerConfig::default();
    config.cancellation_token = cancel;
    config.max_request_body_bytes = hub.config.mcp.max_body_bytes;
    // Plain JSON answers where possible (simpler for curl and proxies).
    config.json_response = true;
    // Host and Origin are checked (with clear errors) by the guard.
    config = config.disable_allowed_hosts();
    let service_hub = Arc::clone(&hub);
    let service = StreamableHttpService::new(
        move || Ok(tools::SondeMcp::new(Arc::clone(&service_hub))),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(gate, guard))
        // OAuth discovery, registration, authorization and tokens: beside
        // `/mcp`, outside its bearer guard (`hub/src/oauth/`).
        .merge(crate::oauth::router(hub))
}

/// Serves MCP until `draining`.
pub async fn serve(
    hub: SharedHub,
    mcp: McpListener,
    draining: CancellationToken,
) -> anyhow::Result<()> {
    let local = mcp.listener.local_addr()?;
    let app = router(Arc::clone(&hub), local, draining.child_token());
    tracing::info!(url = %mcp.url, "MCP endpoint listening");
    if !mcp.tls {
        use axum::serve::ListenerExt;
        let listener = mcp.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { draining.cancelled().await })
        .await?;
        return Ok(());
    }
    let acceptor = TlsAcceptor::from(Arc::new(crate::link::listener::server_only_tls_config(
        &hub,
    )?));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, remote) = tokio::select! {
            _ = draining.cancelled() => break,
            accepted = mcp.listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on the MCP port");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // The peer address, for the OAuth endpoints' records.
        let app = app
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(remote)));
        let (acceptor, draining) = (acceptor.clone(), draining.clone());
        // Small request/response exchanges: never wait for Nagle.
        let _ = tcp.set_nodelay(true);
        connections.spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "MCP TLS handshake failed"),
                Err(_) => return,
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { tracing::debug!(%remote, error = %e, "MCP connection ended with an error") },
                _ = draining.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("LocalHost:7444"), "localhost");
        assert_eq!(host_name("[::1]:7444"), "::1");
        assert_eq!(host_name("nas.lan"), "nas.lan");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn malformed_json_rpc_is_answered_in_json_rpc() {
        assert!(check_json_rpc(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_ok());
        for bad in [
            &b"{not json"[..],
            b"[1,2]",
            br#"{"id":1}"#,
            br#"{"jsonrpc":"2.0","method":5}"#,
        ] {
            let (code, _) = check_json_rpc(bad).unwrap_err();
            assert!(code == -32700 || code == -32600);
        }
    }

    /// Expiry is decided by the hub's clock: moved past a key's expiry, the
    /// same request through the real gate and store is refused and audited.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_api_key_expires_by_the_hubs_clock() {
        use sonde_admin::api::KeyCreate;
        use sonde_protocol::time::ManualClock;
        use std::time::Duration;

        let time = ManualClock::now();
        let (_dir, hub) = crate::hub::testing::hub(time.clock()).await;
        let created = crate::fleet::create_key(
            &hub,
            KeyCreate {
                name: "short".into(),
                agents: Vec::new(),
                probes: Vec::new(),
                tools: Vec::new(),
                max_capability: Default::default(),
                expires_in_s: Some(60),
            },
            "test",
        )
        .await
        .unwrap();
        assert_eq!(
            created.info.expires_at_ms,
            Some(time.now_ms() + 60_000),
            "the expiry is set by the hub's clock"
        );
        let gate = Gate::new(Arc::clone(&hub), "127.0.0.1:0".parse().unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {}", created.key).parse().unwrap(),
        );
        time.advance(Duration::from_millis(59_999));
        assert!(
            gate.authenticate(&headers).await.is_ok(),
            "valid until then"
        );
        time.advance(Duration::from_millis(1));
        let refused = gate.authenticate(&headers).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("expired_api_key"), "{body}");
        let failures = crate::hub::testing::audited(&hub, AuditAction::McpAuthFailed).await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].detail["reason"], "expired key");
        // Time does not heal it.
        time.advance(Duration::from_secs(3600));
        assert!(gate.authenticate(&headers).await.is_err());
    }

    #[test]
    fn rate_limit_is_a_token_bucket() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            assert!(r.check("k", 3).is_ok());
        }
        let wait = r.check("k", 3).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(r.check("other", 3).is_ok(), "buckets are per key");
    }
}
