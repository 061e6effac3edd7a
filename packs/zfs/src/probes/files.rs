//! Reading one snapshot (or the live file system): `list_dir`,
//! `read_file`, `find_files`, `content_grep`. Every read is confined
//! ([`crate::tree`]) and bounded.

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
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

pub fn list_dir(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
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

pub fn read_file(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
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

/// A name pattern (`*.conf`, `ng?nx*`, `f[0-9][0-9].txt`, `[!.]*`,
/// `*.{jpg,png}`), matched with `globset` against one name (never a path:
/// `*` does not cross `/`), byte for byte so names that are not UTF-8 can
/// match too.
#[derive(Debug, Clone)]
pub struct NameGlob(globset::GlobMatcher);

impl NameGlob {
    /// Compiles `pattern`; an invalid one is a clear error.
    pub fn new(param: &str, pattern: &str, ignore_case: bool) -> Result<NameGlob, ProbeError> {
        globset::GlobBuilder::new(pattern)
            .case_insensitive(ignore_case)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map(|g| NameGlob(g.compile_matcher()))
            .map_err(|e| {
                ProbeError::InvalidInput(format!(
                    "{param}: {pattern:?} is not a valid name pattern ({}); use * for any run of characters, ? for one, [a-z] for one of a set, [!x] for one not in it, {{a,b}} for either",
                    e.kind()
                ))
            })
    }

    pub fn matches(&self, name: &[u8]) -> bool {
        self.0
            .is_match(std::path::Path::new(OsStr::from_bytes(name)))
    }

    /// [`NameGlob::matches`] on the name as it would leave the machine
    /// (a name can hold a secret: `token=…`): a match that exists only
    /// because of a secret is no match. Names are scrubbed only when they
    /// match as they are.
    pub fn matches_scrubbed(&self, name: &[u8], secrets: &sonde_packs::SecretGuard) -> bool {
        self.matches(name) && self.matches(&secrets.scrub(name))
    }
}

fn walk_bounds(ctx: &Ctx<'_>, params: &ValidatedParams) -> WalkBounds {
    let max = ctx.limit(params, "max_entries", 100_000, 1_000_000);
    WalkBounds {
        max_entries: max.value,
        deadline: ctx.walk_deadline(),
    }
}

pub fn find_files(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let sel = ctx.select(&ds, &snaps, params, "snapshot", ctx.live_or_latest())?;
    let root = ctx.root(&ds, &snaps, sel)?;
    let start = path_param(params, "path");
    let fold = params.bool("ignore_case").unwrap_or(false);
    let glob = NameGlob::new("name", params.str("name").unwrap_or("*"), fold)?;
    let kind = params.str("type");
    let limit = ctx.limit(params, "limit", 100, 1000);
    let bounds = walk_bounds(ctx, params);
    let mut found = Vec::new();
    let mut more = false;
    let stats = tree::walk(&root, &start, bounds, |p, e| {
        if glob.matches_scrubbed(&e.name, ctx.probe.secrets)
            && kind.is_none_or(|k| k == e.meta.kind.as_str())
        {
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

pub fn content_grep(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
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
    let name_glob = params
        .str("name")
        .map(|p| NameGlob::new("name", p, false))
        .transpose()?;
    let limit = ctx.limit(params, "limit", 100, 1000);
    let per_file = ctx.limit(params, "max_file_bytes", READ_DEFAULT, READ_CAP);
    let bounds = walk_bounds(ctx, params);
    // `path` may name one regular file (searched alone) or a directory
    // (searched below, optionally only files whose name matches `name`).
    let (files, stats, scope) = match root.open_path(&start)? {
        Opened::File(..) => (vec![start.clone()], tree::WalkStats::default(), "file"),
        Opened::Dir(..) => {
            let mut files: Vec<RelativePath> = Vec::new();
            let stats = tree::walk(&root, &start, bounds, |p, e| {
                if e.meta.kind == Kind::File
                    && name_glob
                        .as_ref()
                        .is_none_or(|g| g.matches_scrubbed(&e.name, ctx.probe.secrets))
                {
                    files.push(p.clone());
                }
                Visit::Descend
            })?;
            (files, stats, "directory")
        }
        Opened::Symlink { target, .. } => {
            return Err(ProbeError::InvalidInput(format!(
                "{} is a symlink (to {}); symlinks are reported, never followed: search the target's path if it is inside the dataset",
                shown(&start.to_bytes()),
                String::from_utf8_lossy(&target)
            )));
        }
        Opened::Other(_) => {
            return Err(ProbeError::InvalidInput(format!(
                "{} is not a regular file or directory (a device, FIFO or socket); those are never opened",
                shown(&start.to_bytes())
            )));
        }
    };
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
        // The search runs on the text as it would leave the machine: a
        // match that exists only because of a secret is no match (lines
        // keep their numbers; a PEM block is redacted on each of its lines).
        let bytes = ctx.probe.secrets.scrub_lines(&bytes);
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
    let mut data = json!({
        "dataset": ds.name,
        "snapshot": selected_json(&snaps, sel),
        "path": start.to_wire(),
        "searched": scope,
        "text": text,
        "matches": matches,
        "files_searched": searched,
        "binary_files_skipped": binary,
        "files_read_partly": cut_files,
        "entries_walked": stats.entries,
    });
    if scope == "file" && name_glob.is_some() {
        data["note"] = json!(
            "`path` names a file: it was searched whatever `name` says (`name` filters the files of a directory)"
        );
    }
    if cut_files > 0 {
        data["note"] = json!(format!(
            "{cut_files} file(s) were searched only in their first {} bytes (max_file_bytes)",
            per_file.value
        ));
    }
    ctx.output(data, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, n: &[u8]| NameGlob::new("name", p, false).unwrap().matches(n);
        assert!(m("*.conf", b"nginx.conf"));
        assert!(!m("*.conf", b"nginx.conf.bak"));
        assert!(m("ng?nx*", b"nginx.conf"));
        assert!(m("*", b""));
        assert!(m("a*b*c", b"aXXbYYc"));
        assert!(!m("a*b*c", b"aXXcYYb"));
        assert!(m("f[0-9][0-9].txt", b"f42.txt"));
        assert!(!m("f[!0-9]*", b"f4"));
        assert!(m("[ab]", b"b"));
        assert!(m("*.{jpg,png}", b"x.png"));
        assert!(
            m("*name.txt", b"bad\xffname.txt"),
            "names that are not UTF-8 match too"
        );
        assert!(!m("", b"x"));
        assert!(
            NameGlob::new("name", "*.CONF", true)
                .unwrap()
                .matches(b"nginx.conf")
        );
        let err = NameGlob::new("name", "[", false).unwrap_err();
        assert!(
            matches!(err, ProbeError::InvalidInput(ref m) if m.contains("not a valid name pattern")),
            "{err:?}"
        );
    }
}
