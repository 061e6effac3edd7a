//! Where the space goes. In one snapshot (or live): `size_breakdown` (per
//! child of a directory) and `top_consumers` (the largest files); walks
//! are bounded in entries and time, and a file with several hard links is
//! counted once. Across the pool: `space_report` ("why is my pool
//! full?"), from ZFS's own accounting (`used`, `usedbysnapshots`,
//! `written`), read only: what snapshots hold per dataset, the snapshots
//! holding the most, and bounds on what destroying the old ones would
//! free ([`free_estimate`]).

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use super::{Ctx, finding, path_param, selected_json};
use crate::parse::{fields, lines, parse_get, parse_size, text};
use crate::select::{self, format_time};
use crate::tree::{self, Kind, Visit, WalkBounds};
use crate::zfs::{Zfs, command_error, is_unsupported};

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    size: u64,
    allocated: u64,
    files: u64,
    dirs: u64,
    kind: Option<Kind>,
}

pub fn size_breakdown(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let sel = ctx.select(&ds, &snaps, params, "snapshot", ctx.live_or_latest())?;
    let root = ctx.root(&ds, &snaps, sel)?;
    let start = path_param(params, "path");
    let max = ctx.limit(params, "max_entries", 100_000, 1_000_000);
    let shown = ctx.limit(params, "limit", 100, 1000);
    let bounds = WalkBounds {
        max_entries: max.value,
        deadline: ctx.walk_deadline(),
    };
    let depth = start.segments().len();
    let mut children: BTreeMap<Vec<u8>, Totals> = BTreeMap::new();
    let mut seen_links: HashSet<(u64, u64)> = HashSet::new();
    let stats = tree::walk(&root, &start, bounds, |p, e| {
        let Some(top) = p.segments().get(depth) else {
            return Visit::Skip;
        };
        let t = children.entry(top.clone()).or_default();
        if p.segments().len() == depth + 1 {
            t.kind = Some(e.meta.kind);
        }
        match e.meta.kind {
            Kind::Dir => t.dirs += 1,
            _ if e.meta.nlink > 1 && !seen_links.insert((e.meta.dev, e.meta.ino)) => {}
            _ => {
                t.size += e.meta.size;
                t.allocated += e.meta.allocated;
                t.files += 1;
            }
        }
        Visit::Descend
    })?;
    let mut list: Vec<(Vec<u8>, Totals)> = children.into_iter().collect();
    list.sort_by(|a, b| {
        b.1.allocated
            .cmp(&a.1.allocated)
            .then(b.1.size.cmp(&a.1.size))
            .then(a.0.cmp(&b.0))
    });
    let total = list.iter().fold(Totals::default(), |acc, (_, t)| Totals {
        size: acc.size + t.size,
        allocated: acc.allocated + t.allocated,
        files: acc.files + t.files,
        dirs: acc.dirs + t.dirs,
        kind: None,
    });
    let rows: Vec<Value> = list
        .iter()
        .take(shown.value)
        .map(|(name, t)| {
            json!({
                "name": PathBytes::from(name.as_slice()),
                "type": t.kind.map_or("other", Kind::as_str),
                "size_bytes": t.size,
                "allocated_bytes": t.allocated,
                "files": t.files,
                "dirs": t.dirs,
            })
        })
        .collect();
    ctx.output(
        json!({
            "dataset": ds.name,
            "snapshot": selected_json(&snaps, sel),
            "path": start.to_wire(),
            "total_size_bytes": total.size,
            "total_allocated_bytes": total.allocated,
            "files": total.files,
            "dirs": total.dirs,
            "entries_walked": stats.entries,
            "unreadable_dirs": stats.unreadable,
            "children": rows,
            "children_total": list.len(),
            "complete": !stats.truncated,
        }),
        stats.truncated || list.len() > shown.value,
    )
}

/// A file in `top_consumers`: allocated bytes, size, path, mtime.
type Ranked = (u64, u64, Vec<u8>, i64);

pub fn top_consumers(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let sel = ctx.select(&ds, &snaps, params, "snapshot", ctx.live_or_latest())?;
    let root = ctx.root(&ds, &snaps, sel)?;
    let start = path_param(params, "path");
    let n = ctx.limit(params, "n", 20, 1000);
    let max = ctx.limit(params, "max_entries", 100_000, 1_000_000);
    let bounds = WalkBounds {
        max_entries: max.value,
        deadline: ctx.walk_deadline(),
    };
    // A min-heap of the n largest files: by space on disk, then size.
    let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::new();
    let mut seen_links: HashSet<(u64, u64)> = HashSet::new();
    let stats = tree::walk(&root, &start, bounds, |p, e| {
        if e.meta.kind == Kind::File
            && (e.meta.nlink <= 1 || seen_links.insert((e.meta.dev, e.meta.ino)))
        {
            heap.push(Reverse((
                e.meta.allocated,
                e.meta.size,
                p.to_bytes(),
                e.meta.mtime,
            )));
            if heap.len() > n.value {
                heap.pop();
            }
        }
        Visit::Descend
    })?;
    let mut top: Vec<Ranked> = heap.into_iter().map(|r| r.0).collect();
    top.sort_by(|a, b| b.cmp(a));
    let list: Vec<Value> = top
        .into_iter()
        .map(|(allocated, size, p, mtime)| {
            json!({
                "path": PathBytes(p),
                "allocated_bytes": allocated,
                "size_bytes": size,
                "mtime": format_time(mtime),
            })
        })
        .collect();
    ctx.output(
        json!({
            "dataset": ds.name,
            "snapshot": selected_json(&snaps, sel),
            "path": start.to_wire(),
            "files": list,
            "entries_walked": stats.entries,
            "unreadable_dirs": stats.unreadable,
            "complete": !stats.truncated,
        }),
        stats.truncated,
    )
}

/// One dataset's space, as `zfs list -p` (or `zfs get -p`) gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetSpace {
    pub name: String,
    pub kind: String,
    pub used: Option<u64>,
    pub available: Option<u64>,
    pub referenced: Option<u64>,
    pub usedbysnapshots: Option<u64>,
    pub usedbydataset: Option<u64>,
    pub usedbychildren: Option<u64>,
    pub usedbyrefreservation: Option<u64>,
    /// Written since the newest snapshot (OpenZFS).
    pub written: Option<u64>,
}

/// One snapshot's space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpace {
    pub name: String,
    pub createtxg: u64,
    pub creation: i64,
    /// What only this snapshot holds.
    pub used: u64,
    pub referenced: u64,
    /// What was written between the previous snapshot and this one (the
    /// blocks born in that interval); `None` where ZFS lacks `written`.
    pub written: Option<u64>,
}

impl SnapshotSpace {
    fn dataset(&self) -> &str {
        self.name.split_once('@').map_or(&*self.name, |(d, _)| d)
    }
}

/// What destroying a set of snapshots of one dataset would free, bounded
/// from the properties ZFS keeps (no dry run: `zfs destroy -n` is a
/// subcommand this pack never runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeEstimate {
    /// Each snapshot's `used` (what only it holds) is freed with it.
    pub at_least: u64,
    /// `None` when nothing bounds it from above (no `written` and no
    /// `usedbysnapshots`).
    pub at_most: Option<u64>,
}

/// Bounds what destroying the snapshots `chosen` (indexes into `snaps`,
/// one dataset's snapshots oldest first) would free, given the dataset's
/// `usedbysnapshots`.
///
/// A block is freed when no snapshot left and not the live dataset holds
/// it. So: at least the `used` of each chosen snapshot (blocks only it
/// holds); at most what snapshots alone hold (`usedbysnapshots`) less the
/// `used` of each snapshot kept (those stay); and at most the `written`
/// of the chosen snapshots (a block held by snapshots only, none of them
/// kept, was born in one of the chosen snapshots' intervals — the
/// snapshots holding a block are consecutive, from the one after its
/// birth to the last before its death). Exact when all snapshots
/// (`usedbysnapshots`) or one (its `used`) are chosen.
pub fn free_estimate(
    snaps: &[SnapshotSpace],
    chosen: &[usize],
    usedbysnapshots: Option<u64>,
) -> FreeEstimate {
    let chosen_set: HashSet<usize> = chosen.iter().copied().collect();
    let at_least: u64 = chosen
        .iter()
        .filter_map(|&i| snaps.get(i))
        .map(|s| s.used)
        .sum();
    if chosen_set.is_empty() {
        return FreeEstimate {
            at_least: 0,
            at_most: Some(0),
        };
    }
    // All of them: exactly what snapshots alone hold.
    if chosen_set.len() == snaps.len()
        && let Some(u) = usedbysnapshots
    {
        return FreeEstimate {
            at_least: u,
            at_most: Some(u),
        };
    }
    if chosen_set.len() == 1 {
        return FreeEstimate {
            at_least,
            at_most: Some(at_least),
        };
    }
    let kept_used: u64 = snaps
        .iter()
        .enumerate()
        .filter(|(i, _)| !chosen_set.contains(i))
        .map(|(_, s)| s.used)
        .sum();
    let by_snapshots = usedbysnapshots.map(|u| u.saturating_sub(kept_used));
    let by_written = chosen
        .iter()
        .map(|&i| snaps.get(i).and_then(|s| s.written))
        .sum::<Option<u64>>();
    let at_most = match (by_snapshots, by_written) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(|m| m.max(at_least));
    FreeEstimate { at_least, at_most }
}

const SPACE_COLUMNS: &str = "name,type,used,available,referenced,usedbysnapshots,usedbydataset,usedbychildren,usedbyrefreservation,written";
const SNAPSHOT_SPACE_COLUMNS: &str = "name,type,createtxg,creation,used,referenced,written";

/// One listed object: its name and its columns' raw values.
type Row = (String, HashMap<String, Vec<u8>>);

fn num(v: Option<&[u8]>) -> Option<u64> {
    v.and_then(|b| parse_size(&text(b)))
}

/// Rows of a listing as name → (column → value), from `zfs list -H -p -o
/// columns` or, on ZFS without `list -p`, from names and `zfs get -H -p`
/// (without the columns this ZFS does not know).
fn space_listing(
    zfs: &Zfs<'_>,
    columns: &str,
    types: &str,
    root: Option<&str>,
) -> Result<(Vec<Row>, bool), ProbeError> {
    let names: Vec<&str> = columns.split(',').collect();
    let mut args = vec!["-H", "-p", "-o", columns, "-t", types];
    if let Some(r) = root {
        args.extend(["-r", r]);
    }
    let out = zfs.run("zfs", "list", &args)?;
    if out.success() {
        let rows = lines(&out.stdout)
            .filter_map(|line| {
                let f = fields(line);
                let name = std::str::from_utf8(f.first()?).ok()?.to_owned();
                let map = names
                    .iter()
                    .zip(&f)
                    .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                    .collect();
                Some((name, map))
            })
            .collect();
        return Ok((rows, out.stdout_truncated));
    }
    if !is_unsupported(&out) {
        return Err(command_error("zfs", "list", &out));
    }
    // Old ZFS: names, then exact values with `zfs get -p`, dropping the
    // properties it does not know (`written`, then the `usedby*`).
    let mut args = vec!["-H", "-o", "name", "-t", types];
    if let Some(r) = root {
        args.extend(["-r", r]);
    }
    let listed = zfs.ok("zfs", "list", &args)?;
    let objects: Vec<String> = lines(&listed.stdout)
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|n| {
            sonde_protocol::schema::DATASET.validate(n).is_ok()
                || sonde_protocol::schema::SNAPSHOT.validate(n).is_ok()
        })
        .map(str::to_owned)
        .collect();
    if objects.is_empty() {
        return Ok((Vec::new(), listed.stdout_truncated));
    }
    let wanted: Vec<&str> = names.iter().copied().filter(|n| *n != "name").collect();
    let tries = [
        wanted.clone(),
        wanted
            .iter()
            .copied()
            .filter(|n| *n != "written")
            .collect::<Vec<_>>(),
        wanted
            .iter()
            .copied()
            .filter(|n| *n != "written" && !n.starts_with("usedby"))
            .collect(),
    ];
    for props in tries {
        let list = props.join(",");
        let mut get_args = vec!["-H", "-p", "-o", "name,property,value", list.as_str()];
        get_args.extend(objects.iter().map(String::as_str));
        let got = zfs.run("zfs", "get", &get_args)?;
        if got.success() {
            let parsed = parse_get(&got.stdout);
            let rows = objects
                .iter()
                .filter_map(|n| {
                    let p = parsed.get(n)?;
                    let mut map: HashMap<String, Vec<u8>> =
                        p.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    map.insert("name".into(), n.as_bytes().to_vec());
                    Some((n.clone(), map))
                })
                .collect();
            return Ok((rows, listed.stdout_truncated || got.stdout_truncated));
        }
        if !is_unsupported(&got) {
            return Err(command_error("zfs", "get", &got));
        }
    }
    Err(ProbeError::Unsupported(
        "this ZFS reports no space properties the pack can read".into(),
    ))
}

/// Caveats of the estimates, stated in every report.
pub const SPACE_CAVEATS: &[&str] = &[
    "A snapshot's used is only what no other snapshot and not the live dataset holds: blocks that several of the chosen snapshots share are freed too but counted in no single used, hence a range (frees_at_least … frees_at_most) rather than one figure.",
    "The exact figure is what `zfs destroy -nv DATASET@FIRST%LAST` prints (a dry run, as root); this pack never runs destroy.",
    "Snapshots with a hold (zfs holds) or a clone cannot be destroyed until those are released or promoted; bookmarks hold no space.",
    "Space is on disk (after compression), and ZFS frees it in the background: it shows up over a few minutes. A refreservation or quota changes what available shows.",
    "Where ZFS has no `written` property (zfs-fuse, older versions), the upper bound comes from usedbysnapshots alone.",
];

pub fn space_report(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let root = params.str("dataset");
    if let Some(r) = root
        && !ctx.settings.allows_below(r)
    {
        return Err(ctx.settings.outside(r));
    }
    let cutoff_text = params.str("older_than").unwrap_or("90 days ago");
    let cutoff = select::parse_time(cutoff_text, ctx.now)
        .ok_or_else(|| {
            ProbeError::InvalidInput(format!(
                "older_than: {cutoff_text:?} is not a time (e.g. 90 days ago, 1 year ago, 2024-01-01)"
            ))
        })?
        .start;
    let limit = ctx.limit(params, "limit", 20, 1000);
    // Always listed afresh: space is what this report is about.
    let pools: Vec<_> = crate::probes::pools::pools(&ctx.zfs)?
        .into_iter()
        .filter(|p| ctx.settings.allows_pool(&p.name))
        .filter(|p| root.is_none_or(|r| r.split('/').next() == Some(p.name.as_str())))
        .collect();
    let (rows, cut_a) = space_listing(&ctx.zfs, SPACE_COLUMNS, "filesystem,volume", root)?;
    let (snap_rows, cut_b) = space_listing(&ctx.zfs, SNAPSHOT_SPACE_COLUMNS, "all", root)?;
    let datasets: Vec<DatasetSpace> = rows
        .iter()
        .filter(|(n, _)| ctx.settings.allows(n))
        .map(|(n, m)| {
            let g = |k: &str| num(m.get(k).map(Vec::as_slice));
            DatasetSpace {
                name: n.clone(),
                kind: m.get("type").map(|t| text(t)).unwrap_or_default(),
                used: g("used"),
                available: g("available"),
                referenced: g("referenced"),
                usedbysnapshots: g("usedbysnapshots"),
                usedbydataset: g("usedbydataset"),
                usedbychildren: g("usedbychildren"),
                usedbyrefreservation: g("usedbyrefreservation"),
                written: g("written"),
            }
        })
        .collect();
    let mut snapshots: Vec<SnapshotSpace> = snap_rows
        .iter()
        .filter(|(n, m)| {
            n.contains('@')
                && m.get("type").is_some_and(|t| t == b"snapshot")
                && ctx.settings.allows(n)
        })
        .map(|(n, m)| {
            let g = |k: &str| num(m.get(k).map(Vec::as_slice));
            SnapshotSpace {
                name: n.clone(),
                createtxg: g("createtxg").unwrap_or(0),
                creation: m
                    .get("creation")
                    .and_then(|c| text(c).trim().parse().ok())
                    .unwrap_or(0),
                used: g("used").unwrap_or(0),
                referenced: g("referenced").unwrap_or(0),
                written: g("written"),
            }
        })
        .collect();
    snapshots.sort_by(|a, b| {
        a.dataset()
            .cmp(b.dataset())
            .then(a.createtxg.cmp(&b.createtxg))
            .then(a.creation.cmp(&b.creation))
    });
    let mut by_dataset: BTreeMap<&str, Vec<&SnapshotSpace>> = BTreeMap::new();
    for s in &snapshots {
        by_dataset.entry(s.dataset()).or_default().push(s);
    }
    let mut findings = Vec::new();
    let mut reports = Vec::new();
    let mut old_total = (0u64, Some(0u64), 0usize);
    for d in &datasets {
        let snaps: Vec<SnapshotSpace> = by_dataset
            .get(d.name.as_str())
            .map(|v| v.iter().map(|s| (*s).clone()).collect())
            .unwrap_or_default();
        let chosen: Vec<usize> = snaps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.creation < cutoff)
            .map(|(i, _)| i)
            .collect();
        let est = free_estimate(&snaps, &chosen, d.usedbysnapshots);
        let exact = est.at_most == Some(est.at_least);
        old_total.0 += est.at_least;
        old_total.1 = old_total.1.zip(est.at_most).map(|(a, b)| a + b);
        old_total.2 += chosen.len();
        let share = match (d.usedbysnapshots, d.used) {
            (Some(s), Some(u)) if u > 0 => Some((s as f64 * 1000.0 / u as f64).round() / 10.0),
            _ => None,
        };
        if let (Some(s), Some(pct)) = (d.usedbysnapshots, share)
            && pct >= 50.0
            && s >= 1 << 30
        {
            findings.push(finding(
                "warning",
                format!(
                    "{}: snapshots hold {} ({pct}% of its {}); destroying the {} older than {} would free {}",
                    d.name,
                    bytes(s),
                    bytes(d.used.unwrap_or(0)),
                    chosen.len(),
                    format_time(cutoff),
                    range_text(&est)
                ),
            ));
        }
        reports.push(json!({
            "dataset": d.name,
            "type": d.kind,
            "used_bytes": d.used,
            "available_bytes": d.available,
            "referenced_bytes": d.referenced,
            "used_by_snapshots_bytes": d.usedbysnapshots,
            "used_by_dataset_bytes": d.usedbydataset,
            "used_by_children_bytes": d.usedbychildren,
            "used_by_refreservation_bytes": d.usedbyrefreservation,
            "written_since_newest_snapshot_bytes": d.written,
            "snapshot_share_percent": share,
            "snapshots": snaps.len(),
            "older_snapshots": {
                "count": chosen.len(),
                "first": chosen.first().map(|&i| snapshot_ref(&snaps[i])),
                "last": chosen.last().map(|&i| snapshot_ref(&snaps[i])),
                "frees_at_least_bytes": est.at_least,
                "frees_at_most_bytes": est.at_most,
                "exact": exact,
            },
        }));
    }
    // Largest first by what destroying would free, then by name.
    reports.sort_by(|a, b| {
        b["used_by_snapshots_bytes"]
            .as_u64()
            .cmp(&a["used_by_snapshots_bytes"].as_u64())
            .then(a["dataset"].as_str().cmp(&b["dataset"].as_str()))
    });
    let mut top: Vec<&SnapshotSpace> = snapshots.iter().collect();
    top.sort_by(|a, b| b.used.cmp(&a.used).then(a.creation.cmp(&b.creation)));
    let top_rows: Vec<Value> = top
        .iter()
        .take(limit.value)
        .map(|s| {
            let mut v = snapshot_ref(s);
            v["dataset"] = json!(s.dataset());
            v["used_bytes"] = json!(s.used);
            v["written_bytes"] = json!(s.written);
            v["referenced_bytes"] = json!(s.referenced);
            v["age_days"] = json!((ctx.now - s.creation).div_euclid(86_400));
            v
        })
        .collect();
    let pool_rows: Vec<Value> = pools
        .iter()
        .map(|p| {
            let held: u64 = datasets
                .iter()
                .filter(|d| d.name == p.name || d.name.starts_with(&format!("{}/", p.name)))
                .filter_map(|d| d.usedbysnapshots)
                .sum();
            if let Some(cap) = p.capacity_percent
                && cap >= crate::probes::pools::CAPACITY_WARNING
            {
                findings.push(finding(
                    if cap >= crate::probes::pools::CAPACITY_ERROR { "error" } else { "warning" },
                    format!(
                        "pool {} is {cap}% full; snapshots hold {} of it (the datasets below show where)",
                        p.name,
                        bytes(held)
                    ),
                ));
            }
            json!({
                "pool": p.name,
                "size_bytes": p.size_bytes,
                "allocated_bytes": p.allocated_bytes,
                "free_bytes": p.free_bytes,
                "capacity_percent": p.capacity_percent,
                "held_by_snapshots_bytes": held,
                "approximate": p.approximate,
            })
        })
        .collect();
    if old_total.2 > 0 {
        findings.push(finding(
            "info",
            format!(
                "destroying the {} snapshots older than {} would free {}",
                old_total.2,
                format_time(cutoff),
                range_text(&FreeEstimate {
                    at_least: old_total.0,
                    at_most: old_total.1,
                })
            ),
        ));
    }
    ctx.output(
        json!({
            "older_than": {"asked": cutoff_text, "time": format_time(cutoff)},
            "pools": pool_rows,
            "datasets": reports,
            "top_snapshots": top_rows,
            "snapshots_total": snapshots.len(),
            "older_snapshots_total": {
                "count": old_total.2,
                "frees_at_least_bytes": old_total.0,
                "frees_at_most_bytes": old_total.1,
            },
            "findings": findings,
            "caveats": SPACE_CAVEATS,
        }),
        cut_a || cut_b || top.len() > limit.value,
    )
}

fn snapshot_ref(s: &SnapshotSpace) -> Value {
    json!({
        "name": s.name.split_once('@').map_or(&*s.name, |(_, n)| n),
        "full_name": s.name,
        "time": format_time(s.creation),
    })
}

/// `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn range_text(e: &FreeEstimate) -> String {
    match e.at_most {
        Some(m) if m == e.at_least => format!("exactly {}", bytes(m)),
        Some(m) => format!("between {} and {}", bytes(e.at_least), bytes(m)),
        None => format!("at least {}", bytes(e.at_least)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(used: u64, written: Option<u64>) -> SnapshotSpace {
        SnapshotSpace {
            name: "t/d@s".into(),
            createtxg: 0,
            creation: 0,
            used,
            referenced: 0,
            written,
        }
    }

    #[test]
    fn estimates_are_bounds() {
        let snaps = [snap(10, Some(100)), snap(5, Some(30)), snap(1, Some(7))];
        assert_eq!(
            free_estimate(&snaps, &[], Some(60)),
            FreeEstimate {
                at_least: 0,
                at_most: Some(0)
            }
        );
        assert_eq!(
            free_estimate(&snaps, &[1], Some(60)),
            FreeEstimate {
                at_least: 5,
                at_most: Some(5)
            },
            "one snapshot: its used, exactly"
        );
        // The two oldest: 15 at least; at most 60 - 1 (the third's own)
        // and 130 written: 59.
        assert_eq!(
            free_estimate(&snaps, &[0, 1], Some(60)),
            FreeEstimate {
                at_least: 15,
                at_most: Some(59)
            }
        );
        // Without written (zfs-fuse): usedbysnapshots alone.
        let old = [snap(10, None), snap(5, None), snap(1, None)];
        assert_eq!(free_estimate(&old, &[0, 1], Some(60)).at_most, Some(59));
        assert_eq!(free_estimate(&old, &[0, 1], None).at_most, None);
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12), "12 B");
    }
}
