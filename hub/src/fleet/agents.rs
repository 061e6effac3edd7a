//! Agents as the operator sees them (summaries, details, drift events) and
//! the operator's actions on them: revoke, accept a new baseline, keep
//! quarantined, tag.

use sonde_admin::api::{AgentDetail, AgentState, AgentSummary, DriftEvent, DriftStatus};
use sonde_protocol::keys;
use sonde_protocol::messages::PackState;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{AgentView, LiveAgent};
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::{self, Agent, Liveness};

/// The state shown for an agent.
pub fn agent_state(agent: &Agent, connected: bool) -> AgentState {
    if agent.is_revoked() {
        AgentState::Revoked
    } else if agent.quarantined {
        AgentState::Quarantined
    } else if connected {
        AgentState::Online
    } else {
        AgentState::Offline
    }
}

/// One row of the fleet, as the admin API, the console and `sonde-hub
/// agents list` (also offline, with `connected = false`) show it.
pub fn summary(agent: &Agent, liveness: &Liveness, connected: bool) -> AgentSummary {
    let count = |s: PackState| agent.packs().iter().filter(|p| p.state == s).count() as u32;
    let connected = connected && !agent.is_revoked();
    AgentSummary {
        id: agent.id.clone(),
        name: agent.name.clone(),
        state: agent_state(agent, connected),
        connected,
        last_seen_ms: liveness.last_seen_ms,
        hostname: agent.hostname.clone(),
        os: agent.os.clone(),
        agent_version: agent.agent_version.clone(),
        packs_active: count(PackState::Active),
        packs_pending: count(PackState::Pending),
        packs_unavailable: count(PackState::Unavailable),
        tags: agent.tags.clone(),
        quarantine_reason: agent.quarantine_reason.clone(),
        max_capability: agent.max_capability,
        enrolled_at_ms: agent.enrolled_at_ms,
        cert_expires_ms: agent.cert_expires_ms,
        remote_addr: liveness.remote_addr.clone(),
        sandbox: agent
            .current
            .as_ref()
            .unwrap_or(&agent.baseline)
            .sandbox
            .clone(),
    }
}

/// Whether the agent has a live session.
pub fn is_connected(hub: &Hub, agent_id: &str) -> bool {
    hub.registry.get(agent_id).is_some()
}

pub fn view_summary(hub: &Hub, view: &AgentView) -> AgentSummary {
    summary(&view.agent, &view.liveness, is_connected(hub, &view.id))
}

pub async fn agents(hub: &Hub) -> Result<Vec<AgentSummary>, HubError> {
    Ok(hub
        .fleet
        .all()
        .iter()
        .map(|v| view_summary(hub, v))
        .collect())
}

/// The agent called `name` (an id, a live agent's name, or the latest
/// revoked agent with that name).
pub fn find_agent(hub: &Hub, name: &str) -> Result<Arc<LiveAgent>, HubError> {
    hub.fleet.find(name).ok_or_else(|| {
        HubError::NotFound(format!(
            "no agent named {name:?}; see `sonde-hub agents list`"
        ))
    })
}

pub async fn agent_detail(hub: &Hub, name: &str) -> Result<AgentDetail, HubError> {
    let view = find_agent(hub, name)?.view();
    let grants = hub.store.grants(&view.id).await?;
    Ok(AgentDetail {
        summary: view_summary(hub, &view),
        baseline_fingerprint: view.baseline.fingerprint().to_hex(),
        baseline: view.baseline.clone(),
        current: view.current.clone(),
        packs: view.packs().to_vec(),
        grants: grants
            .into_iter()
            .map(|g| (g.grant.pack, g.grant.decision))
            .collect::<BTreeMap<_, _>>(),
        agent_audit_head: view.liveness.audit_head,
        cert_sha256: view.cert_sha256.clone(),
        signing_key_fingerprint: keys::decode_public_key(&view.signing_key)
            .map(|k| keys::fingerprint(&k).to_hex())
            .unwrap_or_default(),
    })
}

/// Commits an operator action on one agent and returns its new summary.
async fn act<F, Fut>(hub: &Hub, name: &str, change: F) -> Result<AgentSummary, HubError>
where
    F: FnOnce(store::HubStore, String) -> Fut,
    Fut: std::future::Future<Output = store::Result<Agent>>,
{
    let live = find_agent(hub, name)?;
    let id = live.agent().id.clone();
    let target = id.clone();
    hub.fleet
        .update(&id, |store| async move {
            Ok((change(store, target).await?, ()))
        })
        .await?;
    Ok(view_summary(hub, &live.view()))
}

/// Revokes an agent: refuses its future connections and drops the live one.
pub async fn revoke_agent(hub: &Hub, name: &str, by: &str) -> Result<AgentSummary, HubError> {
    let by = by.to_owned();
    let summary = act(hub, name, |store, id| async move {
        store.revoke_agent(&id, &by).await
    })
    .await?;
    let dropped = hub.registry.disconnect(&summary.id);
    hub.registry.forget(&summary.id);
    tracing::info!(agent = %summary.name, dropped, "agent revoked");
    Ok(AgentSummary {
        connected: false,
        ..summary
    })
}

/// Accepts an agent's current attestation as its baseline, ending the
/// quarantine that drift caused.
pub async fn accept_baseline(hub: &Hub, name: &str, by: &str) -> Result<AgentSummary, HubError> {
    let by = by.to_owned();
    let summary = act(hub, name, |store, id| async move {
        store.accept_baseline(&id, &by).await
    })
    .await?;
    // The live session still believes it is quarantined; a reconnect gives
    // the agent a fresh ack. Drop it so it reconnects at once.
    hub.registry.disconnect(&summary.id);
    Ok(summary)
}

/// Closes an agent's open drift events as "kept": the operator looked at
/// the change and keeps the agent quarantined (until its baseline is
/// accepted or it is revoked). Refused when there is no open drift.
pub async fn keep_quarantined(hub: &Hub, name: &str, by: &str) -> Result<AgentSummary, HubError> {
    let by = by.to_owned();
    act(hub, name, |store, id| async move {
        store.keep_quarantined(&id, &by).await
    })
    .await
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
    let by = by.to_owned();
    act(hub, name, |store, id| async move {
        store.set_tags(&id, tags, &by).await
    })
    .await
}

fn drift_status(s: store::DriftStatus) -> DriftStatus {
    match s {
        store::DriftStatus::Open => DriftStatus::Open,
        store::DriftStatus::Accepted => DriftStatus::Accepted,
        store::DriftStatus::Revoked => DriftStatus::Revoked,
        store::DriftStatus::Kept => DriftStatus::Kept,
    }
}

pub async fn drift(hub: &Hub, all: bool) -> Result<Vec<DriftEvent>, HubError> {
    let events = hub.store.drift_events(all).await?;
    Ok(events
        .into_iter()
        .map(|e| DriftEvent {
            id: e.id,
            agent_name: hub
                .fleet
                .get(&e.agent_id)
                .map(|a| a.agent().name.clone())
                .unwrap_or_default(),
            agent_id: e.agent_id,
            detected_at_ms: e.detected_at_ms,
            baseline_fingerprint: e.baseline.fingerprint().to_hex(),
            current_fingerprint: e.current.fingerprint().to_hex(),
            changes: e.current.changes_from(&e.baseline),
            baseline: e.baseline,
            current: e.current,
            status: drift_status(e.status),
            resolved_at_ms: e.resolved_at_ms,
            resolved_by: e.resolved_by,
            agent_version: None,
        })
        .collect())
}
