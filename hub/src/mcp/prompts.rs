//! MCP prompts (the runbooks an operator would start from) and argument
//! completion.
//!
//! Prompts: `investigate-zfs-pool` (agent, pool), `service-failing`
//! (agent, service), `explain-probe` (agent, probe) and one
//! `diagnose-<category>` (agent) per diagnose category that an agent in
//! the key's scope offers. Each returns one user message that tells the
//! assistant which tools to call, in which order, and what to look for.
//!
//! Completion (`completion/complete`) for the arguments `agent` (agents in
//! the key's scope), `probe` (probes of the chosen agent this key may
//! call), `pool` and `dataset` (from the zfs pack's own listing, run as an
//! ordinary audited probe call under the key's policy: a key that may not
//! call `zfs.list_datasets`/`zfs.list_pools` on that agent gets nothing).
//! Values never include what the key cannot see.

use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptRequestParams,
    GetPromptResult, Prompt, PromptArgument, PromptMessage, Reference, Role,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use sonde_protocol::{ProbeDescriptor, ProbeName};
use std::collections::{BTreeMap, BTreeSet};

use super::policy::KeyPolicy;
use super::tools::{SondeMcp, registered, runbooks};

fn arg(name: &str, description: &str, required: bool) -> PromptArgument {
    PromptArgument::new(name)
        .with_description(description)
        .with_required(required)
}

const AGENT: &str = "The machine (agent name, see list_agents)";

/// The diagnose categories of the agents in scope that this key may run
/// at least one step of, with a description.
fn categories(mcp: &SondeMcp, policy: &KeyPolicy) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in mcp.live_agents() {
        if !policy.allows_agent(&a.name) {
            continue;
        }
        for r in runbooks(&a) {
            if r.steps
                .iter()
                .any(|s| policy.allows_probe(s.probe.as_str()))
            {
                out.entry(r.category.clone())
                    .or_insert_with(|| r.description.clone());
            }
        }
    }
    out
}

/// The prompts this key sees.
pub fn list(mcp: &SondeMcp, policy: &KeyPolicy) -> Vec<Prompt> {
    let mut prompts = vec![
        Prompt::new(
            "investigate-zfs-pool",
            Some("Investigate my ZFS pool: health, errors, space, snapshots and what changed."),
            Some(vec![
                arg("agent", AGENT, true),
                arg(
                    "pool",
                    "The pool (default: every pool on the machine)",
                    false,
                ),
            ]),
        ),
        Prompt::new(
            "service-failing",
            Some(
                "Why is this service failing: its state, recent logs, restarts and what it depends on.",
            ),
            Some(vec![
                arg("agent", AGENT, true),
                arg(
                    "service",
                    "The systemd unit or container name, e.g. nginx.service",
                    true,
                ),
            ]),
        ),
        Prompt::new(
            "explain-probe",
            Some("Run one probe and explain its result in plain words."),
            Some(vec![
                arg("agent", AGENT, true),
                arg(
                    "probe",
                    "The probe, pack.probe (see list_capabilities)",
                    true,
                ),
            ]),
        ),
    ];
    for (category, description) in categories(mcp, policy) {
        prompts.push(Prompt::new(
            format!("diagnose-{category}"),
            Some(format!("Diagnose {category} on a machine: {description}")),
            Some(vec![arg("agent", AGENT, true)]),
        ));
    }
    prompts
}

fn required<'a>(
    args: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<&'a str, McpError> {
    args.get(name)
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty() && s.len() <= 256)
        .ok_or_else(|| {
            McpError::invalid_params(
                format!("argument `{name}` is required (a name of at most 256 characters)"),
                None,
            )
        })
}

/// One prompt, filled in.
pub fn get(
    mcp: &SondeMcp,
    policy: &KeyPolicy,
    request: GetPromptRequestParams,
) -> Result<GetPromptResult, McpError> {
    let args = request.arguments.unwrap_or_default();
    let name = request.name.as_str();
    let agent = required(&args, "agent")?;
    // The agent must be in the key's scope; unknown and out-of-scope look
    // the same.
    let a = mcp.scoped_agent(policy, agent).map_err(|_| {
        McpError::invalid_params(
            format!(
                "no agent {agent:?} in this key's scope ({})",
                policy.summary()
            ),
            None,
        )
    })?;
    let agent = a.name.as_str();
    let (description, text) = match name {
        "investigate-zfs-pool" => {
            let pool = args
                .get("pool")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty());
            let target = pool.map_or("every pool".to_owned(), |p| format!("the pool {p}"));
            (
                format!("Investigate {target} on {agent}"),
                format!(
                    "Investigate {target} on the machine {agent} with Sonde's tools, read-only.\n\
                     1. Call diagnose with agent={agent} category=zfs for the overall picture (health, errors, capacity, scrubs, snapshot age).\n\
                     2. Call list_capabilities agent={agent} and use the zfs.* probes it lists: zfs.pool_status{pool_arg} for vdev state, read/write/checksum errors and the last scrub; zfs.list_datasets for space; zfs.list_snapshots and zfs.snapshot_cadence for snapshot gaps; zfs.stale_snapshots for space held by old snapshots.\n\
                     3. If something changed recently, compare snapshots with the zfs diff probes.\n\
                     Report: the pool's state in one line, then each problem with its evidence (probe and values), its risk, and what the operator could do. Say when data is sample data (`sample_data`). Do not guess beyond what the probes show.",
                    pool_arg = pool.map_or(String::new(), |p| format!(" pool={p}")),
                ),
            )
        }
        "service-failing" => {
            let service = required(&args, "service")?;
            (
                format!("Why {service} is failing on {agent}"),
                format!(
                    "Find out why the service {service} is failing on the machine {agent}, with Sonde's tools, read-only.\n\
                     1. Call list_capabilities agent={agent} to see the systemd, docker and system probes this key may use.\n\
                     2. Get the unit's state, exit status, restart count and recent transitions (systemd.* probes), or the container's state if {service} is a container (docker.* probes).\n\
                     3. Read its recent logs: query_logs source=journal agent={agent} with the unit as a parameter (or source=docker for a container), then source=kernel for OOM kills or disk errors around the same time.\n\
                     4. Check what it depends on: disk space and memory (diagnose category=system), listening ports, and the units it needs.\n\
                     Report the most likely cause with the log lines or values that show it, what else you ruled out, and what the operator could try. Do not guess beyond what the probes show."
                ),
            )
        }
        "explain-probe" => {
            let probe = required(&args, "probe")?;
            (
                format!("Explain {probe} on {agent}"),
                format!(
                    "Call the probe tool with agent={agent} probe={probe} (see list_capabilities agent={agent} for its parameters and output), then explain the result in plain words: what it shows, what looks normal, what looks wrong and why. Mention truncation, redactions and sample data if the result has them."
                ),
            )
        }
        other => match other.strip_prefix("diagnose-") {
            Some(category) if categories(mcp, policy).contains_key(category) => (
                format!("Diagnose {category} on {agent}"),
                format!(
                    "Call diagnose with agent={agent} category={category}. Then, for each finding, say what it means, how serious it is, and what the operator could do; use the probe tool for a closer look where a finding is unclear (list_capabilities agent={agent} shows the probes). Do not guess beyond what the probes show."
                ),
            ),
            _ => {
                return Err(McpError::invalid_params(
                    format!(
                        "unknown prompt {other:?}; prompts: {}",
                        list(mcp, policy)
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None,
                ));
            }
        },
    };
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(description),
    )
}

/// Values starting with the typed prefix, at most 100 (the spec's limit),
/// with the total and whether there are more.
fn completion(values: BTreeSet<String>, prefix: &str) -> CompleteResult {
    let matching: Vec<String> = values
        .into_iter()
        .filter(|v| v.starts_with(prefix))
        .collect();
    let total = matching.len();
    let values: Vec<String> = matching
        .into_iter()
        .take(CompletionInfo::MAX_VALUES)
        .collect();
    let has_more = total > values.len();
    let info = CompletionInfo::with_pagination(
        values,
        Some(u32::try_from(total).unwrap_or(u32::MAX)),
        has_more,
    )
    .unwrap_or_default();
    CompleteResult::new(info)
}

/// Completes one argument of a prompt.
pub async fn complete(
    mcp: &SondeMcp,
    policy: &KeyPolicy,
    request: CompleteRequestParams,
    ctx: RequestContext<RoleServer>,
) -> Result<CompleteResult, McpError> {
    let Reference::Prompt(_) = &request.r#ref else {
        // No resource templates here.
        return Ok(completion(BTreeSet::new(), ""));
    };
    let ArgumentInfo { name, value, .. } = &request.argument;
    let given = request
        .context
        .as_ref()
        .and_then(|c| c.arguments.clone())
        .unwrap_or_default();
    let chosen_agent = || {
        given
            .get("agent")
            .and_then(|name| mcp.scoped_agent(policy, name).ok())
    };
    let values: BTreeSet<String> = match name.as_str() {
        "agent" => mcp
            .live_agents()
            .into_iter()
            .filter(|a| policy.allows_agent(&a.name))
            .map(|a| a.name.clone())
            .collect(),
        "probe" => match chosen_agent() {
            Some(a) => registered(&a)
                .filter(|s| policy.allows_probe(&s.name) && policy.allows_capability(s.capability))
                .map(|s| s.name.clone())
                .collect(),
            None => BTreeSet::new(),
        },
        "pool" | "dataset" => match chosen_agent() {
            Some(a) => {
                let (probe, list, field) = if name == "pool" {
                    ("zfs.list_pools", "pools", "name")
                } else {
                    ("zfs.list_datasets", "datasets", "name")
                };
                let allowed = a
                    .catalog
                    .probe(probe)
                    .is_some_and(|s| s.registered && policy.allows_capability(s.capability))
                    && policy.allows_probe(probe);
                if !allowed {
                    BTreeSet::new()
                } else {
                    let Ok(probe_name) = ProbeName::parse(probe) else {
                        return Ok(completion(BTreeSet::new(), ""));
                    };
                    let result = mcp
                        .probe_for_tool(
                            policy,
                            ctx.ct.clone(),
                            &a,
                            ProbeDescriptor {
                                probe: probe_name,
                                params: Default::default(),
                            },
                            "mcp.complete",
                        )
                        .await;
                    match result {
                        Ok(r) => r
                            .data
                            .as_ref()
                            .and_then(|d| d.get(list))
                            .and_then(|l| l.as_array())
                            .map(|items| {
                                items
                                    .iter()
                                    .filter_map(|i| i.get(field).and_then(|n| n.as_str()))
                                    .map(str::to_owned)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        Err(_) => BTreeSet::new(),
                    }
                }
            }
            None => BTreeSet::new(),
        },
        _ => BTreeSet::new(),
    };
    Ok(completion(values, value))
}
