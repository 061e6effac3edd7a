//! Reading the systemd journal through `journalctl -o json` (argv only),
//! shared by `system.logs.journal`, `system.logs.dmesg` and
//! `systemd.journal.query`.
//!
//! The journal is read newest first (`-r`) and turned around here, so when
//! the output bound cuts it, what is lost is the oldest entries, not the
//! newest. Only the fields a result uses are asked for (`--output-fields`).

use serde_json::{Value, json};
use sonde_protocol::path::PathBytes;

use crate::exec::{Argv, ExecError, ExecLimits};
use crate::handler::{ProbeContext, ProbeError};
use crate::requirements::{Identity, group_id};

/// Fields asked of journalctl (it always adds its own `__` fields).
const FIELDS: &str = "MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID,_COMM,_TRANSPORT,_SOURCE_MONOTONIC_TIMESTAMP";

/// A filter for one journal read. Every value is passed to journalctl as a
/// whole argument of its own, after the option that takes it.
#[derive(Debug, Clone, Default)]
pub struct JournalQuery<'a> {
    pub lines: i64,
    pub unit: Option<&'a str>,
    pub priority: Option<&'a str>,
    pub since: Option<&'a str>,
    /// Kernel messages of this boot only (`-k`).
    pub kernel: bool,
}

impl JournalQuery<'_> {
    pub fn argv(&self) -> Argv {
        self.argv_with(true)
    }

    /// `output_fields`: ask only for [`FIELDS`] (systemd 236+).
    fn argv_with(&self, output_fields: bool) -> Argv {
        let mut argv = Argv::new("journalctl").args([
            "--no-pager",
            "--quiet",
            "--reverse",
            "--output",
            "json",
        ]);
        if output_fields {
            argv = argv.args(["--output-fields", FIELDS]);
        }
        argv = argv.args(["--lines", &self.lines.max(1).to_string()]);
        if self.kernel {
            argv = argv.arg("--dmesg");
        }
        if let Some(unit) = self.unit {
            argv = argv.arg("--unit").arg(unit);
        }
        if let Some(p) = self.priority {
            argv = argv.arg("--priority").arg(p);
        }
        if let Some(since) = self.since {
            argv = argv.arg("--since").arg(since);
        }
        argv
    }
}

/// What a journal read gave.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRead {
    /// Oldest first.
    pub entries: Vec<Value>,
    /// Anything the caller should know (partial visibility, no journal).
    pub note: Option<String>,
    /// The output bound cut the oldest entries.
    pub truncated: bool,
}

/// A journal field as bytes: journalctl prints a string, or an array of
/// byte values when the field is not valid UTF-8.
fn field_bytes(v: Option<&Value>) -> Option<Vec<u8>> {
    match v? {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(bytes) => Some(
            bytes
                .iter()
                .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect(),
        ),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<i64> {
    v?.as_str()?.parse().ok()
}

/// One `journalctl -o json` line → a compact entry:
/// `{time_ms, unit, priority, identifier, pid, message}` (plus `uptime_s`
/// for kernel messages). `None` for a line that is not a JSON object.
pub fn journal_entry(line: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(line).ok()?;
    if !v.is_object() {
        return None;
    }
    let text = |k: &str| field_bytes(v.get(k)).map(|b| PathBytes(b).to_json());
    let mut entry = json!({
        "time_ms": number(v.get("__REALTIME_TIMESTAMP")).map(|us| us / 1000),
        "unit": text("_SYSTEMD_UNIT"),
        "priority": number(v.get("PRIORITY")),
        "identifier": text("SYSLOG_IDENTIFIER").or_else(|| text("_COMM")),
        "pid": number(v.get("_PID")),
        "message": text("MESSAGE"),
    });
    if v.get("_TRANSPORT").and_then(Value::as_str) == Some("kernel")
        && let Some(us) = number(v.get("_SOURCE_MONOTONIC_TIMESTAMP"))
    {
        entry["uptime_s"] = json!(us as f64 / 1e6);
    }
    Some(entry)
}

/// Parses reversed (newest first) output into oldest-first entries.
pub fn parse_reversed(stdout: &[u8]) -> Vec<Value> {
    let mut entries: Vec<Value> = stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(journal_entry)
        .collect();
    entries.reverse();
    entries
}

/// Whether this process sees the whole journal: root, or a member of a
/// group journald grants read access to.
fn sees_whole_journal() -> bool {
    let me = Identity::current();
    me.uid == 0
        || ["systemd-journal", "adm", "wheel"]
            .iter()
            .filter_map(|g| group_id(g))
            .any(|gid| me.gids.contains(&gid))
}

/// The note for a reader that only sees its own entries.
pub const PARTIAL_JOURNAL_NOTE: &str = "the agent's user sees only its own journal entries: run `usermod -aG systemd-journal sonde` (or add SupplementaryGroups=systemd-journal to the sonde-agent unit) and restart sonde-agent to see all of them";

/// Runs the query.
pub fn read(ctx: &ProbeContext<'_>, query: &JournalQuery<'_>) -> Result<JournalRead, ProbeError> {
    let run = |argv: Argv| {
        let out = ctx
            .runner
            .run(&argv, &ExecLimits::until(ctx.deadline))
            .map_err(|e| match e {
                ExecError::NotFound { .. } => ProbeError::Unsupported(
                    "journalctl is not installed: this machine has no systemd journal".into(),
                ),
                other => ProbeError::Failed(other.to_string()),
            })?;
        if out.timed_out {
            return Err(ProbeError::Timeout);
        }
        Ok(out)
    };
    let mut out = run(query.argv())?;
    // systemd before 236 has no --output-fields: all fields, then.
    if !out.success() && out.stderr_text().contains("output-fields") {
        out = run(query.argv_with(false))?;
    }
    let err = out.stderr_text();
    if err.contains("Failed to parse timestamp") || err.contains("Failed to parse --since") {
        return Err(ProbeError::InvalidInput(format!(
            "journalctl could not read since = {:?} ({err}); use a date (2024-05-01 or 2024-05-01 12:00), today, yesterday, -1h, -30min or \"2 days ago\"",
            query.since.unwrap_or_default()
        )));
    }
    if !out.success() && out.stdout.is_empty() && !err.contains("No journal files") {
        return Err(ProbeError::Failed(format!(
            "journalctl failed (exit {}): {}",
            out.code.map_or("?".to_owned(), |c| c.to_string()),
            if err.is_empty() { "no message" } else { &err }
        )));
    }
    let mut entries = parse_reversed(&out.stdout);
    // journalctl honours --lines; this only guards against one that does not.
    let excess = entries
        .len()
        .saturating_sub(usize::try_from(query.lines.max(1)).unwrap_or(usize::MAX));
    entries.drain(..excess);
    let note = if err.contains("No journal files") {
        Some("this machine has no journal files (journald may store logs in memory only, or not run at all)".to_owned())
    } else if !sees_whole_journal() {
        Some(PARTIAL_JOURNAL_NOTE.to_owned())
    } else {
        None
    };
    Ok(JournalRead {
        entries,
        note,
        truncated: out.stdout_truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_binary_messages_and_kernel_uptime() {
        let e = journal_entry(br#"{"__REALTIME_TIMESTAMP":"1700000000123456","PRIORITY":"3","_SYSTEMD_UNIT":"ssh.service","SYSLOG_IDENTIFIER":"sshd","_PID":"42","MESSAGE":"Failed password"}"#).unwrap();
        assert_eq!(e["time_ms"], 1_700_000_000_123i64);
        assert_eq!(e["priority"], 3);
        assert_eq!(e["pid"], 42);
        assert_eq!(e["unit"], "ssh.service");
        assert!(e.get("uptime_s").is_none());
        let bin = journal_entry(br#"{"MESSAGE":[104,105,255]}"#).unwrap();
        assert_eq!(bin["message"]["base64"], "aGn/");
        let k = journal_entry(
            br#"{"_TRANSPORT":"kernel","_SOURCE_MONOTONIC_TIMESTAMP":"1324542","MESSAGE":"x"}"#,
        )
        .unwrap();
        assert_eq!(k["uptime_s"], 1.324542);
        assert!(journal_entry(b"not json").is_none());
        assert!(journal_entry(b"[1,2]").is_none());
        assert!(journal_entry(br#"{"MESSAGE":[1000,-1,"x"]}"#).is_some());
    }

    #[test]
    fn without_output_fields_for_old_journalctl() {
        let q = JournalQuery {
            lines: 3,
            kernel: true,
            ..Default::default()
        };
        assert_eq!(
            q.argv_with(false).display(),
            "journalctl --no-pager --quiet --reverse --output json --lines 3 --dmesg"
        );
    }

    #[test]
    fn every_value_is_a_whole_argument_after_its_option() {
        let q = JournalQuery {
            lines: 5,
            unit: Some("ssh.service"),
            priority: Some("err"),
            since: Some("-1h"),
            kernel: false,
        };
        assert_eq!(
            q.argv().display(),
            format!(
                "journalctl --no-pager --quiet --reverse --output json --output-fields {FIELDS} --lines 5 --unit ssh.service --priority err --since -1h"
            )
        );
    }
}
