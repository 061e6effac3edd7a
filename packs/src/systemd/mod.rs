//! The `systemd` pack: services and their journal through `systemctl` and
//! `journalctl` (argv only; unit names validated, always after `--`), and
//! one `interact` probe, `service.restart`, that exists only on agents
//! whose ceiling allows it.
//!
//! Settings: none (a `[packs.systemd]` table with any key is refused).

use serde_json::{Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::sync::Arc;

use crate::exec::{Argv, ExecError, ExecLimits, ExecOutput};
use crate::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
use crate::manifest::ManifestError;
use crate::system::finding;
use crate::system::journal::{self, JournalQuery};

pub const MANIFEST: &str = include_str!("../../systemd/pack.toml");

/// The pack has no settings: only an empty table is accepted.
pub fn check_settings(value: &Value) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::Object(map) => match map.keys().next() {
            None => Ok(()),
            Some(key) => Err(format!(
                "unknown key `{key}`: the systemd pack has no settings"
            )),
        },
        _ => Err("expected a table".into()),
    }
}

/// systemctl's answer when PID 1 is not systemd (containers, other inits).
fn not_running_systemd(stderr: &str) -> bool {
    stderr.contains("has not been booted with systemd")
        || stderr.contains("Failed to connect to bus")
        || stderr.contains("Failed to connect to system scope bus")
}

fn systemctl(ctx: &ProbeContext<'_>, args: &[&str]) -> Result<ExecOutput, ProbeError> {
    let out = ctx
        .runner
        .run(
            &Argv::new("systemctl").args(args),
            &ExecLimits::until(ctx.deadline),
        )
        .map_err(|e| match e {
            ExecError::NotFound { .. } => ProbeError::Unsupported(
                "systemctl is not installed: this machine does not use systemd".into(),
            ),
            other => ProbeError::Failed(other.to_string()),
        })?;
    if out.timed_out {
        return Err(ProbeError::Timeout);
    }
    if !out.success() && not_running_systemd(&out.stderr_text()) {
        return Err(ProbeError::Unsupported(format!(
            "systemd is not running on this machine (PID 1 is another init, e.g. in a container): {}",
            out.stderr_text().lines().next().unwrap_or_default()
        )));
    }
    Ok(out)
}

/// `systemctl list-units --plain --no-legend` lines.
pub fn parse_units(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['●', '*', ' ']);
            let mut parts = l.split_whitespace();
            let unit = parts.next()?;
            let load = parts.next()?;
            let active = parts.next()?;
            let sub = parts.next()?;
            let description = parts.collect::<Vec<_>>().join(" ");
            Some(json!({"unit": unit, "load": load, "active": active, "sub": sub, "description": description}))
        })
        .collect()
}

fn list(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let mut args = vec![
        "list-units",
        "--type",
        "service",
        "--all",
        "--no-pager",
        "--plain",
        "--full",
        "--no-legend",
    ];
    if let Some(state) = params.str("state") {
        args.extend(["--state", state]);
    }
    args.push("--");
    if let Some(p) = params.str("pattern") {
        args.push(p);
    }
    let out = systemctl(ctx, &args)?;
    if !out.success() {
        return Err(ProbeError::Failed(format!(
            "systemctl list-units failed: {}",
            out.stderr_text()
        )));
    }
    let services = parse_units(&String::from_utf8_lossy(&out.stdout));
    let failed: Vec<&Value> = services
        .iter()
        .filter(|s| s["active"] == "failed")
        .collect();
    let findings: Vec<Value> = failed
        .iter()
        .map(|s| {
            finding(
                "error",
                format!(
                    "{} has failed ({})",
                    s["unit"].as_str().unwrap_or("?"),
                    s["description"].as_str().unwrap_or("")
                ),
            )
        })
        .collect();
    ProbeOutput::from_serialize(
        &json!({"services": services, "counts": {"total": services.len(), "failed": failed.len()}, "findings": findings}),
        out.stdout_truncated,
    )
}

const STATUS_PROPERTIES: &str = "Id,Description,LoadState,ActiveState,SubState,StateChangeTimestamp,ActiveEnterTimestamp,ExecMainPID,ExecMainStatus,MemoryCurrent,TasksCurrent,CPUUsageNSec,NRestarts,Result,UnitFileState,FragmentPath";

/// `systemctl show` KEY=VALUE lines.
pub fn parse_show(text: &str) -> serde_json::Map<String, Value> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect()
}

/// A number property; systemd prints `[not set]` or 2^64-1 for "unknown".
fn number(v: Option<&Value>) -> Value {
    match v
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(n) if n != u64::MAX => json!(n),
        _ => Value::Null,
    }
}

/// `@1700000000` (`--timestamp=unix`) → Unix ms.
fn unix_ms(v: Option<&Value>) -> Value {
    v.and_then(Value::as_str)
        .and_then(|t| t.strip_prefix('@'))
        .and_then(|t| t.parse::<i64>().ok())
        .map_or(Value::Null, |s| json!(s.saturating_mul(1000)))
}

/// `systemctl show` properties → the result of `service.status`.
pub fn status_from(p: &serde_json::Map<String, Value>) -> Value {
    let text = |k: &str| p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let unit = text("Id").unwrap_or("?");
    let mut findings = Vec::new();
    if text("ActiveState") == Some("failed") {
        findings.push(finding(
            "error",
            format!(
                "{unit} has failed (result: {}); see systemd.journal.query for why",
                text("Result").unwrap_or("unknown")
            ),
        ));
    }
    if let Some(n) = number(p.get("NRestarts")).as_u64().filter(|n| *n > 0) {
        findings.push(finding(
            "warning",
            format!("{unit} has been restarted {n} times by systemd"),
        ));
    }
    json!({
        "unit": text("Id"),
        "description": text("Description"),
        "load_state": text("LoadState"),
        "active_state": text("ActiveState"),
        "sub_state": text("SubState"),
        // With --timestamp=unix (systemd 251+) these are Unix ms; older
        // systemd prints a local date, kept as text in `since`.
        "since_ms": unix_ms(p.get("StateChangeTimestamp")),
        "active_since_ms": unix_ms(p.get("ActiveEnterTimestamp")),
        "since": text("StateChangeTimestamp"),
        "main_pid": number(p.get("ExecMainPID")).as_u64().filter(|n| *n > 0),
        "main_exit_status": number(p.get("ExecMainStatus")),
        "memory_bytes": number(p.get("MemoryCurrent")),
        "tasks": number(p.get("TasksCurrent")),
        "cpu_seconds": number(p.get("CPUUsageNSec")).as_u64().map(|ns| ns as f64 / 1e9),
        "restarts": number(p.get("NRestarts")),
        "result": text("Result"),
        "unit_file_state": text("UnitFileState"),
        "fragment_path": text("FragmentPath"),
        "findings": findings,
    })
}

fn status(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let unit = params
        .str("unit")
        .ok_or_else(|| ProbeError::InvalidInput("unit is required".into()))?;
    let show = |unix_times: bool| {
        let mut args = vec!["show", "--no-pager"];
        if unix_times {
            args.extend(["--timestamp", "unix"]);
        }
        args.extend(["--property", STATUS_PROPERTIES, "--", unit]);
        systemctl(ctx, &args)
    };
    let mut out = show(true)?;
    // systemd before 251 has no `--timestamp=unix`.
    if !out.success() && out.stderr_text().contains("timestamp") {
        out = show(false)?;
    }
    if !out.success() {
        return Err(ProbeError::Failed(format!(
            "systemctl show {unit} failed: {}",
            out.stderr_text()
        )));
    }
    let p = parse_show(&String::from_utf8_lossy(&out.stdout));
    if p.get("LoadState").and_then(Value::as_str) == Some("not-found") {
        return Err(ProbeError::NotFound(format!(
            "there is no unit {unit} on this machine; systemd.services.list shows the services there are"
        )));
    }
    Ok(ProbeOutput::new(status_from(&p)))
}

fn journal(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let unit = params
        .str("unit")
        .ok_or_else(|| ProbeError::InvalidInput("unit is required".into()))?;
    let read = journal::read(
        ctx,
        &JournalQuery {
            lines: params.i64("lines").unwrap_or(200),
            unit: Some(unit),
            priority: params.str("priority"),
            since: params.str("since"),
            kernel: false,
        },
    )?;
    ProbeOutput::from_serialize(
        &json!({"unit": unit, "entries": read.entries, "note": read.note}),
        read.truncated,
    )
}

fn restart(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let unit = params
        .str("unit")
        .ok_or_else(|| ProbeError::InvalidInput("unit is required".into()))?;
    let out = systemctl(ctx, &["restart", "--no-ask-password", "--", unit])?;
    if !out.success() {
        let err = out.stderr_text();
        if err.contains("not found") || err.contains("not loaded") {
            return Err(ProbeError::NotFound(format!(
                "there is no unit {unit} on this machine ({err})"
            )));
        }
        let hint = if err.contains("Access denied")
            || err.contains("authentication")
            || err.contains("Interactive")
        {
            format!(
                " (the agent's user may not restart services: add a polkit rule in /etc/polkit-1/rules.d/ that returns polkit.Result.YES for action org.freedesktop.systemd1.manage-units when action.lookup(\"unit\") == \"{unit}\", action.lookup(\"verb\") == \"restart\" and subject.user == \"sonde\")"
            )
        } else {
            String::new()
        };
        return Err(ProbeError::Failed(format!(
            "systemctl restart {unit} failed: {err}{hint}"
        )));
    }
    let state = systemctl(
        ctx,
        &["show", "--property", "ActiveState", "--value", "--", unit],
    )?;
    Ok(ProbeOutput::new(
        json!({"unit": unit, "restarted": true, "active_state": String::from_utf8_lossy(&state.stdout).trim()}),
    ))
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("services.list", Arc::new(list)),
        ("service.status", Arc::new(status)),
        ("journal.query", Arc::new(journal)),
        ("service.restart", Arc::new(restart)),
    ];
    PackDef::builtin(MANIFEST, handlers, Some(check_settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_lines_with_and_without_a_marker() {
        let units = parse_units(
            "ssh.service  loaded active running OpenBSD  Secure Shell server\n\u{25cf} broken.service not-found inactive dead broken.service\nshort line\n",
        );
        assert_eq!(units.len(), 2);
        assert_eq!(units[0]["description"], "OpenBSD Secure Shell server");
        assert_eq!(units[1]["unit"], "broken.service");
    }

    #[test]
    fn show_numbers_and_times() {
        let p = parse_show(
            "NRestarts=3\nMemoryCurrent=[not set]\nTasksCurrent=18446744073709551615\nStateChangeTimestamp=@1700000000\nId=x.service\nDescription=a=b\n",
        );
        let v = status_from(&p);
        assert_eq!(v["restarts"], 3);
        assert_eq!(v["memory_bytes"], Value::Null);
        assert_eq!(v["tasks"], Value::Null, "2^64-1 means unknown");
        assert_eq!(v["since_ms"], 1_700_000_000_000i64);
        assert_eq!(v["description"], "a=b", "only the first = splits");
        assert_eq!(v["findings"][0]["severity"], "warning");
    }

    #[test]
    fn settings_refuse_every_key() {
        assert!(check_settings(&Value::Null).is_ok());
        assert!(
            check_settings(&json!({"x": 1}))
                .unwrap_err()
                .contains("`x`")
        );
        assert!(check_settings(&json!([1])).is_err());
    }
}
