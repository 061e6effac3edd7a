//! The MCP tools. Each tool is declared once, as a `#[tool]` function in
//! its family's file: the function's name is the tool's name, its
//! attribute the description and the annotations, its `Parameters<T>`
//! argument the input schema (and the parser), its `Json<Answer<T>>` return
//! type the output schema (and the structured content). Families:
//! [`agents`] (list_agents, agent_overview, list_capabilities), [`probes`]
//! (probe, diagnose, health_check), [`logs`] (query_logs), [`paths`]
//! (check_critical_path, trending).
//!
//! **Adding a tool**: write an `async fn` with `#[tool(description = …,
//! annotations(…))]` in a family's `#[tool_router]` impl block (or a new
//! file with its own `#[tool_router(router = x_tools)]` block, added in
//! [`SondeMcp::router`]); take `Caller(policy): Caller` and
//! `Parameters(args): Parameters<YourArgs>` (`YourArgs: Deserialize +
//! JsonSchema`, `#[serde(deny_unknown_fields)]`), return
//! `Json<Answer<YourOutput>>` (`YourOutput: Serialize + JsonSchema`). API
//! keys may name it at once (`tool_names` comes from the router), and it is
//! listed after the tools of [`TOOL_ORDER`].
//!
//! Every call carries the caller's [`KeyPolicy`] (put there by the guard)
//! and is checked against it: agent scope, probe scope, tool scope and
//! capability (never above the agent's own ceiling either, since only
//! probes the agent registered exist). Every probe a tool runs goes through
//! [`crate::probe::run`] and is audited, allowed or denied.

pub mod agents;
pub mod logs;
pub mod paths;
pub mod probes;
pub mod reply;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use sonde_protocol::audit::{AuditAction, NewEntry};
use sonde_protocol::messages::{PackState, ProbeSummary, RunbookSummary};
use std::sync::LazyLock;

use super::policy::KeyPolicy;
use crate::fleet::AgentView;
use crate::hub::SharedHub;
pub use reply::{Answer, Caller, Json, Parameters, ToolFailure, tool_error};

/// The order tools are listed in (the order an assistant should discover
/// them); tools not named here follow, by name.
pub const TOOL_ORDER: &[&str] = &[
    "list_agents",
    "agent_overview",
    "list_capabilities",
    "probe",
    "diagnose",
    "health_check",
    "query_logs",
    "check_critical_path",
    "trending",
];

/// The MCP server for one session.
#[derive(Clone, Debug)]
pub struct SondeMcp {
    hub: SharedHub,
}

static ROUTER: LazyLock<ToolRouter<SondeMcp>> = LazyLock::new(SondeMcp::router);

impl SondeMcp {
    pub fn new(hub: SharedHub) -> Self {
        SondeMcp { hub }
    }

    /// Every tool family's routes.
    fn router() -> ToolRouter<SondeMcp> {
        Self::agent_tools() + Self::probe_tools() + Self::log_tools() + Self::path_tools()
    }
}

/// Every tool (before filtering by the key), in listing order.
pub fn all_tools() -> Vec<Tool> {
    let mut tools = ROUTER.list_all();
    tools.sort_by_key(|t| {
        (
            TOOL_ORDER
                .iter()
                .position(|n| *n == t.name)
                .unwrap_or(TOOL_ORDER.len()),
            t.name.clone(),
        )
    });
    tools
}

/// A tool's annotations as they are true for this key: `probe` can change
/// something (an `interact` probe, e.g. a service restart) only for a key
/// allowed `interact`; for every other key it is read-only and idempotent.
fn fit_to_key(mut tool: Tool, policy: &KeyPolicy) -> Tool {
    if tool.name == "probe" && !policy.allows_capability(sonde_protocol::Capability::Interact) {
        tool.annotations = Some(rmcp::model::ToolAnnotations::from_raw(
            None,
            Some(true),
            Some(false),
            Some(true),
            Some(false),
        ));
    }
    tool
}

/// The names of every tool, for API key policies.
pub fn tool_names() -> Vec<String> {
    all_tools()
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect()
}

/// Probes of an agent that are registered (active pack, within its ceiling).
pub(crate) fn registered(agent: &AgentView) -> impl Iterator<Item = &ProbeSummary> {
    agent
        .packs()
        .iter()
        .filter(|p| p.state == PackState::Active)
        .flat_map(|p| p.probes.iter())
        .filter(|s| s.registered)
}

pub(crate) fn runbooks(agent: &AgentView) -> impl Iterator<Item = &RunbookSummary> {
    agent
        .packs()
        .iter()
        .filter(|p| p.state == PackState::Active)
        .flat_map(|p| p.runbooks.iter())
}

/// What the pack of `probe` serves instead of the machine's data, if its
/// agent labels it sample data (`sample_data` in the agent config).
pub(crate) fn sample_label<'a>(agent: &'a crate::store::Agent, probe: &str) -> Option<&'a str> {
    let pack = probe.split_once('.').map_or(probe, |(p, _)| p);
    agent
        .packs()
        .iter()
        .find(|p| p.name == pack)
        .and_then(|p| p.sample_data.as_deref())
}

impl SondeMcp {
    /// Agents that are not revoked (from the in-memory fleet).
    pub(crate) fn live_agents(&self) -> Vec<AgentView> {
        self.hub.fleet.live()
    }

    /// Agents the key may see, or only `name` if given.
    pub(crate) fn agents_in_scope(
        &self,
        policy: &KeyPolicy,
        name: Option<&str>,
    ) -> Result<Vec<AgentView>, rmcp::model::CallToolResult> {
        Ok(match name {
            Some(name) => vec![self.scoped_agent(policy, name)?],
            None => self
                .live_agents()
                .into_iter()
                .filter(|a| policy.allows_agent(&a.name))
                .collect(),
        })
    }

    /// The agent named `name`, if it exists and the key may see it (one
    /// lookup in the in-memory fleet).
    pub(crate) fn scoped_agent(
        &self,
        policy: &KeyPolicy,
        name: &str,
    ) -> Result<AgentView, rmcp::model::CallToolResult> {
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

    pub(crate) fn state(&self, a: &AgentView) -> &'static str {
        crate::fleet::agent_state(a, crate::fleet::is_connected(&self.hub, &a.id)).as_str()
    }
}

impl ServerHandler for SondeMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_completions()
                .build(),
        )
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
        let policy = reply::policy_of(&ctx.extensions)?;
        Ok(ListToolsResult::with_all_items(
            all_tools()
                .into_iter()
                .filter(|t| policy.allows_tool(&t.name))
                .map(|t| fit_to_key(t, &policy))
                .collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        ROUTER.get(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let policy = reply::policy_of(&ctx.extensions)?;
        let name = request.name.to_string();
        if ROUTER.get(&name).is_none() {
            return Err(McpError::invalid_params(
                format!("unknown tool {name:?}; tools: {}", tool_names().join(", ")),
                None,
            ));
        }
        if !policy.allows_tool(&name) {
            self.hub
                .audit(
                    NewEntry::new(policy.actor(), AuditAction::ToolDenied, "denied")
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
        ROUTER.call(ToolCallContext::new(self, request, ctx)).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let policy = reply::policy_of(&ctx.extensions)?;
        Ok(ListPromptsResult::with_all_items(super::prompts::list(
            self, &policy,
        )))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let policy = reply::policy_of(&ctx.extensions)?;
        super::prompts::get(self, &policy, request).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let policy = reply::policy_of(&ctx.extensions)?;
        super::prompts::complete(self, &policy, request, ctx).await
    }
}

impl SondeMcp {
    pub(crate) fn hub(&self) -> &SharedHub {
        &self.hub
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_tool_has_annotations_and_an_object_output_schema() {
        let tools = all_tools();
        assert!(tools.len() >= TOOL_ORDER.len());
        for name in TOOL_ORDER {
            assert!(tools.iter().any(|t| t.name == *name), "{name} has no route");
        }
        for t in &tools {
            let a = t
                .annotations
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no annotations", t.name));
            assert!(
                a.read_only_hint.is_some()
                    && a.destructive_hint.is_some()
                    && a.idempotent_hint.is_some()
                    && a.open_world_hint.is_some(),
                "{}: {a:?}",
                t.name
            );
            let out = t
                .output_schema
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no outputSchema", t.name));
            assert_eq!(out.get("type"), Some(&json!("object")), "{}", t.name);
            assert_eq!(
                t.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                t.name
            );
            assert_eq!(
                t.input_schema.get("additionalProperties"),
                Some(&json!(false)),
                "{}: unknown arguments must be refused",
                t.name
            );
            assert!(
                t.description.as_deref().is_some_and(|d| d.len() > 20),
                "{}",
                t.name
            );
        }
    }
}
