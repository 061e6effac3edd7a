//! The MCP tools. Every call carries the caller's [`KeyPolicy`] (put there
//! by the guard) and is checked against it: agent scope, probe scope, tool
//! scope and capability (never above the agent's own ceiling either, since
//! only probes the agent registered exist). Every probe a tool runs goes
//! through [`crate::probe::run`] and is audited, allowed or denied.

use futures_util::future::join_all;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use sonde_admin::api::AuditQuery;
use sonde_protocol::audit::NewEntry;
use sonde_protocol::messages::{PackReport, PackState, ProbeSummary, RunbookSummary};
use sonde_protocol::{Capability, ProbeDescriptor, ProbeName};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::policy::KeyPolicy;
use crate::error::HubError;
use crate::fleet::AgentView;
use crate::hub::SharedHub;
use crate::probe::{self, ProbeCall};

/// The MCP server for one session.
#[derive(Clone, Debug)]
pub struct SondeMcp {
    hub: SharedHub,
}

impl SondeMcp {
    pub fn new(hub: SharedHub) -> Self {
        SondeMcp { hub }
    }
}

fn schema(value: Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .open_world(false)
}

/// The tool list (before filtering by the key).
pub fn all_tools() -> Vec<Tool> {
    let agent = json!({"type": "string", "description": "Agent name (see list_agents)"});
    vec![
        Tool::new(
            "list_agents",
            "List the machines (agents) this key may look at: status (online/offline/quarantined), OS, agent version, packs and their state, tags.",
            schema(json!({"type": "object", "properties": {}, "additionalProperties": false})),
        )
        .with_annotations(read_only()),
        Tool::new(
            "agent_overview",
            "One agent in depth: status, OS and kernel, packs (active, pending, unavailable and what they need), diagnose categories, its audit head.",
            schema(json!({"type": "object", "properties": {"agent": agent}, "required": ["agent"], "additionalProperties": false})),
        )
        .with_annotations(read_only()),
        Tool::new(
            "list_capabilities",
            "What this key can ask: per agent, the probes (name, description, capability, parameter JSON Schema, examples, output) and the diagnose categories. Call this before `probe`.",
            schema(json!({"type": "object", "properties": {"agent": {"type": "string", "description": "Only this agent (default: all agents in scope)"}}, "additionalProperties": false})),
        )
        .with_annotations(read_only()),
        Tool::new(
            "probe",
            "Run one probe on one agent, e.g. agent=nas probe=zfs.list_snapshots params={\"dataset\":\"tank/home\"}. Returns the structured result with duration, truncation, redaction counts and the audit entry number.",
            schema(json!({
                "type": "object",
                "properties": {
                    "agent": agent,
                    "probe": {"type": "string", "description": "Probe name, pack.probe (see list_capabilities)"},
                    "params": {"type": "object", "description": "Parameters, as the probe's schema in list_capabilities describes", "default": {}},
                    "timeout_s": {"type": "integer", "minimum": 1, "maximum": 600, "description": "Give up after this many seconds (default: the probe's own timeout)"}
                },
                "required": ["agent", "probe"],
                "additionalProperties": false
            })),
        )
        .with_annotations(ToolAnnotations::new().open_world(false)),
        Tool::new(
            "diagnose",
            "Run a category's runbook on one agent (e.g. zfs, system, docker, systemd): its probes in parallel, one consolidated report with findings and a summary.",
            schema(json!({
                "type": "object",
                "properties": {"agent": agent, "category": {"type": "string", "description": "Diagnose category (see list_capabilities)"}},
                "required": ["agent", "category"],
                "additionalProperties": false
            })),
        )
        .with_annotations(read_only()),
        Tool::new(
            "health_check",
            "Broad check of one agent, or of every agent in scope: every applicable runbook, in parallel, summarised per agent and category.",
            schema(json!({"type": "object", "properties": {"agent": {"type": "string", "description": "Only this agent (default: all)"}}, "additionalProperties": false})),
        )
        .with_annotations(read_only()),
        Tool::new(
            "query_logs",
            "Read logs through the right pack: source=journal (systemd journal), kernel (dmesg), file (allowlisted log files), docker (container logs) on an agent, or audit (this hub's own audit trail, filtered to this key's agents).",
            schema(json!({
                "type": "object",
                "properties": {
                    "source": {"type": "string", "enum": ["journal", "kernel", "file", "docker", "audit"]},
                    "agent": {"type": "string", "description": "Agent name (required except for source=audit)"},
                    "params": {"type": "object", "description": "Parameters of the underlying probe (system.logs.journal, system.logs.dmesg, system.logs.tail, docker.logs.tail), see list_capabilities", "default": {}},
                    "probe": {"type": "string", "description": "source=audit: only entries for this probe (zfs.* allowed)"},
                    "outcome": {"type": "string", "description": "source=audit: ok, denied, refused, error, timeout"},
                    "since_minutes": {"type": "integer", "minimum": 1, "maximum": 525600, "description": "source=audit: only the last N minutes"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "source=audit: most entries (default 100)"}
                },
                "required": ["source"],
                "additionalProperties": false
            })),
        )
        .with_annotations(read_only()),
        // Issue 18: the logic lives in crate::critical_path and crate::trending.
        Tool::new(
            "check_critical_path",
            "Run an operator-defined critical path (e.g. internet -> router -> nginx -> nextcloud -> database): its steps in order, each step's checks (probes with expectations over their results) in parallel; reports per step and check pass/fail with the evidence, and `breaks_at`, the first step that fails. Without `name`, lists the defined paths and their last result.",
            schema(json!({
                "type": "object",
                "properties": {"name": {"type": "string", "description": "Path name (omit to list the paths)"}},
                "additionalProperties": false
            })),
        )
        .with_annotations(read_only()),
        Tool::new(
            "trending",
            "What changed: probe calls, failures (by outcome) and latency (p50/p95) by target and probe over a window, compared with the window before it, biggest changes first (extra failures beyond the previous failure rate, then latency, then call volume); plus roll-ups by probe, by target and calls per hour. Computed from this hub's audit trail, limited to this key's agents and probes.",
            schema(json!({
                "type": "object",
                "properties": {
                    "window": {"type": "string", "description": "Window length, e.g. 1h, 24h, 7d (1m to 90d; default 24h)", "default": "24h"},
                    "target": {"type": "string", "description": "Only this target (agent name)"},
                    "probe": {"type": "string", "description": "Only probes matching this pattern, e.g. zfs.*"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20, "description": "Most groups per list"}
                },
                "additionalProperties": false
            })),
        )
        .with_annotations(read_only()),
    ]
}

/// A tool-level error the caller (often a model) reads and can act on.
fn tool_error(code: &str, message: impl Into<String>) -> CallToolResult {
    let message = message.into();
    let mut r = CallToolResult::structured_error(json!({"error": code, "message": message}));
    r.content = vec![ContentBlock::text(format!("{code}: {message}"))];
    r
}

fn hub_error(e: HubError) -> CallToolResult {
    let code = match &e {
        HubError::Forbidden(_) => "refused",
        HubError::NotFound(_) => "not_found",
        HubError::BadRequest(_) => "invalid_params",
        HubError::Unavailable(_) => "unavailable",
        _ => "internal",
    };
    tool_error(code, e.to_string())
}

fn caller(ctx: &RequestContext<RoleServer>) -> Result<KeyPolicy, McpError> {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<KeyPolicy>())
        .cloned()
        .ok_or_else(|| McpError::invalid_request("no authenticated API key on this request", None))
}

/// Reads tool arguments; a bad shape is a tool-level error naming the field.
struct Args(Map<String, Value>);

impl Args {
    fn allow_only(&self, names: &[&str]) -> Result<(), CallToolResult> {
        match self.0.keys().find(|k| !names.contains(&k.as_str())) {
            Some(k) => Err(tool_error(
                "invalid_params",
                format!(
                    "unknown argument {k:?} (this tool takes: {})",
                    names.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, CallToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= 256 => Ok(Some(s.clone())),
            Some(_) => Err(tool_error(
                "invalid_params",
                format!("argument `{name}` must be a string of at most 256 characters"),
            )),
        }
    }

    fn str(&self, name: &str) -> Result<String, CallToolResult> {
        self.opt_str(name)?
            .ok_or_else(|| tool_error("invalid_params", format!("argument `{name}` is required")))
    }

    fn opt_int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, CallToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(tool_error(
                    "invalid_params",
                    format!("argument `{name}` must be an integer from {min} to {max}"),
                )),
            },
        }
    }

    fn object(&self, name: &str) -> Result<Map<String, Value>, CallToolResult> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(tool_error(
                "invalid_params",
                format!("argument `{name}` must be an object"),
            )),
        }
    }
}

/// Probes of an agent that are registered (active pack, within its ceiling).
fn registered(agent: &AgentView) -> impl Iterator<Item = &ProbeSummary> {
    agent
        .packs()
        .iter()
        .filter(|p| p.state == PackState::Active)
        .flat_map(|p| p.probes.iter())
        .filter(|s| s.registered)
}

fn runbooks(agent: &AgentView) -> impl Iterator<Item = &RunbookSummary> {
    agent
        .packs()
        .iter()
        .filter(|p| p.state == PackState::Active)
        .flat_map(|p| p.runbooks.iter())
}

/// What the pack of `probe` serves instead of the machine's data, if its
/// agent labels it sample data (`sample_data` in the agent config).
fn sample_label<'a>(agent: &'a crate::store::Agent, probe: &str) -> Option<&'a str> {
    let pack = probe.split_once('.').map_or(probe, |(p, _)| p);
    agent
        .packs()
        .iter()
        .find(|p| p.name == pack)
        .and_then(|p| p.sample_data.as_deref())
}

/// Adds `sample_data` to a pack's JSON when the agent labels it sample data.
fn with_sample_label(mut v: Value, pack: &PackReport) -> Value {
    if let Some(sample) = &pack.sample_data {
        v["sample_data"] = json!(sample);
    }
    v
}

impl SondeMcp {
    /// Agents that are not revoked (from the in-memory fleet).
    fn live_agents(&self) -> Vec<AgentView> {
        self.hub.fleet.live()
    }

    /// The agent named `name`, if it exists and the key may see it (one
    /// lookup in the in-memory fleet).
    fn scoped_agent(&self, policy: &KeyPolicy, name: &str) -> Result<AgentView, CallToolResult> {
        let found = self
            .hub
            .fleet
            .find(name)
            .map(|live| live.view())
            .filter(|a| !a.is_revoked());
        match found {
            Some(a) if policy.allows_agent(&a.name) => Ok(a),
            // Out-of-scope agents are reported like unknown ones.
            _ => Err(tool_error(
                "not_found",
                format!(
                    "no agent {name:?} in this key's scope ({})",
                    policy.summary()
                ),
            )),
        }
    }

    fn state(&self, a: &AgentView) -> &'static str {
        crate::fleet::agent_state(a, crate::fleet::is_connected(&self.hub, &a.id)).as_str()
    }

    async fn list_agents(&self, policy: &KeyPolicy) -> Result<Value, CallToolResult> {
        let agents = self.live_agents();
        let list: Vec<Value> = agents
            .iter()
            .filter(|a| policy.allows_agent(&a.name))
            .map(|a| {
                json!({
                    "name": a.name,
                    "status": self.state(a),
                    "hostname": a.hostname,
                    "os": a.os,
                    "agent_version": a.agent_version,
                    "last_seen_ms": a.liveness.last_seen_ms,
                    "tags": a.tags,
                    "quarantined": a.quarantined,
                    "quarantine_reason": a.quarantine_reason,
                    "max_capability": a.max_capability,
                    "sandbox": a.current.as_ref().unwrap_or(&a.baseline).sandbox,
                    "packs": a.packs().iter().map(|p| with_sample_label(json!({"name": p.name, "version": p.version, "state": p.state}), p)).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({"agents": list}))
    }

    async fn agent_overview(
        &self,
        policy: &KeyPolicy,
        args: &Args,
    ) -> Result<Value, CallToolResult> {
        args.allow_only(&["agent"])?;
        let a = self.scoped_agent(policy, &args.str("agent")?)?;
        let usable = |s: &ProbeSummary| {
            policy.allows_probe(&s.name) && policy.allows_capability(s.capability)
        };
        let current = a.current.as_ref().unwrap_or(&a.baseline);
        Ok(json!({
            "name": a.name,
            "status": self.state(&a),
            "hostname": a.hostname,
            "sandbox": current.sandbox,
            "os": current.os_release,
            "kernel": current.kernel,
            "arch": current.arch,
            "agent_version": a.agent_version,
            "last_seen_ms": a.liveness.last_seen_ms,
            "remote_addr": a.liveness.remote_addr,
            "tags": a.tags,
            "quarantined": a.quarantined,
            "quarantine_reason": a.quarantine_reason,
            "max_capability": a.max_capability,
            "enrolled_at_ms": a.enrolled_at_ms,
            "agent_audit_head": a.liveness.audit_head,
            "packs": a.packs().iter().map(|p| with_sample_label(json!({
                "name": p.name,
                "version": p.version,
                "description": p.description,
                "state": p.state,
                "missing": p.missing,
                "detected": p.detected,
                "probes_you_can_use": p.probes.iter().filter(|s| s.registered && usable(s)).count(),
            }), p)).collect::<Vec<_>>(),
            "diagnose_categories": runbooks(&a).map(|r| r.category.clone()).collect::<Vec<_>>(),
        }))
    }

    async fn list_capabilities(
        &self,
        policy: &KeyPolicy,
        args: &Args,
    ) -> Result<Value, CallToolResult> {
        args.allow_only(&["agent"])?;
        let agents = match args.opt_str("agent")? {
            Some(name) => vec![self.scoped_agent(policy, &name)?],
            None => self
                .live_agents()
                .into_iter()
                .filter(|a| policy.allows_agent(&a.name))
                .collect(),
        };
        let out: Vec<Value> = agents
            .iter()
            .map(|a| {
                let probes: Vec<Value> = registered(a)
                    .filter(|s| policy.allows_probe(&s.name) && policy.allows_capability(s.capability))
                    .map(|s| {
                        json!({
                            "name": s.name,
                            "description": s.description,
                            "capability": s.capability,
                            "params": sonde_protocol::schema::object_schema(&s.params),
                            "output": s.output,
                            "examples": s.examples,
                            "timeout_ms": s.timeout_ms,
                        })
                    })
                    .collect();
                let categories: Vec<Value> = runbooks(a)
                    .filter(|r| r.steps.iter().any(|s| policy.allows_probe(s.probe.as_str())))
                    .map(|r| json!({"category": r.category, "description": r.description, "probes": r.steps.iter().map(|s| s.probe.as_str()).collect::<Vec<_>>()}))
                    .collect();
                let inactive: Vec<Value> = a
                    .packs()
                    .iter()
                    .filter(|p| p.state != PackState::Active)
                    .map(|p| json!({"pack": p.name, "state": p.state, "missing": p.missing}))
                    .collect();
                let mut v = json!({
                    "agent": a.name,
                    "status": self.state(a),
                    "probes": probes,
                    "diagnose_categories": categories,
                    "inactive_packs": inactive,
                });
                let samples: Map<String, Value> = a
                    .packs()
                    .iter()
                    .filter_map(|p| Some((p.name.clone(), json!(p.sample_data.as_ref()?))))
                    .collect();
                if !samples.is_empty() {
                    v["sample_data"] = Value::Object(samples);
                }
                v
            })
            .collect();
        Ok(json!({"agents": out, "key_policy": policy.summary()}))
    }

    /// One probe call under the key's policy (audited either way).
    async fn run_probe(
        &self,
        policy: &KeyPolicy,
        agent: &AgentView,
        descriptor: ProbeDescriptor,
        timeout: Option<Duration>,
        via: &'static str,
    ) -> Value {
        let call = ProbeCall {
            agent: agent.id.clone(),
            descriptor: descriptor.clone(),
            actor: policy.actor(),
            timeout,
            via,
        };
        let capability = agent
            .catalog
            .probe(descriptor.probe.as_str())
            .map(|s| s.capability)
            .unwrap_or(Capability::Observe);
        if let Err(reason) = policy.check_probe(&agent.name, descriptor.probe.as_str(), capability)
        {
            let e = probe::refuse(
                &self.hub,
                &call,
                Some(&agent.id),
                "denied",
                HubError::Forbidden(reason),
            )
            .await;
            return json!({"agent": agent.name, "probe": descriptor.probe, "ok": false, "error": {"code": "denied", "message": e.to_string()}});
        }
        match probe::run(&self.hub, call).await {
            Ok(r) => {
                let redacted: u64 = r.redactions.values().sum();
                let mut v = json!({
                    "agent": r.agent,
                    "probe": r.probe,
                    "ok": r.ok,
                    "duration_ms": r.duration_ms,
                    "truncated": r.truncated,
                    "redactions": redacted,
                    "redactions_by_rule": r.redactions,
                    "audit_seq": r.audit_seq,
                });
                if let Some(sample) = sample_label(agent, descriptor.probe.as_str()) {
                    v["sample_data"] = json!(sample);
                }
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
                json!({"agent": agent.name, "probe": descriptor.probe, "ok": false, "error": {"code": code, "message": e.to_string()}})
            }
        }
    }

    async fn probe(&self, policy: &KeyPolicy, args: &Args) -> Result<Value, CallToolResult> {
        args.allow_only(&["agent", "probe", "params", "timeout_s"])?;
        let agent = self.scoped_agent(policy, &args.str("agent")?)?;
        let name = ProbeName::parse(&args.str("probe")?)
            .map_err(|e| tool_error("invalid_params", e.to_string()))?;
        let params = args.object("params")?;
        let timeout = args
            .opt_int("timeout_s", 1, 600)?
            .map(|s| Duration::from_secs(s as u64));
        let result = self
            .run_probe(
                policy,
                &agent,
                ProbeDescriptor {
                    probe: name,
                    params,
                },
                timeout,
                "mcp.probe",
            )
            .await;
        if result["ok"] == Value::Bool(true) {
            Ok(result)
        } else {
            Err(failed_probe(result))
        }
    }

    async fn run_runbook(
        &self,
        policy: &KeyPolicy,
        agent: &AgentView,
        runbook: &RunbookSummary,
    ) -> Value {
        let started = Instant::now();
        let (allowed, skipped): (Vec<_>, Vec<_>) = runbook
            .steps
            .iter()
            .cloned()
            .partition(|s| policy.allows_probe(s.probe.as_str()));
        let results: Vec<Value> = if runbook.parallel {
            join_all(
                allowed
                    .into_iter()
                    .map(|s| self.run_probe(policy, agent, s, None, "mcp.diagnose")),
            )
            .await
        } else {
            let mut out = Vec::new();
            for s in allowed {
                out.push(self.run_probe(policy, agent, s, None, "mcp.diagnose").await);
            }
            out
        };
        let succeeded = results
            .iter()
            .filter(|r| r["ok"] == Value::Bool(true))
            .count();
        let mut findings: Vec<Value> = Vec::new();
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
        json!({
            "agent": agent.name,
            "category": runbook.category,
            "description": runbook.description,
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
        })
    }

    async fn diagnose(&self, policy: &KeyPolicy, args: &Args) -> Result<Value, CallToolResult> {
        args.allow_only(&["agent", "category"])?;
        let agent = self.scoped_agent(policy, &args.str("agent")?)?;
        let category = args.str("category")?;
        let books: Vec<RunbookSummary> = runbooks(&agent)
            .filter(|r| r.category == category)
            .cloned()
            .collect();
        if books.is_empty() {
            let known: Vec<String> = runbooks(&agent).map(|r| r.category.clone()).collect();
            return Err(tool_error(
                "not_found",
                format!(
                    "agent {} has no diagnose category {category:?} (it has: {})",
                    agent.name,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        let mut reports = Vec::new();
        for book in &books {
            reports.push(self.run_runbook(policy, &agent, book).await);
        }
        Ok(if reports.len() == 1 {
            reports.remove(0)
        } else {
            json!({"reports": reports})
        })
    }

    async fn health_check(&self, policy: &KeyPolicy, args: &Args) -> Result<Value, CallToolResult> {
        args.allow_only(&["agent"])?;
        let started = Instant::now();
        let agents = match args.opt_str("agent")? {
            Some(name) => vec![self.scoped_agent(policy, &name)?],
            None => self
                .live_agents()
                .into_iter()
                .filter(|a| policy.allows_agent(&a.name))
                .collect(),
        };
        let checks = agents.iter().map(|a| async move {
            let state = self.state(a);
            if state != "online" {
                return json!({"agent": a.name, "status": state, "checked": false, "reason": a.quarantine_reason.clone().unwrap_or_else(|| format!("agent is {state}"))});
            }
            let books: Vec<RunbookSummary> = runbooks(a).cloned().collect();
            let reports = join_all(books.iter().map(|b| self.run_runbook(policy, a, b))).await;
            let summary: Vec<Value> = reports.iter().map(|r| json!({"category": r["category"], "summary": r["summary"], "findings": r["findings"]})).collect();
            json!({"agent": a.name, "status": state, "checked": true, "categories": summary})
        });
        let results = join_all(checks).await;
        let checked = results
            .iter()
            .filter(|r| r["checked"] == Value::Bool(true))
            .count();
        let findings: u64 = results
            .iter()
            .flat_map(|r| r["categories"].as_array().cloned().unwrap_or_default())
            .map(|c| c["summary"]["findings"].as_u64().unwrap_or(0))
            .sum();
        Ok(json!({
            "summary": {"agents": results.len(), "checked": checked, "not_checked": results.len() - checked, "findings": findings, "duration_ms": started.elapsed().as_millis() as u64},
            "agents": results,
        }))
    }

    async fn query_logs(&self, policy: &KeyPolicy, args: &Args) -> Result<Value, CallToolResult> {
        args.allow_only(&[
            "source",
            "agent",
            "params",
            "probe",
            "outcome",
            "since_minutes",
            "limit",
        ])?;
        let source = args.str("source")?;
        if source == "audit" {
            return self.audit_logs(policy, args).await;
        }
        let probe = match source.as_str() {
            "journal" => "system.logs.journal",
            "kernel" => "system.logs.dmesg",
            "file" => "system.logs.tail",
            "docker" => "docker.logs.tail",
            other => {
                return Err(tool_error(
                    "invalid_params",
                    format!("unknown source {other:?} (journal, kernel, file, docker, audit)"),
                ));
            }
        };
        let agent = self.scoped_agent(policy, &args.str("agent")?)?;
        let name = ProbeName::parse(probe).map_err(|e| tool_error("internal", e.to_string()))?;
        let result = self
            .run_probe(
                policy,
                &agent,
                ProbeDescriptor {
                    probe: name,
                    params: args.object("params")?,
                },
                None,
                "mcp.query_logs",
            )
            .await;
        if result["ok"] == Value::Bool(true) {
            Ok(result)
        } else {
            Err(failed_probe(result))
        }
    }

    async fn audit_logs(&self, policy: &KeyPolicy, args: &Args) -> Result<Value, CallToolResult> {
        let limit = args.opt_int("limit", 1, 1000)?.unwrap_or(100) as usize;
        let since_ms = args
            .opt_int("since_minutes", 1, 525_600)?
            .map(|m| sonde_protocol::time::now_ms() - m * 60_000);
        let only_agent = match args.opt_str("agent")? {
            Some(name) => Some(self.scoped_agent(policy, &name)?.id.clone()),
            None => None,
        };
        // Each entry's agent is looked up in the fleet (no scan of it).
        let in_scope = |id: &str| -> Option<String> {
            let a = self.hub.fleet.get(id)?.agent();
            (!a.is_revoked() && policy.allows_agent(&a.name)).then(|| a.name.clone())
        };
        let mut query = AuditQuery {
            limit: Some(1000),
            agent: only_agent,
            probe: args.opt_str("probe")?,
            outcome: args.opt_str("outcome")?,
            since_ms,
            ..AuditQuery::default()
        };
        let mut out = Vec::new();
        // Page through, keeping entries about agents in scope, a bounded
        // number of pages so one call cannot scan the whole chain.
        for _ in 0..20 {
            let (page, _) = self
                .hub
                .store
                .audit_page(crate::audit::page_query(&query))
                .await
                .map_err(|e| tool_error("internal", e.to_string()))?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            for e in page {
                let Some(agent_name) = e.agent.as_deref().and_then(in_scope) else {
                    continue;
                };
                out.push(json!({
                    "seq": e.seq,
                    "timestamp_ms": e.timestamp_ms,
                    "actor": e.actor,
                    "agent": agent_name,
                    "action": e.action,
                    "probe": e.probe,
                    "outcome": e.outcome,
                    "detail": e.detail,
                }));
                if out.len() >= limit {
                    break;
                }
            }
            if out.len() >= limit {
                break;
            }
            query.before_seq = Some(last);
        }
        Ok(json!({"source": "audit", "entries": out}))
    }
}

/// Issue 18's two tools: argument checks here, the work in
/// [`crate::critical_path`] and [`crate::trending`].
impl SondeMcp {
    async fn check_critical_path(
        &self,
        policy: &KeyPolicy,
        args: &Args,
    ) -> Result<Value, CallToolResult> {
        args.allow_only(&["name"])?;
        let caller = crate::critical_path::Caller::Key(policy.clone());
        match args.opt_str("name")? {
            None => crate::critical_path::list(&self.hub)
                .await
                .map_err(hub_error),
            // A broken path is a finding (`ok: false`, `breaks_at`), not
            // an error of the call.
            Some(name) => crate::critical_path::run(&self.hub, &caller, &name)
                .await
                .map_err(hub_error),
        }
    }

    async fn trending(&self, policy: &KeyPolicy, args: &Args) -> Result<Value, CallToolResult> {
        args.allow_only(&["window", "target", "probe", "limit"])?;
        let params = crate::trending::TrendParams::parse(
            args.opt_str("window")?.as_deref(),
            args.opt_str("target")?,
            args.opt_str("probe")?,
            args.opt_int("limit", 1, 200)?.map(|n| n as u64),
        )
        .map_err(hub_error)?;
        let caller = crate::critical_path::Caller::Key(policy.clone());
        crate::trending::summarise(&self.hub, &caller, &params)
            .await
            .map_err(hub_error)
    }
}

fn failed_probe(result: Value) -> CallToolResult {
    let code = result["error"]["code"]
        .as_str()
        .unwrap_or("failed")
        .to_owned();
    let message = result["error"]["message"]
        .as_str()
        .unwrap_or("the probe failed")
        .to_owned();
    let mut r = CallToolResult::structured_error(result);
    r.content = vec![ContentBlock::text(format!("{code}: {message}"))];
    r
}

impl ServerHandler for SondeMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("sonde-hub", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Sonde lets you look into the user's machines without a shell. Start with list_agents, then list_capabilities \
                 to see which probes (with parameter schemas) you may run; use probe for one question, diagnose for a \
                 category's checks, health_check for a broad look, query_logs for logs. Everything is read-only unless \
                 the operator allowed more, and every call is audited. A pack or result with `sample_data` serves \
                 generated sample data, not the machine's: say so when you answer from it.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let policy = caller(&ctx)?;
        Ok(ListToolsResult::with_all_items(
            all_tools()
                .into_iter()
                .filter(|t| policy.allows_tool(&t.name))
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let policy = caller(&ctx)?;
        let name = request.name.to_string();
        if !all_tools().iter().any(|t| t.name == name) {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {name:?}; tools: {}",
                    super::TOOL_NAMES.join(", ")
                ),
                None,
            ));
        }
        if !policy.allows_tool(&name) {
            self.hub
                .audit(
                    NewEntry::new(policy.actor(), "tool.denied", "denied")
                        .detail("tool", name.clone())
                        .detail("reason", policy.summary()),
                )
                .await;
            return Ok(tool_error(
                "denied",
                format!(
                    "tool {name} is outside this key's scope ({})",
                    policy.summary()
                ),
            )
            .into());
        }
        let args = Args(request.arguments.unwrap_or_default());
        let outcome = match name.as_str() {
            "list_agents" => match args.allow_only(&[]) {
                Ok(()) => self.list_agents(&policy).await,
                Err(e) => Err(e),
            },
            "agent_overview" => self.agent_overview(&policy, &args).await,
            "list_capabilities" => self.list_capabilities(&policy, &args).await,
            "probe" => self.probe(&policy, &args).await,
            "diagnose" => self.diagnose(&policy, &args).await,
            "health_check" => self.health_check(&policy, &args).await,
            "query_logs" => self.query_logs(&policy, &args).await,
            "check_critical_path" => self.check_critical_path(&policy, &args).await,
            "trending" => self.trending(&policy, &args).await,
            _ => Err(hub_error(HubError::NotFound(format!(
                "unknown tool {name}"
            )))),
        };
        Ok(match outcome {
            Ok(value) => CallToolResult::structured(value),
            Err(error_result) => error_result,
        }
        .into())
    }
}
