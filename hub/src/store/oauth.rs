//! OAuth 2.1 state (`hub/src/oauth/` is the protocol side): registered
//! clients, authorization requests and the grants the operator made of them,
//! and the tokens issued under each grant. Every secret — the browser's
//! wait handle, the authorization code, access and refresh tokens — is
//! stored only as its SHA-256 (hex); nothing here can give one back.
//!
//! Every change is one [`HubStore::commit`] with its audit entry, including
//! refusals that change state (a code burnt by a failed exchange, a grant
//! revoked because a refresh token was replayed).

use rusqlite::{Connection, OptionalExtension, Row, params};
use sonde_protocol::Capability;
use sonde_protocol::audit::{AuditAction, NewEntry};

use super::{Audited, HubStore, Result, StoreError, from_json, to_json};

/// A client registered with `POST /oauth/register` (RFC 7591).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub registered_at_ms: i64,
    pub remote_addr: String,
    pub revoked_at_ms: Option<i64>,
}

/// Where an authorization request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Waiting for the operator.
    Pending,
    /// The operator approved it: a grant, with a policy.
    Approved,
    Denied,
    /// Nobody decided in time.
    Expired,
    /// Revoked (by the operator, the client, or replay detection).
    Revoked,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Approved => "approved",
            GrantStatus::Denied => "denied",
            GrantStatus::Expired => "expired",
            GrantStatus::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => GrantStatus::Pending,
            "approved" => GrantStatus::Approved,
            "denied" => GrantStatus::Denied,
            "expired" => GrantStatus::Expired,
            "revoked" => GrantStatus::Revoked,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "oauth_grants.status {other:?}"
                )));
            }
        })
    }
}

/// What the operator allowed a client: the same scopes as an API key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OAuthPolicy {
    pub agents: Vec<String>,
    pub probes: Vec<String>,
    pub tools: Vec<String>,
    pub max_capability: Capability,
    /// The grant ends here (tokens and refreshes stop); `None` = never.
    pub expires_at_ms: Option<i64>,
}

/// An authorization request, and the grant it became once approved.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthGrant {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub client_revoked: bool,
    pub status: GrantStatus,
    /// Shown on the browser page and to the operator, to match the two.
    pub user_code: String,
    pub redirect_uri: String,
    pub state: String,
    pub code_challenge: String,
    /// The resource (audience) the tokens are bound to (RFC 8707).
    pub resource: String,
    pub scope: String,
    pub remote_addr: String,
    pub requested_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    pub decided_by: Option<String>,
    pub deny_reason: Option<String>,
    pub policy: OAuthPolicy,
    pub code_issued: bool,
    pub code_expires_at_ms: Option<i64>,
    pub code_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// A new authorization request (from `GET /oauth/authorize`).
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub client_id: String,
    pub user_code: String,
    pub redirect_uri: String,
    pub state: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
    pub handle_sha256: String,
    pub remote_addr: String,
    pub requested_at_ms: i64,
}

/// The hashes of a new access/refresh pair and their expiries.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access_sha256: String,
    pub access_expires_at_ms: i64,
    pub refresh_sha256: String,
    pub refresh_expires_at_ms: i64,
}

/// An OAuth error to send back (RFC 6749 §5.2): `error` and a description.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub error: &'static str,
    pub description: String,
}

impl Refusal {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Refusal {
            error,
            description: description.into(),
        }
    }
}

/// The outcome of a token request: the grant the tokens were issued under,
/// or why none were.
pub type TokenOutcome = std::result::Result<OAuthGrant, Refusal>;

/// A check run inside the exchange's transaction on the code's grant
/// (client, redirect URI, PKCE, resource).
pub type GrantCheck = Box<dyn FnOnce(&OAuthGrant) -> std::result::Result<(), Refusal> + Send>;

const CLIENT_COLUMNS: &str =
    "client_id, name, redirect_uris, registered_at_ms, remote_addr, revoked_at_ms";

fn client_row(r: &Row<'_>) -> rusqlite::Result<(OAuthClient, String)> {
    Ok((
        OAuthClient {
            client_id: r.get(0)?,
            name: r.get(1)?,
            redirect_uris: Vec::new(),
            registered_at_ms: r.get(3)?,
            remote_addr: r.get(4)?,
            revoked_at_ms: r.get(5)?,
        },
        r.get(2)?,
    ))
}

fn client_finish((mut c, uris): (OAuthClient, String)) -> Result<OAuthClient> {
    c.redirect_uris = from_json("oauth_clients.redirect_uris", &uris)?;
    Ok(c)
}

const GRANT_COLUMNS: &str = "g.id, g.client_id, c.name, c.revoked_at_ms, g.status, g.user_code, g.redirect_uri, g.state, \
     g.code_challenge, g.resource, g.scope, g.remote_addr, g.requested_at_ms, g.decided_at_ms, g.decided_by, g.deny_reason, \
     g.agents, g.probes, g.tools, g.max_capability, g.expires_at_ms, g.code_sha256, g.code_expires_at_ms, g.code_used_at_ms, \
     g.revoked_at_ms";
const GRANT_FROM: &str = "oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id";

type RawGrant = (OAuthGrant, String, [String; 4]);

fn grant_row(r: &Row<'_>) -> rusqlite::Result<RawGrant> {
    let client_revoked: Option<i64> = r.get(3)?;
    let code: Option<String> = r.get(21)?;
    Ok((
        OAuthGrant {
            id: r.get(0)?,
            client_id: r.get(1)?,
            client_name: r.get(2)?,
            client_revoked: client_revoked.is_some(),
            status: GrantStatus::Pending,
            user_code: r.get(5)?,
            redirect_uri: r.get(6)?,
            state: r.get(7)?,
            code_challenge: r.get(8)?,
            resource: r.get(9)?,
            scope: r.get(10)?,
            remote_addr: r.get(11)?,
            requested_at_ms: r.get(12)?,
            decided_at_ms: r.get(13)?,
            decided_by: r.get(14)?,
            deny_reason: r.get(15)?,
            policy: OAuthPolicy {
                expires_at_ms: r.get(20)?,
                ..OAuthPolicy::default()
            },
            code_issued: code.is_some(),
            code_expires_at_ms: r.get(22)?,
            code_used_at_ms: r.get(23)?,
            revoked_at_ms: r.get(24)?,
        },
        r.get(4)?,
        [r.get(16)?, r.get(17)?, r.get(18)?, r.get(19)?],
    ))
}

fn grant_finish((mut g, status, [agents, probes, tools, cap]): RawGrant) -> Result<OAuthGrant> {
    g.status = GrantStatus::parse(&status)?;
    g.policy.agents = from_json("oauth_grants.agents", &agents)?;
    g.policy.probes = from_json("oauth_grants.probes", &probes)?;
    g.policy.tools = from_json("oauth_grants.tools", &tools)?;
    g.policy.max_capability = cap
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("oauth_grants.max_capability: {e}")))?;
    Ok(g)
}

fn grant_where(c: &Connection, condition: &str, value: &str) -> Result<Option<OAuthGrant>> {
    c.prepare_cached(&format!(
        "SELECT {GRANT_COLUMNS} FROM {GRANT_FROM} WHERE {condition}"
    ))?
    .query_row([value], grant_row)
    .optional()?
    .map(grant_finish)
    .transpose()
}

fn grant_by_id(c: &Connection, id: &str) -> Result<OAuthGrant> {
    grant_where(c, "g.id = ?1", id)?.ok_or_else(|| {
        StoreError::NotFound(format!(
            "no OAuth request {id:?}; see `sonde-hub oauth pending`"
        ))
    })
}

fn client_by_id(c: &Connection, id: &str) -> Result<Option<OAuthClient>> {
    c.prepare_cached(&format!(
        "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = ?1"
    ))?
    .query_row([id], client_row)
    .optional()?
    .map(client_finish)
    .transpose()
}

/// Marks pending requests older than `ttl_ms` expired (each audited).
fn expire_stale(c: &Connection, now: i64, ttl_ms: i64) -> Result<Vec<NewEntry>> {
    let ids: Vec<String> = c
        .prepare_cached(
            "SELECT id FROM oauth_grants WHERE status = 'pending' AND requested_at_ms <= ?1",
        )?
        .query_map([now - ttl_ms], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut entries = Vec::new();
    for id in ids {
        c.prepare_cached(
            "UPDATE oauth_grants SET status = 'expired', decided_at_ms = ?2, deny_reason = 'nobody decided in time' WHERE id = ?1",
        )?
        .execute(params![id, now])?;
        entries.push(
            NewEntry::new("hub", AuditAction::OauthExpired, "ok")
                .detail("request_id", id)
                .detail("reason", "the operator did not decide in time"),
        );
    }
    Ok(entries)
}

/// Revokes a grant and every token issued under it.
fn revoke_grant_rows(c: &Connection, grant_id: &str, now: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE oauth_grants SET status = 'revoked', revoked_at_ms = ?2 WHERE id = ?1 AND status IN ('approved', 'pending')",
    )?
    .execute(params![grant_id, now])?;
    c.prepare_cached(
        "UPDATE oauth_tokens SET revoked_at_ms = ?2 WHERE grant_id = ?1 AND revoked_at_ms IS NULL",
    )?
    .execute(params![grant_id, now])?;
    Ok(())
}

fn insert_tokens(c: &Connection, grant_id: &str, t: &NewTokens, now: i64) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO oauth_tokens (token_sha256, grant_id, kind, issued_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    stmt.execute(params![
        t.access_sha256,
        grant_id,
        "access",
        now,
        t.access_expires_at_ms
    ])?;
    stmt.execute(params![
        t.refresh_sha256,
        grant_id,
        "refresh",
        now,
        t.refresh_expires_at_ms
    ])?;
    Ok(())
}

/// Why an approved grant can no longer yield tokens, if it cannot.
fn grant_unusable(g: &OAuthGrant, now: i64) -> Option<&'static str> {
    if g.client_revoked {
        Some("the client was revoked")
    } else if g.status != GrantStatus::Approved {
        Some("the grant is not active")
    } else if g.policy.expires_at_ms.is_some_and(|e| e <= now) {
        Some("the grant has expired")
    } else {
        None
    }
}

fn token_entry(g: &OAuthGrant, grant_type: &str) -> NewEntry {
    NewEntry::new(
        format!("oauth:{}", g.client_id),
        AuditAction::OauthTokenIssued,
        "ok",
    )
    .detail("grant_id", g.id.clone())
    .detail("client_id", g.client_id.clone())
    .detail("grant_type", grant_type)
}

fn refused_entry(client_id: &str, action: AuditAction, r: &Refusal) -> NewEntry {
    NewEntry::new(format!("oauth:{client_id}"), action, "denied")
        .detail("error", r.error)
        .detail("reason", r.description.clone())
}

impl HubStore {
    /// Registers a client, audited as `oauth.client_registered`.
    pub async fn register_oauth_client(&self, client: OAuthClient) -> Result<OAuthClient> {
        let (client, _) = self
            .commit(move |c| {
                c.prepare_cached(&format!(
                    "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ))?
                .execute(params![
                    client.client_id,
                    client.name,
                    to_json(&client.redirect_uris)?,
                    client.registered_at_ms,
                    client.remote_addr,
                    client.revoked_at_ms
                ])?;
                let entry = NewEntry::new(
                    format!("oauth:{}", client.client_id),
                    AuditAction::OauthClientRegistered,
                    "ok",
                )
                .detail("client_id", client.client_id.clone())
                .detail("name", client.name.clone())
                .detail("redirect_uris", client.redirect_uris.clone())
                .detail("remote_addr", client.remote_addr.clone());
                Ok(Audited::new(client, entry))
            })
            .await?;
        Ok(client)
    }

    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        let id = client_id.to_owned();
        self.read(move |c| client_by_id(c, &id)).await
    }

    /// Every registered client, newest first.
    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY registered_at_ms DESC, client_id"
            ))?;
            let raw = stmt
                .query_map([], client_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raw.into_iter().map(client_finish).collect()
        })
        .await
    }

    /// Revokes a client and every grant and token it holds, audited as
    /// `oauth.client_revoked`.
    pub async fn revoke_oauth_client(
        &self,
        client_id: &str,
        by: &str,
        now: i64,
    ) -> Result<OAuthClient> {
        let (id, by) = (client_id.to_owned(), by.to_owned());
        let (client, _) = self
            .commit(move |c| {
                let client = client_by_id(c, &id)?.ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "no OAuth client {id:?}; see `sonde-hub oauth clients list`"
                    ))
                })?;
                c.prepare_cached(
                    "UPDATE oauth_clients SET revoked_at_ms = ?2 WHERE client_id = ?1 AND revoked_at_ms IS NULL",
                )?
                .execute(params![id, now])?;
                let grants: Vec<String> = c
                    .prepare_cached("SELECT id FROM oauth_grants WHERE client_id = ?1")?
                    .query_map([&id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for g in &grants {
                    revoke_grant_rows(c, g, now)?;
                }
                let client = client_by_id(c, &id)?.unwrap_or(client);
                let entry = NewEntry::new(by, AuditAction::OauthClientRevoked, "ok")
                    .detail("client_id", client.client_id.clone())
                    .detail("name", client.name.clone())
                    .detail("grants_revoked", grants.len());
                Ok(Audited::new(client, entry))
            })
            .await?;
        Ok(client)
    }

    /// Records a new authorization request, audited as `oauth.requested`
    /// (first expiring stale ones). Refused when `max_pending` requests
    /// are already waiting.
    pub async fn create_oauth_request(
        &self,
        req: NewRequest,
        ttl_ms: i64,
        max_pending: usize,
    ) -> Result<OAuthGrant> {
        let (grant, _) = self
            .commit(move |c| {
                let expired = expire_stale(c, req.requested_at_ms, ttl_ms)?;
                let pending: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM oauth_grants WHERE status = 'pending'")?
                    .query_row([], |r| r.get(0))?;
                if pending as usize >= max_pending {
                    return Err(StoreError::Conflict(format!(
                        "{pending} authorization requests are already waiting for the operator; try again later"
                    )));
                }
                c.prepare_cached(
                    "INSERT INTO oauth_grants (id, client_id, status, user_code, redirect_uri, state, code_challenge, resource, scope, handle_sha256, remote_addr, requested_at_ms) \
                     VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    req.id,
                    req.client_id,
                    req.user_code,
                    req.redirect_uri,
                    req.state,
                    req.code_challenge,
                    req.resource,
                    req.scope,
                    req.handle_sha256,
                    req.remote_addr,
                    req.requested_at_ms
                ])?;
                let grant = grant_by_id(c, &req.id)?;
                let entry = NewEntry::new(
                    format!("oauth:{}", grant.client_id),
                    AuditAction::OauthRequested,
                    "ok",
                )
                .detail("request_id", grant.id.clone())
                .detail("client_id", grant.client_id.clone())
                .detail("client_name", grant.client_name.clone())
                .detail("user_code", grant.user_code.clone())
                .detail("redirect_uri", grant.redirect_uri.clone())
                .detail("resource", grant.resource.clone())
                .detail("remote_addr", grant.remote_addr.clone());
                let mut audited = Audited::new(grant, entry);
                for e in expired {
                    audited = audited.and(e);
                }
                Ok(audited)
            })
            .await?;
        Ok(grant)
    }

    /// The request the browser waits on, by the SHA-256 of its handle.
    pub async fn oauth_request_by_handle(&self, handle_sha256: &str) -> Result<Option<OAuthGrant>> {
        let h = handle_sha256.to_owned();
        self.read(move |c| grant_where(c, "g.handle_sha256 = ?1", &h))
            .await
    }

    /// Requests and grants, newest first: only pending ones (younger than
    /// `ttl_ms`) unless `all`.
    pub async fn oauth_grants(&self, all: bool, now: i64, ttl_ms: i64) -> Result<Vec<OAuthGrant>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM {GRANT_FROM} \
                 WHERE ?1 OR (g.status = 'pending' AND g.requested_at_ms > ?2) \
                 ORDER BY g.requested_at_ms DESC, g.id"
            ))?;
            let raw = stmt
                .query_map(params![all, now - ttl_ms], grant_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raw.into_iter().map(grant_finish).collect()
        })
        .await
    }

    /// The operator's decision on a pending request: approve with `policy`
    /// (`Some`) or deny (`None`), audited as `oauth.approved` /
    /// `oauth.denied`.
    pub async fn decide_oauth_request(
        &self,
        id: &str,
        policy: Option<OAuthPolicy>,
        by: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<OAuthGrant> {
        let (id, by) = (id.to_owned(), by.to_owned());
        let (grant, _) = self
            .commit(move |c| {
                let expired = expire_stale(c, now, ttl_ms)?;
                let before = grant_by_id(c, &id)?;
                if before.status != GrantStatus::Pending {
                    // The expiry above must stay recorded even though this
                    // decision is refused, so it is answered, not an error.
                    let mut audited = Audited::new(
                        Err::<OAuthGrant, String>(format!(
                            "OAuth request {id} is {}, not pending",
                            before.status.as_str()
                        )),
                        NewEntry::new(by.clone(), AuditAction::OauthDecisionRefused, "denied")
                            .detail("request_id", id.clone())
                            .detail("status", before.status.as_str()),
                    );
                    for e in expired {
                        audited = audited.and(e);
                    }
                    return Ok(audited);
                }
                let entry = match &policy {
                    Some(p) => {
                        c.prepare_cached(
                            "UPDATE oauth_grants SET status = 'approved', decided_at_ms = ?2, decided_by = ?3, \
                             agents = ?4, probes = ?5, tools = ?6, max_capability = ?7, expires_at_ms = ?8 WHERE id = ?1",
                        )?
                        .execute(params![
                            id,
                            now,
                            by,
                            to_json(&p.agents)?,
                            to_json(&p.probes)?,
                            to_json(&p.tools)?,
                            p.max_capability.as_str(),
                            p.expires_at_ms
                        ])?;
                        NewEntry::new(by.clone(), AuditAction::OauthApproved, "ok").detail(
                            "policy",
                            serde_json::json!({"agents": p.agents, "probes": p.probes, "tools": p.tools, "max_capability": p.max_capability, "expires_at_ms": p.expires_at_ms}),
                        )
                    }
                    None => {
                        c.prepare_cached(
                            "UPDATE oauth_grants SET status = 'denied', decided_at_ms = ?2, decided_by = ?3, deny_reason = 'the operator denied it' WHERE id = ?1",
                        )?
                        .execute(params![id, now, by])?;
                        NewEntry::new(by.clone(), AuditAction::OauthDenied, "ok")
                    }
                };
                let grant = grant_by_id(c, &id)?;
                let entry = entry
                    .detail("request_id", grant.id.clone())
                    .detail("client_id", grant.client_id.clone())
                    .detail("client_name", grant.client_name.clone())
                    .detail("user_code", grant.user_code.clone());
                let mut audited = Audited::new(Ok(grant), entry);
                for e in expired {
                    audited = audited.and(e);
                }
                Ok(audited)
            })
            .await?;
        grant.map_err(StoreError::Conflict)
    }

    /// Marks a request the browser gave up waiting on as expired, audited
    /// as `oauth.expired` (no change if it was decided meanwhile).
    pub async fn expire_oauth_request(&self, id: &str, now: i64) -> Result<OAuthGrant> {
        let id = id.to_owned();
        let (grant, _) = self
            .commit(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE oauth_grants SET status = 'expired', decided_at_ms = ?2, deny_reason = 'nobody decided in time' WHERE id = ?1 AND status = 'pending'",
                    )?
                    .execute(params![id, now])?;
                let grant = grant_by_id(c, &id)?;
                let entry = NewEntry::new("hub", AuditAction::OauthExpired, if changed > 0 { "ok" } else { "unchanged" })
                    .detail("request_id", grant.id.clone())
                    .detail("client_id", grant.client_id.clone())
                    .detail("status", grant.status.as_str());
                Ok(Audited::new(grant, entry))
            })
            .await?;
        Ok(grant)
    }

    /// Hands the authorization code (its SHA-256 stored) to the browser of
    /// an approved request, once: a second call is refused. Audited as
    /// `oauth.code_issued`.
    pub async fn issue_oauth_code(
        &self,
        handle_sha256: &str,
        code_sha256: String,
        expires_at_ms: i64,
    ) -> Result<OAuthGrant> {
        let h = handle_sha256.to_owned();
        let (grant, _) = self
            .commit(move |c| {
                let grant = grant_where(c, "g.handle_sha256 = ?1", &h)?
                    .ok_or_else(|| StoreError::NotFound("no such authorization request".into()))?;
                if grant.status != GrantStatus::Approved || grant.code_issued {
                    return Err(StoreError::Conflict(
                        "this authorization request has already been answered; start again from the client".into(),
                    ));
                }
                c.prepare_cached(
                    "UPDATE oauth_grants SET code_sha256 = ?2, code_expires_at_ms = ?3 WHERE id = ?1 AND code_sha256 IS NULL",
                )?
                .execute(params![grant.id, code_sha256, expires_at_ms])?;
                let grant = grant_by_id(c, &grant.id)?;
                let entry = NewEntry::new(
                    format!("oauth:{}", grant.client_id),
                    AuditAction::OauthCodeIssued,
                    "ok",
                )
                .detail("request_id", grant.id.clone())
                .detail("client_id", grant.client_id.clone());
                Ok(Audited::new(grant, entry))
            })
            .await?;
        Ok(grant)
    }

    /// Redeems an authorization code for tokens. The code is burnt by the
    /// first attempt, whatever its outcome; a second use of a code revokes
    /// the grant and its tokens (RFC 6749 §4.1.2). `check` (client, redirect
    /// URI, PKCE, resource) runs inside the transaction.
    /// An unknown code changes nothing and is answered without a commit
    /// (the caller audits such refusals under a budget: guessing is free).
    pub async fn exchange_oauth_code(
        &self,
        code_sha256: &str,
        client_id: &str,
        check: GrantCheck,
        tokens: NewTokens,
        now: i64,
    ) -> Result<TokenOutcome> {
        if !self
            .oauth_secret_known("oauth_grants", "code_sha256", code_sha256)
            .await?
        {
            return Ok(Err(Refusal::new(
                "invalid_grant",
                "unknown authorization code",
            )));
        }
        let (code, client_id) = (code_sha256.to_owned(), client_id.to_owned());
        let (outcome, _) = self
            .commit(move |c| {
                let refuse = |r: Refusal, action: AuditAction| {
                    let entry = refused_entry(&client_id, action, &r);
                    Ok(Audited::new(Err(r), entry))
                };
                let Some(grant) = grant_where(c, "g.code_sha256 = ?1", &code)? else {
                    return refuse(
                        Refusal::new("invalid_grant", "unknown authorization code"),
                        AuditAction::OauthTokenRefused,
                    );
                };
                if grant.code_used_at_ms.is_some() {
                    revoke_grant_rows(c, &grant.id, now)?;
                    let r = Refusal::new(
                        "invalid_grant",
                        "this authorization code was already used; the grant it made is revoked",
                    );
                    let entry = refused_entry(&client_id, AuditAction::OauthCodeReused, &r)
                        .detail("grant_id", grant.id.clone());
                    return Ok(Audited::new(Err(r), entry));
                }
                c.prepare_cached("UPDATE oauth_grants SET code_used_at_ms = ?2 WHERE id = ?1")?
                    .execute(params![grant.id, now])?;
                // A refused exchange ends the grant: its one code is burnt.
                let refusal = if grant.code_expires_at_ms.is_none_or(|e| e <= now) {
                    Some(Refusal::new(
                        "invalid_grant",
                        "the authorization code has expired",
                    ))
                } else if let Some(why) = grant_unusable(&grant, now) {
                    Some(Refusal::new("invalid_grant", why))
                } else {
                    check(&grant).err()
                };
                if let Some(r) = refusal {
                    revoke_grant_rows(c, &grant.id, now)?;
                    return refuse(r, AuditAction::OauthTokenRefused);
                }
                insert_tokens(c, &grant.id, &tokens, now)?;
                let entry = token_entry(&grant, "authorization_code");
                Ok(Audited::new(Ok(grant), entry))
            })
            .await?;
        Ok(outcome)
    }

    /// Rotates a refresh token: the presented one is used up and a new pair
    /// issued. A refresh token presented a second time is a replay: the
    /// whole grant is revoked (`oauth.refresh_reused`).
    pub async fn refresh_oauth_token(
        &self,
        refresh_sha256: &str,
        client_id: &str,
        check: GrantCheck,
        tokens: NewTokens,
        now: i64,
    ) -> Result<TokenOutcome> {
        if !self
            .oauth_secret_known("oauth_tokens", "token_sha256", refresh_sha256)
            .await?
        {
            return Ok(Err(Refusal::new("invalid_grant", "unknown refresh token")));
        }
        let (refresh, client_id) = (refresh_sha256.to_owned(), client_id.to_owned());
        let (outcome, _) = self
            .commit(move |c| {
                let refuse = |r: Refusal| {
                    let entry = refused_entry(&client_id, AuditAction::OauthTokenRefused, &r);
                    Ok(Audited::new(Err(r), entry))
                };
                let row: Option<(String, Option<i64>, Option<i64>, i64)> = c
                    .prepare_cached(
                        "SELECT grant_id, used_at_ms, revoked_at_ms, expires_at_ms FROM oauth_tokens WHERE token_sha256 = ?1 AND kind = 'refresh'",
                    )?
                    .query_row([&refresh], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()?;
                let Some((grant_id, used, revoked, expires)) = row else {
                    return refuse(Refusal::new("invalid_grant", "unknown refresh token"));
                };
                let grant = grant_by_id(c, &grant_id)?;
                if grant.client_id != client_id {
                    return refuse(Refusal::new(
                        "invalid_grant",
                        "this refresh token was issued to another client",
                    ));
                }
                if used.is_some() {
                    revoke_grant_rows(c, &grant.id, now)?;
                    let r = Refusal::new(
                        "invalid_grant",
                        "this refresh token was already used; the grant is revoked (replay detected)",
                    );
                    let entry = refused_entry(&client_id, AuditAction::OauthRefreshReused, &r)
                        .detail("grant_id", grant.id.clone());
                    return Ok(Audited::new(Err(r), entry));
                }
                if revoked.is_some() {
                    return refuse(Refusal::new("invalid_grant", "the refresh token was revoked"));
                }
                if expires <= now {
                    return refuse(Refusal::new("invalid_grant", "the refresh token has expired"));
                }
                if let Some(why) = grant_unusable(&grant, now) {
                    return refuse(Refusal::new("invalid_grant", why));
                }
                if let Err(r) = check(&grant) {
                    return refuse(r);
                }
                c.prepare_cached("UPDATE oauth_tokens SET used_at_ms = ?2 WHERE token_sha256 = ?1")?
                    .execute(params![refresh, now])?;
                insert_tokens(c, &grant.id, &tokens, now)?;
                let entry = token_entry(&grant, "refresh_token");
                Ok(Audited::new(Ok(grant), entry))
            })
            .await?;
        Ok(outcome)
    }

    /// Whether a hashed secret is in `table.column` (both constants).
    async fn oauth_secret_known(
        &self,
        table: &'static str,
        column: &'static str,
        sha256: &str,
    ) -> Result<bool> {
        let h = sha256.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT 1 FROM {table} WHERE {column} = ?1"))?
                    .query_row([h], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
        .await
    }

    /// Revokes the grant a token belongs to (RFC 7009; the client's own
    /// request), audited as `oauth.revoked`. Unknown tokens change nothing.
    pub async fn revoke_oauth_token(&self, token_sha256: &str, now: i64) -> Result<Option<String>> {
        let t = token_sha256.to_owned();
        let grant_id: Option<String> = {
            let t = t.clone();
            self.read(move |c| {
                Ok(
                    c.prepare_cached("SELECT grant_id FROM oauth_tokens WHERE token_sha256 = ?1")?
                        .query_row([t], |r| r.get(0))
                        .optional()?,
                )
            })
            .await?
        };
        let Some(grant_id) = grant_id else {
            return Ok(None);
        };
        let (id, _) = self
            .commit(move |c| {
                let grant = grant_by_id(c, &grant_id)?;
                revoke_grant_rows(c, &grant.id, now)?;
                let entry = NewEntry::new(
                    format!("oauth:{}", grant.client_id),
                    AuditAction::OauthRevoked,
                    "ok",
                )
                .detail("grant_id", grant.id.clone())
                .detail("client_id", grant.client_id.clone())
                .detail("by", "client");
                Ok(Audited::new(grant.id, entry))
            })
            .await?;
        Ok(Some(id))
    }

    /// The grant an access token (by SHA-256) is valid under, or `None` when
    /// the token is unknown, expired or revoked. The caller checks the
    /// grant's state and audience.
    pub async fn oauth_access(&self, token_sha256: &str, now: i64) -> Result<Option<OAuthGrant>> {
        let t = token_sha256.to_owned();
        self.read(move |c| {
            let grant_id: Option<String> = c
                .prepare_cached(
                    "SELECT grant_id FROM oauth_tokens WHERE token_sha256 = ?1 AND kind = 'access' AND revoked_at_ms IS NULL AND expires_at_ms > ?2",
                )?
                .query_row(params![t, now], |r| r.get(0))
                .optional()?;
            match grant_id {
                Some(id) => grant_where(c, "g.id = ?1", &id),
                None => Ok(None),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::store;

    pub(crate) fn client(id: &str) -> OAuthClient {
        OAuthClient {
            client_id: id.into(),
            name: "Test client".into(),
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            registered_at_ms: 1,
            remote_addr: "127.0.0.1".into(),
            revoked_at_ms: None,
        }
    }

    fn request(id: &str, client: &str, handle: &str, at: i64) -> NewRequest {
        NewRequest {
            id: id.into(),
            client_id: client.into(),
            user_code: "ABCD-EFGH".into(),
            redirect_uri: "http://127.0.0.1:5555/callback".into(),
            state: "st".into(),
            code_challenge: "ch".into(),
            resource: "https://localhost:7444/mcp".into(),
            scope: "mcp".into(),
            handle_sha256: handle.into(),
            remote_addr: "127.0.0.1".into(),
            requested_at_ms: at,
        }
    }

    fn tokens(n: u8) -> NewTokens {
        NewTokens {
            access_sha256: format!("access-{n}"),
            access_expires_at_ms: 10_000_000,
            refresh_sha256: format!("refresh-{n}"),
            refresh_expires_at_ms: 20_000_000,
        }
    }

    fn ok_check() -> GrantCheck {
        Box::new(|_| Ok(()))
    }

    const TTL: i64 = 600_000;

    async fn approved(store: &HubStore) -> OAuthGrant {
        store.register_oauth_client(client("c1")).await.unwrap();
        store
            .create_oauth_request(request("r1", "c1", "h1", 1000), TTL, 8)
            .await
            .unwrap();
        store
            .decide_oauth_request("r1", Some(OAuthPolicy::default()), "op", 1100, TTL)
            .await
            .unwrap();
        store
            .issue_oauth_code("h1", "code-1".into(), 61_100)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn oauth_codes_are_single_use_and_reuse_revokes_the_grant() {
        let (_d, store) = store();
        approved(&store).await;
        assert!(
            store
                .issue_oauth_code("h1", "code-2".into(), 61_100)
                .await
                .is_err(),
            "one code per approval"
        );
        let g = store
            .exchange_oauth_code("code-1", "c1", ok_check(), tokens(1), 2000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.id, "r1");
        assert!(
            store
                .oauth_access("access-1", 2001)
                .await
                .unwrap()
                .is_some()
        );
        let again = store
            .exchange_oauth_code("code-1", "c1", ok_check(), tokens(2), 2002)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(again.error, "invalid_grant");
        assert!(
            store
                .oauth_access("access-1", 2003)
                .await
                .unwrap()
                .is_none(),
            "reusing a code revokes what it issued"
        );
        // A guessed code changes nothing and writes nothing.
        let head = store.audit_head().await.unwrap();
        let guess = store
            .exchange_oauth_code("guess", "c1", ok_check(), tokens(3), 2004)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(guess.description, "unknown authorization code");
        assert_eq!(store.audit_head().await.unwrap(), head);
    }

    #[tokio::test]
    async fn oauth_codes_expire_and_a_failed_check_burns_the_code() {
        let (_d, store) = store();
        approved(&store).await;
        let late = store
            .exchange_oauth_code("code-1", "c1", ok_check(), tokens(1), 61_100)
            .await
            .unwrap()
            .unwrap_err();
        assert!(late.description.contains("expired"), "{late:?}");

        let (_d, store) = crate::store::test_support::store();
        approved(&store).await;
        let bad = store
            .exchange_oauth_code(
                "code-1",
                "c1",
                Box::new(|_| Err(Refusal::new("invalid_grant", "PKCE"))),
                tokens(1),
                2000,
            )
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(bad.description, "PKCE");
        assert!(
            store
                .exchange_oauth_code("code-1", "c1", ok_check(), tokens(2), 2001)
                .await
                .unwrap()
                .is_err(),
            "a code is burnt by its first attempt"
        );
    }

    #[tokio::test]
    async fn refresh_rotation_and_reuse_detection() {
        let (_d, store) = store();
        approved(&store).await;
        store
            .exchange_oauth_code("code-1", "c1", ok_check(), tokens(1), 2000)
            .await
            .unwrap()
            .unwrap();
        store
            .refresh_oauth_token("refresh-1", "c1", ok_check(), tokens(2), 3000)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .oauth_access("access-2", 3001)
                .await
                .unwrap()
                .is_some()
        );
        let other = store
            .refresh_oauth_token("refresh-2", "c2", ok_check(), tokens(3), 3002)
            .await
            .unwrap()
            .unwrap_err();
        assert!(other.description.contains("another client"));
        // The old refresh token again: a replay; everything is revoked.
        let replay = store
            .refresh_oauth_token("refresh-1", "c1", ok_check(), tokens(4), 4000)
            .await
            .unwrap()
            .unwrap_err();
        assert!(replay.description.contains("replay"), "{replay:?}");
        assert!(
            store
                .oauth_access("access-2", 4001)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .refresh_oauth_token("refresh-2", "c1", ok_check(), tokens(5), 4002)
                .await
                .unwrap()
                .is_err(),
            "the newest refresh token of a replayed grant is dead too"
        );
    }

    #[tokio::test]
    async fn pending_requests_expire_are_bounded_and_decided_once() {
        let (_d, store) = store();
        store.register_oauth_client(client("c1")).await.unwrap();
        store
            .create_oauth_request(request("r1", "c1", "h1", 1000), TTL, 2)
            .await
            .unwrap();
        store
            .create_oauth_request(request("r2", "c1", "h2", 1001), TTL, 2)
            .await
            .unwrap();
        assert!(
            store
                .create_oauth_request(request("r3", "c1", "h3", 1002), TTL, 2)
                .await
                .is_err(),
            "bounded pending requests"
        );
        assert_eq!(store.oauth_grants(false, 1003, TTL).await.unwrap().len(), 2);
        // Later than the TTL: both expire, a new one fits.
        store
            .create_oauth_request(request("r3", "c1", "h3", 1000 + TTL + 5), TTL, 2)
            .await
            .unwrap();
        let err = store
            .decide_oauth_request(
                "r1",
                Some(OAuthPolicy::default()),
                "op",
                1000 + TTL + 6,
                TTL,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        store
            .decide_oauth_request("r3", None, "op", 1000 + TTL + 7, TTL)
            .await
            .unwrap();
        assert!(
            store
                .decide_oauth_request(
                    "r3",
                    Some(OAuthPolicy::default()),
                    "op",
                    1000 + TTL + 8,
                    TTL
                )
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn revoking_a_client_kills_its_tokens() {
        let (_d, store) = store();
        approved(&store).await;
        store
            .exchange_oauth_code("code-1", "c1", ok_check(), tokens(1), 2000)
            .await
            .unwrap()
            .unwrap();
        let c = store.revoke_oauth_client("c1", "op", 3000).await.unwrap();
        assert!(c.revoked_at_ms.is_some());
        assert!(
            store
                .oauth_access("access-1", 3001)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .refresh_oauth_token("refresh-1", "c1", ok_check(), tokens(2), 3002)
                .await
                .unwrap()
                .is_err()
        );
        let (_d, store) = crate::store::test_support::store();
        approved(&store).await;
        store
            .exchange_oauth_code("code-1", "c1", ok_check(), tokens(1), 2000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.revoke_oauth_token("refresh-1", 2500).await.unwrap(),
            Some("r1".into())
        );
        assert!(
            store
                .oauth_access("access-1", 2501)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.revoke_oauth_token("nope", 2502).await.unwrap(), None);
    }
}
