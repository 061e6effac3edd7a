//! Running one probe on one agent through the hub: the path every MCP `probe`
//! call, runbook step and console "Try it" takes.
//!
//! The hub checks what it can before sending (agent known, live, not
//! quarantined; probe registered on that agent; parameters valid against the
//! probe's schema), sends a signed request, waits for the signed reply, and
//! writes one audit entry per call — allowed or not — with the parameter and
//! result digests and the agent's own audit head for cross-checking.

use sonde_admin::api::ProbeRunResult;
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::{ProbeErrorCode, ProbeRequest};
use sonde_protocol::schema::validate;
use sonde_protocol::time::now_ms;
use sonde_protocol::{Digest, ProbeDescriptor};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::error::HubError;
use crate::hub::{Hub, SharedHub};
use crate::link::registry::{DispatchError, ProbeReply};
use crate::store;

/// Extra time the hub waits beyond the probe's own timeout.
const REPLY_GRACE: Duration = Duration::from_secs(5);

/// One call.
#[derive(Debug, Clone)]
pub struct ProbeCall {
    /// Agent name or id.
    pub agent: String,
    pub descriptor: ProbeDescriptor,
    /// Who asked (`api-key:sk_…`, `operator:alice`).
    pub actor: String,
    /// Override of the probe's own timeout (never longer than it).
    pub timeout: Option<Duration>,
    /// Extra audit detail (e.g. the MCP tool that made the call).
    pub via: &'static str,
    /// Cancelled when the caller gives up (MCP `notifications/cancelled`,
    /// a closed session): the hub stops waiting, tells the agent to kill
    /// the probe, and audits the call as `cancelled`.
    pub cancel: Option<CancellationToken>,
}

/// Audits a call refused before it reached the agent, and returns the error.
pub async fn refuse(
    hub: &Hub,
    call: &ProbeCall,
    agent_id: Option<&str>,
    outcome: &str,
    err: HubError,
) -> HubError {
    let mut entry = NewEntry::new(call.actor.clone(), AuditAction::Probe, outcome)
        .probe(call.descriptor.probe.as_str())
        .params_digest(Digest::of_json(&serde_json::Value::Object(
            call.descriptor.params.clone(),
        )))
        .detail("reason", err.to_string())
        .detail("via", call.via);
    if let Some(id) = agent_id {
        entry = entry.agent(id);
    } else {
        entry = entry.detail("agent_requested", call.agent.clone());
    }
    hub.audit(entry).await;
    err
}

/// How the wait for the agent ended.
enum Waited {
    Reply(Result<ProbeReply, DispatchError>),
    /// The caller cancelled; `told_agent` if a `probe.cancel` was queued.
    Cancelled {
        told_agent: bool,
    },
}

/// Runs the call. `Err` means the hub refused it before the agent saw it;
/// agent-side failures come back as `Ok` with `ok: false`.
///
/// The call runs in a task of its own: a caller that goes away (an MCP
/// client or an admin connection closing mid-call drops this future)
/// cannot stop it halfway, so every call the hub accepted gets exactly one
/// audit entry — its verdict, or `cancelled` when [`ProbeCall::cancel`]
/// fires first.
pub async fn run(hub: &SharedHub, call: ProbeCall) -> Result<ProbeRunResult, HubError> {
    let hub = std::sync::Arc::clone(hub);
    tokio::spawn(async move { run_to_end(&hub, call).await })
        .await
        .unwrap_or_else(|e| {
            Err(HubError::Internal(format!(
                "the probe call's task failed: {e}"
            )))
        })
}

async fn run_to_end(hub: &Hub, call: ProbeCall) -> Result<ProbeRunResult, HubError> {
    // One hash lookup in the in-memory fleet: no database read, no catalog
    // decoding on the call path.
    let live = match crate::fleet::find_agent(hub, &call.agent) {
        Ok(live) => live,
        Err(e) => return Err(refuse(hub, &call, None, "refused", e).await),
    };
    let agent = live.agent();
    if agent.is_revoked() {
        return Err(refuse(
            hub,
            &call,
            Some(&agent.id),
            "refused",
            HubError::Forbidden(format!("agent {} is revoked", agent.name)),
        )
        .await);
    }
    if agent.quarantined {
        let reason = agent
            .quarantine_reason
            .clone()
            .unwrap_or_else(|| "quarantined".into());
        return Err(refuse(
            hub,
            &call,
            Some(&agent.id),
            "refused",
            HubError::Forbidden(format!("agent {} is quarantined: {reason}", agent.name)),
        )
        .await);
    }
    if hub.registry.get(&agent.id).is_none() {
        let seen = live
            .liveness()
            .last_seen_ms
            .map(|t| {
                format!(
                    "last seen {} ago",
                    crate::durations::human_duration_ms(now_ms() - t)
                )
            })
            .unwrap_or_else(|| "never connected".into());
        return Err(refuse(
            hub,
            &call,
            Some(&agent.id),
            "error",
            HubError::Unavailable(format!("agent {} is offline ({seen})", agent.name)),
        )
        .await);
    }
    let probe_name = call.descriptor.probe.as_str().to_owned();
    let Some(summary) = agent.catalog.probe(&probe_name) else {
        return Err(refuse(
            hub,
            &call,
            Some(&agent.id),
            "error",
            HubError::NotFound(format!(
                "unknown probe {probe_name:?} on agent {} (not installed, its pack is not active there, or above its capability ceiling); see list_capabilities",
                agent.name
            )),
        )
        .await);
    };
    if let Err(e) = validate(&summary.params, &call.descriptor.params) {
        return Err(refuse(
            hub,
            &call,
            Some(&agent.id),
            "error",
            HubError::BadRequest(e.to_string()),
        )
        .await);
    }
    let probe_timeout = Duration::from_millis(summary.timeout_ms);
    let timeout = call.timeout.map_or(probe_timeout, |t| t.min(probe_timeout));
    let request_id = store::new_id("req-", 8);
    let request = ProbeRequest {
        request_id: request_id.clone(),
        descriptor: call.descriptor.clone(),
        actor: call.actor.clone(),
        timeout_ms: timeout.as_millis() as u64,
    };
    let started = Instant::now();
    let cancel = call.cancel.clone().unwrap_or_default();
    if cancel.is_cancelled() {
        return Err(refuse(
            hub,
            &call,
            Some(&agent.id),
            "cancelled",
            HubError::Unavailable("the caller cancelled the call before it was sent".into()),
        )
        .await);
    }
    // Sent before the first poll returns; the caller's cancellation only
    // ends the wait. Every path below writes this call's one audit entry.
    let dispatch = hub
        .registry
        .dispatch(&agent.id, request, timeout + REPLY_GRACE);
    let reply = tokio::select! {
        biased;
        reply = dispatch => Waited::Reply(reply),
        () = cancel.cancelled() => Waited::Cancelled {
            told_agent: hub.registry.cancel(&agent.id, &request_id, "the MCP client cancelled the call"),
        },
    };
    let elapsed = started.elapsed().as_millis() as u64;
    let mut result = ProbeRunResult {
        agent: agent.name.clone(),
        probe: probe_name.clone(),
        ok: false,
        data: None,
        error_code: None,
        error: None,
        duration_ms: elapsed,
        truncated: false,
        redactions: Default::default(),
        audit_seq: 0,
        agent_audit_head: None,
    };
    let mut entry = NewEntry::new(call.actor.clone(), AuditAction::Probe, "ok")
        .agent(agent.id.clone())
        .probe(probe_name.clone())
        .params_digest(Digest::of_json(&serde_json::Value::Object(
            call.descriptor.params.clone(),
        )))
        .detail("request_id", request_id)
        .detail("via", call.via);
    let reply = match reply {
        Waited::Reply(r) => r,
        Waited::Cancelled { told_agent } => {
            result.error_code = Some("cancelled".into());
            result.error = Some(format!(
                "the call was cancelled after {elapsed} ms; {}",
                if told_agent {
                    "the agent was told to stop the probe"
                } else {
                    "the agent could not be told (no longer connected)"
                }
            ));
            entry.outcome = "cancelled".into();
            entry = entry
                .detail("error_code", "cancelled")
                .detail("cancel_sent_to_agent", told_agent);
            Ok(ProbeReply::Disconnected(String::new()))
        }
    };
    let cancelled = entry.outcome == "cancelled";
    match reply {
        _ if cancelled => {}
        Ok(ProbeReply::Response(r)) => {
            let digest = Digest::of_json(&r.data);
            if digest != r.result_digest {
                result.error_code = Some("bad_digest".into());
                result.error =
                    Some("the agent's result does not match the digest it signed".into());
                entry.outcome = "error".into();
            } else {
                result.ok = true;
                result.data = Some(r.data);
            }
            result.truncated = r.truncated;
            result.redactions = r.redactions.clone();
            result.duration_ms = r.duration_ms;
            result.agent_audit_head = Some(r.audit_head);
            entry = entry
                .result_digest(digest)
                .detail("duration_ms", r.duration_ms)
                .detail("truncated", r.truncated)
                .detail(
                    "redactions",
                    serde_json::to_value(&r.redactions).unwrap_or_default(),
                )
                .detail(
                    "agent_audit_head",
                    serde_json::to_value(r.audit_head).unwrap_or_default(),
                );
        }
        Ok(ProbeReply::Failure(f)) => {
            result.error_code = Some(f.code.as_str().into());
            result.error = Some(f.message.clone());
            result.duration_ms = f.duration_ms;
            result.agent_audit_head = Some(f.audit_head);
            entry.outcome = match f.code {
                ProbeErrorCode::Refused | ProbeErrorCode::UnknownProbe => "refused",
                ProbeErrorCode::Timeout => "timeout",
                _ => "error",
            }
            .into();
            // The agent's own measure, as for answered calls: trending
            // reads latency from this detail (crate::trending).
            entry = entry
                .detail("duration_ms", f.duration_ms)
                .detail("error_code", f.code.as_str())
                .detail("error", f.message)
                .detail(
                    "agent_audit_head",
                    serde_json::to_value(f.audit_head).unwrap_or_default(),
                );
        }
        Ok(ProbeReply::Rejected { code, message }) => {
            result.error_code = Some("rejected_by_agent".into());
            result.error = Some(format!(
                "the agent rejected the request ({code}): {message}"
            ));
            entry.outcome = "error".into();
            entry = entry
                .detail("error_code", "rejected_by_agent")
                .detail("error", message)
                .detail("code", code);
        }
        Ok(ProbeReply::Disconnected(why)) => {
            result.error_code = Some("disconnected".into());
            result.error = Some(format!(
                "agent {} disconnected before answering: {why}",
                agent.name
            ));
            entry.outcome = "error".into();
            entry = entry
                .detail("error_code", "disconnected")
                .detail("error", why);
        }
        Err(DispatchError::Timeout { after, .. }) => {
            result.error_code = Some("timeout".into());
            result.error = Some(format!(
                "agent {} did not answer within {}s",
                agent.name,
                after.as_secs()
            ));
            entry.outcome = "timeout".into();
            entry = entry
                .detail("duration_ms", elapsed)
                .detail("error_code", "timeout");
        }
        Err(e) => {
            result.error_code = Some("unavailable".into());
            result.error = Some(e.to_string());
            entry.outcome = "error".into();
            entry = entry
                .detail("error_code", "unavailable")
                .detail("error", e.to_string());
        }
    }
    if let Some(head) = result.agent_audit_head {
        // Kept in memory (the newest wins), persisted with the next
        // liveness batch; this call's own entry records it durably below.
        hub.fleet.observe_head(&agent.id, head);
    }
    match hub.audit.record(entry).await {
        Ok(e) => result.audit_seq = e.seq,
        Err(e) => {
            return Err(HubError::Internal(format!(
                "the probe ran but its audit entry could not be written: {e}"
            )));
        }
    }
    Ok(result)
}
