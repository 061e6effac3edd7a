//! The operator's side of OAuth: authorization requests waiting for a
//! decision (approve with a policy — an API key's scopes — or deny) and
//! registered clients (list, revoke). Shared by the admin API, the CLI
//! (`sonde-hub oauth …`) and the console; every decision is audited with
//! the operator as actor.

use sonde_admin::api::{OAuthApprove, OAuthClientInfo, OAuthRequestInfo, OAuthRequestStatus};

use super::{redirect, request_ttl_ms};
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::HubStore;
use crate::store::oauth::{GrantStatus, OAuthClient, OAuthGrant, OAuthPolicy};

/// A request as the admin API lists it.
/// `now_ms` decides whether a pending request has run out.
pub fn request_info(g: &OAuthGrant, ttl_ms: i64, now_ms: i64) -> OAuthRequestInfo {
    OAuthRequestInfo {
        id: g.id.clone(),
        client_id: g.client_id.clone(),
        client_name: g.client_name.clone(),
        redirect_uri: g.redirect_uri.clone(),
        redirect_host: redirect::host_of(&g.redirect_uri),
        user_code: g.user_code.clone(),
        status: match g.status {
            // A pending request past its time is expired, whether or not
            // the store has recorded it yet.
            GrantStatus::Pending if g.requested_at_ms + ttl_ms <= now_ms => {
                OAuthRequestStatus::Expired
            }
            GrantStatus::Pending => OAuthRequestStatus::Pending,
            GrantStatus::Approved => OAuthRequestStatus::Approved,
            GrantStatus::Denied => OAuthRequestStatus::Denied,
            GrantStatus::Expired => OAuthRequestStatus::Expired,
            GrantStatus::Revoked => OAuthRequestStatus::Revoked,
        },
        resource: g.resource.clone(),
        remote_addr: g.remote_addr.clone(),
        requested_at_ms: g.requested_at_ms,
        decided_at_ms: g.decided_at_ms,
        decided_by: g.decided_by.clone(),
        agents: g.policy.agents.clone(),
        probes: g.policy.probes.clone(),
        tools: g.policy.tools.clone(),
        max_capability: g.policy.max_capability,
        expires_at_ms: g.policy.expires_at_ms,
    }
}

/// A client as the admin API lists it (`grants`: all of the store's).
pub fn client_info(c: &OAuthClient, grants: &[OAuthGrant], now: i64) -> OAuthClientInfo {
    OAuthClientInfo {
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        registered_at_ms: c.registered_at_ms,
        remote_addr: c.remote_addr.clone(),
        revoked_at_ms: c.revoked_at_ms,
        active_grants: grants
            .iter()
            .filter(|g| {
                g.client_id == c.client_id
                    && g.code_used_at_ms.is_some()
                    && super::token::check_grant(g, &g.resource, now).is_ok()
            })
            .count() as u64,
    }
}

/// Authorization requests: pending ones (younger than `ttl_ms` at
/// `now_ms`), or all with `all`.
pub async fn requests(
    store: &HubStore,
    all: bool,
    ttl_ms: i64,
    now_ms: i64,
) -> Result<Vec<OAuthRequestInfo>, HubError> {
    Ok(store
        .oauth_grants(all, now_ms, ttl_ms)
        .await?
        .iter()
        .map(|g| request_info(g, ttl_ms, now_ms))
        .collect())
}

/// Approves a pending request with the policy the client gets.
pub async fn approve(
    hub: &Hub,
    id: &str,
    req: OAuthApprove,
    by: &str,
) -> Result<OAuthRequestInfo, HubError> {
    crate::fleet::check_policy(&req.agents, &req.probes, &req.tools)?;
    let now = hub.clock.now_ms();
    let expires_at_ms = req.expires_in_s.map(|s| {
        now.saturating_add(
            i64::try_from(s)
                .unwrap_or(i64::MAX / 2000)
                .saturating_mul(1000),
        )
    });
    let policy = OAuthPolicy {
        agents: req.agents,
        probes: req.probes,
        tools: req.tools,
        max_capability: req.max_capability,
        expires_at_ms,
    };
    let g = hub
        .store
        .decide_oauth_request(id, Some(policy), by, now, request_ttl_ms(&hub.config))
        .await?;
    Ok(request_info(&g, request_ttl_ms(&hub.config), now))
}

/// Denies a pending request.
pub async fn deny(hub: &Hub, id: &str, by: &str) -> Result<OAuthRequestInfo, HubError> {
    let now = hub.clock.now_ms();
    let g = hub
        .store
        .decide_oauth_request(id, None, by, now, request_ttl_ms(&hub.config))
        .await?;
    Ok(request_info(&g, request_ttl_ms(&hub.config), now))
}

/// Every registered client (grants counted as active at `now_ms`).
pub async fn clients(store: &HubStore, now_ms: i64) -> Result<Vec<OAuthClientInfo>, HubError> {
    let grants = store.oauth_grants(true, now_ms, 0).await?;
    Ok(store
        .oauth_clients()
        .await?
        .iter()
        .map(|c| client_info(c, &grants, now_ms))
        .collect())
}

/// Revokes a client: its grants and tokens end at once.
pub async fn revoke_client(hub: &Hub, id: &str, by: &str) -> Result<OAuthClientInfo, HubError> {
    let now = hub.clock.now_ms();
    let c = hub.store.revoke_oauth_client(id, by, now).await?;
    let grants = hub.store.oauth_grants(true, now, 0).await?;
    Ok(client_info(&c, &grants, now))
}
