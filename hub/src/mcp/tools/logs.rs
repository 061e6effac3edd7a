//! `query_logs`: logs through the right pack on an agent, or this hub's
//! own audit trail filtered to the key's agents.

use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sonde_admin::api::AuditQuery;
use sonde_protocol::{ProbeDescriptor, ProbeName};

use super::probes::ProbeResult;
use super::{Answer, Caller, Json, Parameters, SondeMcp, tool_error};
use crate::mcp::policy::KeyPolicy;

/// Where logs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The systemd journal (system.logs.journal)
    Journal,
    /// The kernel ring buffer (system.logs.dmesg)
    Kernel,
    /// Allowlisted log files (system.logs.tail)
    File,
    /// Container logs (docker.logs.tail)
    Docker,
    /// This hub's own audit trail, filtered to this key's agents
    Audit,
}

/// `query_logs`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogArgs {
    pub source: LogSource,
    /// Agent name (required except for source=audit)
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub agent: Option<String>,
    /// Parameters of the underlying probe (system.logs.journal, system.logs.dmesg, system.logs.tail, docker.logs.tail), see list_capabilities
    #[serde(default)]
    pub params: Map<String, Value>,
    /// source=audit: only entries for this probe (zfs.* allowed)
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub probe: Option<String>,
    /// source=audit: ok, denied, refused, error, timeout, cancelled
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub outcome: Option<String>,
    /// source=audit: only the last N minutes
    #[serde(default)]
    #[schemars(range(min = 1, max = 525600))]
    pub since_minutes: Option<i64>,
    /// source=audit: most entries (default 100)
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
}

/// One hub audit entry about an agent in scope.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditLine {
    pub seq: u64,
    pub timestamp_ms: i64,
    pub actor: String,
    pub agent: String,
    pub action: String,
    pub probe: Option<String>,
    pub outcome: String,
    pub detail: Value,
}

/// `query_logs`'s answer: the probe's result, or audit entries.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum LogsAnswer {
    Probe(Box<ProbeResult>),
    Audit {
        /// Always `audit`.
        source: String,
        entries: Vec<AuditLine>,
    },
}

fn in_range(
    name: &str,
    v: Option<i64>,
    min: i64,
    max: i64,
) -> Result<Option<i64>, rmcp::model::CallToolResult> {
    match v {
        Some(n) if !(min..=max).contains(&n) => Err(tool_error(
            "invalid_params",
            format!("argument `{name}` must be an integer from {min} to {max}"),
        )),
        v => Ok(v),
    }
}

#[tool_router(router = log_tools, vis = "pub(crate)")]
impl SondeMcp {
    /// Read logs through the right pack, or the hub's audit trail.
    #[tool(
        description = "Read logs through the right pack: source=journal (systemd journal), kernel (dmesg), file (allowlisted log files), docker (container logs) on an agent, or audit (this hub's own audit trail, filtered to this key's agents).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn query_logs(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<LogArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Json<Answer<LogsAnswer>> {
        Json(match args {
            Ok(args) => self.logs_call(&policy, args, &ctx).await.into(),
            Err(e) => Answer(Err(e)),
        })
    }
}

impl SondeMcp {
    async fn logs_call(
        &self,
        policy: &KeyPolicy,
        args: LogArgs,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<LogsAnswer, rmcp::model::CallToolResult> {
        let probe = match args.source {
            LogSource::Audit => return self.audit_logs(policy, args).await,
            LogSource::Journal => "system.logs.journal",
            LogSource::Kernel => "system.logs.dmesg",
            LogSource::File => "system.logs.tail",
            LogSource::Docker => "docker.logs.tail",
        };
        let Some(agent) = args.agent.as_deref() else {
            return Err(tool_error(
                "invalid_params",
                "argument `agent` is required (except for source=audit)",
            ));
        };
        let agent = self.scoped_agent(policy, agent)?;
        let name = ProbeName::parse(probe).map_err(|e| tool_error("internal", e.to_string()))?;
        self.probe_for_tool(
            policy,
            ctx.ct.clone(),
            &agent,
            ProbeDescriptor {
                probe: name,
                params: args.params,
            },
            "mcp.query_logs",
        )
        .await
        .map(|r| LogsAnswer::Probe(Box::new(r)))
    }

    async fn audit_logs(
        &self,
        policy: &KeyPolicy,
        args: LogArgs,
    ) -> Result<LogsAnswer, rmcp::model::CallToolResult> {
        let limit = in_range("limit", args.limit, 1, 1000)?.unwrap_or(100) as usize;
        let since_ms = in_range("since_minutes", args.since_minutes, 1, 525_600)?
            .map(|m| sonde_protocol::time::now_ms() - m * 60_000);
        let only_agent = match args.agent.as_deref() {
            Some(name) => Some(self.scoped_agent(policy, name)?.id.clone()),
            None => None,
        };
        let hub = self.hub();
        // Each entry's agent is looked up in the fleet (no scan of it).
        let in_scope = |id: &str| -> Option<String> {
            let a = hub.fleet.get(id)?.agent();
            (!a.is_revoked() && policy.allows_agent(&a.name)).then(|| a.name.clone())
        };
        let mut query = AuditQuery {
            limit: Some(1000),
            agent: only_agent,
            probe: args.probe,
            outcome: args.outcome,
            since_ms,
            ..AuditQuery::default()
        };
        let mut out = Vec::new();
        // Page through, keeping entries about agents in scope, a bounded
        // number of pages so one call cannot scan the whole chain.
        for _ in 0..20 {
            let (page, _) = hub
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
                out.push(AuditLine {
                    seq: e.seq,
                    timestamp_ms: e.timestamp_ms,
                    actor: e.actor,
                    agent: agent_name,
                    action: e.action,
                    probe: e.probe,
                    outcome: e.outcome,
                    detail: serde_json::to_value(&e.detail).unwrap_or_default(),
                });
                if out.len() >= limit {
                    break;
                }
            }
            if out.len() >= limit {
                break;
            }
            query.before_seq = Some(last);
        }
        Ok(LogsAnswer::Audit {
            source: "audit".into(),
            entries: out,
        })
    }
}
