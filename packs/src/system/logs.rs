//! `logs.journal` and `logs.dmesg` (through `journalctl` and `dmesg`, argv
//! only) and `logs.tail` (files the operator allowlisted, read from the end,
//! bounded, never a FIFO or device, never one of the agent's own files
//! whatever links lead to it; `grep` runs on the scrubbed text).

use serde_json::{Value, json};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;

use super::Settings;
use super::journal::{self, JournalQuery};
use crate::exec::{Argv, ExecError, ExecLimits};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};

/// Most bytes `logs.tail` reads from the end of a file.
pub const TAIL_WINDOW: u64 = 4 << 20;

pub fn journal(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let read = journal::read(
        ctx,
        &JournalQuery {
            lines: params.i64("lines").unwrap_or(200),
            unit: params.str("unit"),
            priority: params.str("priority"),
            since: params.str("since"),
            kernel: false,
        },
    )?;
    ProbeOutput::from_serialize(
        &json!({"entries": read.entries, "note": read.note}),
        read.truncated,
    )
}

/// `dmesg --json` output (util-linux 2.38+): `{"dmesg": [{"pri", "time", "msg"}]}`.
/// `pri` holds facility and level; the level is its low three bits.
pub fn dmesg_json(text: &[u8]) -> Option<Vec<Value>> {
    let v: Value = serde_json::from_slice(text).ok()?;
    let list = v.get("dmesg")?.as_array()?;
    Some(
        list.iter()
            .map(|e| {
                json!({
                    "uptime_s": e.get("time").and_then(Value::as_f64),
                    "priority": e.get("pri").and_then(Value::as_u64).map(|p| p & 7),
                    "message": e.get("msg").and_then(Value::as_str),
                })
            })
            .collect(),
    )
}

/// Plain `dmesg` lines (`[   12.345678] message`).
pub fn dmesg_lines(text: &[u8]) -> Vec<Value> {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let parsed = l.strip_prefix(b"[").and_then(|rest| {
                let close = rest.iter().position(|b| *b == b']')?;
                let t = std::str::from_utf8(&rest[..close])
                    .ok()?
                    .trim()
                    .parse::<f64>()
                    .ok()?;
                let msg = &rest[close + 1..];
                Some((t, msg.strip_prefix(b" ").unwrap_or(msg)))
            });
            let (time, msg) = match parsed {
                Some((t, msg)) => (Some(t), msg),
                None => (None, l),
            };
            json!({"uptime_s": time, "priority": null, "message": PathBytes::from(msg).to_json()})
        })
        .collect()
}

fn last(mut entries: Vec<Value>, n: usize) -> Vec<Value> {
    let skip = entries.len().saturating_sub(n);
    entries.drain(..skip);
    entries
}

pub fn dmesg(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let lines = params.i64("lines").unwrap_or(200).max(1);
    // 1. The journal keeps kernel messages with wall-clock times.
    let journal_problem = match journal::read(
        ctx,
        &JournalQuery {
            lines,
            kernel: true,
            ..Default::default()
        },
    ) {
        Ok(read) if !read.entries.is_empty() => {
            let entries: Vec<Value> = read
                .entries
                .into_iter()
                .map(|e| {
                    json!({"time_ms": e["time_ms"], "uptime_s": e.get("uptime_s"), "priority": e["priority"], "message": e["message"]})
                })
                .collect();
            return ProbeOutput::from_serialize(
                &json!({"source": "journal", "entries": entries}),
                read.truncated,
            );
        }
        Ok(read) => read
            .note
            .unwrap_or_else(|| "the journal holds no kernel messages".into()),
        Err(e) => e.to_string(),
    };
    // 2. The kernel ring buffer, structured if this dmesg can.
    let n = usize::try_from(lines).unwrap_or(usize::MAX);
    let limits = ExecLimits::until(ctx.deadline);
    let run = |argv: Argv| {
        ctx.runner.run(&argv, &limits).map_err(|e| match e {
            ExecError::NotFound { .. } => ProbeError::Unsupported(format!(
                "no kernel messages: {journal_problem}; and `dmesg` is not installed (util-linux)"
            )),
            other => ProbeError::Failed(other.to_string()),
        })
    };
    let out = run(Argv::new("dmesg").arg("--json"))?;
    if out.timed_out {
        return Err(ProbeError::Timeout);
    }
    if out.success()
        && let Some(entries) = dmesg_json(&out.stdout)
    {
        return ProbeOutput::from_serialize(
            &json!({"source": "dmesg", "entries": last(entries, n)}),
            out.stdout_truncated,
        );
    }
    let denied = |stderr: &str| {
        stderr.contains("Operation not permitted") || stderr.contains("Permission denied")
    };
    if !denied(&out.stderr_text()) {
        // An older dmesg without --json.
        let out = run(Argv::new("dmesg"))?;
        if out.timed_out {
            return Err(ProbeError::Timeout);
        }
        if out.success() {
            return ProbeOutput::from_serialize(
                &json!({"source": "dmesg", "entries": last(dmesg_lines(&out.stdout), n)}),
                out.stdout_truncated,
            );
        }
        if !denied(&out.stderr_text()) {
            return Err(ProbeError::Failed(format!(
                "dmesg failed: {}; the journal: {journal_problem}",
                out.stderr_text()
            )));
        }
    }
    Err(ProbeError::Failed(format!(
        "kernel messages are not readable by the agent's user: the kernel restricts them (kernel.dmesg_restrict = 1) and the journal gave none ({journal_problem}). Grant one: `usermod -aG systemd-journal sonde` to read them from the journal, or `sysctl kernel.dmesg_restrict=0`"
    )))
}

/// The last `lines` lines (optionally only those containing `grep`) of
/// `data`, the end of a file. `window_cut`: `data` does not start at the
/// start of the file, so its first line is partial and dropped. Returns
/// the lines and whether fewer than asked were found in a cut window.
pub fn tail_bytes(
    data: &[u8],
    window_cut: bool,
    lines: usize,
    grep: Option<&[u8]>,
) -> (Vec<Vec<u8>>, bool) {
    let mut all: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if all.last().is_some_and(|l| l.is_empty()) {
        all.pop();
    }
    if window_cut && !all.is_empty() {
        all.remove(0);
    }
    let matching: Vec<&[u8]> = all
        .into_iter()
        .filter(|l| grep.is_none_or(|g| memchr::memmem::find(l, g).is_some()))
        .collect();
    let skip = matching.len().saturating_sub(lines);
    let truncated = window_cut && matching.len() < lines;
    (
        matching[skip..].iter().map(|l| l.to_vec()).collect(),
        truncated,
    )
}

/// How `path` is allowed by `log_files`: exactly (`Some(false)`), as a
/// file directly inside a listed directory (`Some(true)`; entries ending
/// in `/`), or not at all.
pub fn allowed(settings: &Settings, path: &str) -> Option<bool> {
    if settings
        .log_files
        .iter()
        .any(|p| p == path && !p.ends_with('/'))
    {
        return Some(false);
    }
    let (dir, name) = path.rsplit_once('/')?;
    let in_listed_dir = settings
        .log_files
        .iter()
        .any(|p| p.ends_with('/') && p.trim_end_matches('/') == dir);
    (in_listed_dir && !name.is_empty() && name != "." && name != "..").then_some(true)
}

/// Opens a log file without blocking (a FIFO would otherwise hang the
/// probe) and without following a symlink when `no_follow`; only regular
/// files are read.
fn open_log(path: &str, no_follow: bool) -> Result<File, ProbeError> {
    use rustix::fs::{Mode, OFlags};
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    if no_follow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rustix::fs::open(std::ffi::OsStr::from_bytes(path.as_bytes()), flags, Mode::empty())
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => ProbeError::NotFound(format!("{path} does not exist")),
            rustix::io::Errno::ACCESS | rustix::io::Errno::PERM => ProbeError::Failed(format!(
                "{path} is not readable by the agent's user ({e}); grant read access, e.g. `usermod -aG adm sonde` for files in /var/log"
            )),
            rustix::io::Errno::LOOP if no_follow => ProbeError::Denied(format!(
                "{path} is a symbolic link; files in an allowlisted directory are read only if they are regular files (list the link itself in log_files to allow it)"
            )),
            e => ProbeError::Failed(format!("cannot open {path}: {e}")),
        })?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?;
    if !meta.is_file() {
        return Err(ProbeError::Denied(format!(
            "{path} is not a regular file; logs.tail reads only regular files"
        )));
    }
    Ok(file)
}

pub fn tail(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let path = params
        .str("path")
        .ok_or_else(|| ProbeError::InvalidInput("path is required".into()))?;
    let Some(in_dir) = allowed(&settings, path) else {
        return Err(ProbeError::Denied(format!(
            "{path} is not an allowlisted log file; the agent's operator can add it (or its directory, with a trailing /) to `log_files` under [packs.system] in agent.toml{}",
            if settings.log_files.is_empty() {
                " (the list is empty)".to_owned()
            } else {
                format!(" (allowed: {})", settings.log_files.join(", "))
            }
        )));
    };
    let mut f = open_log(path, in_dir)?;
    ctx.secrets.check_file(&f, path)?;
    let len = f
        .metadata()
        .map(|m| m.len())
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?;
    let start = len.saturating_sub(TAIL_WINDOW);
    f.seek(SeekFrom::Start(start))
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?;
    let data = crate::bounded::read_bounded(&mut f, TAIL_WINDOW as usize)
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?
        .bytes;
    // `grep` looks at what would leave the machine: a line that matches only
    // because of a secret is no match (a caller cannot guess a redacted
    // value character by character).
    let data = ctx.secrets.scrub(&data);
    let lines = usize::try_from(params.i64("lines").unwrap_or(100).max(1)).unwrap_or(100);
    let (picked, truncated) = tail_bytes(
        &data,
        start > 0,
        lines,
        params.str("grep").map(str::as_bytes),
    );
    let lines: Vec<Value> = picked.into_iter().map(|l| PathBytes(l).to_json()).collect();
    ProbeOutput::from_serialize(
        &json!({"path": path, "size_bytes": len, "lines": lines}),
        truncated,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_last_lines_and_filters() {
        let (l, t) = tail_bytes(b"a\nb\nerr c\nd\n", false, 2, None);
        assert_eq!(l, vec![b"err c".to_vec(), b"d".to_vec()]);
        assert!(!t);
        let (l, _) = tail_bytes(b"a\nerr b\nc\nerr d", false, 10, Some(b"err"));
        assert_eq!(l.len(), 2);
        let (l, t) = tail_bytes(b"tial line\nx\n", true, 5, None);
        assert_eq!(l, vec![b"x".to_vec()]);
        assert!(
            t,
            "a cut window that could not supply enough lines is truncated"
        );
        let (l, _) = tail_bytes(b"a\nb\n", false, 5, Some(b""));
        assert_eq!(l.len(), 2, "an empty filter matches everything");
    }

    #[test]
    fn dmesg_text_and_json() {
        let v = dmesg_lines(
            b"[    0.000000] Linux version 6.1\n[   12.5] eth0: link up\nno stamp\n[bad] x\n",
        );
        assert_eq!(v.len(), 4);
        assert_eq!(v[1]["uptime_s"], 12.5);
        assert_eq!(v[1]["message"], "eth0: link up");
        assert_eq!(v[2]["uptime_s"], Value::Null);
        assert_eq!(v[3]["message"], "[bad] x");
        let j = dmesg_json(br#"{"dmesg":[{"pri":30,"time":1.5,"msg":"systemd[1]: x"}]}"#).unwrap();
        assert_eq!(j[0]["priority"], 6, "facility 3 (daemon) << 3 | level 6");
        assert!(dmesg_json(b"[    0.000000] plain").is_none());
    }

    #[test]
    fn allowlist_entries_are_files_or_directories() {
        let s = Settings {
            log_files: vec!["/var/log/syslog".into(), "/var/log/nginx/".into()],
        };
        assert_eq!(allowed(&s, "/var/log/syslog"), Some(false));
        assert_eq!(allowed(&s, "/var/log/nginx/access.log"), Some(true));
        assert_eq!(allowed(&s, "/var/log/nginx/access.log.1"), Some(true));
        for refused in [
            "/var/log/syslog.1",
            "/var/log/nginx/",
            "/var/log/nginx/..",
            "/var/log/nginx/.",
            "/var/log/nginx/sub/x.log",
            "/var/log/nginx/../../etc/shadow",
            "/var/log",
        ] {
            assert_eq!(allowed(&s, refused), None, "{refused}");
        }
    }
}
