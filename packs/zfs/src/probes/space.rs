//! Where the space goes in one snapshot (or live): `size_breakdown` (per
//! child of a directory) and `top_consumers` (the largest files). Walks
//! are bounded in entries and time; a file with several hard links is
//! counted once.

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
use sonde_protocol::path::PathBytes;
use sonde_protocol::schema::ValidatedParams;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use super::{Ctx, path_param, selected_json};
use crate::select::format_time;
use crate::tree::{self, Kind, Visit, WalkBounds};

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
