//! What the MCP tools call for integrations: the same JSON shapes as for
//! agents (`list_agents`, `list_capabilities`, `probe`, `diagnose`), with
//! `"kind": "integration"`. Only approved integrations exist for MCP
//! clients; a key's agent patterns scope integration names the same way.

use futures_util::future::join_all;
use serde_json::{Map, Value, json};
use sonde_protocol::{ProbeDescriptor, ProbeName};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Instance;
use super::manifest::CAPABILITY;
use super::runner::{self, IntegrationCall};
use crate::error::HubError;
use crate::hub::Hub;
use crate::mcp::policy::KeyPolicy;
use crate::mcp::tools::agents::{AgentCapabilities, CategoryInfo, IntegrationBrief, ProbeInfo};

/// The approved integration `name` if the key may see it and no agent has
/// that name (agents win: the namespace is shared).
pub fn target(hub: &Hub, policy: &KeyPolicy, name: &str) -> Option<Arc<Instance>> {
    if hub
        .fleet
        .find(name)
        .is_some_and(|a| !a.agent().is_revoked())
    {
        return None;
    }
    hub.integrations
        .get(name)
        .filter(|i| i.record.approved && policy.allows_agent(i.name()))
}

/// Entries for `list_agents`.
pub fn list_agents(hub: &Hub, policy: &KeyPolicy) -> Vec<IntegrationBrief> {
    hub.integrations
        .approved()
        .iter()
        .filter(|i| policy.allows_agent(i.name()))
        .map(|i| IntegrationBrief {
            name: i.name().to_owned(),
            kind: "integration".into(),
            integration: i.kind().to_owned(),
            status: "approved".into(),
            description: i.manifest.header.description.clone(),
            base_url: i.base.origin().ascii_serialization(),
            probes: i.manifest.probes.len(),
        })
        .collect()
}

/// Entries for `list_capabilities` (all in scope, or `only`).
pub fn capabilities(hub: &Hub, policy: &KeyPolicy, only: Option<&str>) -> Vec<AgentCapabilities> {
    hub.integrations
        .approved()
        .iter()
        .filter(|i| policy.allows_agent(i.name()))
        .filter(|i| only.is_none_or(|n| n == i.name()))
        .map(|i| AgentCapabilities {
            agent: i.name().to_owned(),
            kind: Some("integration".into()),
            integration: Some(i.kind().to_owned()),
            status: "approved".into(),
            probes: i
                .manifest
                .probes
                .iter()
                .filter(|p| policy.allows_probe(&p.name) && policy.allows_capability(CAPABILITY))
                .map(|p| ProbeInfo {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    capability: CAPABILITY,
                    params: sonde_protocol::schema::object_schema(&p.params),
                    output: p.output.clone(),
                    examples: p.examples.clone(),
                    timeout_ms: p.timeout_ms,
                })
                .collect(),
            diagnose_categories: i
                .manifest
                .runbooks
                .iter()
                .filter(|r| {
                    r.steps
                        .iter()
                        .any(|s| policy.allows_probe(s.probe.as_str()))
                })
                .map(|r| CategoryInfo {
                    category: r.category.clone(),
                    description: r.description.clone(),
                    probes: r
                        .steps
                        .iter()
                        .map(|s| s.probe.as_str().to_owned())
                        .collect(),
                })
                .collect(),
            inactive_packs: Vec::new(),
            sample_data: Map::new(),
        })
        .collect()
}

fn error_value(target: &str, probe: &str, code: &str, message: String) -> Value {
    json!({"agent": target, "probe": probe, "ok": false, "error": {"code": code, "message": message}})
}

/// One probe under the key's policy (audited either way), as the MCP
/// `probe` tool answers it.
pub async fn run_probe(
    hub: &Hub,
    policy: &KeyPolicy,
    inst: &Instance,
    descriptor: ProbeDescriptor,
    timeout: Option<Duration>,
    via: &'static str,
) -> Value {
    let call = IntegrationCall {
        integration: inst.name().to_owned(),
        descriptor: descriptor.clone(),
        actor: policy.actor(),
        timeout,
        via,
        allow_pending: false,
    };
    if let Err(reason) = policy.check_probe(inst.name(), descriptor.probe.as_str(), CAPABILITY) {
        let e = runner::refuse(hub, &call, "denied", HubError::Forbidden(reason)).await;
        return error_value(
            inst.name(),
            descriptor.probe.as_str(),
            "denied",
            e.to_string(),
        );
    }
    match runner::run(hub, call).await {
        Ok(r) => {
            let redacted: u64 = r.redactions.values().sum();
            let mut v = json!({
                "agent": r.agent,
                "kind": "integration",
                "probe": r.probe,
                "ok": r.ok,
                "duration_ms": r.duration_ms,
                "truncated": r.truncated,
                "redactions": redacted,
                "redactions_by_rule": r.redactions,
                "audit_seq": r.audit_seq,
            });
            if r.ok {
                v["data"] = r.data.unwrap_or(Value::Null);
            } else {
                v["error"] = json!({"code": r.error_code, "message": r.error});
            }
            v
        }
        Err(e) => {
            let code = match &e {
                HubError::Forbidden(_) => "refused",
                HubError::NotFound(_) => "unknown_probe",
                HubError::BadRequest(_) => "invalid_params",
                HubError::Unavailable(_) => "unavailable",
                _ => "internal",
            };
            error_value(inst.name(), descriptor.probe.as_str(), code, e.to_string())
        }
    }
}

fn arg_str(args: &Map<String, Value>, name: &str) -> Result<String, Value> {
    match args.get(name) {
        Some(Value::String(s)) if s.len() <= 256 => Ok(s.clone()),
        _ => Err(
            json!({"ok": false, "error": {"code": "invalid_params", "message": format!("argument `{name}` is required (a string)")}}),
        ),
    }
}

/// The MCP `probe` tool for an integration target: `None` when `agent`
/// does not name an integration this key may see (the agent path
/// answers). `Err` is a failed result (the tool returns it as an error).
pub async fn probe(
    hub: &Hub,
    policy: &KeyPolicy,
    args: &Map<String, Value>,
) -> Option<Result<Value, Value>> {
    let name = args.get("agent").and_then(Value::as_str)?;
    let inst = target(hub, policy, name)?;
    Some(
        async {
            let probe = arg_str(args, "probe")?;
            let probe = ProbeName::parse(&probe)
                .map_err(|e| error_value(name, &probe, "invalid_params", e.to_string()))?;
            let params = match args.get("params") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => {
                    return Err(error_value(
                        name,
                        probe.as_str(),
                        "invalid_params",
                        "argument `params` must be an object".into(),
                    ));
                }
            };
            let timeout = match args.get("timeout_s") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(s) if (1..=600).contains(&s) => Some(Duration::from_secs(s)),
                    _ => {
                        return Err(error_value(
                            name,
                            probe.as_str(),
                            "invalid_params",
                            "argument `timeout_s` must be an integer from 1 to 600".into(),
                        ));
                    }
                },
            };
            let r = run_probe(
                hub,
                policy,
                &inst,
                ProbeDescriptor { probe, params },
                timeout,
                "mcp.probe",
            )
            .await;
            if r["ok"] == Value::Bool(true) {
                Ok(r)
            } else {
                Err(r)
            }
        }
        .await,
    )
}

/// The MCP `diagnose` tool for an integration target (see [`probe`]).
pub async fn diagnose(
    hub: &Hub,
    policy: &KeyPolicy,
    args: &Map<String, Value>,
) -> Option<Result<Value, Value>> {
    let name = args.get("agent").and_then(Value::as_str)?;
    let inst = target(hub, policy, name)?;
    let category = match arg_str(args, "category") {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    let books: Vec<_> = inst
        .manifest
        .runbooks
        .iter()
        .filter(|r| r.category == category)
        .collect();
    if books.is_empty() {
        let known: Vec<&str> = inst
            .manifest
            .runbooks
            .iter()
            .map(|r| r.category.as_str())
            .collect();
        return Some(Err(
            json!({"ok": false, "error": {"code": "not_found", "message": format!(
                "integration {} has no diagnose category {category:?} (it has: {})", inst.name(), known.join(", ")
            )}}),
        ));
    }
    let mut reports = Vec::new();
    for book in books {
        let started = Instant::now();
        let (allowed, skipped): (Vec<_>, Vec<_>) = book
            .steps
            .iter()
            .cloned()
            .partition(|s| policy.allows_probe(s.probe.as_str()));
        let results: Vec<Value> = join_all(
            allowed
                .into_iter()
                .map(|s| run_probe(hub, policy, &inst, s, None, "mcp.diagnose")),
        )
        .await;
        let succeeded = results
            .iter()
            .filter(|r| r["ok"] == Value::Bool(true))
            .count();
        let mut findings = Vec::new();
        for r in &results {
            if let Some(list) = r
                .get("data")
                .and_then(|d| d.get("findings"))
                .and_then(Value::as_array)
            {
                findings.extend(
                    list.iter()
                        .map(|f| json!({"probe": r["probe"], "finding": f})),
                );
            }
            if r["ok"] != Value::Bool(true) {
                findings.push(json!({"probe": r["probe"], "finding": {"severity": "error", "message": format!("probe failed: {}", r["error"]["message"].as_str().unwrap_or("unknown error"))}}));
            }
        }
        reports.push(json!({
            "agent": inst.name(),
            "kind": "integration",
            "category": book.category,
            "description": book.description,
            "summary": {
                "run": results.len(),
                "succeeded": succeeded,
                "failed": results.len() - succeeded,
                "skipped_by_key_policy": skipped.len(),
                "findings": findings.len(),
                "duration_ms": started.elapsed().as_millis() as u64,
            },
            "findings": findings,
            "skipped": skipped.iter().map(|s| s.probe.as_str()).collect::<Vec<_>>(),
            "results": results,
        }));
    }
    Some(Ok(if reports.len() == 1 {
        reports.remove(0)
    } else {
        json!({"reports": reports})
    }))
}
