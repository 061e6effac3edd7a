//! `sonde-agent probe`: run probes by hand on this machine, through exactly
//! the path a hub request takes (schema validation, capability ceiling, pack
//! state, argv-only execution, bounds, timeout, scrubbing, local audit).
//!
//! Exit status: 0 ok, 2 bad input, 3 refused (ceiling or pack state),
//! 4 the probe failed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sonde_protocol::messages::{PackState, ProbeErrorCode};
use sonde_protocol::schema::{ParamKind, ParamSpec};
use sonde_protocol::{ProbeDescriptor, ProbeName};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use crate::runtime::{Execution, Runtime};

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_FAILED: u8 = 4;

/// One result, as printed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LocalResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub probe: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LocalError>,
    pub truncated: bool,
    pub redactions: BTreeMap<String, u64>,
    pub duration_ms: u64,
    /// Seq of the local audit entry recording the verdict.
    pub audit_seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LocalError {
    pub code: String,
    pub message: String,
}

impl LocalResult {
    pub fn exit_code(&self) -> u8 {
        match &self.error {
            None => EXIT_OK,
            Some(e) => match e.code.as_str() {
                "invalid_params" | "invalid_request" | "no_such_probe" => EXIT_BAD_INPUT,
                "unknown_probe" | "refused" | "busy" => EXIT_REFUSED,
                _ => EXIT_FAILED,
            },
        }
    }
}

fn error_result(id: Option<Value>, probe: &str, code: &str, message: String) -> LocalResult {
    LocalResult {
        id,
        probe: probe.to_owned(),
        ok: false,
        data: None,
        error: Some(LocalError {
            code: code.into(),
            message,
        }),
        truncated: false,
        redactions: BTreeMap::new(),
        duration_ms: 0,
        audit_seq: 0,
    }
}

/// Why a probe the table does not hold is missing, for the person at the
/// keyboard (remote callers only ever learn "unknown probe").
pub fn explain_missing(runtime: &Runtime, probe: &str) -> (String, String) {
    for pack in &runtime.loaded().packs {
        let Some(def) = &pack.def else { continue };
        let Some(local) = probe.strip_prefix(&format!("{}.", pack.name)) else {
            continue;
        };
        let Some(spec) = def.manifest.probe(local) else {
            continue;
        };
        if pack.state != PackState::Active {
            let why = if pack.missing.is_empty() {
                String::new()
            } else {
                format!(": {}", pack.missing.join("; "))
            };
            return (
                "refused".into(),
                format!(
                    "probe {probe} belongs to pack {} which is {}{why}",
                    pack.name,
                    pack.state.as_str()
                ),
            );
        }
        if spec.capability > runtime.config.max_capability {
            return (
                "refused".into(),
                format!(
                    "probe {probe} needs capability {} but this agent's max_capability is {}",
                    spec.capability, runtime.config.max_capability
                ),
            );
        }
    }
    (
        "no_such_probe".into(),
        format!("no probe named {probe:?}; `sonde-agent probe --list` shows them"),
    )
}

/// Runs one probe as `actor`.
pub async fn run_one(
    runtime: &Runtime,
    actor: &str,
    id: Option<Value>,
    probe: &str,
    params: Map<String, Value>,
) -> LocalResult {
    let name = match ProbeName::parse(probe) {
        Ok(n) => n,
        Err(e) => return error_result(id, probe, "invalid_request", e.to_string()),
    };
    let request_id = sonde_protocol::envelope::MessageId::random().to_hex();
    let descriptor = ProbeDescriptor {
        probe: name,
        params,
    };
    let exec = runtime
        .execute(actor, &request_id, &descriptor, Duration::from_secs(600))
        .await;
    match exec {
        Execution::Ran {
            data,
            truncated,
            redactions,
            duration_ms,
            head,
            ..
        } => LocalResult {
            id,
            probe: probe.to_owned(),
            ok: true,
            data: Some(data),
            error: None,
            truncated,
            redactions,
            duration_ms,
            audit_seq: head.seq,
        },
        Execution::Failed {
            code,
            message,
            duration_ms,
            head,
        } => {
            let (code, message) = if code == ProbeErrorCode::UnknownProbe {
                explain_missing(runtime, probe)
            } else {
                (code.as_str().to_owned(), message)
            };
            LocalResult {
                duration_ms,
                audit_seq: head.seq,
                ..error_result(id, probe, &code, message)
            }
        }
    }
}

/// Builds params from `--params JSON` and `--param key=value` (typed by the
/// probe's schema when it is known).
pub fn build_params(
    runtime: &Runtime,
    probe: &str,
    json_params: Option<&str>,
    pairs: &[String],
) -> Result<Map<String, Value>, String> {
    let mut params = match json_params {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("--params must be a JSON object".into()),
            Err(e) => return Err(format!("--params is not valid JSON: {e}")),
        },
    };
    let specs: Vec<ParamSpec> = runtime
        .loaded()
        .packs
        .iter()
        .filter_map(|p| p.def.as_ref())
        .flat_map(|d| d.manifest.probe_summaries(|_| true))
        .find(|s| s.name == probe)
        .map(|s| s.params)
        .unwrap_or_default();
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| format!("--param {pair:?} must be key=value"))?;
        let value = match specs.iter().find(|s| s.name == key).map(|s| &s.kind) {
            Some(ParamKind::Integer { .. }) => {
                json!(
                    raw.parse::<i64>()
                        .map_err(|_| format!("--param {key}: {raw:?} is not an integer"))?
                )
            }
            Some(ParamKind::Boolean) => json!(
                raw.parse::<bool>()
                    .map_err(|_| format!("--param {key}: {raw:?} is not true or false"))?
            ),
            Some(ParamKind::StringList { .. }) => {
                json!(raw.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>())
            }
            _ => json!(raw),
        };
        params.insert(key.to_owned(), value);
    }
    Ok(params)
}

/// One line of `--stdio` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StdioRequest {
    #[serde(default)]
    id: Option<Value>,
    probe: String,
    #[serde(default)]
    params: Map<String, Value>,
}

/// `--stdio`: one JSON request per line in, one JSON reply per line out, in
/// order. Returns the number of requests served.
pub async fn stdio(
    runtime: &Runtime,
    actor: &str,
    input: impl BufRead,
    mut output: impl Write,
) -> anyhow::Result<u64> {
    let mut served = 0;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = match serde_json::from_str::<StdioRequest>(&line) {
            Ok(req) => run_one(runtime, actor, req.id, &req.probe, req.params).await,
            Err(e) => {
                let id = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v.get("id").cloned());
                error_result(
                    id,
                    "",
                    "invalid_request",
                    format!("not a request ({{\"id\", \"probe\", \"params\"}}): {e}"),
                )
            }
        };
        let line = serde_json::to_string(&result)?;
        output.write_all(sonde_protocol::display::terminal_json(&line).as_bytes())?;
        output.write_all(b"\n")?;
        output.flush()?;
        served += 1;
    }
    Ok(served)
}
