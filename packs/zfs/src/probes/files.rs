//! Reading one snapshot (or the live file system): `list_dir`,
//! `read_file`, `find_files`, `content_grep`. Every read is confined
//! ([`crate::tree`]) and bounded.

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeContext, ProbeError, ProbeOutput};
use sonde_protocol::path::{PathBytes, RelativePath};
use sonde_protocol::schema::ValidatedParams;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::{Ctx, path_param, selected_json};
use crate::content::{contains, encode, read_at};
use crate::select::format_time;
use crate::tree::{self, Kind, Meta, Opened, Visit, WalkBounds, shown};

/// `read_file` (and per-side `file_diff`, `versions_of`) bytes: default and cap.
pub const READ_DEFAULT: usize = 1 << 20;
pub const READ_CAP: usize = 4 << 20;

/// An entry's facts for results.
pub fn meta_json(m: &Meta) -> Value {
    json!({
        "type": m.kind.as_str(),
        "size": m.size,
        "allocated": m.allocated,
        "mtime": format_time(m.mtime),
        "mode": format!("{:04o}", m.mode),
        "ino": m.ino,
    })
}

pub fn list_dir(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let ctx = Ctx::new(probe)?;
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let sel = ctx.select(&ds, &snaps, params, "snapshot", ctx.live_or_latest())?;
    let root = ctx.root(&ds, &snaps, sel)?;
    let rel = path_param(params, "path");
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let dir = root.open_dir(&rel)?;
    let (entries, more) = tree::list(&root, &dir, &rel, limit.value)?;
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = meta_json(&e.meta);
            v["name"] = PathBytes::from(e.name.as_slice()).to_json();
            if e.meta.kind == Kind::Symlink
                && let Ok(t) = rustix::fs::readlinkat(&dir, OsStr::from_bytes(&e.name), Vec::new())
            {
                v["symlink_target"] = PathBytes(t.into_bytes()).to_json();
            }
            v
        })
        .collect();
    ctx.output(
        json!({
            "dataset": ds.name,
            "snapshot": selected_json(&snaps, sel),
            "path": rel.to_wire(),
            "entries": list,
            "count": list.len(),
        }),
        more,
    )
}

pub fn read_file(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let ctx = Ctx::new(probe)?;
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let sel = ctx.select(&ds, &snaps, params, "snapshot", ctx.live_or_latest())?;
    let root = ctx.root(&ds, &snaps, sel)?;
    let rel = path_param(params, "path");
    let max = ctx.limit(params, "max_bytes", READ_DEFAULT, READ_CAP);
    let offset = u64::try_from(params.i64("offset").unwrap_or(0)).unwrap_or(0);
    let mut v = json!({
        "dataset": ds.name,
        "snapshot": selected_json(&snaps, sel),
        "path": rel.to_wire(),
    });
    match root.open_path(&rel)? {
        Opened::File(mut f, meta) => {
            let (bytes, more) = read_at(&mut f, offset, max.value)?;
            let (content, binary, used) = encode(&bytes, more);
            let more = more || used < bytes.len();
            v["type"] = json!("file");
            v["size"] = json!(meta.size);
            v["mtime"] = json!(format_time(meta.mtime));
            v["offset"] = json!(offset);
            v["bytes_returned"] = json!(used);
            v["next_offset"] = if more {
                json!(offset + used as u64)
            } else {
                Value::Null
            };
            v["binary"] = json!(binary);
            v["encoding"] = json!(if binary { "base64" } else { "utf-8" });
            v["content"] = content;
            ctx.output(v, more)
        }
        Opened::Symlink { target, meta } => {
            v["type"] = json!("symlink");
            v["symlink_target"] = PathBytes(target).to_json();
            v["mtime"] = json!(format_time(meta.mtime));
            v["note"] = json!(
                "a symlink is reported with its target, never followed; read the target path if it is inside the dataset"
            );
            ctx.output(v, false)
        }
        Opened::Dir(..) => Err(ProbeError::InvalidInput(format!(
            "{} is a directory; use zfs.list_dir",
            shown(&rel.to_bytes())
        ))),
        Opened::Other(_) => Err(ProbeError::InvalidInput(format!(
            "{} is not a regular file (a device, FIFO or socket); those are never opened",
            shown(&rel.to_bytes())
        ))),
    }
}

/// Shell-style glob on bytes: `*` any run, `?` one byte, `[abc]`/`[a-z]`/
/// `[!x]` one byte of a set; anything else literal.
pub fn glob(pattern: &[u8], name: &[u8]) -> bool {
    fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length of the class body incl. ']').
        let (negate, mut i) = match p.first() {
            Some(b'!' | b'^') => (true, 1),
            _ => (false, 0),
        };
        let start = i;
        let mut hit = false;
        while i < p.len() {
            if p[i] == b']' && i > start {
                return Some((hit != negate, i + 1));
            }
            if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                hit |= p[i] <= c && c <= p[i + 2];
                i += 3;
            } else {
                hit |= p[i] == c;
                i += 1;
            }
        }
        None
    }
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class(&pattern[p + 1..], name[n]) {
                Some((true, len)) => Some(len + 1),
                Some((false, _)) => None,
                None => (name[n] == b'[').then_some(1),
            },
            Some(c) => (*c == name[n]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|c| *c == b'*')
}

fn walk_bounds(ctx: &Ctx<'_>, params: &ValidatedParams) -> WalkBounds {
    let max = ctx.limit(params, "max_entries", 100_000, 1_000_000);
    WalkBounds {
        max_entries: max.value,
        deadline: ctx.walk_deadline(),
    }
}

pub fn find_files(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let ctx = Ctx::new(probe)?;
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let sel = ctx.select(&ds, &snaps, params, "snapshot", ctx.live_or_latest())?;
    let root = ctx.root(&ds, &snaps, sel)?;
    let start = path_param(params, "path");
    let fold = params.bool("ignore_case").unwrap_or(false);
    let pattern = params.str("name").unwrap_or("*");
    let pattern = if fold {
        pattern.to_ascii_lowercase()
    } else {
        pattern.to_owned()
    };
    let kind = params.str("type");
    let limit = ctx.limit(params, "limit", 100, 1000);
    let bounds = walk_bounds(&ctx, params);
    let mut found = Vec::new();
    let mut more = false;
    let stats = tree::walk(&root, &start, bounds, |p, e| {
        let name = if fold {
            e.name.to_ascii_lowercase()
        } else {
            e.name.clone()
        };
        if glob(pattern.as_bytes(), &name) && kind.is_none_or(|k| k == e.meta.kind.as_str()) {
            if found.len() >= limit.value {
                more = true;
                return Visit::Stop;
            }
            let mut v = meta_json(&e.meta);
            v["path"] = p.to_wire().to_json();
            found.push(v);
        }
        Visit::Descend
    })?;
    ctx.output(
        json!({
            "dataset": ds.name,
            "snapshot": selected_json(&snaps, sel),
            "matches": found,
            "entries_walked": stats.entries,
            "unreadable_dirs": stats.unreadable,
        }),
        more || stats.truncated,
    )
}

/// Bytes of a matching line shown, at most.
const LINE_SHOWN: usize = 1000;

pub fn content_grep(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let ctx = Ctx::new(probe)?;
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let sel = ctx.select(&ds, &snaps, params, "snapshot", ctx.live_or_latest())?;
    let root = ctx.root(&ds, &snaps, sel)?;
    let start = path_param(params, "path");
    let fold = params.bool("ignore_case").unwrap_or(false);
    let text = params
        .str("text")
        .ok_or_else(|| ProbeError::InvalidInput("parameter `text` is required".into()))?;
    if text.is_empty() {
        return Err(ProbeError::InvalidInput("`text` must not be empty".into()));
    }
    let needle: Vec<u8> = if fold {
        text.to_ascii_lowercase().into_bytes()
    } else {
        text.as_bytes().to_vec()
    };
    let name_glob = params.str("name").map(str::as_bytes);
    let limit = ctx.limit(params, "limit", 100, 1000);
    let per_file = ctx.limit(params, "max_file_bytes", READ_DEFAULT, READ_CAP);
    let bounds = walk_bounds(&ctx, params);
    let mut files: Vec<RelativePath> = Vec::new();
    let stats = tree::walk(&root, &start, bounds, |p, e| {
        if e.meta.kind == Kind::File && name_glob.is_none_or(|g| glob(g, &e.name)) {
            files.push(p.clone());
        }
        Visit::Descend
    })?;
    let mut matches = Vec::new();
    let mut truncated = stats.truncated;
    let (mut searched, mut binary, mut cut_files) = (0, 0, 0);
    'files: for f in &files {
        if std::time::Instant::now() >= bounds.deadline {
            truncated = true;
            break;
        }
        let Ok(Opened::File(mut file, _)) = root.open_path(f) else {
            continue;
        };
        let Ok((bytes, more)) = read_at(&mut file, 0, per_file.value) else {
            continue;
        };
        searched += 1;
        if bytes[..bytes.len().min(8192)].contains(&0) {
            binary += 1;
            continue;
        }
        if more {
            cut_files += 1;
            truncated = true;
        }
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let hit = if fold {
                contains(&line.to_ascii_lowercase(), &needle)
            } else {
                contains(line, &needle)
            };
            if hit {
                if matches.len() >= limit.value {
                    truncated = true;
                    break 'files;
                }
                matches.push(json!({
                    "path": f.to_wire(),
                    "line_number": i + 1,
                    "line": PathBytes::from(&line[..line.len().min(LINE_SHOWN)]),
                }));
            }
        }
    }
    ctx.output(
        json!({
            "dataset": ds.name,
            "snapshot": selected_json(&snaps, sel),
            "text": text,
            "matches": matches,
            "files_searched": searched,
            "binary_files_skipped": binary,
            "files_read_partly": cut_files,
            "entries_walked": stats.entries,
        }),
        truncated,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"*.conf", b"nginx.conf"));
        assert!(!glob(b"*.conf", b"nginx.conf.bak"));
        assert!(glob(b"ng?nx*", b"nginx.conf"));
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXXbYYc"));
        assert!(!glob(b"a*b*c", b"aXXcYYb"));
        assert!(glob(b"f[0-9][0-9].txt", b"f42.txt"));
        assert!(!glob(b"f[!0-9]*", b"f4"));
        assert!(glob(b"[ab]", b"b"));
        assert!(glob(b"[", b"["));
        assert!(glob(b"*\xff*", b"bad\xffname"));
        assert!(!glob(b"", b"x"));
    }
}
