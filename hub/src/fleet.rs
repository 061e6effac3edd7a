//! Operator actions on the fleet, shared by the admin API, the CLI and the
//! console: agents, pack permissions, attestation drift, tokens and API keys.
//! Every action is audited with the operator as actor.

use rusqlite::TransactionBehavior;
use sonde_admin::api::*;
use sonde_protocol::audit::NewEntry;
use sonde_protocol::keys;
use sonde_protocol::messages::{GrantDecision, GrantsUpdate, PackGrant, PackState};
use sonde_protocol::time::now_ms;
use std::collections::BTreeMap;

use crate::error::HubError;
use crate::hub::Hub;
use crate::store::{self, agents::AgentRow, grants::GrantRow};

/// The state shown for an agent.
pub fn agent_state(hub: &Hub, a: &AgentRow) -> AgentState {
    if a.revoked_at_ms.is_some() {
        AgentState::Revoked
    } else if a.quarantined {
        AgentState::Quarantined
    } else if hub.registry.get(&a.id).is_some() {
        AgentState::Online
    } else {
        AgentState::Offline
    }
}

pub fn summary(hub: &Hub, a: &AgentRow) -> AgentSummary {
    let count = |s: PackState| a.packs.iter().filter(|p| p.state == s).count() as u32;
    AgentSummary {
        id: a.id.clone(),
        name: a.name.clone(),
        state: agent_state(hub, a),
        connected: a.revoked_at_ms.is_none() && hub.registry.get(&a.id).is_some(),
        last_seen_ms: a.last_seen_ms,
        hostname: a.hostname.clone(),
        os: a.os.clone(),
        agent_version: a.agent_version.clone(),
        packs_active: count(PackState::Active),
        packs_pending: count(PackState::Pending),
        packs_unavailable: count(PackState::Unavailable),
        tags: a.tags.clone(),
        quarantine_reason: a.quarantine_reason.clone(),
        max_capability: a.max_capability,
        enrolled_at_ms: a.enrolled_at_ms,
        cert_expires_ms: a.cert_expires_ms,
        remote_addr: a.remote_addr.clone(),
        sandbox: a.current.as_ref().unwrap_or(&a.baseline).sandbox.clone(),
    }
}

pub async fn agents(hub: &Hub) -> Result<Vec<AgentSummary>, HubError> {
    let rows = hub.store.read(store::agents::list).await?;
    Ok(rows.iter().map(|a| summary(hub, a)).collect())
}

pub async fn find_agent(hub: &Hub, name: &str) -> Result<AgentRow, HubError> {
    let name = name.to_owned();
    Ok(hub
        .store
        .read(move |c| store::agents::find(c, &name))
        .await?)
}

pub async fn agent_detail(hub: &Hub, name: &str) -> Result<AgentDetail, HubError> {
    let a = find_agent(hub, name).await?;
    let id = a.id.clone();
    let grants = hub
        .store
        .read(move |c| store::grants::for_agent(c, &id))
        .await?;
    Ok(AgentDetail {
        summary: summary(hub, &a),
        baseline_fingerprint: a.baseline.fingerprint().to_hex(),
        baseline: a.baseline.clone(),
        current: a.current.clone(),
        packs: a.packs.clone(),
        grants: grants
            .into_iter()
            .map(|g| (g.grant.pack, g.grant.decision))
            .collect::<BTreeMap<_, _>>(),
        agent_audit_head: a.agent_audit_head,
        cert_sha256: a.cert_sha256.clone(),
        signing_key_fingerprint: keys::decode_public_key(&a.signing_key)
            .map(|k| keys::fingerprint(&k).to_hex())
            .unwrap_or_default(),
    })
}

/// Revokes an agent: refuses its future connections and drops the live one.
pub async fn revoke_agent(hub: &Hub, name: &str, by: &str) -> Result<AgentSummary, HubError> {
    let a = find_agent(hub, name).await?;
    if a.revoked_at_ms.is_some() {
        return Err(HubError::Conflict(format!(
            "agent {} is already revoked",
            a.name
        )));
    }
    let (id, by_owned) = (a.id.clone(), by.to_owned());
    let row = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            store::agents::revoke(&tx, &id, now)?;
            store::drift::resolve_open(&tx, &id, DriftStatus::Revoked, &by_owned, now)?;
            store::audit::append(
                &tx,
                NewEntry::new(by_owned.clone(), "agent.revoked", "ok").agent(id.clone()),
                now,
            )?;
            tx.commit()?;
            store::agents::get(c, &id)?.ok_or_else(|| store::StoreError::NotFound(id.clone()))
        })
        .await?;
    hub.audit.appended(1).await;
    let dropped = hub.registry.disconnect(&row.id);
    hub.registry.forget(&row.id);
    tracing::info!(agent = %row.name, dropped, "agent revoked");
    Ok(summary(hub, &row))
}

/// Accepts an agent's current attestation as its baseline, ending the
/// quarantine that drift caused.
pub async fn accept_baseline(hub: &Hub, name: &str, by: &str) -> Result<AgentSummary, HubError> {
    let a = find_agent(hub, name).await?;
    if a.revoked_at_ms.is_some() {
        return Err(HubError::Conflict(format!("agent {} is revoked", a.name)));
    }
    let current = a.current.clone().ok_or_else(|| {
        HubError::Conflict(format!(
            "agent {} has not connected since enrollment; nothing to accept",
            a.name
        ))
    })?;
    let (id, by_owned) = (a.id.clone(), by.to_owned());
    let (old, new) = (
        a.baseline.fingerprint().to_hex(),
        current.fingerprint().to_hex(),
    );
    let row = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            store::agents::accept_baseline(&tx, &id, &current)?;
            let closed =
                store::drift::resolve_open(&tx, &id, DriftStatus::Accepted, &by_owned, now)?;
            store::audit::append(
                &tx,
                NewEntry::new(by_owned.clone(), "attestation.accepted", "ok")
                    .agent(id.clone())
                    .detail("old_baseline", old)
                    .detail("new_baseline", new)
                    .detail("drift_events_closed", closed as u64),
                now,
            )?;
            tx.commit()?;
            store::agents::get(c, &id)?.ok_or_else(|| store::StoreError::NotFound(id.clone()))
        })
        .await?;
    hub.audit.appended(1).await;
    // The live session still believes it is quarantined; a reconnect gives
    // the agent a fresh ack. Drop it so it reconnects at once.
    hub.registry.disconnect(&row.id);
    Ok(summary(hub, &row))
}

/// Closes an agent's open drift events as "kept": the operator looked at
/// the change and keeps the agent quarantined (until its baseline is
/// accepted or it is revoked). Refused when there is no open drift.
pub async fn keep_quarantined(hub: &Hub, name: &str, by: &str) -> Result<AgentSummary, HubError> {
    let a = find_agent(hub, name).await?;
    if a.revoked_at_ms.is_some() {
        return Err(HubError::Conflict(format!("agent {} is revoked", a.name)));
    }
    let (id, agent_name, by_owned) = (a.id.clone(), a.name.clone(), by.to_owned());
    let row = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let closed = store::drift::resolve_open(&tx, &id, DriftStatus::Kept, &by_owned, now)?;
            if closed == 0 {
                return Err(store::StoreError::Conflict(format!(
                    "agent {agent_name} has no open attestation drift to decide on"
                )));
            }
            store::audit::append(
                &tx,
                NewEntry::new(by_owned.clone(), "attestation.kept_quarantined", "ok")
                    .agent(id.clone())
                    .detail("drift_events_closed", closed as u64),
                now,
            )?;
            tx.commit()?;
            store::agents::get(c, &id)?.ok_or_else(|| store::StoreError::NotFound(id.clone()))
        })
        .await?;
    hub.audit.appended(1).await;
    Ok(summary(hub, &row))
}

pub async fn set_tags(
    hub: &Hub,
    name: &str,
    tags: Vec<String>,
    by: &str,
) -> Result<AgentSummary, HubError> {
    for t in &tags {
        if t.is_empty()
            || t.len() > 32
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(HubError::BadRequest(format!(
                "tag {t:?} must be 1-32 characters of A-Z a-z 0-9 - _ . :"
            )));
        }
    }
    let a = find_agent(hub, name).await?;
    let (id, by) = (a.id.clone(), by.to_owned());
    let row = hub
        .store
        .write(move |c| {
            store::agents::set_tags(c, &id, &tags)?;
            store::audit::append(
                c,
                NewEntry::new(by, "agent.tags", "ok")
                    .agent(id.clone())
                    .detail("tags", tags.clone()),
                now_ms(),
            )?;
            store::agents::get(c, &id)?.ok_or_else(|| store::StoreError::NotFound(id.clone()))
        })
        .await?;
    hub.audit.appended(1).await;
    Ok(summary(hub, &row))
}

fn permission(
    a: &AgentRow,
    p: &sonde_protocol::messages::PackReport,
    decision: Option<GrantDecision>,
) -> PermissionRequest {
    PermissionRequest {
        agent_id: a.id.clone(),
        agent_name: a.name.clone(),
        pack: p.name.clone(),
        version: p.version.clone(),
        description: p.description.clone(),
        manifest_sha256: p.manifest_sha256.to_hex(),
        state: p.state,
        decision,
        capability: p.capability,
        requires: p.requires.clone(),
        missing: p.missing.clone(),
        detected: p.detected,
    }
}

/// Pack permissions waiting for the operator (or, with `all`, every pack of
/// every live agent).
pub async fn permissions(hub: &Hub, all: bool) -> Result<Vec<PermissionRequest>, HubError> {
    let rows = hub
        .store
        .read(|c| {
            let agents = store::agents::list(c)?;
            let mut out = Vec::new();
            for a in agents.into_iter().filter(|a| a.revoked_at_ms.is_none()) {
                let grants = store::grants::for_agent(c, &a.id)?;
                out.push((a, grants));
            }
            Ok(out)
        })
        .await?;
    let mut out = Vec::new();
    for (a, grants) in rows {
        for p in &a.packs {
            let decision = grants
                .iter()
                .find(|g| g.grant.pack == p.name)
                .map(|g| g.grant.decision);
            let wanted =
                p.state == PackState::Pending || (p.state == PackState::Unavailable && p.detected);
            if all || wanted {
                out.push(permission(&a, p, decision));
            }
        }
    }
    Ok(out)
}

/// Approves, denies or revokes one pack on one agent: signs the decision,
/// stores it, and pushes every grant of that agent to it if connected.
pub async fn decide_pack(
    hub: &Hub,
    agent: &str,
    pack: &str,
    action: &str,
    by: &str,
) -> Result<PermissionRequest, HubError> {
    let decision = match action {
        "approve" => GrantDecision::Approved,
        "deny" | "revoke" => GrantDecision::Revoked,
        other => {
            return Err(HubError::BadRequest(format!(
                "unknown pack action {other:?} (approve, deny, revoke)"
            )));
        }
    };
    let a = find_agent(hub, agent).await?;
    if a.revoked_at_ms.is_some() {
        return Err(HubError::Conflict(format!("agent {} is revoked", a.name)));
    }
    let report = a
        .packs
        .iter()
        .find(|p| p.name == pack)
        .cloned()
        .ok_or_else(|| {
            HubError::NotFound(format!(
                "agent {} does not report a pack named {pack:?}",
                a.name
            ))
        })?;
    let grant = PackGrant::sign(
        &a.id,
        pack,
        report.manifest_sha256,
        decision,
        now_ms(),
        &hub.signing_key,
    );
    let row = GrantRow {
        grant,
        action: action.to_owned(),
        decided_by: by.to_owned(),
    };
    let (id, by, action_owned, pack_owned) = (
        a.id.clone(),
        by.to_owned(),
        action.to_owned(),
        pack.to_owned(),
    );
    let manifest = report.manifest_sha256.to_hex();
    let grants = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            store::grants::upsert(&tx, &row)?;
            let verb = match action_owned.as_str() {
                "approve" => "pack.approved",
                "deny" => "pack.denied",
                _ => "pack.revoked",
            };
            store::audit::append(
                &tx,
                NewEntry::new(by, verb, "ok")
                    .agent(id.clone())
                    .detail("pack", pack_owned)
                    .detail("manifest_sha256", manifest),
                now_ms(),
            )?;
            let grants = store::grants::for_agent(&tx, &id)?;
            tx.commit()?;
            Ok(grants)
        })
        .await?;
    hub.audit.appended(1).await;
    hub.registry.push_grants(
        &a.id,
        GrantsUpdate {
            grants: grants.into_iter().map(|g| g.grant).collect(),
        },
    );
    Ok(permission(&a, &report, Some(decision)))
}

pub async fn drift(hub: &Hub, all: bool) -> Result<Vec<DriftEvent>, HubError> {
    let (events, agents) = hub
        .store
        .read(move |c| Ok((store::drift::list(c, all)?, store::agents::list(c)?)))
        .await?;
    Ok(events
        .into_iter()
        .map(|e| DriftEvent {
            id: e.id,
            agent_name: agents
                .iter()
                .find(|a| a.id == e.agent_id)
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            agent_id: e.agent_id,
            detected_at_ms: e.detected_at_ms,
            baseline_fingerprint: e.baseline.fingerprint().to_hex(),
            current_fingerprint: e.current.fingerprint().to_hex(),
            changes: e.current.changes_from(&e.baseline),
            baseline: e.baseline,
            current: e.current,
            status: e.status,
            resolved_at_ms: e.resolved_at_ms,
            resolved_by: e.resolved_by,
            agent_version: None,
        })
        .collect())
}

/// Default token lifetime: 15 minutes.
pub const DEFAULT_TOKEN_TTL_S: u64 = 900;

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
    let now = now_ms();
    let row = store::tokens::TokenRow {
        id: store::new_id("tok-", 5),
        label,
        auto_approve: req.auto_approve,
        created_at_ms: now,
        expires_at_ms: now + (ttl as i64) * 1000,
        used_at_ms: None,
        revoked_at_ms: None,
    };
    let (r, s, by) = (row.clone(), secret.clone(), by.to_owned());
    hub.store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            store::tokens::insert(&tx, &r, &s)?;
            store::audit::append(
                &tx,
                NewEntry::new(by, "token.created", "ok")
                    .detail("token_id", r.id.clone())
                    .detail("label", r.label.clone())
                    .detail("auto_approve", r.auto_approve)
                    .detail("expires_at_ms", r.expires_at_ms),
                now,
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    hub.audit.appended(1).await;
    let fp = hub.ca.fingerprint().to_hex();
    Ok(TokenCreated {
        enroll_command: format!(
            "sonde-agent enroll --hub {} --token {secret} --ca-sha256 {fp}",
            hub.agent_address()
        ),
        token: secret,
        info: row.info(now_ms()),
        ca_sha256: fp,
    })
}

pub async fn tokens(hub: &Hub) -> Result<Vec<TokenInfo>, HubError> {
    let rows = hub.store.read(store::tokens::list).await?;
    let now = now_ms();
    Ok(rows.iter().map(|t| t.info(now)).collect())
}

pub async fn revoke_token(hub: &Hub, id: &str, by: &str) -> Result<TokenInfo, HubError> {
    let (id, by) = (id.to_owned(), by.to_owned());
    let row = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = store::tokens::revoke(&tx, &id, now_ms())?;
            store::audit::append(
                &tx,
                NewEntry::new(by, "token.revoked", "ok").detail("token_id", id.clone()),
                now_ms(),
            )?;
            tx.commit()?;
            Ok(row)
        })
        .await?;
    hub.audit.appended(1).await;
    Ok(row.info(now_ms()))
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

pub async fn create_key(hub: &Hub, req: KeyCreate, by: &str) -> Result<KeyCreated, HubError> {
    if req.name.trim().is_empty() || req.name.len() > 64 || req.name.chars().any(char::is_control) {
        return Err(HubError::BadRequest(
            "key name must be 1-64 printable characters".into(),
        ));
    }
    check_patterns("agent", &req.agents, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    })?;
    check_patterns("probe", &req.probes, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_')
    })?;
    if let Some(unknown) = req
        .tools
        .iter()
        .find(|t| !crate::mcp::TOOL_NAMES.contains(&t.as_str()))
    {
        return Err(HubError::BadRequest(format!(
            "unknown tool {unknown:?}; tools are: {}",
            crate::mcp::TOOL_NAMES.join(", ")
        )));
    }
    let expires_in = req.expires_in_s.map(|s| {
        i64::try_from(s)
            .unwrap_or(i64::MAX / 2000)
            .saturating_mul(1000)
    });
    let (key, prefix) = store::keys::new_key();
    let now = now_ms();
    let info = KeyInfo {
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
    };
    let (i, k, by) = (info.clone(), key.clone(), by.to_owned());
    hub.store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            store::keys::insert(&tx, &i, &k)?;
            store::audit::append(
                &tx,
                NewEntry::new(by, "key.created", "ok")
                    .detail("key_id", i.id.clone())
                    .detail("name", i.name.clone())
                    .detail("prefix", i.prefix.clone())
                    .detail("policy", serde_json::json!({"agents": i.agents, "probes": i.probes, "tools": i.tools, "max_capability": i.max_capability})),
                now,
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    hub.audit.appended(1).await;
    let mcp_url = hub.endpoints().mcp_url;
    Ok(KeyCreated {
        claude_command: mcp_url
            .as_ref()
            .map(|url| format!("claude mcp add sonde --transport http {url} --header \"Authorization: Bearer {key}\"")),
        mcp_url,
        key,
        info,
    })
}

pub async fn keys(hub: &Hub) -> Result<Vec<KeyInfo>, HubError> {
    Ok(hub.store.read(store::keys::list).await?)
}

pub async fn revoke_key(hub: &Hub, id: &str, by: &str) -> Result<KeyInfo, HubError> {
    let (id, by) = (id.to_owned(), by.to_owned());
    let info = hub
        .store
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let info = store::keys::revoke(&tx, &id, now_ms())?;
            store::audit::append(
                &tx,
                NewEntry::new(by, "key.revoked", "ok")
                    .detail("key_id", info.id.clone())
                    .detail("prefix", info.prefix.clone()),
                now_ms(),
            )?;
            tx.commit()?;
            Ok(info)
        })
        .await?;
    hub.audit.appended(1).await;
    Ok(info)
}
