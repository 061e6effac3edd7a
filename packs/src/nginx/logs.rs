//! The log probes: `error_log`, `access_log`, `access_summary` and
//! `logs.list`. Files are read only when the settings allowlist them
//! (`log_paths`), only if they are regular files (never a FIFO or device,
//! never one of the agent's own files), from the end, bounded. Every
//! filter, status count and "top" list works on **scrubbed** text.

use serde_json::{Value, json};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;

use super::access::{self, Entry, LogFormat, StatusFilter};
use super::errorlog::{self, ErrorEntry};
use super::{Settings, config, servers};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// Most bytes the tails read from the end of a file.
pub const TAIL_WINDOW: u64 = 4 << 20;
/// Most bytes `access_summary` reads (from the end, newest first).
pub const SUMMARY_MAX_BYTES: u64 = 64 << 20;
/// Block size for reading backwards.
const BLOCK: u64 = 4 << 20;
/// Most distinct paths and clients counted (memory bound); past it, new
/// ones are counted under `(other)`.
const MAX_DISTINCT: usize = 50_000;

/// How `path` is allowed by `log_paths`: exactly (`Some(false)`), as a
/// regular file directly inside a listed directory (`Some(true)`), or not.
pub fn allowed(settings: &Settings, path: &str) -> Option<bool> {
    if settings
        .log_paths
        .iter()
        .any(|p| p == path && !p.ends_with('/'))
    {
        return Some(false);
    }
    let (dir, name) = path.rsplit_once('/')?;
    let in_dir = settings
        .log_paths
        .iter()
        .any(|p| p.ends_with('/') && p.trim_end_matches('/') == dir);
    (in_dir && !name.is_empty() && name != "." && name != "..").then_some(true)
}

fn not_allowed(settings: &Settings, path: &str) -> ProbeError {
    ProbeError::Denied(format!(
        "{path} is not an allowlisted nginx log; add it (or its directory, with a trailing /) to `log_paths` under [packs.nginx] in agent.toml (allowed: {})",
        if settings.log_paths.is_empty() {
            "nothing".to_owned()
        } else {
            settings.log_paths.join(", ")
        }
    ))
}

/// Opens an allowlisted log: non-blocking, no final symlink inside a
/// listed directory, regular files only, never the agent's own files.
pub fn open_log(
    ctx: &ProbeContext<'_>,
    settings: &Settings,
    path: &str,
) -> Result<File, ProbeError> {
    use rustix::fs::{Mode, OFlags};
    let in_dir = allowed(settings, path).ok_or_else(|| not_allowed(settings, path))?;
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    if in_dir {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rustix::fs::open(std::ffi::OsStr::from_bytes(path.as_bytes()), flags, Mode::empty())
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => ProbeError::NotFound(format!(
                "{path} does not exist: is nginx logging there? (`access_log`/`error_log` in its configuration; the pack's defaults are access_log and error_log under [packs.nginx])"
            )),
            rustix::io::Errno::ACCESS | rustix::io::Errno::PERM => ProbeError::Failed(format!(
                "{path} is not readable by the agent's user ({e}): on Debian nginx logs belong to group adm, so `usermod -aG adm sonde` (or SupplementaryGroups=adm in the unit) and restart sonde-agent"
            )),
            rustix::io::Errno::LOOP if in_dir => ProbeError::Denied(format!(
                "{path} is a symbolic link; files in an allowlisted directory are read only if they are regular files"
            )),
            e => ProbeError::Failed(format!("cannot open {path}: {e}")),
        })?;
    let file = File::from(fd);
    ctx.secrets.check_file(&file, path)?;
    let meta = file
        .metadata()
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?;
    if !meta.is_file() {
        return Err(ProbeError::Denied(format!(
            "{path} is not a regular file; only regular files are read"
        )));
    }
    Ok(file)
}

/// The end of `file` (at most `window` bytes), scrubbed, split in lines
/// (a first partial line dropped when the window starts mid-file).
fn tail_lines(
    ctx: &ProbeContext<'_>,
    file: &mut File,
    path: &str,
    window: u64,
) -> Result<(Vec<Vec<u8>>, u64, bool), ProbeError> {
    let len = file
        .metadata()
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?
        .len();
    let start = len.saturating_sub(window);
    file.seek(SeekFrom::Start(start))
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?;
    let data = crate::bounded::read_bounded(&mut *file, window as usize)
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?
        .bytes;
    let data = ctx.secrets.scrub(&data);
    let mut lines: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    Ok((lines, len, start > 0))
}

fn lines_param(params: &ValidatedParams) -> usize {
    usize::try_from(params.i64("lines").unwrap_or(100).max(1)).unwrap_or(100)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    needle.is_empty() || memchr::memmem::find(hay, needle.as_bytes()).is_some()
}

pub fn error_log(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let path = params.str("path").unwrap_or(&settings.error_log).to_owned();
    let mut file = open_log(ctx, &settings, &path)?;
    let (lines, size, cut) = tail_lines(ctx, &mut file, &path, TAIL_WINDOW)?;
    let want = lines_param(params);
    let min_rank = params
        .str("level")
        .and_then(errorlog::level_rank)
        .unwrap_or(0);
    let grep = params.str("grep").unwrap_or("");
    let mut picked: Vec<Value> = Vec::new();
    let mut parsed: Vec<ErrorEntry> = Vec::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for line in lines.iter().rev() {
        if picked.len() >= want {
            break;
        }
        if !contains(line, grep) {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        match errorlog::parse_line(&text) {
            Some(e) => {
                if errorlog::level_rank(&e.level).unwrap_or(0) < min_rank {
                    continue;
                }
                *counts.entry(e.level.clone()).or_default() += 1;
                picked.push(serde_json::to_value(&e).unwrap_or(Value::Null));
                parsed.push(e);
            }
            // A line that is not an nginx entry (a continuation) is kept
            // raw when no level filter asks for parsed entries only.
            None if min_rank == 0 => picked.push(json!({"raw": PathBytes(line.clone()).to_json()})),
            None => {}
        }
    }
    picked.reverse();
    parsed.reverse();
    let findings = error_findings(&parsed, &path);
    let truncated = cut && picked.len() < want;
    ProbeOutput::from_serialize(
        &json!({
            "path": path,
            "size_bytes": size,
            "entries": picked,
            "counts_by_level": counts,
            "findings": findings,
        }),
        truncated,
    )
}

/// Findings over error entries: the severe levels, and known trouble.
pub fn error_findings(entries: &[ErrorEntry], path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let severe = entries
        .iter()
        .filter(|e| errorlog::level_rank(&e.level) >= errorlog::level_rank("crit"))
        .count();
    if severe > 0 {
        let last = entries
            .iter()
            .rev()
            .find(|e| errorlog::level_rank(&e.level) >= errorlog::level_rank("crit"))
            .map(|e| e.message.chars().take(200).collect::<String>())
            .unwrap_or_default();
        out.push(finding(
            "error",
            format!("{severe} crit/alert/emerg entries in {path}; the last: {last}"),
        ));
    }
    for (needle, severity, meaning) in errorlog::PATTERNS {
        let n = entries
            .iter()
            .filter(|e| e.message.contains(needle))
            .count();
        if n > 0 {
            out.push(finding(
                severity,
                format!("{n} × \"{needle}\" in {path}: {meaning}"),
            ));
        }
    }
    out
}

/// The access-log format for `path`: the settings' `access_log_format`,
/// else the `log_format` the configuration names for that file, else
/// `combined`. Returns the format and where it came from.
pub fn format_for(ctx: &ProbeContext<'_>, settings: &Settings, path: &str) -> (LogFormat, String) {
    if let Some(f) = &settings.access_log_format
        && let Ok(compiled) = LogFormat::compile(f)
    {
        return (compiled, "settings (access_log_format)".into());
    }
    if settings.read_config
        && let Ok(tree) = config::read_tree(ctx, &settings.config_root, &settings.config_file)
        && let Some(text) = servers::format_for(&tree, path)
        && let Ok(compiled) = LogFormat::compile(&text)
    {
        return (compiled, "the nginx configuration's log_format".into());
    }
    (LogFormat::combined(), "combined (nginx's default)".into())
}

fn entry_json(e: &Entry) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

pub fn access_log(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let path = params
        .str("path")
        .unwrap_or(&settings.access_log)
        .to_owned();
    let mut file = open_log(ctx, &settings, &path)?;
    let (format, format_source) = format_for(ctx, &settings, &path);
    let (lines, size, cut) = tail_lines(ctx, &mut file, &path, TAIL_WINDOW)?;
    let want = lines_param(params);
    let grep = params.str("grep").unwrap_or("");
    let path_contains = params.str("path_contains");
    let status = match params.str("status") {
        Some(s) => Some(StatusFilter::parse(s).ok_or_else(|| {
            ProbeError::InvalidInput(format!("status {s:?}: use 5xx, 4xx, … or one code"))
        })?),
        None => None,
    };
    let mut picked = Vec::new();
    let mut unparsed = 0u64;
    for line in lines.iter().rev() {
        if picked.len() >= want {
            break;
        }
        if !contains(line, grep) {
            continue;
        }
        match access::parse_line(&format, line) {
            Some(e) => {
                if status.is_some_and(|f| !f.matches(e.status)) {
                    continue;
                }
                if let Some(p) = path_contains
                    && !e.path.as_deref().is_some_and(|x| x.contains(p))
                {
                    continue;
                }
                picked.push(entry_json(&e));
            }
            None => {
                unparsed += 1;
                if status.is_none() && path_contains.is_none() {
                    picked.push(json!({"raw": PathBytes(line.clone()).to_json()}));
                }
            }
        }
    }
    picked.reverse();
    ProbeOutput::from_serialize(
        &json!({
            "path": path,
            "size_bytes": size,
            "format": format.as_str(),
            "format_source": format_source,
            "entries": picked,
            "unparsed_lines": unparsed,
        }),
        cut && picked.len() < want,
    )
}

#[derive(Default)]
struct Tally {
    requests: u64,
    errors_5xx: u64,
    errors_4xx: u64,
    bytes: u64,
    time_sum: f64,
    timed: u64,
}

impl Tally {
    fn add(&mut self, e: &Entry) {
        self.requests += 1;
        match e.status.map(|s| s / 100) {
            Some(5) => self.errors_5xx += 1,
            Some(4) => self.errors_4xx += 1,
            _ => {}
        }
        self.bytes += e.bytes.unwrap_or(0);
        if let Some(t) = e.request_time_s {
            self.time_sum += t;
            self.timed += 1;
        }
    }
}

fn bump(map: &mut HashMap<String, Tally>, key: &str, e: &Entry) {
    let key = if map.contains_key(key) || map.len() < MAX_DISTINCT {
        key
    } else {
        "(other)"
    };
    map.entry(key.to_owned()).or_default().add(e);
}

fn top(map: &HashMap<String, Tally>, n: usize, key: &str) -> Vec<Value> {
    let mut v: Vec<(&String, &Tally)> = map.iter().collect();
    v.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(n)
        .map(|(k, t)| {
            json!({
                key: k,
                "requests": t.requests,
                "errors_5xx": t.errors_5xx,
                "errors_4xx": t.errors_4xx,
                "bytes": t.bytes,
                "avg_request_time_s": (t.timed > 0).then(|| (t.time_sum / t.timed as f64 * 1000.0).round() / 1000.0),
            })
        })
        .collect()
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 10_000.0 / whole as f64).round() / 100.0
    }
}

pub fn access_summary(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let settings: Settings = ctx.settings_as()?;
    let path = params
        .str("path")
        .unwrap_or(&settings.access_log)
        .to_owned();
    let mut file = open_log(ctx, &settings, &path)?;
    let (format, format_source) = format_for(ctx, &settings, &path);
    let window_s = params.i64("window_s").unwrap_or(3600).max(1);
    let n_top = usize::try_from(params.i64("top").unwrap_or(10).max(1)).unwrap_or(10);
    let path_contains = params.str("path_contains");
    let now_ms = sonde_protocol::time::now_ms();
    let from_ms = now_ms - window_s * 1000;
    let len = file
        .metadata()
        .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?
        .len();

    let mut total = Tally::default();
    let mut by_status: HashMap<u16, u64> = HashMap::new();
    let mut by_path: HashMap<String, Tally> = HashMap::new();
    let mut by_client: HashMap<String, Tally> = HashMap::new();
    let mut by_minute: HashMap<i64, u64> = HashMap::new();
    let mut unparsed = 0u64;
    let mut undated = 0u64;
    let mut oldest_seen: Option<i64> = None;
    let mut newest_seen: Option<i64> = None;
    let mut reached_window_start = false;
    let mut read = 0u64;
    let mut pos = len;
    let mut carry: Vec<u8> = Vec::new();
    let mut stopped_early = false;
    'blocks: while pos > 0 {
        if read >= SUMMARY_MAX_BYTES || ctx.expired() {
            stopped_early = true;
            break;
        }
        let start = pos.saturating_sub(BLOCK);
        file.seek(SeekFrom::Start(start))
            .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?;
        let mut block = vec![0u8; (pos - start) as usize];
        file.read_exact(&mut block)
            .map_err(|e| ProbeError::Failed(format!("{path}: {e}")))?;
        read += pos - start;
        block.extend_from_slice(&carry);
        carry.clear();
        let complete: &[u8] = if start > 0 {
            match memchr::memchr(b'\n', &block) {
                Some(i) => {
                    carry = block[..i].to_vec();
                    &block[i + 1..]
                }
                None => {
                    carry = block;
                    pos = start;
                    continue;
                }
            }
        } else {
            &block
        };
        let clean = ctx.secrets.scrub(complete);
        for line in clean.rsplit(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let Some(e) = access::parse_line(&format, line) else {
                unparsed += 1;
                continue;
            };
            let Some(t) = e.time_ms else {
                undated += 1;
                continue;
            };
            if t < from_ms {
                reached_window_start = true;
                break 'blocks;
            }
            if t > now_ms + 300_000 {
                // From the future (a clock jump): not in the window.
                continue;
            }
            oldest_seen = Some(oldest_seen.map_or(t, |o| o.min(t)));
            newest_seen = Some(newest_seen.map_or(t, |o| o.max(t)));
            if let Some(p) = path_contains
                && !e.path.as_deref().is_some_and(|x| x.contains(p))
            {
                continue;
            }
            total.add(&e);
            if let Some(s) = e.status {
                *by_status.entry(s).or_default() += 1;
            }
            bump(&mut by_path, e.path.as_deref().unwrap_or("(none)"), &e);
            bump(&mut by_client, e.client.as_deref().unwrap_or("(none)"), &e);
            *by_minute.entry(t.div_euclid(60_000)).or_default() += 1;
        }
        pos = start;
    }
    // The window is covered when its start was reached, or the file
    // began inside it (then the log simply has nothing older).
    let covered = reached_window_start || (!stopped_early && pos == 0);
    let mut classes: Vec<(String, u64)> = Vec::new();
    for c in 1..=5u16 {
        let n: u64 = by_status
            .iter()
            .filter(|(s, _)| **s / 100 == c)
            .map(|(_, n)| n)
            .sum();
        if n > 0 {
            classes.push((format!("{c}xx"), n));
        }
    }
    let mut codes: Vec<(u16, u64)> = by_status.into_iter().collect();
    codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rate_5xx = pct(total.errors_5xx, total.requests);
    let rate_4xx = pct(total.errors_4xx, total.requests);
    let busiest_minute = by_minute.values().copied().max().unwrap_or(0);
    let minutes = (window_s as f64 / 60.0).max(1.0 / 60.0);
    let mut findings = Vec::new();
    if total.requests >= 20 && rate_5xx >= 5.0 {
        findings.push(finding("error", format!("{rate_5xx}% of {} requests in the last {window_s} s failed with 5xx (server errors): see error_log", total.requests)));
    } else if total.requests >= 20 && rate_5xx >= 1.0 {
        findings.push(finding(
            "warning",
            format!(
                "{rate_5xx}% of {} requests in the last {window_s} s failed with 5xx",
                total.requests
            ),
        ));
    }
    let client_closed = codes.iter().find(|(c, _)| *c == 499).map_or(0, |(_, n)| *n);
    if total.requests >= 20 && pct(client_closed, total.requests) >= 5.0 {
        findings.push(finding("warning", format!("{client_closed} requests ended with 499 (the client gave up waiting): responses are slow")));
    }
    if let Some(t) = top(&by_client, 1, "client").first()
        && total.requests >= 100
        && t["requests"].as_u64().unwrap_or(0) * 2 > total.requests
    {
        findings.push(finding(
            "info",
            format!(
                "one client ({}) made more than half of the {} requests",
                t["client"], total.requests
            ),
        ));
    }
    if !covered {
        findings.push(finding("info", format!(
            "only the newest {} MiB of {path} were read; the summary starts at the oldest request read",
            read >> 20
        )));
    }
    ProbeOutput::from_serialize(
        &json!({
            "path": path,
            "size_bytes": len,
            "format": format.as_str(),
            "format_source": format_source,
            "window_s": window_s,
            "from": sonde_protocol::time::format_utc_ms(from_ms),
            "to": sonde_protocol::time::format_utc_ms(now_ms),
            "covered": covered,
            "oldest_request": oldest_seen.map(sonde_protocol::time::format_utc_ms),
            "newest_request": newest_seen.map(sonde_protocol::time::format_utc_ms),
            "requests": total.requests,
            "requests_per_minute": ((total.requests as f64 / minutes) * 100.0).round() / 100.0,
            "busiest_minute_requests": busiest_minute,
            "bytes_sent": total.bytes,
            "avg_request_time_s": (total.timed > 0).then(|| (total.time_sum / total.timed as f64 * 1000.0).round() / 1000.0),
            "error_rate_5xx_percent": rate_5xx,
            "error_rate_4xx_percent": rate_4xx,
            "status_classes": classes.into_iter().map(|(c, n)| json!({"class": c, "requests": n})).collect::<Vec<_>>(),
            "status_codes": codes.iter().take(20).map(|(c, n)| json!({"status": c, "requests": n})).collect::<Vec<_>>(),
            "top_paths": top(&by_path, n_top, "path"),
            "top_clients": top(&by_client, n_top, "client"),
            "unparsed_lines": unparsed,
            "undated_lines": undated,
            "bytes_read": read,
            "findings": findings,
        }),
        !covered,
    )
}

/// Every file the allowlist names (directories listed, regular files only).
pub fn list(ctx: &ProbeContext<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    use std::os::unix::fs::MetadataExt;
    let settings: Settings = ctx.settings_as()?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let add = |path: &std::path::Path, in_dir: bool, out: &mut Vec<Value>| {
        let meta = if in_dir {
            std::fs::symlink_metadata(path)
        } else {
            std::fs::metadata(path)
        };
        if let Ok(m) = meta
            && m.is_file()
        {
            out.push(json!({
                "path": PathBytes(path.as_os_str().as_bytes().to_vec()).to_json(),
                "size_bytes": m.len(),
                "modified_ms": m.mtime() * 1000,
                "compressed": path.extension().is_some_and(|e| e == "gz" || e == "xz" || e == "bz2" || e == "zst"),
            }));
        }
    };
    for entry in &settings.log_paths {
        if let Some(dir) = entry.strip_suffix('/') {
            match std::fs::read_dir(dir) {
                Ok(rd) => {
                    let mut paths: Vec<std::path::PathBuf> =
                        rd.flatten().map(|e| e.path()).collect();
                    paths.sort();
                    for p in paths.iter().take(1000) {
                        add(p, true, &mut files);
                    }
                }
                Err(e) => problems.push(json!({"path": entry, "error": e.to_string()})),
            }
        } else {
            let before = files.len();
            add(std::path::Path::new(entry), false, &mut files);
            if files.len() == before {
                problems.push(json!({"path": entry, "error": "not a readable regular file"}));
            }
        }
    }
    Ok(ProbeOutput::new(json!({
        "log_paths": settings.log_paths,
        "access_log": settings.access_log,
        "error_log": settings.error_log,
        "files": files,
        "unreadable": problems,
    })))
}
