//! Pack permissions: what each agent reports, and the operator's signed
//! decisions (approve, deny, revoke), pushed to the agent at once.

use sonde_admin::api::{PackAction, PermissionRequest};
use sonde_protocol::messages::{GrantDecision, GrantsUpdate, PackGrant, PackReport, PackState};
use sonde_protocol::time::now_ms;
use std::collections::HashMap;

use super::find_agent;
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::{Agent, Grant};

fn permission(a: &Agent, p: &PackReport, decision: Option<GrantDecision>) -> PermissionRequest {
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
    let wanted = |p: &PackReport| {
        p.state == PackState::Pending || (p.state == PackState::Unavailable && p.detected)
    };
    let agents: Vec<_> = hub
        .fleet
        .live()
        .into_iter()
        .filter(|a| all || a.packs().iter().any(wanted))
        .collect();
    if agents.is_empty() {
        return Ok(Vec::new());
    }
    let mut decisions: HashMap<(String, String), GrantDecision> = HashMap::new();
    for g in hub.store.all_grants().await? {
        decisions.insert((g.grant.agent_id, g.grant.pack), g.grant.decision);
    }
    let mut out = Vec::new();
    for a in agents {
        for p in a.packs() {
            let decision = decisions.get(&(a.id.clone(), p.name.clone())).copied();
            if all || wanted(p) {
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
    action: PackAction,
    by: &str,
) -> Result<PermissionRequest, HubError> {
    let decision = match action {
        PackAction::Approve => GrantDecision::Approved,
        PackAction::Deny | PackAction::Revoke => GrantDecision::Revoked,
    };
    let a = find_agent(hub, agent)?.agent();
    if a.is_revoked() {
        return Err(HubError::Conflict(format!("agent {} is revoked", a.name)));
    }
    let report = a
        .packs()
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
    let grants = hub
        .store
        .decide_pack(Grant {
            grant,
            action,
            decided_by: by.to_owned(),
        })
        .await?;
    hub.registry.push_grants(&a.id, GrantsUpdate { grants });
    Ok(permission(&a, &report, Some(decision)))
}
