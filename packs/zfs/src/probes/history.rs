//! One path across snapshots: `file_history`, `versions_of`, `file_diff`,
//! `snapshots_containing`, `first_appearance`, `last_appearance`,
//! `bisect_change`.
//!
//! Snapshots are listed once per call; each is then examined through its
//! own confined root with `lstat` (directory stats, no subprocess per
//! snapshot). Contents are read only where the `lstat` says a new version
//! starts (same inode, size and mtime: same content), and `bisect_change`
//! reads O(log N) snapshots.

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeContext, ProbeError, ProbeOutput};
use sonde_protocol::Digest;
use sonde_protocol::path::{PathBytes, RelativePath};
use sonde_protocol::schema::ValidatedParams;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::files::{READ_CAP, READ_DEFAULT};
use super::{Ctx, path_param, selected_json, snapshot_json};
use crate::content::{
    DIFF_TIME, encode, file_contains, hash_file, is_binary, read_at, unified_diff_until,
};
use crate::model::{self, Dataset, Snapshot};
use crate::select::{Selected, format_time};
use crate::tree::{Kind, Meta, Opened, Root};

/// The points in time a path is examined at: each snapshot, oldest first,
/// then the live file system (when the settings allow it).
struct Stops<'a> {
    ds: &'a Dataset,
    snaps: &'a [Snapshot],
    snapdir: PathBuf,
    live: bool,
}

impl<'a> Stops<'a> {
    fn new(ctx: &Ctx<'_>, ds: &'a Dataset, snaps: &'a [Snapshot]) -> Result<Self, ProbeError> {
        Ok(Stops {
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
            Some(s) => Root::open(&model::snapshot_root(&self.snapdir, s)?, false),
            None => Root::open(model::mountpoint(self.ds)?, true),
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
) -> Result<(Vec<Interval>, usize, bool), ProbeError> {
    let mut out: Vec<Interval> = Vec::new();
    let mut seen_present = false;
    let mut examined = 0;
    for i in 0..upto {
        let m = stops.meta(i, rel)?;
        examined += 1;
        if let Some(last) = out.last_mut() {
            let same = match (&last.state, &m) {
                (Some(a), Some(b)) => a.same_version(b),
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
fn setup<'c>(
    probe: &'c ProbeContext<'c>,
    params: &ValidatedParams,
) -> Result<(Ctx<'c>, Dataset, Vec<Snapshot>, RelativePath), ProbeError> {
    let ctx = Ctx::new(probe)?;
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let rel = path_param(params, "path");
    Ok((ctx, ds, snaps, rel))
}

pub fn file_history(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let (ctx, ds, snaps, rel) = setup(probe, params)?;
    let stops = Stops::new(&ctx, &ds, &snaps)?;
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let (intervals, examined, truncated) = timeline(&stops, &rel, stops.len(), limit.value)?;
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

pub fn versions_of(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let (ctx, ds, snaps, rel) = setup(probe, params)?;
    let stops = Stops::new(&ctx, &ds, &snaps)?;
    let max = ctx.limit(params, "max_bytes", READ_DEFAULT, READ_CAP);
    let limit = ctx.limit(params, "limit", 100, 1000);
    let include = params.bool("include_content").unwrap_or(false);
    let deadline = ctx.walk_deadline();
    let (intervals, examined, mut truncated) = timeline(&stops, &rel, stops.len(), 100_000)?;
    let mut by_digest: HashMap<Digest, usize> = HashMap::new();
    let mut versions: Vec<Value> = Vec::new();
    let mut budget = VERSIONS_CONTENT_BUDGET;
    let mut not_files = 0;
    for iv in &intervals {
        let Some(meta) = &iv.state else { continue };
        if meta.kind != Kind::File {
            not_files += 1;
            continue;
        }
        let Some((mut file, _)) = stops.file(iv.from, &rel)? else {
            continue;
        };
        let Some(digest) = hash_file(&mut file, deadline)? else {
            truncated = true;
            break;
        };
        let span = json!({"from": stops.label(iv.from), "to": stops.label(iv.to)});
        if let Some(&k) = by_digest.get(&digest) {
            let v = &mut versions[k];
            if let Some(a) = v["intervals"].as_array_mut() {
                a.push(span);
            }
            v["last_seen"] = stops.label(iv.to);
            v["stops"] = json!(v["stops"].as_u64().unwrap_or(0) + (iv.to - iv.from + 1) as u64);
            continue;
        }
        if versions.len() >= limit.value {
            truncated = true;
            continue;
        }
        let mut v = json!({
            "sha256": digest.to_hex(),
            "size": meta.size,
            "first_seen": stops.label(iv.from),
            "last_seen": stops.label(iv.to),
            "stops": iv.to - iv.from + 1,
            "intervals": [span],
        });
        if include {
            let want = max.value.min(budget);
            let (bytes, more) = read_at(&mut file, 0, want)?;
            let (content, binary, used) = encode(&bytes, more);
            budget -= used;
            v["binary"] = json!(binary);
            v["encoding"] = json!(if binary { "base64" } else { "utf-8" });
            v["content"] = content;
            v["content_truncated"] = json!(more || used < bytes.len());
            truncated |= more || used < bytes.len();
        }
        by_digest.insert(digest, versions.len());
        versions.push(v);
    }
    ctx.output(
        json!({
            "dataset": ds.name,
            "path": rel.to_wire(),
            "snapshots_examined": examined,
            "includes_live": stops.live,
            "distinct_versions": versions.len(),
            "intervals_not_regular_files": not_files,
            "versions": versions,
        }),
        truncated,
    )
}

/// One side of a file diff: what is there, and the bytes read (when a
/// regular file or absent) with whether the read was cut.
type Side = (Value, Option<(Vec<u8>, bool)>);

/// Lines of diff output, at most.
pub const DIFF_MAX_LINES: usize = 5000;

pub fn file_diff(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let (ctx, ds, snaps, rel) = setup(probe, params)?;
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
                let info = json!({
                    "exists": true,
                    "type": "file",
                    "size": meta.size,
                    "mtime": format_time(meta.mtime),
                    "sha256_of_bytes_read": Digest::of(&bytes).to_hex(),
                    "bytes_read": bytes.len(),
                    "truncated": more,
                });
                Ok((info, Some((bytes, more))))
            }
            Ok(Opened::Symlink { target, meta }) => Ok((
                json!({"exists": true, "type": "symlink", "symlink_target": PathBytes(target), "mtime": format_time(meta.mtime)}),
                None,
            )),
            Ok(Opened::Dir(_, _)) => Err(ProbeError::InvalidInput(format!(
                "{} is a directory; use zfs.diff_snapshots",
                String::from_utf8_lossy(&rel.to_bytes())
            ))),
            Ok(Opened::Other(m)) => Ok((json!({"exists": true, "type": m.kind.as_str()}), None)),
            Err(ProbeError::NotFound(_)) => {
                Ok((json!({"exists": false}), Some((Vec::new(), false))))
            }
            Err(e) => Err(e),
        }
    };
    let (old_info, old) = side(from)?;
    let (new_info, new) = side(to)?;
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
        (Some((a, cut_a)), Some((b, cut_b))) => {
            truncated = cut_a || cut_b;
            data["identical"] =
                json!(a == b && data["old"]["exists"] == data["new"]["exists"] && !truncated);
            if is_binary(&a, cut_a) || is_binary(&b, cut_b) {
                data["binary"] = json!(true);
                data["diff"] = Value::Null;
                data["note"] = json!("binary content: compare sizes and hashes");
            } else {
                data["binary"] = json!(false);
                let d = unified_diff_until(
                    &a,
                    &b,
                    DIFF_MAX_LINES,
                    probe.deadline.min(Instant::now() + DIFF_TIME),
                );
                truncated |= d.cut;
                data["diff"] = json!(d.text);
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
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let (ctx, ds, snaps, rel) = setup(probe, params)?;
    let stops = Stops::new(&ctx, &ds, &snaps)?;
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
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
    newest_first: bool,
) -> Result<ProbeOutput, ProbeError> {
    let (ctx, ds, snaps, rel) = setup(probe, params)?;
    let stops = Stops::new(&ctx, &ds, &snaps)?;
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
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    appearance(probe, params, false)
}

pub fn last_appearance(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    appearance(probe, params, true)
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

pub fn bisect_change(
    probe: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let (ctx, ds, snaps, rel) = setup(probe, params)?;
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
    let stops = Stops::new(&ctx, &ds, &snaps)?;
    let lo = stops.index(ctx.select(&ds, &snaps, params, "from", "oldest")?);
    let hi = stops.index(ctx.select(&ds, &snaps, params, "to", "latest")?);
    if lo >= hi {
        return Err(ProbeError::InvalidInput(
            "`from` must be older than `to` (and they must differ)".into(),
        ));
    }
    let deadline = ctx.walk_deadline();
    let mut reads = 0usize;
    let mut reference: Option<(Option<u64>, Option<Digest>)> = None;
    let mut eval = |i: usize| -> Result<bool, ProbeError> {
        reads += 1;
        let (size, digest) = match &predicate {
            Predicate::Exists => return Ok(stops.meta(i, &rel)?.is_some()),
            Predicate::Contains(needle) => {
                return match stops.file(i, &rel)? {
                    None => Ok(false),
                    Some((mut f, _)) => {
                        file_contains(&mut f, needle, deadline)?.ok_or(ProbeError::Timeout)
                    }
                };
            }
            Predicate::SizeAtLeast(_) | Predicate::SizeDiffers => {
                (stops.meta(i, &rel)?.map(|m| m.size), None)
            }
            Predicate::HashIs(_) | Predicate::HashDiffers => match stops.file(i, &rel)? {
                None => (None, None),
                Some((mut f, _)) => (
                    None,
                    Some(hash_file(&mut f, deadline)?.ok_or(ProbeError::Timeout)?),
                ),
            },
        };
        let first = *reference.get_or_insert((size, digest));
        Ok(match &predicate {
            Predicate::SizeAtLeast(n) => size.is_some_and(|s| s >= *n),
            Predicate::SizeDiffers => size != first.0,
            Predicate::HashIs(h) => digest == Some(*h),
            Predicate::HashDiffers => digest != first.1,
            Predicate::Exists | Predicate::Contains(_) => false,
        })
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
