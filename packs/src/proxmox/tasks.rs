//! Recent tasks with failures first (failed backups before anything else),
//! and one task's log.

use serde_json::{Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::pvesh;
use super::utc;
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// What a finished task's status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// A backup (vzdump) that did not end OK.
    FailedBackup,
    Failed,
    Warnings,
    Running,
    Ok,
}

impl Outcome {
    pub fn of(task: &Value) -> Outcome {
        let status = task["status"].as_str();
        let backup = task["type"] == "vzdump";
        match status {
            None if task["endtime"].is_null() => Outcome::Running,
            Some("OK") => Outcome::Ok,
            Some(s) if s.starts_with("WARNINGS") => Outcome::Warnings,
            _ if backup => Outcome::FailedBackup,
            _ => Outcome::Failed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::FailedBackup => "failed_backup",
            Outcome::Failed => "failed",
            Outcome::Warnings => "warnings",
            Outcome::Running => "running",
            Outcome::Ok => "ok",
        }
    }
}

/// What a task type does, in words (the common ones).
fn type_meaning(t: &str) -> Option<&'static str> {
    Some(match t {
        "vzdump" => "backup",
        "qmstart" | "vzstart" => "start",
        "qmstop" | "vzstop" => "stop",
        "qmshutdown" | "vzshutdown" => "shutdown",
        "qmigrate" | "vzmigrate" => "migration",
        "qmsnapshot" | "vzsnapshot" => "snapshot",
        "qmdelsnapshot" | "vzdelsnapshot" => "snapshot removal",
        "qmrestore" | "vzrestore" => "restore",
        "qmclone" | "vzclone" => "clone",
        "imgcopy" | "qmmove" | "move_volume" => "disk move",
        "aptupdate" => "package index update",
        "ha-manager" | "hastart" | "hastop" => "HA action",
        "zfsscrub" => "ZFS scrub",
        "srvreload" | "srvrestart" => "service reload/restart",
        _ => return None,
    })
}

fn task_json(t: &Value) -> Value {
    let outcome = Outcome::of(t);
    let duration = match (t["starttime"].as_i64(), t["endtime"].as_i64()) {
        (Some(s), Some(e)) if e >= s => Some(e - s),
        _ => None,
    };
    json!({
        "upid": t["upid"],
        "node": t["node"],
        "type": t["type"],
        "what": t["type"].as_str().and_then(type_meaning),
        "id": t["id"],
        "user": t["user"],
        "started": utc(&t["starttime"]),
        "ended": utc(&t["endtime"]),
        "duration_s": duration,
        "status": t["status"],
        "outcome": outcome.name(),
    })
}

pub fn recent_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let errors_only = params.bool("errors_only").unwrap_or(false);
    let limit = params.i64("limit").unwrap_or(50).clamp(1, 500) as usize;
    let kind = params.str("type");
    let mut raw: Vec<Value> = match params.str("node") {
        // One node's deeper history (its task archive, not only the
        // cluster's recent index).
        Some(node) => {
            let mut opts = vec![("limit", limit.to_string()), ("source", "all".to_owned())];
            if errors_only {
                opts.push(("errors", "1".to_owned()));
            }
            if kind == Some("vzdump") {
                opts.push(("typefilter", "vzdump".to_owned()));
            }
            pvesh::get_data(ctx, &format!("/nodes/{node}/tasks"), &opts)?
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut t| {
                    if t["node"].is_null() {
                        t["node"] = json!(node);
                    }
                    t
                })
                .collect()
        }
        None => pvesh::get_data(ctx, "/cluster/tasks", &[])?
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    raw.retain(|t| kind.is_none_or(|k| t["type"] == k));
    if errors_only {
        raw.retain(|t| {
            matches!(
                Outcome::of(t),
                Outcome::FailedBackup | Outcome::Failed | Outcome::Warnings
            )
        });
    }
    // Failed backups first, then other failures, warnings, running, OK;
    // newest first within each.
    raw.sort_by(|a, b| {
        Outcome::of(a)
            .cmp(&Outcome::of(b))
            .then_with(|| b["starttime"].as_i64().cmp(&a["starttime"].as_i64()))
    });
    let mut findings = Vec::new();
    let count = |o: Outcome| raw.iter().filter(|t| Outcome::of(t) == o).count();
    let counts = json!({
        "tasks": raw.len(),
        "failed_backups": count(Outcome::FailedBackup),
        "failed": count(Outcome::Failed),
        "warnings": count(Outcome::Warnings),
        "running": count(Outcome::Running),
        "ok": count(Outcome::Ok),
    });
    for t in &raw {
        let what = match t["id"].as_str().filter(|s| !s.is_empty()) {
            Some(id) => format!("guest {id}"),
            None => "the job".to_owned(),
        };
        let when = utc(&t["starttime"]).unwrap_or_default();
        let node = t["node"].as_str().unwrap_or("?");
        let status = t["status"].as_str().unwrap_or("");
        match Outcome::of(t) {
            Outcome::FailedBackup => findings.push(finding(
                "critical",
                format!(
                    "backup of {what} on {node} failed ({when}): {status} — read it with task.log"
                ),
            )),
            Outcome::Failed => findings.push(finding(
                "warning",
                format!(
                    "{} task of {what} on {node} failed ({when}): {status}",
                    t["type"].as_str().unwrap_or("?")
                ),
            )),
            _ => {}
        }
    }
    let truncated = raw.len() > limit;
    raw.truncate(limit);
    let tasks: Vec<Value> = raw.iter().map(task_json).collect();
    findings.truncate(100);
    ProbeOutput::from_serialize(
        &json!({"counts": counts, "tasks": tasks, "findings": findings}),
        truncated,
    )
}

pub fn log_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let upid = params
        .str("upid")
        .ok_or_else(|| ProbeError::InvalidInput("upid is required".into()))?;
    if !pvesh::is_upid(upid) {
        return Err(ProbeError::InvalidInput(format!(
            "{upid:?} is not a task id (UPID:node:pid:pstart:starttime:type:id:user:, as tasks.recent lists them)"
        )));
    }
    // The node that ran the task is the UPID's second field.
    let node = upid.split(':').nth(1).unwrap_or_default();
    let limit = params.i64("lines").unwrap_or(200).clamp(1, 1000);
    let start = params.i64("start").unwrap_or(0).clamp(0, 1_000_000);
    let v = pvesh::get_data(
        ctx,
        &format!("/nodes/{node}/tasks/{upid}/log"),
        &[("limit", limit.to_string()), ("start", start.to_string())],
    )?;
    let lines: Vec<Value> = v
        .as_array()
        .map(|a| a.iter().map(|l| l["t"].clone()).collect())
        .unwrap_or_default();
    let findings: Vec<Value> = lines
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| {
            l.contains("ERROR")
                || l.starts_with("TASK ERROR")
                || l.contains("error:")
                || l.contains("WARN")
        })
        .take(20)
        .map(|l| {
            finding(
                if l.contains("WARN") {
                    "warning"
                } else {
                    "critical"
                },
                l.to_owned(),
            )
        })
        .collect();
    let truncated = lines.len() as i64 >= limit;
    ProbeOutput::from_serialize(
        &json!({"upid": upid, "node": node, "start": start, "count": lines.len(), "lines": lines, "more": truncated, "findings": findings}),
        truncated,
    )
}
