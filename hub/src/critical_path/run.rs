//! Running a critical path: steps in order, each step's checks in
//! parallel, every probe through [`probe_target`].

use futures_util::future::join_all;
use serde_json::{Value, json};
use sonde_admin::api::{OnFailure, PathRunSummary};
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::time::now_ms;
use sonde_protocol::{Capability, ProbeDescriptor};
use std::time::{Duration, Instant};

use super::expect::shorten;
use super::{Check, CriticalPath, Step, info, params_value};
use crate::error::HubError;
use crate::hub::{Hub, SharedHub};
use crate::mcp::policy::KeyPolicy;
use crate::probe::{self, ProbeCall};
use sonde_admin::api::ProbeRunResult;

/// Who runs a path, and so under which policy.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An MCP client: its key's agent, probe and capability scope apply to
    /// every check.
    Key(KeyPolicy),
    /// An operator on the admin socket (`operator:alice`): no scope.
    Operator(String),
}

impl Caller {
    pub fn actor(&self) -> String {
        match self {
            Caller::Key(p) => p.actor(),
            Caller::Operator(o) => o.clone(),
        }
    }

    fn via(&self) -> &'static str {
        match self {
            Caller::Key(_) => "mcp.check_critical_path",
            Caller::Operator(_) => "admin.paths.run",
        }
    }
}

/// What happened to one probe of a check.
#[derive(Debug)]
pub enum TargetOutcome {
    /// The probe ran (or the target answered with a failure).
    Ran(ProbeRunResult),
    /// The caller's policy does not allow it (audited as `denied`).
    Denied(String),
    /// The hub refused it before the target saw it (audited).
    Refused(HubError),
}

/// The one way a check reaches a target: the caller's key policy (agent,
/// probe, capability), then [`crate::probe::run`] — the path of the MCP
/// `probe` tool, so the call is checked and audited exactly like one.
/// A hub-side integration under that name (agents win the name, as in
/// every MCP tool) runs through the integration runner with the same policy
/// check and the same audit entry shape.
pub async fn probe_target(
    hub: &SharedHub,
    caller: &Caller,
    target: &str,
    descriptor: ProbeDescriptor,
    timeout: Option<Duration>,
) -> TargetOutcome {
    let found = hub.fleet.find(target).map(|l| l.agent());
    let integration = match found.as_ref() {
        Some(a) if !a.is_revoked() => None,
        _ => hub.integrations.get(target).filter(|i| i.record.approved),
    };
    if let Some(inst) = integration {
        let call = crate::integrations::runner::IntegrationCall {
            integration: inst.name().to_owned(),
            descriptor,
            actor: caller.actor(),
            timeout,
            via: caller.via(),
            allow_pending: false,
        };
        if let Caller::Key(policy) = caller
            && let Err(reason) = policy.check_probe(
                inst.name(),
                call.descriptor.probe.as_str(),
                crate::integrations::manifest::CAPABILITY,
            )
        {
            let e = crate::integrations::runner::refuse(
                hub,
                &call,
                "denied",
                HubError::Forbidden(reason),
            )
            .await;
            return TargetOutcome::Denied(e.to_string());
        }
        return match crate::integrations::runner::run(hub, call).await {
            Ok(r) => TargetOutcome::Ran(r),
            Err(e) => TargetOutcome::Refused(e),
        };
    }
    let call = ProbeCall {
        agent: found
            .as_ref()
            .map_or_else(|| target.to_owned(), |a| a.id.clone()),
        descriptor,
        actor: caller.actor(),
        timeout,
        via: caller.via(),
        cancel: None,
    };
    if let Caller::Key(policy) = caller {
        let name = found.as_ref().map_or(target, |a| a.name.as_str());
        let capability = found
            .as_ref()
            .and_then(|a| a.catalog.probe(call.descriptor.probe.as_str()))
            .map_or(Capability::Observe, |s| s.capability);
        if let Err(reason) = policy.check_probe(name, call.descriptor.probe.as_str(), capability) {
            let e = probe::refuse(
                hub,
                &call,
                found.as_ref().map(|a| a.id.as_str()),
                "denied",
                HubError::Forbidden(reason),
            )
            .await;
            return TargetOutcome::Denied(e.to_string());
        }
    }
    match probe::run(hub, call).await {
        Ok(r) => TargetOutcome::Ran(r),
        Err(e) => TargetOutcome::Refused(e),
    }
}

/// Longest result excerpt in a failed check's evidence (characters of JSON).
const EXCERPT_CHARS: usize = 1024;

fn excerpt(data: &Value) -> Value {
    let text = data.to_string();
    if text.chars().count() <= EXCERPT_CHARS {
        data.clone()
    } else {
        let cut: String = text.chars().take(EXCERPT_CHARS).collect();
        Value::String(format!("{cut}… ({} bytes of JSON)", text.len()))
    }
}

fn error_code(e: &HubError) -> &'static str {
    match e {
        HubError::Forbidden(_) => "refused",
        HubError::NotFound(_) => "not_found",
        HubError::BadRequest(_) => "invalid_params",
        HubError::Unavailable(_) => "unavailable",
        _ => "internal",
    }
}

/// Runs one check; its report (`status`: pass, fail, denied or error).
async fn run_check(hub: &SharedHub, caller: &Caller, check: &Check) -> Value {
    let started = Instant::now();
    let outcome = probe_target(
        hub,
        caller,
        &check.target,
        check.descriptor.clone(),
        check.timeout,
    )
    .await;
    let mut v = json!({
        "target": check.target,
        "probe": check.descriptor.probe.as_str(),
    });
    if !check.descriptor.params.is_empty() {
        v["params"] = params_value(&check.descriptor.params);
    }
    match outcome {
        TargetOutcome::Denied(message) => {
            v["status"] = json!("denied");
            v["error"] = json!({"code": "denied", "message": message});
        }
        TargetOutcome::Refused(e) => {
            v["status"] = json!("error");
            v["error"] = json!({"code": error_code(&e), "message": e.to_string()});
        }
        TargetOutcome::Ran(r) => {
            v["audit_seq"] = json!(r.audit_seq);
            v["probe_duration_ms"] = json!(r.duration_ms);
            match (&r.data, r.ok) {
                (Some(data), true) => {
                    let mut all_ok = true;
                    let results: Vec<Value> = check
                        .expect
                        .iter()
                        .map(|e| match e.check(data) {
                            Ok(()) => {
                                let seen = e.pointer.resolve(data);
                                let mut x = json!({"expect": e.render(), "ok": true});
                                if let Some((at, actual)) = seen.first() {
                                    x["at"] = json!(at);
                                    x["actual"] = shorten(actual);
                                }
                                x
                            }
                            Err(miss) => {
                                all_ok = false;
                                json!({"expect": e.render(), "ok": false, "at": miss.at, "actual": miss.actual, "reason": miss.reason})
                            }
                        })
                        .collect();
                    v["status"] = json!(if all_ok { "pass" } else { "fail" });
                    v["expectations"] = json!(results);
                    if !all_ok {
                        v["excerpt"] = excerpt(data);
                    }
                    if r.truncated {
                        v["truncated"] = json!(true);
                    }
                }
                _ => {
                    v["status"] = json!("error");
                    v["error"] = json!({"code": r.error_code, "message": r.error});
                }
            }
        }
    }
    v["ok"] = json!(v["status"] == "pass");
    v["duration_ms"] = json!(started.elapsed().as_millis() as u64);
    v
}

async fn run_step(hub: &SharedHub, caller: &Caller, index: usize, step: &Step) -> Value {
    let started = Instant::now();
    let checks = join_all(step.checks.iter().map(|c| run_check(hub, caller, c))).await;
    let ok = checks.iter().all(|c| c["ok"] == json!(true));
    json!({
        "index": index + 1,
        "name": step.name,
        "status": if ok { "pass" } else { "fail" },
        "ok": ok,
        "duration_ms": started.elapsed().as_millis() as u64,
        "checks": checks,
    })
}

/// One line on why a check failed.
fn why(check: &Value) -> String {
    let who = format!(
        "{} {}",
        check["target"].as_str().unwrap_or("?"),
        check["probe"].as_str().unwrap_or("?")
    );
    if let Some(msg) = check["error"]["message"].as_str() {
        let code = check["error"]["code"].as_str().unwrap_or("error");
        return format!("{who}: {code}: {msg}");
    }
    let failed = check["expectations"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["ok"] == json!(false)));
    match failed {
        Some(e) => format!(
            "{who}: {} failed at {} ({}; found {})",
            e["expect"].as_str().unwrap_or("?"),
            e["at"].as_str().unwrap_or("?"),
            e["reason"].as_str().unwrap_or("?"),
            if e["actual"].is_null() {
                "nothing".to_owned()
            } else {
                e["actual"].to_string()
            }
        ),
        None => format!("{who}: failed"),
    }
}

/// Runs a validated path under `caller`: the report.
pub async fn execute(hub: &SharedHub, caller: &Caller, path: &CriticalPath) -> Value {
    let started = Instant::now();
    let mut steps = Vec::with_capacity(path.steps.len());
    let mut breaks_at: Option<(usize, String, String)> = None;
    let mut failed_steps = Vec::new();
    for (i, step) in path.steps.iter().enumerate() {
        if breaks_at.is_some() && path.on_failure == OnFailure::Stop {
            steps.push(json!({
                "index": i + 1,
                "name": step.name,
                "status": "skipped",
                "ok": false,
                "reason": "an earlier step failed (on_failure = stop)",
                "checks": step.checks.iter().map(|c| json!({"target": c.target, "probe": c.descriptor.probe.as_str()})).collect::<Vec<_>>(),
            }));
            continue;
        }
        let report = run_step(hub, caller, i, step).await;
        if report["ok"] != json!(true) {
            failed_steps.push(i + 1);
            if breaks_at.is_none() {
                let first = report["checks"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["ok"] != json!(true)))
                    .map(why)
                    .unwrap_or_default();
                breaks_at = Some((i, step.name.clone(), first));
            }
        }
        steps.push(report);
    }
    let ok = breaks_at.is_none();
    let summary = match &breaks_at {
        None => format!(
            "all {} steps pass ({} checks)",
            path.steps.len(),
            path.check_count()
        ),
        Some((i, name, first)) => {
            format!("breaks at step {} ({name}): {first}", i + 1)
        }
    };
    json!({
        "path": path.name,
        "description": path.description,
        "ok": ok,
        "breaks_at": breaks_at.as_ref().map(|(i, name, _)| json!({"index": i + 1, "step": name})),
        "summary": summary,
        "failed_steps": failed_steps,
        "on_failure": path.on_failure,
        "duration_ms": started.elapsed().as_millis() as u64,
        "steps": steps,
    })
}

/// Runs the stored path `name` under `caller`, records the run as the
/// path's last (audited `path.ran`, with the audit numbers of its probe
/// calls) and returns the report.
pub async fn run(hub: &SharedHub, caller: &Caller, name: &str) -> Result<Value, HubError> {
    let stored = hub.store.critical_path(name).await?.ok_or_else(|| {
        HubError::NotFound(format!(
            "no critical path {name:?}; call check_critical_path without a name to list them"
        ))
    })?;
    let def = info(&stored)?.definition;
    let path = CriticalPath::validate(&def).map_err(|e| {
        HubError::Internal(format!("stored critical path {name:?} is invalid: {e}"))
    })?;
    let at_ms = now_ms();
    let report = execute(hub, caller, &path).await;
    let ok = report["ok"] == json!(true);
    let breaks = &report["breaks_at"];
    let summary = PathRunSummary {
        at_ms,
        by: caller.actor(),
        ok,
        breaks_at: breaks["index"].as_u64().map(|i| i as u32),
        breaks_at_step: breaks["step"].as_str().map(str::to_owned),
        summary: report["summary"].as_str().unwrap_or_default().to_owned(),
        duration_ms: report["duration_ms"].as_u64().unwrap_or(0),
    };
    let seqs: Vec<u64> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["checks"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["audit_seq"].as_u64())
        .collect();
    let mut entry = NewEntry::new(
        caller.actor(),
        AuditAction::PathRan,
        if ok { "ok" } else { "failed" },
    )
    .detail("path", path.name.clone())
    .detail("via", caller.via())
    .detail("probe_audit_seqs", json!(seqs))
    .detail("duration_ms", summary.duration_ms);
    if let Some(i) = summary.breaks_at {
        entry = entry.detail("breaks_at", i);
    }
    let summary_json = serde_json::to_value(&summary)
        .map_err(|e| HubError::Internal(format!("encoding a run summary: {e}")))?;
    hub.store
        .record_path_run(name, summary_json, entry)
        .await
        .map_err(|e| {
            HubError::Internal(format!(
                "the path ran but its audit entry could not be written: {e}"
            ))
        })?;
    Ok(report)
}

/// The paths a caller may run, with their steps and last result (what
/// `check_critical_path` answers without a name).
pub async fn list(hub: &Hub) -> Result<Value, HubError> {
    let paths = super::infos(hub).await?;
    let list: Vec<Value> = paths
        .iter()
        .map(|p| {
            json!({
                "name": p.definition.name,
                "description": p.definition.description,
                "on_failure": p.definition.on_failure,
                "steps": p.definition.steps.iter().map(|s| json!({
                    "name": s.name,
                    "checks": s.checks.iter().map(|c| format!("{} {}", c.target, c.probe)).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "last_run": p.last_run,
            })
        })
        .collect();
    Ok(json!({"paths": list}))
}
