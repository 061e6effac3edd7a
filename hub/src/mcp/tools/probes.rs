//! Tools that run probes: `probe` (one), `diagnose` (a category's
//! runbook), `health_check` (every runbook of one agent or of every agent
//! in scope).
//!
//! **Progress**: when the request carries a `progressToken`, `diagnose` and
//! `health_check` send `notifications/progress` as each probe finishes
//! (`progress`/`total` in probes, a message naming the probe and agent).
//! **Cancellation**: `notifications/cancelled` (rmcp's request
//! cancellation token) stops the hub's wait on every probe of the call; the
//! hub sends the agent a signed `probe.cancel`, which kills the probe's
//! process group, and the call's audit entry says `cancelled` (exactly one
//! entry per probe call either way, see [`crate::probe::run`]).

use futures_util::future::join_all;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sonde_protocol::messages::RunbookSummary;
use sonde_protocol::{Capability, ProbeDescriptor, ProbeName};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::{Answer, Caller, Json, Parameters, SondeMcp, runbooks, sample_label, tool_error};
use crate::error::HubError;
use crate::fleet::AgentView;
use crate::mcp::policy::KeyPolicy;
use crate::probe::{self, ProbeCall};

/// `probe`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeArgs {
    /// Agent name (see list_agents)
    #[schemars(length(max = 256))]
    pub agent: String,
    /// Probe name, pack.probe (see list_capabilities)
    #[schemars(length(max = 256))]
    pub probe: String,
    /// Parameters, as the probe's schema in list_capabilities describes
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Give up after this many seconds (default: the probe's own timeout)
    #[serde(default)]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_s: Option<u64>,
}

/// `diagnose`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnoseArgs {
    /// Agent name (see list_agents)
    #[schemars(length(max = 256))]
    pub agent: String,
    /// Diagnose category (see list_capabilities)
    #[schemars(length(max = 256))]
    pub category: String,
}

/// `health_check`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {
    /// Only this agent (default: all)
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub agent: Option<String>,
}

/// Why a probe call did not give a result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ProbeFailureInfo {
    /// denied, refused, unknown_probe, invalid_params, unavailable,
    /// timeout, cancelled, disconnected, failed, …
    pub code: Option<String>,
    pub message: Option<String>,
}

/// One probe call's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ProbeResult {
    /// The agent, or the integration (see `kind`).
    pub agent: String,
    /// `integration` when the target is a hub-side integration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub probe: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The probe cut its result short (limits, deadline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Secrets the agent scrubbed from the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redactions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redactions_by_rule: Option<Map<String, Value>>,
    /// The hub audit entry of this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<u64>,
    /// Set when the pack serves generated sample data, not the machine's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_data: Option<String>,
    /// The probe's structured result (see its `output` in list_capabilities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeFailureInfo>,
}

impl ProbeResult {
    fn failed(agent: &str, probe: &str, code: &str, message: String) -> Self {
        ProbeResult {
            agent: agent.into(),
            kind: None,
            probe: probe.into(),
            ok: false,
            duration_ms: None,
            truncated: None,
            redactions: None,
            redactions_by_rule: None,
            audit_seq: None,
            sample_data: None,
            data: None,
            error: Some(ProbeFailureInfo {
                code: Some(code.into()),
                message: Some(message),
            }),
        }
    }
}

/// One finding of a runbook, with the probe that made it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub probe: String,
    /// The finding as the probe reported it (severity, message, …).
    pub finding: Value,
}

/// A runbook's counts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunbookSummaryOut {
    pub run: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped_by_key_policy: usize,
    pub findings: usize,
    pub duration_ms: u64,
}

/// One category's report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunbookReport {
    /// The agent, or the integration (see `kind`).
    pub agent: String,
    /// `integration` when the target is a hub-side integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub category: String,
    pub description: String,
    pub summary: RunbookSummaryOut,
    pub findings: Vec<Finding>,
    /// Probes of the runbook this key may not call.
    pub skipped: Vec<String>,
    pub results: Vec<ProbeResult>,
}

/// `diagnose`'s answer: one report, or one per runbook of the category.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DiagnoseReport {
    One(RunbookReport),
    Many { reports: Vec<RunbookReport> },
}

/// One category in a health check.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CategoryHealth {
    pub category: String,
    pub summary: RunbookSummaryOut,
    pub findings: Vec<Finding>,
}

/// One agent in a health check.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentHealth {
    pub agent: String,
    pub status: String,
    pub checked: bool,
    /// Why it was not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<CategoryHealth>,
}

/// A health check's counts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthSummary {
    pub agents: usize,
    pub checked: usize,
    pub not_checked: usize,
    pub findings: usize,
    pub duration_ms: u64,
}

/// `health_check`'s answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthReport {
    pub summary: HealthSummary,
    pub agents: Vec<AgentHealth>,
}

/// Progress of a call that runs several probes, reported to the client
/// when it asked for it (a `progressToken`).
#[derive(Debug)]
pub(crate) struct Progress {
    to: Option<(Peer<RoleServer>, ProgressToken)>,
    /// Probes finished so far. Held while a notification is sent, so the
    /// counts go out in the order they are taken: two probes finishing at
    /// once must not reach the client as 2 before 1.
    done: tokio::sync::Mutex<u64>,
    total: u64,
}

impl Progress {
    pub(crate) fn of(ctx: &RequestContext<RoleServer>, total: usize) -> Self {
        Progress {
            to: ctx.meta.get_progress_token().map(|t| (ctx.peer.clone(), t)),
            done: tokio::sync::Mutex::new(0),
            total: total as u64,
        }
    }

    /// One more probe finished.
    async fn step(&self, r: &ProbeResult) {
        let mut done = self.done.lock().await;
        *done += 1;
        let Some((peer, token)) = &self.to else {
            return;
        };
        let message = format!(
            "{} on {}: {}",
            r.probe,
            r.agent,
            if r.ok {
                "done".to_owned()
            } else {
                format!(
                    "failed ({})",
                    r.error
                        .as_ref()
                        .and_then(|e| e.code.as_deref())
                        .unwrap_or("error")
                )
            }
        );
        let param = ProgressNotificationParam::new(token.clone(), *done as f64)
            .with_total(self.total as f64)
            .with_message(message);
        if let Err(e) = peer.notify_progress(param).await {
            tracing::debug!(error = %e, "could not send a progress notification");
        }
    }
}

/// What one call shares among its probes: who asked, and the call's
/// cancellation.
struct CallScope<'a> {
    policy: &'a KeyPolicy,
    cancel: CancellationToken,
}

#[tool_router(router = probe_tools, vis = "pub(crate)")]
impl SondeMcp {
    /// Run one probe on one agent.
    #[tool(
        description = "Run one probe on one agent, e.g. agent=nas probe=zfs.list_snapshots params={\"dataset\":\"tank/home\"}. Returns the structured result with duration, truncation, redaction counts and the audit entry number. Probes are read-only unless the operator granted `interact` to this key and the agent.",
        // The worst case (a key with `interact` may restart a service);
        // `list_tools` shows read-only hints to keys without it.
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    pub async fn probe(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<ProbeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Json<Answer<ProbeResult>> {
        let scope = CallScope {
            policy: &policy,
            cancel: ctx.ct.clone(),
        };
        Json(match args {
            Ok(args) => self.probe_call(&scope, args).await.into(),
            Err(e) => Answer(Err(e)),
        })
    }

    /// Run a category's runbook on one agent.
    #[tool(
        description = "Run a category's runbook on one agent (e.g. zfs, system, docker, systemd): its probes in parallel, one consolidated report with findings and a summary. Sends progress notifications as probes finish when asked (progressToken).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn diagnose(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<DiagnoseArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Json<Answer<DiagnoseReport>> {
        let scope = CallScope {
            policy: &policy,
            cancel: ctx.ct.clone(),
        };
        Json(match args {
            Ok(args) => self.diagnose_call(&scope, args, &ctx).await.into(),
            Err(e) => Answer(Err(e)),
        })
    }

    /// A broad check of one agent or of every agent in scope.
    #[tool(
        description = "Broad check of one agent, or of every agent in scope: every applicable runbook, in parallel, summarised per agent and category. Sends progress notifications as probes finish when asked (progressToken).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn health_check(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<HealthArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Json<Answer<HealthReport>> {
        let scope = CallScope {
            policy: &policy,
            cancel: ctx.ct.clone(),
        };
        Json(match args {
            Ok(args) => self.health_call(&scope, args, &ctx).await.into(),
            Err(e) => Answer(Err(e)),
        })
    }
}

impl SondeMcp {
    /// `probe` on a hub-side integration ([`crate::integrations::mcp`]).
    async fn integration_probe(
        &self,
        scope: &CallScope<'_>,
        args: ProbeArgs,
    ) -> Result<ProbeResult, rmcp::model::CallToolResult> {
        let mut as_map = Map::new();
        as_map.insert("agent".into(), json!(args.agent));
        as_map.insert("probe".into(), json!(args.probe));
        as_map.insert("params".into(), Value::Object(args.params));
        if let Some(t) = args.timeout_s {
            as_map.insert("timeout_s".into(), json!(t));
        }
        match crate::integrations::mcp::probe(&self.hub, scope.policy, &as_map).await {
            Some(Ok(v)) => Ok(integration_result(v)),
            Some(Err(v)) => Err(failed_probe(integration_result(v))),
            None => Err(tool_error(
                "not_found",
                format!("no agent or integration named {:?}", args.agent),
            )),
        }
    }

    /// `diagnose` on a hub-side integration.
    async fn integration_diagnose(
        &self,
        scope: &CallScope<'_>,
        args: DiagnoseArgs,
    ) -> Result<DiagnoseReport, rmcp::model::CallToolResult> {
        let mut as_map = Map::new();
        as_map.insert("agent".into(), json!(args.agent));
        as_map.insert("category".into(), json!(args.category));
        match crate::integrations::mcp::diagnose(&self.hub, scope.policy, &as_map).await {
            Some(Ok(v)) => serde_json::from_value(v)
                .map_err(|e| tool_error("internal", format!("integration report: {e}"))),
            Some(Err(v)) => {
                let error = integration_result(v).error.unwrap_or_default();
                Err(tool_error(
                    error.code.as_deref().unwrap_or("failed"),
                    error.message.unwrap_or_else(|| "the runbook failed".into()),
                ))
            }
            None => Err(tool_error(
                "not_found",
                format!("no agent or integration named {:?}", args.agent),
            )),
        }
    }
}

/// An integration's probe answer (the same fields as an agent's).
fn integration_result(v: Value) -> ProbeResult {
    serde_json::from_value(v).unwrap_or_else(|e| ProbeResult {
        error: Some(ProbeFailureInfo {
            code: Some("internal".into()),
            message: Some(format!("unreadable integration result: {e}")),
        }),
        ..ProbeResult::default()
    })
}

/// A probe result that is not `ok`, as a tool failure carrying the result.
fn failed_probe(result: ProbeResult) -> rmcp::model::CallToolResult {
    let (code, message) = result
        .error
        .as_ref()
        .map(|e| {
            (
                e.code.clone().unwrap_or_else(|| "failed".into()),
                e.message
                    .clone()
                    .unwrap_or_else(|| "the probe failed".into()),
            )
        })
        .unwrap_or_else(|| ("failed".into(), "the probe failed".into()));
    let mut r = rmcp::model::CallToolResult::structured_error(json!(result));
    r.content = vec![rmcp::model::ContentBlock::text(format!(
        "{code}: {message}"
    ))];
    r
}

impl SondeMcp {
    async fn probe_call(
        &self,
        scope: &CallScope<'_>,
        args: ProbeArgs,
    ) -> Result<ProbeResult, rmcp::model::CallToolResult> {
        // A hub-side integration under that name (agents win the name);
        // a hash lookup, so agent calls build nothing here.
        if crate::integrations::mcp::target(&self.hub, scope.policy, &args.agent).is_some() {
            return self.integration_probe(scope, args).await;
        }
        let agent = self.scoped_agent(scope.policy, &args.agent)?;
        let name = ProbeName::parse(&args.probe)
            .map_err(|e| tool_error("invalid_params", e.to_string()))?;
        let timeout = match args.timeout_s {
            None => None,
            Some(s @ 1..=600) => Some(Duration::from_secs(s)),
            Some(_) => {
                return Err(tool_error(
                    "invalid_params",
                    "argument `timeout_s` must be an integer from 1 to 600",
                ));
            }
        };
        let result = self
            .run_probe(
                scope,
                &agent,
                ProbeDescriptor {
                    probe: name,
                    params: args.params,
                },
                timeout,
                "mcp.probe",
            )
            .await;
        if result.ok {
            Ok(result)
        } else {
            Err(failed_probe(result))
        }
    }

    /// Runs a probe for `query_logs`, failing like `probe`.
    pub(crate) async fn probe_for_tool(
        &self,
        policy: &KeyPolicy,
        cancel: CancellationToken,
        agent: &AgentView,
        descriptor: ProbeDescriptor,
        via: &'static str,
    ) -> Result<ProbeResult, rmcp::model::CallToolResult> {
        let scope = CallScope { policy, cancel };
        let result = self.run_probe(&scope, agent, descriptor, None, via).await;
        if result.ok {
            Ok(result)
        } else {
            Err(failed_probe(result))
        }
    }

    /// One probe call under the key's policy (audited either way).
    async fn run_probe(
        &self,
        scope: &CallScope<'_>,
        agent: &AgentView,
        descriptor: ProbeDescriptor,
        timeout: Option<Duration>,
        via: &'static str,
    ) -> ProbeResult {
        let policy = scope.policy;
        let call = ProbeCall {
            agent: agent.id.clone(),
            descriptor: descriptor.clone(),
            actor: policy.actor(),
            timeout,
            via,
            cancel: Some(scope.cancel.clone()),
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
            return ProbeResult::failed(
                &agent.name,
                descriptor.probe.as_str(),
                "denied",
                e.to_string(),
            );
        }
        match probe::run(&self.hub, call).await {
            Ok(r) => ProbeResult {
                agent: r.agent,
                kind: None,
                probe: r.probe,
                ok: r.ok,
                duration_ms: Some(r.duration_ms),
                truncated: Some(r.truncated),
                redactions: Some(r.redactions.values().sum()),
                redactions_by_rule: Some(
                    r.redactions
                        .into_iter()
                        .map(|(k, v)| (k, json!(v)))
                        .collect(),
                ),
                audit_seq: Some(r.audit_seq),
                sample_data: sample_label(agent, descriptor.probe.as_str()).map(str::to_owned),
                data: if r.ok {
                    Some(r.data.unwrap_or(Value::Null))
                } else {
                    None
                },
                error: (!r.ok).then_some(ProbeFailureInfo {
                    code: r.error_code,
                    message: r.error,
                }),
            },
            Err(e) => {
                let code = match &e {
                    HubError::Forbidden(_) => "refused",
                    HubError::NotFound(_) => "unknown_probe",
                    HubError::BadRequest(_) => "invalid_params",
                    HubError::Unavailable(_) => "unavailable",
                    _ => "internal",
                };
                ProbeResult::failed(&agent.name, descriptor.probe.as_str(), code, e.to_string())
            }
        }
    }

    /// The steps of `runbook` this key may run, and those it may not.
    fn split_steps(
        policy: &KeyPolicy,
        runbook: &RunbookSummary,
    ) -> (Vec<ProbeDescriptor>, Vec<ProbeDescriptor>) {
        runbook
            .steps
            .iter()
            .cloned()
            .partition(|s| policy.allows_probe(s.probe.as_str()))
    }

    async fn run_runbook(
        &self,
        scope: &CallScope<'_>,
        agent: &AgentView,
        runbook: &RunbookSummary,
        progress: &Progress,
    ) -> RunbookReport {
        let started = Instant::now();
        let (allowed, skipped) = Self::split_steps(scope.policy, runbook);
        let one = |s: ProbeDescriptor| async move {
            let r = self.run_probe(scope, agent, s, None, "mcp.diagnose").await;
            progress.step(&r).await;
            r
        };
        let results: Vec<ProbeResult> = if runbook.parallel {
            join_all(allowed.into_iter().map(one)).await
        } else {
            let mut out = Vec::new();
            for s in allowed {
                out.push(one(s).await);
            }
            out
        };
        let succeeded = results.iter().filter(|r| r.ok).count();
        let mut findings: Vec<Finding> = Vec::new();
        for r in &results {
            if let Some(list) = r
                .data
                .as_ref()
                .and_then(|d| d.get("findings"))
                .and_then(Value::as_array)
            {
                findings.extend(list.iter().map(|f| Finding {
                    probe: r.probe.clone(),
                    finding: f.clone(),
                }));
            }
            if !r.ok {
                let message = r
                    .error
                    .as_ref()
                    .and_then(|e| e.message.as_deref())
                    .unwrap_or("unknown error");
                findings.push(Finding {
                    probe: r.probe.clone(),
                    finding: json!({"severity": "error", "message": format!("probe failed: {message}")}),
                });
            }
        }
        RunbookReport {
            agent: agent.name.clone(),
            kind: None,
            category: runbook.category.clone(),
            description: runbook.description.clone(),
            summary: RunbookSummaryOut {
                run: results.len(),
                succeeded,
                failed: results.len() - succeeded,
                skipped_by_key_policy: skipped.len(),
                findings: findings.len(),
                duration_ms: started.elapsed().as_millis() as u64,
            },
            findings,
            skipped: skipped
                .iter()
                .map(|s| s.probe.as_str().to_owned())
                .collect(),
            results,
        }
    }

    async fn diagnose_call(
        &self,
        scope: &CallScope<'_>,
        args: DiagnoseArgs,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<DiagnoseReport, rmcp::model::CallToolResult> {
        if crate::integrations::mcp::target(&self.hub, scope.policy, &args.agent).is_some() {
            return self.integration_diagnose(scope, args).await;
        }
        let agent = self.scoped_agent(scope.policy, &args.agent)?;
        let category = args.category;
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
        let total = books
            .iter()
            .map(|b| Self::split_steps(scope.policy, b).0.len())
            .sum();
        let progress = Progress::of(ctx, total);
        let mut reports = Vec::new();
        for book in &books {
            reports.push(self.run_runbook(scope, &agent, book, &progress).await);
        }
        Ok(if reports.len() == 1 {
            DiagnoseReport::One(reports.remove(0))
        } else {
            DiagnoseReport::Many { reports }
        })
    }

    async fn health_call(
        &self,
        scope: &CallScope<'_>,
        args: HealthArgs,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<HealthReport, rmcp::model::CallToolResult> {
        let started = Instant::now();
        let agents = self.agents_in_scope(scope.policy, args.agent.as_deref())?;
        let total = agents
            .iter()
            .filter(|a| self.state(a) == "online")
            .flat_map(|a| runbooks(a).map(|b| Self::split_steps(scope.policy, b).0.len()))
            .sum();
        let progress = Progress::of(ctx, total);
        let progress = &progress;
        let checks = agents.iter().map(|a| async move {
            let state = self.state(a);
            if state != "online" {
                return AgentHealth {
                    agent: a.name.clone(),
                    status: state.into(),
                    checked: false,
                    reason: Some(
                        a.quarantine_reason
                            .clone()
                            .unwrap_or_else(|| format!("agent is {state}")),
                    ),
                    categories: Vec::new(),
                };
            }
            let books: Vec<RunbookSummary> = runbooks(a).cloned().collect();
            let reports = join_all(
                books
                    .iter()
                    .map(|b| self.run_runbook(scope, a, b, progress)),
            )
            .await;
            AgentHealth {
                agent: a.name.clone(),
                status: state.into(),
                checked: true,
                reason: None,
                categories: reports
                    .into_iter()
                    .map(|r| CategoryHealth {
                        category: r.category,
                        summary: r.summary,
                        findings: r.findings,
                    })
                    .collect(),
            }
        });
        let results = join_all(checks).await;
        let checked = results.iter().filter(|r| r.checked).count();
        let findings = results
            .iter()
            .flat_map(|r| r.categories.iter())
            .map(|c| c.summary.findings)
            .sum();
        Ok(HealthReport {
            summary: HealthSummary {
                agents: results.len(),
                checked,
                not_checked: results.len() - checked,
                findings,
                duration_ms: started.elapsed().as_millis() as u64,
            },
            agents: results,
        })
    }
}
