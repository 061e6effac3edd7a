//! The authorization endpoint and the page the browser waits on.
//!
//! `GET /oauth/authorize` checks the client and its redirect URI first
//! (a bad one gets an error page, never a redirect: RFC 6749 §4.1.2.1),
//! then the rest of the request (errors go back to the client's redirect
//! URI with `error=`), records it for the operator (`oauth.requested`) and
//! answers a page showing the client's name, the redirect host and a short
//! code. That page refreshes into `GET /oauth/authorize/wait?handle=…`,
//! which holds the browser up to [`WAIT_S`] seconds at a time until the
//! operator decides: approved → 302 to the redirect URI with `code`,
//! `state` and `iss`; denied or not decided within
//! `mcp.oauth_approval_timeout_s` → a page saying why, which forwards to the
//! redirect URI with `error=access_denied`. The handle is a random secret
//! only this browser has (stored hashed); the code is handed out once.
//! Everything shown is HTML-escaped; pages carry no script.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

use super::{
    CODE_TTL_MS, MAX_PENDING, OAuth, Remote, SCOPE, hash, issuer, new_secret, param, parse_params,
    pkce, redirect, request_ttl_ms, resource,
};
use crate::store::StoreError;
use crate::store::oauth::{GrantStatus, NewRequest, OAuthGrant};

/// How long one wait request is held before the page refreshes.
pub const WAIT_S: u64 = 20;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A page: `body` is already-escaped HTML; `refresh` = (seconds, URL).
fn page(status: StatusCode, title: &str, body: &str, refresh: Option<(u32, &str)>) -> Response {
    let meta = refresh
        .map(|(s, url)| {
            format!(
                "<meta http-equiv=\"refresh\" content=\"{s}; url={}\">",
                escape(url)
            )
        })
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{meta}\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{t} — Sonde</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;line-height:1.5}}\
         code,.code{{font-family:ui-monospace,monospace}}.code{{font-size:2em;letter-spacing:.1em}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    r
}

fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Authorization refused",
        &format!(
            "<p>{}</p><p>Start again from your MCP client.</p>",
            escape(message)
        ),
        None,
    )
}

/// `redirect_uri` with `params` added to its query.
pub fn with_query(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{query}")
}

fn found(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A short code shown on the page and to the operator: `XXXX-XXXX` from
/// letters and digits that cannot be confused.
pub fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ23456789";
    let mut raw = [0u8; 8];
    sonde_protocol::keys::random_bytes(&mut raw).expect("the OS random source failed");
    let chars: String = raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// The request, checked. `Err` is what to answer.
struct Checked {
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
    resource: String,
}

async fn check(o: &OAuth, query: &str) -> Result<Checked, Response> {
    let params = parse_params(query).map_err(|e| error_page(StatusCode::BAD_REQUEST, &e))?;
    let client_id = param(&params, "client_id")
        .ok_or_else(|| error_page(StatusCode::BAD_REQUEST, "client_id is missing"))?;
    let client = match o.hub.store.oauth_client(client_id).await {
        Ok(Some(c)) if c.revoked_at_ms.is_none() => c,
        Ok(Some(_)) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "this client was revoked by the hub's operator",
            ));
        }
        Ok(None) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "unknown client_id (the client must register first)",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "OAuth client lookup failed");
            return Err(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the hub could not look the client up; see its log",
            ));
        }
    };
    let presented = param(&params, "redirect_uri")
        .ok_or_else(|| error_page(StatusCode::BAD_REQUEST, "redirect_uri is missing"))?;
    if redirect::find(&client.redirect_uris, presented).is_none() {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not one the client registered (they must match exactly)",
        ));
    }
    let redirect_uri = presented.to_owned();
    let iss = issuer(&o.hub);
    // From here on, errors go back to the client (with its state if any).
    let state = param(&params, "state");
    let fail = |error: &str, description: &str| {
        let mut q = vec![("error", error), ("error_description", description)];
        if let Some(s) = state {
            q.push(("state", s));
        }
        q.push(("iss", iss.as_str()));
        found(&with_query(&redirect_uri, &q))
    };
    if param(&params, "response_type") != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "response_type must be \"code\"",
        ));
    }
    let Some(state) = state else {
        return Err(fail("invalid_request", "state is required"));
    };
    if state.len() > 512 {
        return Err(fail("invalid_request", "state is longer than 512 bytes"));
    }
    let method = param(&params, "code_challenge_method");
    if method != Some("S256") {
        return Err(fail(
            "invalid_request",
            "PKCE is required with code_challenge_method=S256 (plain is not accepted)",
        ));
    }
    let Some(challenge) = param(&params, "code_challenge").filter(|c| pkce::valid_challenge(c))
    else {
        return Err(fail(
            "invalid_request",
            "code_challenge must be BASE64URL(SHA-256(code_verifier)), 43 characters",
        ));
    };
    if let Some(scope) = param(&params, "scope")
        && scope.split(' ').any(|s| !s.is_empty() && s != SCOPE)
    {
        return Err(fail("invalid_scope", "the only scope is \"mcp\""));
    }
    let ours = resource(&o.hub);
    let res = param(&params, "resource").unwrap_or(&ours);
    if res != ours {
        return Err(fail(
            "invalid_target",
            &format!("this hub issues tokens only for the resource {ours}"),
        ));
    }
    Ok(Checked {
        client_id: client.client_id,
        redirect_uri,
        state: state.to_owned(),
        code_challenge: challenge.to_owned(),
        resource: ours,
    })
}

fn waiting_page(g: &OAuthGrant, handle: &str, refresh_s: u32, ttl_ms: i64) -> Response {
    let url = format!("/oauth/authorize/wait?handle={handle}");
    page(
        StatusCode::OK,
        "Waiting for the operator",
        &format!(
            "<p><strong>{name}</strong> asks to use this Sonde hub's MCP tools.</p>\
             <p>After approval you will be sent to <code>{host}</code>.</p>\
             <p>Code:</p><p class=\"code\">{code}</p>\
             <p>Ask the hub's operator to approve request <code>{id}</code> with this code, in the console \
             (OAuth requests) or with <code>sonde-hub oauth approve {id}</code>. This page waits and moves on by itself; \
             the request lapses after {secs} seconds.</p>",
            name = escape(&g.client_name),
            host = escape(&redirect::host_of(&g.redirect_uri)),
            code = escape(&g.user_code),
            id = escape(&g.id),
            secs = ttl_ms / 1000,
        ),
        Some((refresh_s, &url)),
    )
}

/// `GET /oauth/authorize`
pub async fn authorize(
    State(o): State<Arc<OAuth>>,
    Remote(remote): Remote,
    RawQuery(query): RawQuery,
) -> Response {
    let c = match check(&o, query.as_deref().unwrap_or("")).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !o.requests.take() {
        return error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "too many authorization requests this minute; try again later",
        );
    }
    let handle = new_secret("", 32);
    let req = NewRequest {
        id: crate::store::new_id("oag-", 6),
        client_id: c.client_id,
        user_code: user_code(),
        redirect_uri: c.redirect_uri,
        state: c.state,
        code_challenge: c.code_challenge,
        resource: c.resource,
        scope: SCOPE.into(),
        handle_sha256: hash(&handle),
        remote_addr: remote,
        requested_at_ms: o.hub.clock.now_ms(),
    };
    match o
        .hub
        .store
        .create_oauth_request(req, request_ttl_ms(&o.hub.config), MAX_PENDING)
        .await
    {
        Ok(g) => {
            tracing::info!(request = %g.id, client = %g.client_name, code = %g.user_code, "an MCP client asks for OAuth authorization; approve with `sonde-hub oauth approve`");
            waiting_page(&g, &handle, 1, request_ttl_ms(&o.hub.config))
        }
        Err(StoreError::Conflict(m)) => error_page(StatusCode::SERVICE_UNAVAILABLE, &m),
        Err(e) => {
            tracing::error!(error = %e, "recording an OAuth request failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the hub could not record the request; see its log",
            )
        }
    }
}

/// `GET /oauth/authorize/wait?handle=…`
pub async fn wait(State(o): State<Arc<OAuth>>, RawQuery(query): RawQuery) -> Response {
    let params = match parse_params(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let Some(handle) = param(&params, "handle").map(str::to_owned) else {
        return error_page(StatusCode::BAD_REQUEST, "handle is missing");
    };
    let handle_sha = hash(&handle);
    let ttl_ms = request_ttl_ms(&o.hub.config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(WAIT_S);
    loop {
        let g = match o.hub.store.oauth_request_by_handle(&handle_sha).await {
            Ok(Some(g)) => g,
            Ok(None) => {
                return error_page(StatusCode::NOT_FOUND, "no such authorization request");
            }
            Err(e) => {
                tracing::error!(error = %e, "reading an OAuth request failed");
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the hub could not read the request; see its log",
                );
            }
        };
        let now = o.hub.clock.now_ms();
        match g.status {
            GrantStatus::Pending if g.requested_at_ms + ttl_ms <= now => {
                match o.hub.store.expire_oauth_request(&g.id, now).await {
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "expiring an OAuth request failed");
                        return error_page(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the hub could not record the timeout; see its log",
                        );
                    }
                }
            }
            GrantStatus::Pending => {
                if tokio::time::Instant::now() >= deadline {
                    return waiting_page(&g, &handle, 0, ttl_ms);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            GrantStatus::Approved if !g.code_issued => {
                let code = new_secret("sonde_ac_", 32);
                return match o
                    .hub
                    .store
                    .issue_oauth_code(&handle_sha, hash(&code), now + CODE_TTL_MS)
                    .await
                {
                    Ok(g) => found(&with_query(
                        &g.redirect_uri,
                        &[
                            ("code", &code),
                            ("state", &g.state),
                            ("iss", &issuer(&o.hub)),
                        ],
                    )),
                    Err(e) => error_page(StatusCode::CONFLICT, &e.to_string()),
                };
            }
            GrantStatus::Approved | GrantStatus::Revoked => {
                return error_page(
                    StatusCode::CONFLICT,
                    "this authorization request has already been answered; start again from your MCP client",
                );
            }
            GrantStatus::Denied | GrantStatus::Expired => {
                let (title, why) = if g.status == GrantStatus::Denied {
                    ("Access denied", "The hub's operator denied this request.")
                } else {
                    (
                        "Request timed out",
                        "Nobody approved this request in time. Start again from your MCP client and ask the operator to approve it.",
                    )
                };
                let back = with_query(
                    &g.redirect_uri,
                    &[
                        ("error", "access_denied"),
                        ("error_description", why),
                        ("state", &g.state),
                        ("iss", &issuer(&o.hub)),
                    ],
                );
                return page(
                    StatusCode::FORBIDDEN,
                    title,
                    &format!(
                        "<p>{}</p><p>Returning to <code>{}</code>…</p>",
                        escape(why),
                        escape(&redirect::host_of(&g.redirect_uri))
                    ),
                    Some((5, &back)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>\u{1b}"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;\u{fffd}"
        );
    }

    #[test]
    fn redirects_keep_the_registered_query() {
        assert_eq!(
            with_query("https://a/cb", &[("code", "c d"), ("state", "s&t")]),
            "https://a/cb?code=c+d&state=s%26t"
        );
        assert_eq!(
            with_query("https://a/cb?x=1", &[("code", "c")]),
            "https://a/cb?x=1&code=c"
        );
    }

    #[test]
    fn user_codes_have_their_shape() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(&c[4..5], "-");
    }
}
