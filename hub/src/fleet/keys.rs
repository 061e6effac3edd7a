//! MCP API keys: created (secret shown once, with a ready-to-paste client
//! command), listed, revoked.

use sonde_admin::api::{KeyCreate, KeyCreated, KeyInfo};

use crate::error::HubError;
use crate::hub::Hub;
use crate::store::{self, ApiKey};

/// A key as the admin API lists it.
pub fn key_info(k: &ApiKey) -> KeyInfo {
    KeyInfo {
        id: k.id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        agents: k.agents.clone(),
        probes: k.probes.clone(),
        tools: k.tools.clone(),
        max_capability: k.max_capability,
        created_at_ms: k.created_at_ms,
        expires_at_ms: k.expires_at_ms,
        last_used_at_ms: k.last_used_at_ms,
        revoked_at_ms: k.revoked_at_ms,
    }
}

fn check_patterns(
    what: &str,
    patterns: &[String],
    allowed: impl Fn(char) -> bool,
) -> Result<(), HubError> {
    for p in patterns {
        if p.is_empty() || p.len() > 128 || !p.chars().all(|c| allowed(c) || c == '*') {
            return Err(HubError::BadRequest(format!(
                "{what} pattern {p:?} has characters that are not allowed"
            )));
        }
    }
    Ok(())
}

/// Checks a policy's scopes (API keys and OAuth grants share them).
pub fn check_policy(
    agents: &[String],
    probes: &[String],
    tools: &[String],
) -> Result<(), HubError> {
    check_patterns("agent", agents, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    })?;
    check_patterns("probe", probes, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_')
    })?;
    if let Some(unknown) = tools
        .iter()
        .find(|t| !crate::mcp::tools::tool_names().contains(t))
    {
        return Err(HubError::BadRequest(format!(
            "unknown tool {unknown:?}; tools are: {}",
            crate::mcp::tools::tool_names().join(", ")
        )));
    }
    Ok(())
}

pub async fn create_key(hub: &Hub, req: KeyCreate, by: &str) -> Result<KeyCreated, HubError> {
    if req.name.trim().is_empty() || req.name.len() > 64 || req.name.chars().any(char::is_control) {
        return Err(HubError::BadRequest(
            "key name must be 1-64 printable characters".into(),
        ));
    }
    check_policy(&req.agents, &req.probes, &req.tools)?;
    let expires_in = req.expires_in_s.map(|s| {
        i64::try_from(s)
            .unwrap_or(i64::MAX / 2000)
            .saturating_mul(1000)
    });
    let (secret, prefix) = store::keys::new_key();
    let now = hub.clock.now_ms();
    let key = hub
        .store
        .create_key(
            ApiKey {
                id: store::new_id("key-", 5),
                name: req.name.trim().to_owned(),
                prefix,
                agents: req.agents,
                probes: req.probes,
                tools: req.tools,
                max_capability: req.max_capability,
                created_at_ms: now,
                expires_at_ms: expires_in.map(|e| now.saturating_add(e)),
                last_used_at_ms: None,
                revoked_at_ms: None,
            },
            secret.clone(),
            by,
        )
        .await?;
    let mcp_url = hub.endpoints().mcp_url;
    Ok(KeyCreated {
        claude_command: mcp_url
            .as_ref()
            .map(|url| format!("claude mcp add sonde --transport http {url} --header \"Authorization: Bearer {secret}\"")),
        mcp_url,
        key: secret,
        info: key_info(&key),
    })
}

pub async fn keys(hub: &Hub) -> Result<Vec<KeyInfo>, HubError> {
    Ok(hub.store.keys().await?.iter().map(key_info).collect())
}

pub async fn revoke_key(hub: &Hub, id: &str, by: &str) -> Result<KeyInfo, HubError> {
    Ok(key_info(&hub.store.revoke_key(id, by).await?))
}
