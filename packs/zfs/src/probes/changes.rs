//! What changed between two points (`diff_snapshots`: `zfs diff` where the
//! ZFS has it and the agent's user is delegated `diff`, else a comparison
//! of the two trees) and what was deleted (`find_deleted`: what snapshots
//! have and the present no longer has).

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
use sonde_protocol::path::{PathBytes, RelativePath};
use sonde_protocol::schema::ValidatedParams;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use super::{Ctx, path_param, selected_json, snapshot_json};
use crate::content::{HashBudget, hash_within};
use crate::model::{self, Dataset, Snapshot};
use crate::parse::parse_diff;
use crate::select::{Selected, format_time};
use crate::tree::{
    DirKey, Kind, Meta, Name, Opened, Root, Visit, WalkBounds, errno_error, for_each_name, names,
    shown, stat_in,
};
use sonde_protocol::Digest;

/// One change between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `+` created, `-` removed, `M` modified, `R` renamed.
    pub change: char,
    pub kind: Kind,
    pub path: Vec<u8>,
    pub new_path: Option<Vec<u8>>,
}

fn change_json(c: &Change) -> Value {
    let mut v = json!({
        "change": c.change.to_string(),
        "type": c.kind.as_str(),
        "path": PathBytes(c.path.clone()),
    });
    if let Some(n) = &c.new_path {
        v["new_path"] = PathBytes(n.clone()).to_json();
    }
    v
}

/// Bounds of a tree comparison.
#[derive(Debug, Clone, Copy)]
pub struct CompareBounds {
    pub max_changes: usize,
    pub max_entries: usize,
    pub deadline: Instant,
}

/// Compares two roots below `start` (links never followed): created,
/// removed and modified entries (a file is modified when its inode, size
/// or mtime differ), and files that kept their inode under a new name as
/// renames. Returns (changes, whether a bound stopped it).
pub fn compare(
    a: &Root,
    b: &Root,
    start: &RelativePath,
    bounds: CompareBounds,
) -> Result<(Vec<Change>, bool), ProbeError> {
    let mut changes: Vec<Change> = Vec::new();
    let mut budget = bounds.max_entries;
    let mut cut = false;
    let mut stack: Vec<(OwnedFd, OwnedFd, RelativePath)> =
        vec![(a.open_dir(start)?, b.open_dir(start)?, start.clone())];
    let push = |changes: &mut Vec<Change>, c: char, kind: Kind, path: Vec<u8>| {
        changes.push(Change {
            change: c,
            kind,
            path,
            new_path: None,
        });
    };
    'dirs: while let Some((da, db, here)) = stack.pop() {
        if Instant::now() >= bounds.deadline {
            cut = true;
            break;
        }
        let what = shown(&here.to_bytes());
        let (la, ca) = names(&da, &mut budget).map_err(|e| errno_error(e, &what))?;
        let (lb, cb) = names(&db, &mut budget).map_err(|e| errno_error(e, &what))?;
        let la: BTreeMap<Vec<u8>, Name> = la
            .into_iter()
            .filter(|n| !a.hides(&here, &n.name))
            .map(|n| (n.name.clone(), n))
            .collect();
        let lb: BTreeMap<Vec<u8>, Name> = lb
            .into_iter()
            .filter(|n| !b.hides(&here, &n.name))
            .map(|n| (n.name.clone(), n))
            .collect();
        let path_of = |name: &[u8]| here.join(name).map(|p| p.to_bytes()).unwrap_or_default();
        for (name, na) in &la {
            if changes.len() >= bounds.max_changes {
                cut = true;
                break 'dirs;
            }
            match lb.get(name) {
                None => push(&mut changes, '-', na.kind, path_of(name)),
                Some(nb) if nb.kind != na.kind => {
                    push(&mut changes, '-', na.kind, path_of(name));
                    push(&mut changes, '+', nb.kind, path_of(name));
                }
                Some(_) if na.kind == Kind::Dir => {
                    if let (Some(ca), Some(cb)) =
                        (a.open_child_dir(&da, name), b.open_child_dir(&db, name))
                        && let Ok(child) = here.join(name)
                    {
                        stack.push((ca, cb, child));
                    }
                }
                Some(nb) => {
                    let modified = na.ino != nb.ino
                        || match (stat_in(&da, name), stat_in(&db, name)) {
                            (Some(ma), Some(mb)) => !ma.same_version(&mb),
                            _ => false,
                        };
                    if modified {
                        push(&mut changes, 'M', na.kind, path_of(name));
                    }
                }
            }
        }
        for (name, nb) in &lb {
            if !la.contains_key(name) {
                push(&mut changes, '+', nb.kind, path_of(name));
            }
        }
        if ca || cb {
            cut = true;
            break;
        }
    }
    changes.truncate(bounds.max_changes);
    // A file removed under one name and created under another with the
    // same inode was renamed (ZFS keeps an object's number).
    let created: HashMap<u64, usize> = changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.change == '+' && c.kind == Kind::File)
        .filter_map(|(i, c)| Some((ino_in(b, &c.path)?, i)))
        .collect();
    let mut renamed: HashSet<usize> = HashSet::new();
    for i in 0..changes.len() {
        if changes[i].change == '-'
            && changes[i].kind == Kind::File
            && let Some(ino) = ino_in(a, &changes[i].path)
            && let Some(&j) = created.get(&ino)
            && renamed.insert(j)
        {
            changes[i].change = 'R';
            changes[i].new_path = Some(changes[j].path.clone());
        }
    }
    let mut k = 0;
    changes.retain(|_| {
        k += 1;
        !renamed.contains(&(k - 1))
    });
    Ok((changes, cut))
}

fn ino_in(root: &Root, path: &[u8]) -> Option<u64> {
    let rel = RelativePath::parse(path, usize::MAX).ok()?;
    root.lstat(&rel).ok().flatten().map(|m| m.ino)
}

fn diff_kind(t: char) -> Kind {
    match t {
        'F' => Kind::File,
        '/' => Kind::Dir,
        '@' => Kind::Symlink,
        _ => Kind::Other,
    }
}

/// A path `zfs diff` printed (absolute) relative to the mount point; `None`
/// if it is not below it. The mount point itself is the empty path.
pub fn relative_to_mount(mount: &[u8], path: &[u8]) -> Option<Vec<u8>> {
    // Without a trailing `/`, so for a dataset mounted at `/` nothing is
    // stripped but the leading slash.
    let mount = mount.strip_suffix(b"/").unwrap_or(mount);
    match path.strip_prefix(mount)? {
        [] => Some(Vec::new()),
        [b'/', tail @ ..] => Some(tail.strip_suffix(b"/").unwrap_or(tail).to_vec()),
        _ => None,
    }
}

/// `zfs diff` from `from` to `to` (a snapshot or the dataset): Ok(None)
/// when this ZFS has no `zfs diff` or the user may not run it (with why).
fn zfs_diff(
    ctx: &Ctx<'_>,
    ds: &Dataset,
    from: &Snapshot,
    to: &str,
    start: &RelativePath,
    max_changes: usize,
) -> Result<Result<(Vec<Change>, bool), String>, ProbeError> {
    let out = ctx.zfs.run("zfs", "diff", &["-H", "-F", &from.name, to])?;
    if !out.success() {
        return match crate::zfs::command_error("zfs", "diff", &out) {
            ProbeError::Unsupported(m) | ProbeError::Denied(m) => Ok(Err(m)),
            other => Err(other),
        };
    }
    let mount = model::mountpoint(ds)?.as_os_str().as_bytes().to_vec();
    let strip = |p: &[u8]| relative_to_mount(&mount, p);
    let subtree = start.to_bytes();
    let within = |p: &[u8]| {
        subtree.is_empty()
            || p == subtree
            || (p.starts_with(&subtree) && p.get(subtree.len()) == Some(&b'/'))
    };
    let mut list = Vec::new();
    let mut cut = out.stdout_truncated;
    for line in parse_diff(&out.stdout) {
        let Some(path) = strip(&line.path) else {
            continue;
        };
        let new_path = line.new_path.as_deref().and_then(strip);
        if path.is_empty() || !(within(&path) || new_path.as_deref().is_some_and(within)) {
            continue;
        }
        if list.len() >= max_changes {
            cut = true;
            break;
        }
        list.push(Change {
            change: line.change,
            kind: diff_kind(line.kind),
            path,
            new_path,
        });
    }
    Ok(Ok((list, cut)))
}

pub fn diff_snapshots(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let to = ctx.select(&ds, &snaps, params, "to", ctx.live_or_latest())?;
    let from = match params.str("from") {
        Some(_) => ctx.select(&ds, &snaps, params, "from", "latest")?,
        None => match to {
            Selected::Live => ctx.select(&ds, &snaps, params, "from", "latest")?,
            Selected::Snapshot(i) if i > 0 => Selected::Snapshot(i - 1),
            Selected::Snapshot(_) => {
                return Err(ProbeError::InvalidInput(
                    "`to` is the oldest snapshot: nothing before it; give `from`".into(),
                ));
            }
        },
    };
    let (Selected::Snapshot(fi), to_index) = (from, to) else {
        return Err(ProbeError::InvalidInput(
            "`from` must be a snapshot (the older side); `to` may be live".into(),
        ));
    };
    let to_i = match to_index {
        Selected::Snapshot(i) => i,
        Selected::Live => snaps.len(),
    };
    if fi >= to_i {
        return Err(ProbeError::InvalidInput(
            "`from` must be older than `to`".into(),
        ));
    }
    let start = path_param(params, "path");
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let max_entries = ctx.limit(params, "max_entries", 100_000, 1_000_000);
    let to_name = snaps
        .get(to_i)
        .map_or(ds.name.as_str(), |s| s.name.as_str());
    let (changes, truncated, method, note) = match zfs_diff(
        ctx,
        &ds,
        &snaps[fi],
        to_name,
        &start,
        limit.value,
    )? {
        Ok((c, t)) => (c, t, "zfs diff", Value::Null),
        Err(why) => {
            let roots = ctx
                .root(&ds, &snaps, from)
                .and_then(|a| Ok((a, ctx.root(&ds, &snaps, to)?)));
            let (a, b) = match roots {
                Ok(r) => r,
                Err(ProbeError::Unsupported(m)) => {
                    return Err(ProbeError::Unsupported(format!(
                        "{why}; and the two trees cannot be compared instead: {m}"
                    )));
                }
                Err(e) => return Err(e),
            };
            let bounds = CompareBounds {
                max_changes: limit.value,
                max_entries: max_entries.value,
                deadline: ctx.walk_deadline(),
            };
            let (c, t) = compare(&a, &b, &start, bounds)?;
            let note = format!(
                "`zfs diff` could not be used ({why}); the two trees were compared instead: directories are not reported as modified, and a rename shows as R only when the inode is kept"
            );
            (c, t, "tree comparison", json!(note))
        }
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in &changes {
        *counts.entry(c.change.to_string()).or_default() += 1;
    }
    ctx.output(
        json!({
            "dataset": ds.name,
            "from": selected_json(&snaps, from),
            "to": selected_json(&snaps, to),
            "path": start.to_wire(),
            "method": method,
            "note": note,
            "counts": counts,
            "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
        }),
        truncated,
    )
}

/// An entry that a snapshot has and the present lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    /// The newest snapshot (index into the snapshots searched) that has it.
    pub newest: usize,
    pub kind: Kind,
    /// Its object number there (from the directory entry).
    pub ino: u64,
}

/// What `find_deleted` found: path → where and what it was.
pub type Deleted = BTreeMap<Vec<u8>, Gone>;

/// Statistics of a [`find_deleted_in`] run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletedStats {
    pub snapshots_examined: usize,
    /// Directories whose entry list was read.
    pub dirs_listed: usize,
    /// Directories skipped because their key matched the newer snapshot's.
    pub dirs_unchanged: usize,
    pub truncated: bool,
}

/// Finds entries below `start` that some snapshot in `snapshots` (oldest
/// first) has and `present` lacks, walking snapshots newest first. Only
/// directories that still exist are descended into (a deleted directory
/// is reported once, not its contents). A directory whose `key` equals
/// the same directory's key in the newer snapshot just examined has the
/// same names, so its names are not read again (its subdirectories still
/// are visited).
pub fn find_deleted_in(
    snapshots: &[Root],
    present: &Root,
    start: &RelativePath,
    key: impl Fn(&Meta) -> DirKey,
    max_results: usize,
    mut budget: usize,
    deadline: Instant,
) -> Result<(Deleted, DeletedStats), ProbeError> {
    let mut stats = DeletedStats::default();
    // Names in each directory of the present tree, listed once.
    let mut present_names: HashMap<Vec<u8>, Option<HashSet<Vec<u8>>>> = HashMap::new();
    // Per directory: its key in the newer snapshot, and its subdirectories
    // that still exist.
    let mut newer: HashMap<Vec<u8>, (DirKey, Vec<Vec<u8>>)> = HashMap::new();
    // Per directory: the names already found deleted (a deleted file is in
    // every snapshot before its deletion; it is recorded once, newest).
    let mut reported: HashMap<Vec<u8>, HashSet<Vec<u8>>> = HashMap::new();
    let mut found = Deleted::new();
    'snapshots: for (i, root) in snapshots.iter().enumerate().rev() {
        if Instant::now() >= deadline {
            stats.truncated = true;
            break;
        }
        stats.snapshots_examined += 1;
        let Ok(first) = root.open_dir(start) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&first) else {
            continue;
        };
        let mut stack: Vec<(OwnedFd, RelativePath, Meta)> =
            vec![(first, start.clone(), Meta::from_stat(&st))];
        while let Some((dir, here, meta)) = stack.pop() {
            let id = here.to_bytes();
            let k = key(&meta);
            let subdirs: Vec<Vec<u8>> = match newer.get(&id) {
                Some((prev, subdirs)) if *prev == k => {
                    stats.dirs_unchanged += 1;
                    subdirs.clone()
                }
                _ => {
                    stats.dirs_listed += 1;
                    let present_set = present_names.entry(id.clone()).or_insert_with(|| {
                        let fd = present.open_dir(&here).ok()?;
                        let mut all = usize::MAX;
                        names(&fd, &mut all).ok().map(|(l, _)| {
                            l.into_iter()
                                .map(|n| n.name)
                                .filter(|n| !present.hides(&here, n))
                                .collect()
                        })
                    });
                    let seen = reported.get(&id);
                    let mut subdirs = Vec::new();
                    let mut gone: Vec<(Vec<u8>, Kind, u64)> = Vec::new();
                    let cut = for_each_name(&dir, &mut budget, |name, kind, ino| {
                        if root.hides(&here, name) {
                            return;
                        }
                        if present_set.as_ref().is_some_and(|s| s.contains(name)) {
                            if kind == Kind::Dir {
                                subdirs.push(name.to_vec());
                            }
                        } else if !seen.is_some_and(|s| s.contains(name)) {
                            gone.push((name.to_vec(), kind, ino));
                        }
                    })
                    .map_err(|e| errno_error(e, &shown(&id)))?;
                    for (name, kind, ino) in gone {
                        if found.len() >= max_results {
                            stats.truncated = true;
                            break 'snapshots;
                        }
                        let Ok(child) = here.join(&name) else {
                            continue;
                        };
                        found.insert(
                            child.to_bytes(),
                            Gone {
                                newest: i,
                                kind,
                                ino,
                            },
                        );
                        reported.entry(id.clone()).or_default().insert(name);
                    }
                    if cut {
                        stats.truncated = true;
                        break 'snapshots;
                    }
                    newer.insert(id, (k, subdirs.clone()));
                    subdirs
                }
            };
            for name in subdirs {
                if let (Some((fd, m)), Ok(child)) =
                    (root.open_child_dir_meta(&dir, &name), here.join(&name))
                {
                    stack.push((fd, child, m));
                }
            }
        }
    }
    Ok((found, stats))
}

/// How a gone path was found to live on under another name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub new_path: Vec<u8>,
    /// `object number` (+ ` and birth time` when both were known and
    /// equal), or `content` (a new object with the same bytes).
    pub identity: &'static str,
}

/// What [`find_moves`] found and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveSearch {
    /// Old path → where it lives now.
    pub moves: BTreeMap<Vec<u8>, Moved>,
    pub entries_walked: usize,
    /// Neither the walk nor the hashing was cut short.
    pub complete: bool,
    pub bytes_hashed: u64,
}

/// Bytes `find_deleted` may hash to match a moved file by its content.
pub const MOVE_HASH_BUDGET: u64 = 1 << 30;

/// Which gone entries live on in `present` under another name: by object
/// number first (ZFS keeps it across renames and moves within a dataset;
/// checked with the birth time where the file system reports one, as a
/// deleted file's number can be reused), then — for regular files whose
/// object is gone — by content: a file of the same size and SHA-256 that
/// appeared under a path the old snapshot did not have (a move done as a
/// copy and a delete). One walk of the present tree, bounded by `bounds`.
pub fn find_moves(
    gone: &Deleted,
    roots: &[Root],
    present: &Root,
    bounds: WalkBounds,
    secrets: &sonde_packs::SecretGuard,
) -> Result<MoveSearch, ProbeError> {
    let mut moves = BTreeMap::new();
    if gone.is_empty() {
        return Ok(MoveSearch {
            moves,
            entries_walked: 0,
            complete: true,
            bytes_hashed: 0,
        });
    }
    let inos: HashSet<u64> = gone.values().map(|g| g.ino).collect();
    // Sizes of gone regular files, for the content fallback.
    let mut sizes: HashMap<Vec<u8>, u64> = HashMap::new();
    for (path, g) in gone {
        if g.kind == Kind::File
            && let Some(root) = roots.get(g.newest)
            && let Ok(rel) = RelativePath::parse(path, usize::MAX)
            && let Ok(Some(m)) = root.lstat(&rel)
            && m.size > 0
        {
            sizes.insert(path.clone(), m.size);
        }
    }
    let wanted_sizes: HashSet<u64> = sizes.values().copied().collect();
    let mut by_ino: HashMap<u64, Vec<(RelativePath, Kind)>> = HashMap::new();
    let mut by_size: HashMap<u64, Vec<RelativePath>> = HashMap::new();
    let stats = crate::tree::walk(present, &RelativePath::root(), bounds, |p, e| {
        if inos.contains(&e.meta.ino) {
            by_ino
                .entry(e.meta.ino)
                .or_default()
                .push((p.clone(), e.meta.kind));
        }
        if e.meta.kind == Kind::File && wanted_sizes.contains(&e.meta.size) {
            by_size.entry(e.meta.size).or_default().push(p.clone());
        }
        Visit::Descend
    })?;
    let mut budget = HashBudget::new(MOVE_HASH_BUDGET, bounds.deadline);
    let mut digests: HashMap<Vec<u8>, Option<Digest>> = HashMap::new();
    for (path, g) in gone {
        let (Some(old_root), Ok(old_rel)) =
            (roots.get(g.newest), RelativePath::parse(path, usize::MAX))
        else {
            continue;
        };
        // The new name must not have been there, as this object, when the
        // old one was: else the old name was a second link, removed.
        let absent_then = |rel: &RelativePath| {
            old_root
                .lstat(rel)
                .ok()
                .flatten()
                .is_none_or(|m| m.ino != g.ino)
        };
        let by_object = by_ino.get(&g.ino).and_then(|cands| {
            cands.iter().find(|(rel, kind)| {
                *kind == g.kind
                    && absent_then(rel)
                    && match (old_root.birth_time(&old_rel), present.birth_time(rel)) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    }
            })
        });
        if let Some((rel, _)) = by_object {
            let verified = old_root.birth_time(&old_rel).is_some();
            moves.insert(
                path.clone(),
                Moved {
                    new_path: rel.to_bytes(),
                    identity: if verified {
                        "object number and birth time"
                    } else {
                        "object number"
                    },
                },
            );
            continue;
        }
        // The object is gone: the same bytes under a new object?
        let Some(size) = sizes.get(path) else {
            continue;
        };
        let Some(cands) = by_size.get(size) else {
            continue;
        };
        let old_digest = match old_root.open_path(&old_rel) {
            Ok(Opened::File(f, m)) => hash_within(&f, m.size, &mut budget, secrets)?,
            _ => None,
        };
        let Some(old_digest) = old_digest else {
            continue;
        };
        for rel in cands {
            // Only a path the old snapshot did not have can be where it went.
            if old_root.lstat(rel).ok().flatten().is_some() {
                continue;
            }
            let key = rel.to_bytes();
            let d = match digests.get(&key) {
                Some(d) => *d,
                None => {
                    let d = match present.open_path(rel) {
                        Ok(Opened::File(f, m)) => hash_within(&f, m.size, &mut budget, secrets)?,
                        _ => None,
                    };
                    digests.insert(key.clone(), d);
                    d
                }
            };
            if d == Some(old_digest) {
                moves.insert(
                    path.clone(),
                    Moved {
                        new_path: key,
                        identity: "content",
                    },
                );
                break;
            }
        }
    }
    Ok(MoveSearch {
        moves,
        entries_walked: stats.entries,
        complete: !stats.truncated && !budget.ran_out(),
        bytes_hashed: budget.bytes_hashed,
    })
}

pub fn find_deleted(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let start = path_param(params, "path");
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let budget = ctx.limit(params, "max_entries", 50_000_000, 500_000_000);
    // Compared with `before` (a snapshot or live), by default live, or
    // (with live = false) the newest snapshot.
    let default_present = if ctx.settings.live { "live" } else { "latest" };
    let present_sel = ctx.select(&ds, &snaps, params, "before", default_present)?;
    let considered_end = match present_sel {
        Selected::Live => snaps.len(),
        Selected::Snapshot(i) => i,
    };
    let oldest = match params.str("since") {
        None => 0,
        Some(_) => match ctx.select(&ds, &snaps, params, "since", "oldest")? {
            Selected::Snapshot(i) => i,
            Selected::Live => considered_end,
        },
    };
    if params.str("since").is_some() && oldest >= considered_end {
        return Err(ProbeError::InvalidInput(
            "`since` must be older than `before` (nothing lies between them)".into(),
        ));
    }
    if considered_end == 0 {
        return Err(ProbeError::InvalidInput(format!(
            "{} has no snapshot before {}: nothing to compare with",
            ds.name,
            params.str("before").unwrap_or(default_present)
        )));
    }
    let snapdir = model::snapshot_dir(&ds)?;
    let present = ctx.root(&ds, &snaps, present_sel)?;
    let roots: Vec<Root> = snaps[oldest..considered_end]
        .iter()
        .map(|s| ctx.snapshot_root(&snapdir, &ds, s))
        .collect::<Result<_, _>>()?;
    let deadline = ctx
        .probe
        .deadline
        .min(Instant::now() + std::time::Duration::from_secs(120));
    let (found, stats) = find_deleted_in(
        &roots,
        &present,
        &start,
        Meta::dir_key,
        limit.value,
        budget.value,
        deadline,
    )?;
    let walk = WalkBounds {
        max_entries: 1_000_000,
        deadline,
    };
    let MoveSearch {
        moves,
        entries_walked: walked,
        complete: moves_complete,
        bytes_hashed: hashed,
    } = find_moves(&found, &roots, &present, walk, ctx.probe.secrets)?;
    let label_gone_by = |i: usize| {
        snaps
            .get(i + 1)
            .filter(|_| i + 1 < considered_end)
            .map_or_else(|| selected_json(&snaps, present_sel), snapshot_json)
    };
    let mut list: Vec<(&Vec<u8>, &Gone)> = found.iter().collect();
    // Most recently gone first.
    list.sort_by(|a, b| b.1.newest.cmp(&a.1.newest).then(a.0.cmp(b.0)));
    let mut deleted = Vec::new();
    let mut renamed = Vec::new();
    for (p, g) in list {
        let i = g.newest + oldest;
        let mut v = json!({
            "path": PathBytes(p.clone()),
            "type": g.kind.as_str(),
            "last_seen": snapshot_json(&snaps[i]),
            "gone_by": label_gone_by(i),
        });
        if let Some(root) = roots.get(g.newest)
            && let Ok(rel) = RelativePath::parse(p, usize::MAX)
            && let Ok(Some(m)) = root.lstat(&rel)
        {
            v["size"] = json!(m.size);
            v["mtime"] = json!(format_time(m.mtime));
        }
        match moves.get(p) {
            Some(m) => {
                v["new_path"] = PathBytes(m.new_path.clone()).to_json();
                v["identity"] = json!(m.identity);
                renamed.push(v);
            }
            None => deleted.push(v),
        }
    }
    let mut data = json!({
        "dataset": ds.name,
        "path": start.to_wire(),
        "compared_with": selected_json(&snaps, present_sel),
        "since": snaps.get(oldest).map_or(Value::Null, snapshot_json),
        "snapshots_examined": stats.snapshots_examined,
        "directories_listed": stats.dirs_listed,
        "directories_unchanged": stats.dirs_unchanged,
        "count": deleted.len(),
        "deleted": deleted,
        "renamed_count": renamed.len(),
        "renamed": renamed,
        "rename_search": {
            "entries_walked": walked,
            "bytes_hashed": hashed,
            "complete": moves_complete,
        },
        "note": "a deleted directory is listed once (not its contents); list_dir on its last_seen snapshot shows what it held. A path whose object (or, failing that, whose exact content under a new path) is still in the dataset is listed under renamed, with the name it has now; the change happened between last_seen and gone_by",
    });
    if !moves_complete {
        data["rename_search_note"] = json!(
            "the search for renamed files stopped early (the tree is large or time ran out): some entries listed as deleted may have been moved"
        );
    }
    ctx.output(data, stats.truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zfs_diff_paths_relative_to_the_mount_point() {
        assert_eq!(
            relative_to_mount(b"/tank/home", b"/tank/home/a b"),
            Some(b"a b".to_vec())
        );
        assert_eq!(
            relative_to_mount(b"/tank/home", b"/tank/home/"),
            Some(Vec::new())
        );
        assert_eq!(relative_to_mount(b"/tank/home", b"/tank/homework/x"), None);
        assert_eq!(
            relative_to_mount(b"/", b"/etc/hosts"),
            Some(b"etc/hosts".to_vec())
        );
        assert_eq!(relative_to_mount(b"/", b"/"), Some(Vec::new()));
        assert_eq!(
            relative_to_mount(b"/mnt/x/", b"/mnt/x/d/"),
            Some(b"d".to_vec())
        );
    }
}
