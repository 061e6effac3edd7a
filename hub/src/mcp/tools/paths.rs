//! Tools over what is not one agent's: `check_critical_path` (an
//! operator-defined path of checks, [`crate::critical_path`]) and
//! `trending` (what changed in the audit trail, [`crate::trending`]).
//! Argument checks here, the work in those modules; both see only what the
//! key's policy allows.

use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Answer, Caller, Json, Parameters, SondeMcp, tool_error};
use crate::error::HubError;

/// `check_critical_path`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Path name (omit to list the paths)
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub name: Option<String>,
}

/// `trending`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrendArgs {
    /// Window length, e.g. 1h, 24h, 7d (1m to 90d; default 24h)
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub window: Option<String>,
    /// Only this target (agent name)
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub target: Option<String>,
    /// Only probes matching this pattern, e.g. zfs.*
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub probe: Option<String>,
    /// Most groups per list (default 20)
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u64>,
}

/// A hub error as a tool failure, with the codes the other tools use.
fn failure(e: HubError) -> rmcp::model::CallToolResult {
    let code = match &e {
        HubError::Forbidden(_) => "refused",
        HubError::NotFound(_) => "not_found",
        HubError::BadRequest(_) => "invalid_params",
        HubError::Unavailable(_) => "unavailable",
        _ => "internal",
    };
    tool_error(code, e.to_string())
}

/// The report as a JSON object (both modules answer objects).
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("result".into(), other);
            m
        }
    }
}

#[tool_router(router = path_tools, vis = "pub(crate)")]
impl SondeMcp {
    /// Run an operator-defined critical path, or list them.
    #[tool(
        description = "Run an operator-defined critical path (e.g. internet -> router -> nginx -> nextcloud -> database): its steps in order, each step's checks (probes with expectations over their results) in parallel; reports per step and check pass/fail with the evidence, and `breaks_at`, the first step that fails. Without `name`, lists the defined paths and their last result.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn check_critical_path(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<PathArgs>,
    ) -> Json<Answer<Map<String, Value>>> {
        let answer = match args {
            Err(e) => Err(e),
            Ok(PathArgs { name: None }) => crate::critical_path::list(self.hub())
                .await
                .map(object)
                .map_err(failure),
            // A broken path is a finding (`ok: false`, `breaks_at`), not an
            // error of the call.
            Ok(PathArgs { name: Some(name) }) => {
                let caller = crate::critical_path::Caller::Key(policy.clone());
                crate::critical_path::run(self.hub(), &caller, &name)
                    .await
                    .map(object)
                    .map_err(failure)
            }
        };
        Json(answer.into())
    }

    /// What changed in the audit trail over a window.
    #[tool(
        description = "What changed: probe calls, failures (by outcome) and latency (p50/p95) by target and probe over a window, compared with the window before it, biggest changes first (extra failures beyond the previous failure rate, then latency, then call volume); plus roll-ups by probe, by target and calls per hour. Computed from this hub's audit trail, limited to this key's agents and probes.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn trending(
        &self,
        Caller(policy): Caller,
        Parameters(args): Parameters<TrendArgs>,
    ) -> Json<Answer<Map<String, Value>>> {
        let answer = match args {
            Err(e) => Err(e),
            Ok(args) => {
                match crate::trending::TrendParams::parse(
                    args.window.as_deref(),
                    args.target,
                    args.probe,
                    args.limit,
                ) {
                    Err(e) => Err(failure(e)),
                    Ok(params) => {
                        let caller = crate::critical_path::Caller::Key(policy.clone());
                        crate::trending::summarise(self.hub(), &caller, &params)
                            .await
                            .map(object)
                            .map_err(failure)
                    }
                }
            }
        };
        Json(answer.into())
    }
}
