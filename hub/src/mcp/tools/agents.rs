//! Tools that describe the fleet: `list_agents`, `agent_overview`,
//! `list_capabilities`. They read the in-memory fleet only.

use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sonde_protocol::Capability;
use sonde_protocol::messages::{PackReport, PackState, ProbeSummary};

use super::{Answer, Caller, Json, Parameters, SondeMcp, registered, runbooks};
use crate::fleet::AgentView;

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// One agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentArg {
    /// Agent name (see list_agents)
    #[schemars(length(max = 256))]
    pub agent: String,
}

/// One agent, or all agents in scope.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaybeAgentArg {
    /// Only this agent (default: all agents in scope)
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub agent: Option<String>,
}

/// A pack as `list_agents` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PackBrief {
    pub name: String,
    pub version: String,
    /// active, pending, unavailable, …
    #[schemars(with = "String")]
    pub state: PackState,
    /// Set when the pack serves generated sample data, not the machine's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_data: Option<String>,
}

impl PackBrief {
    fn of(p: &PackReport) -> Self {
        PackBrief {
            name: p.name.clone(),
            version: p.version.clone(),
            state: p.state,
            sample_data: p.sample_data.clone(),
        }
    }
}

/// An agent as `list_agents` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentBrief {
    pub name: String,
    /// online, offline, quarantined
    pub status: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub last_seen_ms: Option<i64>,
    pub tags: Vec<String>,
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
    /// observe, inspect or interact
    #[schemars(with = "String")]
    pub max_capability: Capability,
    /// The kernel sandbox the agent runs probes in (e.g. landlock, none).
    pub sandbox: String,
    pub packs: Vec<PackBrief>,
}

/// A hub-side integration as `list_agents` shows it (its name is a target
/// like an agent's).
#[derive(Debug, Serialize, JsonSchema)]
pub struct IntegrationBrief {
    pub name: String,
    /// Always `integration`.
    pub kind: String,
    /// prometheus, alertmanager, proxmox, unifi, or a third-party kind.
    pub integration: String,
    pub status: String,
    pub description: String,
    /// Scheme, host and port of the remote API.
    pub base_url: String,
    /// How many probes it has.
    pub probes: usize,
}

/// `list_agents`'s answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentList {
    pub agents: Vec<AgentBrief>,
    /// Hub-side integrations this key may query (Prometheus, Proxmox VE, …).
    pub integrations: Vec<IntegrationBrief>,
}

/// A pack as `agent_overview` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PackDetail {
    pub name: String,
    pub version: String,
    pub description: String,
    #[schemars(with = "String")]
    pub state: PackState,
    /// What the pack needs and did not find.
    pub missing: Vec<String>,
    pub detected: bool,
    /// Probes of this pack this key may call.
    pub probes_you_can_use: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_data: Option<String>,
}

/// `agent_overview`'s answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentOverview {
    pub name: String,
    pub status: String,
    pub hostname: String,
    pub sandbox: String,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    pub agent_version: String,
    pub last_seen_ms: Option<i64>,
    pub remote_addr: Option<String>,
    pub tags: Vec<String>,
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
    #[schemars(with = "String")]
    pub max_capability: Capability,
    pub enrolled_at_ms: i64,
    /// The agent's own audit chain head, as last reported.
    pub agent_audit_head: Value,
    pub packs: Vec<PackDetail>,
    pub diagnose_categories: Vec<String>,
}

/// A probe as `list_capabilities` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProbeInfo {
    /// pack.probe
    pub name: String,
    pub description: String,
    #[schemars(with = "String")]
    pub capability: Capability,
    /// JSON Schema of the probe's `params`.
    pub params: Value,
    /// What the probe returns.
    pub output: String,
    pub examples: Vec<Map<String, Value>>,
    pub timeout_ms: u64,
}

/// A diagnose category as `list_capabilities` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CategoryInfo {
    pub category: String,
    pub description: String,
    pub probes: Vec<String>,
}

/// A pack that is not active, and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InactivePack {
    pub pack: String,
    #[schemars(with = "String")]
    pub state: PackState,
    pub missing: Vec<String>,
}

/// One agent's (or integration's) capabilities for this key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentCapabilities {
    /// The agent, or the integration (see `kind`).
    pub agent: String,
    /// `integration` for a hub-side integration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Which integration (prometheus, proxmox, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    pub status: String,
    pub probes: Vec<ProbeInfo>,
    pub diagnose_categories: Vec<CategoryInfo>,
    pub inactive_packs: Vec<InactivePack>,
    /// Pack → what its sample data is, for packs that serve sample data.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub sample_data: Map<String, Value>,
}

/// `list_capabilities`'s answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Capabilities {
    pub agents: Vec<AgentCapabilities>,
    /// What this key may do.
    pub key_policy: String,
}

#[tool_router(router = agent_tools, vis = "pub(crate)")]
impl SondeMcp {
    /// List the machines (agents) this key may look at.
    #[tool(
        description = "List the machines (agents) this key may look at: status (online/offline/quarantined), OS, agent version, packs and their state, tags.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn list_agents(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<NoArgs>,
    ) -> Json<Answer<AgentList>> {
        Json(
            args.map(|NoArgs {}| AgentList {
                agents: self
                    .live_agents()
                    .iter()
                    .filter(|a| policy.allows_agent(&a.name))
                    .map(|a| AgentBrief {
                        name: a.name.clone(),
                        status: self.state(a).into(),
                        hostname: a.hostname.clone(),
                        os: a.os.clone(),
                        agent_version: a.agent_version.clone(),
                        last_seen_ms: a.liveness.last_seen_ms,
                        tags: a.tags.clone(),
                        quarantined: a.quarantined,
                        quarantine_reason: a.quarantine_reason.clone(),
                        max_capability: a.max_capability,
                        sandbox: a.current.as_ref().unwrap_or(&a.baseline).sandbox.clone(),
                        packs: a.packs().iter().map(PackBrief::of).collect(),
                    })
                    .collect(),
                integrations: crate::integrations::mcp::list_agents(&self.hub, &policy),
            })
            .into(),
        )
    }

    /// One agent in depth.
    #[tool(
        description = "One agent in depth: status, OS and kernel, packs (active, pending, unavailable and what they need), diagnose categories, its audit head.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn agent_overview(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<AgentArg>,
    ) -> Json<Answer<AgentOverview>> {
        Json(
            args.and_then(|args| {
                let a = self.scoped_agent(&policy, &args.agent)?;
                let usable = |s: &ProbeSummary| {
                    s.registered
                        && policy.allows_probe(&s.name)
                        && policy.allows_capability(s.capability)
                };
                let current = a.current.as_ref().unwrap_or(&a.baseline);
                Ok(AgentOverview {
                    name: a.name.clone(),
                    status: self.state(&a).into(),
                    hostname: a.hostname.clone(),
                    sandbox: current.sandbox.clone(),
                    os: current.os_release.clone(),
                    kernel: current.kernel.clone(),
                    arch: current.arch.clone(),
                    agent_version: a.agent_version.clone(),
                    last_seen_ms: a.liveness.last_seen_ms,
                    remote_addr: a.liveness.remote_addr.clone(),
                    tags: a.tags.clone(),
                    quarantined: a.quarantined,
                    quarantine_reason: a.quarantine_reason.clone(),
                    max_capability: a.max_capability,
                    enrolled_at_ms: a.enrolled_at_ms,
                    agent_audit_head: json!(a.liveness.audit_head),
                    packs: a
                        .packs()
                        .iter()
                        .map(|p| PackDetail {
                            name: p.name.clone(),
                            version: p.version.clone(),
                            description: p.description.clone(),
                            state: p.state,
                            missing: p.missing.clone(),
                            detected: p.detected,
                            probes_you_can_use: p.probes.iter().filter(|s| usable(s)).count(),
                            sample_data: p.sample_data.clone(),
                        })
                        .collect(),
                    diagnose_categories: runbooks(&a).map(|r| r.category.clone()).collect(),
                })
            })
            .into(),
        )
    }

    /// What this key can ask, per agent.
    #[tool(
        description = "What this key can ask: per agent, the probes (name, description, capability, parameter JSON Schema, examples, output) and the diagnose categories. Call this before `probe`.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn list_capabilities(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<MaybeAgentArg>,
    ) -> Json<Answer<Capabilities>> {
        Json(
            args.and_then(|args| {
                let integrations = |only: Option<&str>| {
                    crate::integrations::mcp::capabilities(&self.hub, &policy, only)
                };
                // A hub-side integration under that name (agents win it).
                if let Some(name) = args.agent.as_deref()
                    && crate::integrations::mcp::target(&self.hub, &policy, name).is_some()
                {
                    return Ok(Capabilities {
                        agents: integrations(Some(name)),
                        key_policy: policy.summary(),
                    });
                }
                let agents = self.agents_in_scope(&policy, args.agent.as_deref())?;
                let mut agents: Vec<AgentCapabilities> = agents
                    .iter()
                    .map(|a| self.capabilities(&policy, a))
                    .collect();
                if args.agent.is_none() {
                    agents.extend(integrations(None));
                }
                Ok(Capabilities {
                    agents,
                    key_policy: policy.summary(),
                })
            })
            .into(),
        )
    }
}

impl SondeMcp {
    fn capabilities(
        &self,
        policy: &crate::mcp::policy::KeyPolicy,
        a: &AgentView,
    ) -> AgentCapabilities {
        AgentCapabilities {
            agent: a.name.clone(),
            kind: None,
            integration: None,
            status: self.state(a).into(),
            probes: registered(a)
                .filter(|s| policy.allows_probe(&s.name) && policy.allows_capability(s.capability))
                .map(|s| ProbeInfo {
                    name: s.name.clone(),
                    description: s.description.clone(),
                    capability: s.capability,
                    params: sonde_protocol::schema::object_schema(&s.params),
                    output: s.output.clone(),
                    examples: s.examples.clone(),
                    timeout_ms: s.timeout_ms,
                })
                .collect(),
            diagnose_categories: runbooks(a)
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
            inactive_packs: a
                .packs()
                .iter()
                .filter(|p| p.state != PackState::Active)
                .map(|p| InactivePack {
                    pack: p.name.clone(),
                    state: p.state,
                    missing: p.missing.clone(),
                })
                .collect(),
            sample_data: a
                .packs()
                .iter()
                .filter_map(|p| Some((p.name.clone(), json!(p.sample_data.as_ref()?))))
                .collect(),
        }
    }
}
