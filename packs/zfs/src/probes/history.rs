//! One path across snapshots: `file_history`, `versions_of`, `file_diff`,
//! `snapshots_containing`, `first_appearance`, `last_appearance`,
//! `bisect_change`.
//!
//! Snapshots come from the model kept between calls; each is examined
//! through its own confined root with `lstat` (directory stats, no
//! subprocess per snapshot). Contents are read only where the `lstat` says
//! a new version may start: the same object with the same size, mtime and
//! ctime is the same content ([`Meta::unchanged`]); versions of different
//! sizes differ without reading, large ones of the same size are told apart
//! by samples, and only what is still ambiguous is hashed whole, within a
//! budget that says what it left undetermined. `bisect_change` reads
//! O(log N) snapshots.

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
use sonde_protocol::Digest;
use sonde_protocol::path::{PathBytes, RelativePath};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::files::{READ_CAP, READ_DEFAULT};
use super::{Ctx, path_param, selected_json, snapshot_json};
use crate::content::{
    DIFF_TIME, HashBudget, SAMPLE_FROM, encode, file_contains, hash_within, is_binary, read_at,
    sample_fingerprint, unified_diff_until,
};
use crate::model::{self, Dataset, Snapshot};
use crate::select::{Selected, format_time};
use crate::tree::{Kind, Meta, Opened, Root};

/// The points in time a path is examined at: each snapshot, oldest first,
/// then the live file system (when the settings allow it).
struct Stops<'a> {
    ctx: &'a Ctx<'a>,
    ds: &'a Dataset,
    snaps: &'a [Snapshot],
    snapdir: PathBuf,
    live: bool,
}

impl<'a> Stops<'a> {
    fn new(ctx: &'a Ctx<'a>, ds: &'a Dataset, snaps: &'a [Snapshot]) -> Result<Self, ProbeError> {
        Ok(Stops {
            ctx,
            ds,
            snaps,
            snapdir: model::snapshot_dir(ds)?,
            live: ctx.settings.live && model::mountpoint(ds).is_ok(),
        })
    }

    /// Snapshots, plus live when allowed.
    fn len(&self) -> usize {
        self.snaps.len() + usize::from(self.live)
    }

    fn is_live(&self, i: usize) -> bool {
        i >= self.snaps.len()
    }

    fn root(&self, i: usize) -> Result<Root, ProbeError> {
        match self.snaps.get(i) {
            Some(s) => self.ctx.snapshot_root(&self.snapdir, self.ds, s),
            None => self.ctx.live_root(self.ds),
        }
    }

    /// `lstat` at stop `i`; `None` when absent.
    fn meta(&self, i: usize, rel: &RelativePath) -> Result<Option<Meta>, ProbeError> {
        self.root(i)?.lstat(rel)
    }

    /// The file at stop `i`; `None` when absent or not a regular file.
    fn file(
        &self,
        i: usize,
        rel: &RelativePath,
    ) -> Result<Option<(std::fs::File, Meta)>, ProbeError> {
        match self.root(i)?.open_path(rel) {
            Ok(Opened::File(f, m)) => Ok(Some((f, m))),
            Ok(_) | Err(ProbeError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn label(&self, i: usize) -> Value {
        match self.snaps.get(i) {
            Some(s) => snapshot_json(s),
            None => json!({"name": "live"}),
        }
    }

    fn index(&self, sel: Selected) -> usize {
        match sel {
            Selected::Snapshot(i) => i,
            Selected::Live => self.snaps.len(),
        }
    }
}

fn file_json(m: &Meta) -> Value {
    json!({"type": m.kind.as_str(), "size": m.size, "mtime": format_time(m.mtime), "ino": m.ino})
}

/// A run of stops over which the path did not change.
#[derive(Debug, Clone)]
struct Interval {
    state: Option<Meta>,
    from: usize,
    to: usize,
    change: &'static str,
}

fn change_between(prev: Option<&Interval>, now: &Option<Meta>, seen_present: bool) -> &'static str {
    match (prev.map(|p| &p.state), now) {
        (None, Some(_)) => "present",
        (None, None) => "absent",
        (Some(None), Some(_)) if seen_present => "recreated",
        (Some(None), Some(_)) => "created",
        (Some(Some(_)), None) => "deleted",
        (Some(Some(a)), Some(b)) if a.kind != b.kind => "type_changed",
        (Some(Some(a)), Some(b)) if a.ino != b.ino => "replaced",
        (Some(Some(_)), Some(_)) => "modified",
        (Some(None), None) => "absent",
    }
}

/// The path's states across stops `0..upto`: (intervals, stops examined,
/// whether `limit` intervals cut it short).
fn timeline(
    stops: &Stops<'_>,
    rel: &RelativePath,
    upto: usize,
    limit: usize,
    same: fn(&Meta, &Meta) -> bool,
) -> Result<(Vec<Interval>, usize, bool), ProbeError> {
    let mut out: Vec<Interval> = Vec::new();
    let mut seen_present = false;
    let mut examined = 0;
    for i in 0..upto {
        let m = stops.meta(i, rel)?;
        examined += 1;
        if let Some(last) = out.last_mut() {
            let same = match (&last.state, &m) {
                (Some(a), Some(b)) => same(a, b),
                (None, None) => true,
                _ => false,
            };
            if same {
                last.to = i;
                continue;
            }
        }
        if out.len() >= limit {
            return Ok((out, examined, true));
        }
        let change = change_between(out.last(), &m, seen_present);
        seen_present |= m.is_some();
        out.push(Interval {
            state: m,
            from: i,
            to: i,
            change,
        });
    }
    Ok((out, examined, false))
}

fn interval_json(stops: &Stops<'_>, iv: &Interval) -> Value {
    let mut v = json!({
        "change": iv.change,
        "state": if iv.state.is_some() { "present" } else { "absent" },
        "from": stops.label(iv.from),
        "to": stops.label(iv.to),
        "stops": iv.to - iv.from + 1,
    });
    if let Some(m) = &iv.state {
        v["file"] = file_json(m);
    }
    v
}

/// The common start of the history probes: dataset, snapshots, path.
fn setup(
    ctx: &Ctx<'_>,
    params: &ValidatedParams,
) -> Result<(Dataset, Vec<Snapshot>, RelativePath), ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let rel = path_param(params, "path");
    Ok((ds, snaps, rel))
}

pub fn file_history(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let (ds, snaps, rel) = setup(ctx, params)?;
    let stops = Stops::new(ctx, &ds, &snaps)?;
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let (intervals, examined, truncated) =
        timeline(&stops, &rel, stops.len(), limit.value, Meta::same_version)?;
    let present = intervals.iter().filter(|iv| iv.state.is_some()).count();
    let changes = intervals
        .iter()
        .filter(|iv| !matches!(iv.change, "present" | "absent"))
        .count();
    ctx.output(
        json!({
            "dataset": ds.name,
            "path": rel.to_wire(),
            "snapshots_examined": examined,
            "includes_live": stops.live,
            "versions_present": present,
            "changes": changes,
            "timeline": intervals.iter().map(|iv| interval_json(&stops, iv)).collect::<Vec<_>>(),
        }),
        truncated,
    )
}

/// Total bytes of content `versions_of` returns across versions.
pub const VERSIONS_CONTENT_BUDGET: usize = 16 << 20;
/// Bytes `versions_of` and `bisect_change` may hash: default and cap (the
/// probe's time bounds it too).
pub const HASH_DEFAULT: usize = 8 << 30;
pub const HASH_CAP: usize = 1 << 40;
/// Versions whose identity is certain without a hash (their size or
/// sample sets them apart) are hashed for the result only up to this size.
pub const DISPLAY_HASH_MAX: u64 = 64 << 20;

/// One run of stops over which a regular file certainly did not change
/// (same object, size, mtime and ctime), and what is known of its content.
#[derive(Debug, Clone)]
struct Run {
    from: usize,
    to: usize,
    meta: Meta,
    sample: Option<Digest>,
    digest: Option<Digest>,
}

impl Run {
    /// What tells this run apart from others of the same size: the sample
    /// (large files) or nothing (small files are hashed whole).
    fn key(&self) -> (u64, Option<Digest>) {
        (self.meta.size, self.sample)
    }
}

pub fn versions_of(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let (ds, snaps, rel) = setup(ctx, params)?;
    let stops = Stops::new(ctx, &ds, &snaps)?;
    let max = ctx.limit(params, "max_bytes", READ_DEFAULT, READ_CAP);
    let limit = ctx.limit(params, "limit", 100, 1000);
    let hash_limit = ctx.limit(params, "max_hash_bytes", HASH_DEFAULT, HASH_CAP);
    let include = params.bool("include_content").unwrap_or(false);
    let mut budget = HashBudget::new(hash_limit.value as u64, ctx.walk_deadline());
    // Runs by the strict test: a new run wherever any of object, size,
    // mtime or ctime differs. Only those boundaries can hold a change.
    let (intervals, examined, mut truncated) =
        timeline(&stops, &rel, stops.len(), 100_000, Meta::unchanged)?;
    let mut not_files = 0;
    let mut runs: Vec<Run> = Vec::new();
    for iv in &intervals {
        match &iv.state {
            Some(m) if m.kind == Kind::File => runs.push(Run {
                from: iv.from,
                to: iv.to,
                meta: *m,
                sample: None,
                digest: None,
            }),
            Some(_) => not_files += 1,
            None => {}
        }
    }
    let open = |r: &Run| -> Result<Option<std::fs::File>, ProbeError> {
        Ok(stops
            .file(r.from, &rel)?
            .filter(|(_, m)| m.unchanged(&r.meta))
            .map(|(f, _)| f))
    };
    // Two runs can hold the same content only if their sizes are equal:
    // sample the large ones of a shared size, then hash whole what is
    // still ambiguous, smallest first.
    let mut by_size: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        by_size.entry(r.meta.size).or_default().push(i);
    }
    for members in by_size.values().filter(|m| m.len() > 1) {
        for &i in members {
            if runs[i].meta.size >= SAMPLE_FROM
                && let Some(f) = open(&runs[i])?
            {
                runs[i].sample = Some(sample_fingerprint(&f, runs[i].meta.size, &mut budget)?);
            }
        }
    }
    let mut groups: BTreeMap<(u64, Option<Digest>), Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        groups.entry(r.key()).or_default().push(i);
    }
    let ambiguous: Vec<usize> = groups
        .values()
        .filter(|m| m.len() > 1)
        .flatten()
        .copied()
        .collect();
    for i in ambiguous {
        if let Some(f) = open(&runs[i])? {
            runs[i].digest = hash_within(&f, runs[i].meta.size, &mut budget, ctx.probe.secrets)?;
        }
    }
    // Runs alone in their group are certainly versions of their own; hash
    // the small ones for the result.
    let mut alone: Vec<usize> = groups
        .values()
        .filter(|m| m.len() == 1)
        .flatten()
        .copied()
        .filter(|&i| runs[i].meta.size <= DISPLAY_HASH_MAX)
        .collect();
    alone.sort_by_key(|&i| runs[i].meta.size);
    let mut display_budget = HashBudget {
        bytes_left: DISPLAY_HASH_MAX.min(budget.bytes_left),
        ..budget
    };
    for i in alone {
        if let Some(f) = open(&runs[i])? {
            runs[i].digest = hash_within(
                &f,
                runs[i].meta.size,
                &mut display_budget,
                ctx.probe.secrets,
            )?;
        }
    }
    budget.bytes_hashed = display_budget.bytes_hashed;
    // Versions: classes of runs known to hold the same content; runs
    // whose group still has unhashed members are undetermined.
    let mut classes: Vec<Vec<usize>> = Vec::new();
    let mut undetermined: Vec<usize> = Vec::new();
    let (mut min_extra, mut max_extra) = (0usize, 0usize);
    for members in groups.values() {
        if members.len() == 1 {
            classes.push(members.clone());
            continue;
        }
        let mut by_digest: BTreeMap<Digest, Vec<usize>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for &i in members {
            match runs[i].digest {
                Some(d) => by_digest.entry(d).or_default().push(i),
                None => unknown.push(i),
            }
        }
        if !unknown.is_empty() {
            // Each unknown run is one of the known contents or a new one.
            min_extra += usize::from(by_digest.is_empty());
            max_extra += unknown.len();
            undetermined.extend(unknown);
        }
        classes.extend(by_digest.into_values());
    }
    classes.sort_by_key(|c| runs[c[0]].from);
    undetermined.sort_by_key(|&i| runs[i].from);
    let known = classes.len();
    let mut content_budget = VERSIONS_CONTENT_BUDGET;
    let mut versions = Vec::new();
    for class in classes.iter().take(limit.value) {
        let first = &runs[class[0]];
        let last = class
            .iter()
            .map(|&i| &runs[i])
            .max_by_key(|r| r.to)
            .unwrap_or(first);
        let alone = groups.get(&first.key()).is_some_and(|m| m.len() == 1);
        let by = match (first.digest, alone, first.sample) {
            (Some(_), false, _) => "sha256",
            (_, true, None) => "size",
            (_, true, Some(_)) => "sampled content",
            (None, false, _) => "sha256",
        };
        let mut v = json!({
            "sha256": first.digest.map(|d| d.to_hex()),
            "size": first.meta.size,
            "told_apart_by": by,
            "first_seen": stops.label(first.from),
            "last_seen": stops.label(last.to),
            "stops": class.iter().map(|&i| runs[i].to - runs[i].from + 1).sum::<usize>(),
            "intervals": class.iter().map(|&i| json!({"from": stops.label(runs[i].from), "to": stops.label(runs[i].to)})).collect::<Vec<_>>(),
        });
        if first.digest.is_none() {
            v["sha256_note"] = json!(format!(
                "not computed: {} already tells this version apart, and hashing it whole was not needed (versions over {} MiB are hashed only to tell them apart)",
                if by == "size" {
                    "its size"
                } else {
                    "a sample of its content"
                },
                DISPLAY_HASH_MAX >> 20
            ));
        }
        if include && let Some(mut f) = open(first)? {
            let want = max.value.min(content_budget);
            let (bytes, more) = read_at(&mut f, 0, want)?;
            let (content, binary, used) = encode(&bytes, more);
            content_budget -= used;
            v["binary"] = json!(binary);
            v["encoding"] = json!(if binary { "base64" } else { "utf-8" });
            v["content"] = content;
            v["content_truncated"] = json!(more || used < bytes.len());
            truncated |= more || used < bytes.len();
        }
        versions.push(v);
    }
    truncated |= known > limit.value;
    let mut data = json!({
        "dataset": ds.name,
        "path": rel.to_wire(),
        "snapshots_examined": examined,
        "includes_live": stops.live,
        "distinct_versions": if undetermined.is_empty() { json!(known) } else { Value::Null },
        "distinct_versions_min": known + min_extra,
        "distinct_versions_max": known + max_extra,
        "intervals_not_regular_files": not_files,
        "bytes_hashed": budget.bytes_hashed,
        "versions": versions,
    });
    if !undetermined.is_empty() {
        truncated = true;
        data["undetermined"] = json!(
            undetermined
                .iter()
                .map(|&i| json!({
                    "size": runs[i].meta.size,
                    "from": stops.label(runs[i].from),
                    "to": stops.label(runs[i].to),
                    "stops": runs[i].to - runs[i].from + 1,
                }))
                .collect::<Vec<_>>()
        );
        data["note"] = json!(format!(
            "{} interval(s) could not be compared with the others of the same size because {}: each holds one of the versions of that size or a version of its own, so there are between {} and {} distinct versions. Ask again with a larger max_hash_bytes, or compare two of them with zfs.file_diff",
            undetermined.len(),
            budget.why("max_hash_bytes"),
            known + min_extra,
            known + max_extra
        ));
    }
    ctx.output(data, truncated)
}

/// One side of a file diff: what is there, the bytes read (when a
/// regular file or absent) with whether the read was cut, and the file's
/// facts.
/// One side of a file diff: its facts, its content (as read, as it may
/// leave the machine — scrubbed once, counted once —, and whether it was
/// cut), its metadata.
type Side = (Value, Option<Content>, Option<Meta>);

struct Content {
    raw: Vec<u8>,
    seen: Vec<u8>,
    cut: bool,
}

/// Lines of diff output, at most.
pub const DIFF_MAX_LINES: usize = 5000;

pub fn file_diff(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let (ds, snaps, rel) = setup(ctx, params)?;
    let max = ctx.limit(params, "max_bytes", READ_DEFAULT, READ_CAP);
    let to = ctx.select(&ds, &snaps, params, "to", ctx.live_or_latest())?;
    // Default `from`: the snapshot before `to` (the newest, when `to` is live).
    let from = match params.str("from") {
        Some(_) => ctx.select(&ds, &snaps, params, "from", "latest")?,
        None => match to {
            Selected::Live => ctx.select(&ds, &snaps, params, "from", "latest")?,
            Selected::Snapshot(0) => {
                return Err(ProbeError::InvalidInput(
                    "`to` is the oldest snapshot: there is nothing before it to compare with; give `from`".into(),
                ));
            }
            Selected::Snapshot(i) => Selected::Snapshot(i - 1),
        },
    };
    let side = |sel: Selected| -> Result<Side, ProbeError> {
        let root = ctx.root(&ds, &snaps, sel)?;
        match root.open_path(&rel) {
            Ok(Opened::File(mut f, meta)) => {
                let (bytes, more) = read_at(&mut f, 0, max.value)?;
                // Hashes and the diff are of the text as it leaves the
                // machine: neither may reveal a redacted value.
                let seen = ctx.probe.secrets.scrub_lines(&bytes).into_owned();
                let info = json!({
                    "exists": true,
                    "type": "file",
                    "size": meta.size,
                    "mtime": format_time(meta.mtime),
                    "sha256_of_bytes_read": Digest::of(&seen).to_hex(),
                    "bytes_read": bytes.len(),
                    "truncated": more,
                });
                let content = Content {
                    raw: bytes,
                    seen,
                    cut: more,
                };
                Ok((info, Some(content), Some(meta)))
            }
            Ok(Opened::Symlink { target, meta }) => Ok((
                json!({"exists": true, "type": "symlink", "symlink_target": PathBytes(target), "mtime": format_time(meta.mtime)}),
                None,
                None,
            )),
            Ok(Opened::Dir(_, _)) => Err(ProbeError::InvalidInput(format!(
                "{} is a directory; use zfs.diff_snapshots",
                String::from_utf8_lossy(&rel.to_bytes())
            ))),
            Ok(Opened::Other(m)) => {
                Ok((json!({"exists": true, "type": m.kind.as_str()}), None, None))
            }
            Err(ProbeError::NotFound(_)) => {
                let empty = Content {
                    raw: Vec::new(),
                    seen: Vec::new(),
                    cut: false,
                };
                Ok((json!({"exists": false}), Some(empty), None))
            }
            Err(e) => Err(e),
        }
    };
    let (old_info, old, old_meta) = side(from)?;
    let (new_info, new, new_meta) = side(to)?;
    let mut data = json!({
        "dataset": ds.name,
        "path": rel.to_wire(),
        "from": selected_json(&snaps, from),
        "to": selected_json(&snaps, to),
        "old": old_info,
        "new": new_info,
    });
    let mut truncated = false;
    match (old, new) {
        (Some(old), Some(new)) => {
            let (a, seen_a, cut_a) = (old.raw, old.seen, old.cut);
            let (b, seen_b, cut_b) = (new.raw, new.seen, new.cut);
            truncated = cut_a || cut_b;
            // Whether the whole files are identical: certain from their
            // facts when the object is unchanged or the sizes differ, from
            // the bytes when both were read whole; else unknown (null).
            let same_exists = data["old"]["exists"] == data["new"]["exists"];
            let (identical, by) = match (old_meta, new_meta) {
                (Some(x), Some(y)) if x.unchanged(&y) => (json!(true), "metadata"),
                (Some(x), Some(y)) if x.size != y.size => (json!(false), "size"),
                _ if a != b || !same_exists => (json!(false), "content"),
                _ if !truncated => (json!(true), "content"),
                _ => (Value::Null, "content read in part"),
            };
            data["identical"] = identical;
            data["identical_by"] = json!(by);
            if is_binary(&a, cut_a) || is_binary(&b, cut_b) {
                data["binary"] = json!(true);
                data["diff"] = Value::Null;
                data["note"] = json!("binary content: compare sizes and hashes");
            } else {
                data["binary"] = json!(false);
                let d = unified_diff_until(
                    &seen_a,
                    &seen_b,
                    DIFF_MAX_LINES,
                    ctx.probe.deadline.min(Instant::now() + DIFF_TIME),
                );
                truncated |= d.cut;
                data["diff"] = json!(d.text);
                if a != b && seen_a == seen_b {
                    data["note"] = json!(
                        "the versions differ only inside redacted secrets: the diff of what can be shown is empty"
                    );
                }
                if d.approximate {
                    data["note"] = json!(
                        "the versions differ in many places and the comparison ran out of time: the diff is correct but not the shortest"
                    );
                }
            }
        }
        _ => {
            data["identical"] = json!(data["old"] == data["new"]);
            data["diff"] = Value::Null;
            data["note"] = json!("not a regular file on both sides: compared as entries");
        }
    }
    ctx.output(data, truncated)
}

pub fn snapshots_containing(
    ctx: &Ctx<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let (ds, snaps, rel) = setup(ctx, params)?;
    let stops = Stops::new(ctx, &ds, &snaps)?;
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let mut hits = Vec::new();
    let mut count = 0;
    for i in 0..snaps.len() {
        if let Some(m) = stops.meta(i, &rel)? {
            count += 1;
            if hits.len() < limit.value {
                let mut v = stops.label(i);
                v["file"] = file_json(&m);
                hits.push(v);
            }
        }
    }
    let live = if stops.live {
        stops.meta(snaps.len(), &rel)?.map(|m| file_json(&m))
    } else {
        None
    };
    ctx.output(
        json!({
            "dataset": ds.name,
            "path": rel.to_wire(),
            "snapshots": hits,
            "count": count,
            "of": snaps.len(),
            "exists_live": if stops.live { json!(live.is_some()) } else { Value::Null },
            "live": live,
        }),
        count > limit.value,
    )
}

fn appearance(
    ctx: &Ctx<'_>,
    params: &ValidatedParams,
    newest_first: bool,
) -> Result<ProbeOutput, ProbeError> {
    let (ds, snaps, rel) = setup(ctx, params)?;
    let stops = Stops::new(ctx, &ds, &snaps)?;
    let order: Box<dyn Iterator<Item = usize>> = if newest_first {
        Box::new((0..snaps.len()).rev())
    } else {
        Box::new(0..snaps.len())
    };
    let mut examined = 0;
    let mut found = None;
    for i in order {
        examined += 1;
        if let Some(m) = stops.meta(i, &rel)? {
            found = Some((i, m));
            break;
        }
    }
    let live = if stops.live {
        stops.meta(snaps.len(), &rel)?
    } else {
        None
    };
    let mut data = json!({
        "dataset": ds.name,
        "path": rel.to_wire(),
        "found": found.is_some(),
        "snapshots_examined": examined,
        "of": snaps.len(),
        "exists_live": if stops.live { json!(live.is_some()) } else { Value::Null },
    });
    if let Some((i, m)) = found {
        data["snapshot"] = stops.label(i);
        data["file"] = file_json(&m);
        let neighbour = if newest_first {
            i + 1
        } else {
            i.wrapping_sub(1)
        };
        if newest_first {
            data["gone_by"] = match snaps.get(neighbour) {
                Some(s) => snapshot_json(s),
                None if live.is_none() && stops.live => json!({"name": "live"}),
                None => Value::Null,
            };
        } else {
            data["absent_before"] = snaps.get(neighbour).map_or(Value::Null, snapshot_json);
        }
    } else if live.is_some() {
        data["note"] =
            json!("in no snapshot, but it exists now: it was created after the newest snapshot");
    }
    ctx.output(data, false)
}

pub fn first_appearance(
    ctx: &Ctx<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    appearance(ctx, params, false)
}

pub fn last_appearance(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    appearance(ctx, params, true)
}

/// What `bisect_change` searches for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Predicate {
    Exists,
    Contains(Vec<u8>),
    SizeAtLeast(u64),
    SizeDiffers,
    HashIs(Digest),
    HashDiffers,
}

/// Most snapshots a bisection over `n` stops reads: both ends, then one
/// per halving of the `n - 1` gaps.
pub fn bisect_bound(n: usize) -> usize {
    let gaps = n.saturating_sub(1).max(1);
    2 + (usize::BITS - (gaps - 1).leading_zeros()) as usize
}

pub fn bisect_change(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let (ds, snaps, rel) = setup(ctx, params)?;
    let value = params.str("value");
    let name = params.str("predicate").unwrap_or("exists");
    let predicate = match (name, value) {
        ("exists", None) => Predicate::Exists,
        ("contains", Some(v)) if !v.is_empty() => Predicate::Contains(v.as_bytes().to_vec()),
        ("contains", _) => {
            return Err(ProbeError::InvalidInput(
                "predicate `contains` needs `value`: the text to look for".into(),
            ));
        }
        ("size", Some(v)) => Predicate::SizeAtLeast(v.trim().parse().map_err(|_| {
            ProbeError::InvalidInput(format!(
                "predicate `size`: `value` must be a number of bytes, got {v:?}"
            ))
        })?),
        ("size", None) => Predicate::SizeDiffers,
        ("hash", Some(v)) => Predicate::HashIs(Digest::from_hex(v).map_err(|e| {
            ProbeError::InvalidInput(format!(
                "predicate `hash`: `value` must be a SHA-256 in hex ({e})"
            ))
        })?),
        ("hash", None) => Predicate::HashDiffers,
        ("exists", Some(_)) => {
            return Err(ProbeError::InvalidInput(
                "predicate `exists` takes no `value`".into(),
            ));
        }
        (other, _) => {
            return Err(ProbeError::InvalidInput(format!(
                "unknown predicate {other:?} (exists, contains, size, hash)"
            )));
        }
    };
    let stops = Stops::new(ctx, &ds, &snaps)?;
    let lo = stops.index(ctx.select(&ds, &snaps, params, "from", "oldest")?);
    let hi = stops.index(ctx.select(&ds, &snaps, params, "to", "latest")?);
    if lo >= hi {
        return Err(ProbeError::InvalidInput(
            "`from` must be older than `to` (and they must differ)".into(),
        ));
    }
    let deadline = ctx.walk_deadline();
    let hash_limit = ctx.limit(params, "max_hash_bytes", HASH_DEFAULT, HASH_CAP);
    let mut budget = HashBudget::new(hash_limit.value as u64, deadline);
    let mut reads = 0usize;
    // Content digests by object version: a snapshot whose file is the same
    // object, unchanged (object, size, mtime, ctime), is not read again.
    let mut digests: Vec<(Meta, Digest)> = Vec::new();
    let mut digest_of = |i: usize,
                         budget: &mut HashBudget|
     -> Result<Option<(Meta, Digest)>, ProbeError> {
        let Some((f, m)) = stops.file(i, &rel)? else {
            return Ok(None);
        };
        if let Some((_, d)) = digests.iter().find(|(k, _)| k.unchanged(&m)) {
            return Ok(Some((m, *d)));
        }
        let d = hash_within(&f, m.size, budget, ctx.probe.secrets)?.ok_or_else(|| {
            ProbeError::Failed(format!(
                "{} is {} bytes in {}: hashing it did not fit in what this call may read ({}); use predicate hash without a value (compared with `from` by object, size and a sample first), or size, or a larger max_hash_bytes",
                String::from_utf8_lossy(&rel.to_bytes()),
                m.size,
                stops.label(i)["name"].as_str().unwrap_or("a snapshot"),
                budget.why("max_hash_bytes")
            ))
        })?;
        digests.push((m, d));
        Ok(Some((m, d)))
    };
    // `from`'s file, for "differs from `from`".
    let mut reference: Option<Option<Meta>> = None;
    let mut eval = |i: usize| -> Result<bool, ProbeError> {
        reads += 1;
        match &predicate {
            Predicate::Exists => Ok(stops.meta(i, &rel)?.is_some()),
            Predicate::Contains(needle) => match stops.file(i, &rel)? {
                None => Ok(false),
                Some((f, _)) => file_contains(&f, needle, deadline, ctx.probe.secrets)?
                    .ok_or(ProbeError::Timeout),
            },
            Predicate::SizeAtLeast(n) => Ok(stops.meta(i, &rel)?.is_some_and(|m| m.size >= *n)),
            Predicate::SizeDiffers => {
                let m = stops.meta(i, &rel)?;
                let first = *reference.get_or_insert(m);
                Ok(m.map(|m| m.size) != first.map(|m| m.size))
            }
            Predicate::HashIs(h) => Ok(digest_of(i, &mut budget)?.is_some_and(|(_, d)| d == *h)),
            Predicate::HashDiffers => {
                let here = stops.file(i, &rel)?.map(|(_, m)| m);
                let first = *reference.get_or_insert(here);
                match (first, here) {
                    (None, None) => Ok(false),
                    (None, Some(_)) | (Some(_), None) => Ok(true),
                    // Certain without reading: the same object unchanged,
                    // or a different size.
                    (Some(a), Some(b)) if a.unchanged(&b) => Ok(false),
                    (Some(a), Some(b)) if a.size != b.size => Ok(true),
                    (Some(a), Some(_)) => {
                        if a.size >= SAMPLE_FROM {
                            let sample = |k: usize, budget: &mut HashBudget| -> Result<Option<Digest>, ProbeError> {
                                match stops.file(k, &rel)? {
                                    Some((f, m)) => Ok(Some(sample_fingerprint(&f, m.size, budget)?)),
                                    None => Ok(None),
                                }
                            };
                            if sample(lo, &mut budget)? != sample(i, &mut budget)? {
                                return Ok(true);
                            }
                        }
                        let d0 = digest_of(lo, &mut budget)?.map(|(_, d)| d);
                        let d1 = digest_of(i, &mut budget)?.map(|(_, d)| d);
                        Ok(d0 != d1)
                    }
                }
            }
        }
    };
    let at_lo = eval(lo)?;
    let at_hi = eval(hi)?;
    let (mut a, mut b) = (lo, hi);
    // Invariant: eval(a) == at_lo, eval(b) == at_hi.
    if at_lo != at_hi {
        while b - a > 1 {
            let mid = a + (b - a) / 2;
            if eval(mid)? == at_hi {
                b = mid;
            } else {
                a = mid;
            }
        }
    }
    let in_range = hi - lo + 1;
    let mut data = json!({
        "dataset": ds.name,
        "path": rel.to_wire(),
        "predicate": name,
        "value": value,
        "from": stops.label(lo),
        "to": stops.label(hi),
        "predicate_at_from": at_lo,
        "predicate_at_to": at_hi,
        "changed": at_lo != at_hi,
        "snapshots_read": reads,
        "bytes_hashed": budget.bytes_hashed,
        "snapshots_in_range": in_range,
        "max_reads": bisect_bound(in_range),
    });
    if at_lo == at_hi {
        data["note"] = json!(format!(
            "the predicate is {at_lo} at both ends: no change to find between them (it may have changed and changed back; zfs.file_history shows every change)"
        ));
    } else {
        data["last_before_change"] = stops.label(a);
        data["first_after_change"] = stops.label(b);
        data["file_before"] = stops.meta(a, &rel)?.map_or(Value::Null, |m| file_json(&m));
        data["file_after"] = stops.meta(b, &rel)?.map_or(Value::Null, |m| file_json(&m));
        data["note"] = json!(
            "bisection finds one change; if the predicate flipped several times in the range, this is one of them"
        );
        if stops.is_live(b) {
            data["note"] = json!(
                "the change happened after the newest snapshot (it is only in the live file system)"
            );
        }
    }
    ctx.output(data, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisect_bound_is_logarithmic() {
        assert_eq!(bisect_bound(2), 2);
        assert_eq!(bisect_bound(3), 3);
        assert_eq!(bisect_bound(6), 5);
        assert_eq!(bisect_bound(1000), 12);
        assert_eq!(bisect_bound(1025), 12);
        assert_eq!(bisect_bound(1026), 13);
    }
}
