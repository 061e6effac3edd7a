//! Snapshot metadata: `list_snapshots`, `snapshot_cadence` (are snapshots
//! still being taken?), `stale_snapshots` (old ones and the space they
//! hold), `size_delta` (growth between two points).

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
use sonde_protocol::schema::ValidatedParams;
use std::collections::BTreeMap;

use super::{Ctx, finding, selected_json, snapshot_json};
use crate::model::Snapshot;
use crate::parse::{lines, parse_get, parse_size, text};
use crate::select::{self, Selected, format_time};

fn snapshot_row(s: &Snapshot) -> Value {
    let mut v = snapshot_json(s);
    v["used_bytes"] = json!(s.used);
    v["referenced_bytes"] = json!(s.referenced);
    v
}

fn time_param(
    ctx: &Ctx<'_>,
    params: &ValidatedParams,
    name: &str,
) -> Result<Option<select::TimeSpec>, ProbeError> {
    params
        .str(name)
        .map(|s| {
            select::parse_time(s, ctx.now).ok_or_else(|| {
                ProbeError::InvalidInput(format!(
                    "{name}: {s:?} is not a time (e.g. 7 days ago, yesterday, 2024-05-01)"
                ))
            })
        })
        .transpose()
}

pub fn list_snapshots(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let since = time_param(ctx, params, "since")?;
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let matching: Vec<&Snapshot> = snaps
        .iter()
        .filter(|s| since.is_none_or(|t| s.creation >= t.start))
        .collect();
    // The newest matter most: keep the last `limit`.
    let skip = matching.len().saturating_sub(limit.value);
    let list: Vec<Value> = matching[skip..].iter().map(|s| snapshot_row(s)).collect();
    ctx.output(
        json!({
            "dataset": ds.name,
            "snapshots": list,
            "total": matching.len(),
            "omitted_oldest": skip,
            "used_bytes_total": matching.iter().map(|s| s.used).sum::<u64>(),
        }),
        skip > 0,
    )
}

/// A snapshot's naming class: runs of digits (with the separators between
/// them) become `*`, so `autosnap_2024-01-01_00:00:00_daily` is
/// `autosnap_*_daily` and `zfs-auto-snap_hourly-2024-01-01-0000` is
/// `zfs-auto-snap_hourly-*`.
pub fn class_of(short: &str) -> String {
    let mut starred = String::new();
    for c in short.chars() {
        if c.is_ascii_digit() {
            if !starred.ends_with('*') {
                starred.push('*');
            }
        } else {
            starred.push(c);
        }
    }
    // Collapse `*-*`, `*_*:*`, `*T*`… into one `*`.
    let chars: Vec<char> = starred.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        out.push(chars[i]);
        if chars[i] == '*' {
            let mut j = i + 1;
            while j + 1 < chars.len() && "-_:.T".contains(chars[j]) && chars[j + 1] == '*' {
                j += 2;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Fewest snapshots of a class for it to count as a schedule.
pub const MIN_SCHEDULE: usize = 3;

/// The cadence report of one dataset's snapshots (oldest first), with
/// findings for schedules that stopped.
pub fn cadence(ds: &str, snaps: &[&Snapshot], now: i64, findings: &mut Vec<Value>) -> Value {
    let mut classes: BTreeMap<String, Vec<&Snapshot>> = BTreeMap::new();
    for s in snaps {
        classes.entry(class_of(s.short_name())).or_default().push(s);
    }
    let mut out = Vec::new();
    let mut any_stale = false;
    for (class, list) in &classes {
        let mut gaps: Vec<i64> = list
            .windows(2)
            .map(|w| w[1].creation - w[0].creation)
            .collect();
        let largest = list
            .windows(2)
            .max_by_key(|w| w[1].creation - w[0].creation)
            .map(|w| json!({"seconds": w[1].creation - w[0].creation, "after": w[0].short_name(), "before": w[1].short_name()}));
        let med = median(&mut gaps);
        let Some(last) = list.last() else { continue };
        let age = now - last.creation;
        let schedule = list.len() >= MIN_SCHEDULE && med.is_some_and(|m| m > 0);
        // Late by more than two intervals (and an hour of slack).
        let stale = schedule && med.is_some_and(|m| age > 2 * m + 3600);
        if stale {
            any_stale = true;
            findings.push(finding(
                "warning",
                format!(
                    "{ds}: snapshots like {} came every {} but the newest ({}) is {} old: has the snapshot job stopped?",
                    last.short_name(),
                    duration(med.unwrap_or(0)),
                    format_time(last.creation),
                    duration(age)
                ),
            ));
        }
        out.push(json!({
            "class": class,
            "count": list.len(),
            "first": list.first().map(|s| snapshot_json(s)),
            "last": snapshot_json(last),
            "median_interval_seconds": med,
            "largest_gap": largest,
            "last_age_seconds": age,
            "schedule": schedule,
            "stale": stale,
        }));
    }
    json!({
        "dataset": ds,
        "snapshots": snaps.len(),
        "latest": snaps.last().map(|s| snapshot_json(s)),
        "latest_age_seconds": snaps.last().map(|s| now - s.creation),
        "stale": any_stale,
        "classes": out,
    })
}

/// `3d 4h`, `5h 12m`, `40s`.
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub fn snapshot_cadence(
    ctx: &Ctx<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let (datasets, snaps) = match params.str("dataset") {
        Some(_) => {
            let ds = ctx.dataset(params)?;
            let snaps = ctx.snapshots(&ds)?;
            (vec![ds], snaps)
        }
        None => (ctx.datasets(None)?, ctx.all_snapshots()?),
    };
    let mut by_dataset: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for s in &snaps {
        by_dataset.entry(s.dataset()).or_default().push(s);
    }
    let limit = ctx.limit(params, "limit", 500, 5000);
    let mut findings = Vec::new();
    let mut reports = Vec::new();
    let mut unsnapshotted = Vec::new();
    for ds in datasets.iter().take(limit.value) {
        match by_dataset.get(ds.name.as_str()) {
            Some(list) => reports.push(cadence(&ds.name, list, ctx.now, &mut findings)),
            None => unsnapshotted.push(ds.name.clone()),
        }
    }
    if !unsnapshotted.is_empty() && params.str("dataset").is_some() {
        findings.push(finding(
            "warning",
            format!("{} has no snapshots at all", unsnapshotted.join(", ")),
        ));
    }
    ctx.output(
        json!({
            "datasets": reports,
            "datasets_without_snapshots": unsnapshotted,
            "findings": findings,
        }),
        datasets.len() > limit.value,
    )
}

pub fn stale_snapshots(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let cutoff = time_param(ctx, params, "older_than")?
        .map(|t| t.start)
        .unwrap_or(ctx.now - 90 * 86_400);
    let snaps = match params.str("dataset") {
        Some(_) => {
            let ds = ctx.dataset(params)?;
            ctx.snapshots(&ds)?
        }
        None => ctx.all_snapshots()?,
    };
    let limit = ctx.limit(params, "limit", 1000, 10_000);
    let mut stale: Vec<&Snapshot> = snaps.iter().filter(|s| s.creation < cutoff).collect();
    stale.sort_by(|a, b| b.used.cmp(&a.used).then(a.creation.cmp(&b.creation)));
    let mut per_dataset: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for s in &stale {
        let e = per_dataset.entry(s.dataset()).or_default();
        e.0 += 1;
        e.1 += s.used;
    }
    let list: Vec<Value> = stale
        .iter()
        .take(limit.value)
        .map(|s| {
            let mut v = snapshot_row(s);
            v["dataset"] = json!(s.dataset());
            v["age_days"] = json!((ctx.now - s.creation).div_euclid(86_400));
            v
        })
        .collect();
    let per_dataset: Vec<Value> = per_dataset
        .iter()
        .map(|(d, (n, used))| json!({"dataset": d, "count": n, "used_bytes": used}))
        .collect();
    ctx.output(
        json!({
            "older_than": format_time(cutoff),
            "count": stale.len(),
            "used_bytes_total": stale.iter().map(|s| s.used).sum::<u64>(),
            "per_dataset": per_dataset,
            "note": "`used` is the space only that snapshot holds; destroying several adjacent snapshots can free more than the sum of their `used`",
            "snapshots": list,
        }),
        stale.len() > limit.value,
    )
}

pub fn size_delta(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let ds = ctx.dataset(params)?;
    let snaps = ctx.snapshots(&ds)?;
    let from = ctx.select(&ds, &snaps, params, "from", "oldest")?;
    let to_default = if params.str("to").is_none() && !ctx.settings.live {
        "latest"
    } else {
        "live"
    };
    let to = match select::select(
        &snaps,
        &ds.name,
        params.str("to").unwrap_or(to_default),
        ctx.now,
    ) {
        Ok(sel) => sel,
        Err(e) => return Err(ProbeError::InvalidInput(format!("to: {e}"))),
    };
    // Sizes of the live dataset are metadata: reading them is not reading
    // the live file system, so `live = false` does not forbid it.
    let index = |s: Selected| match s {
        Selected::Snapshot(i) => i,
        Selected::Live => snaps.len(),
    };
    let (a, b) = (index(from), index(to));
    if a > b {
        return Err(ProbeError::InvalidInput(
            "`from` is newer than `to`; swap them".into(),
        ));
    }
    let refer = |i: usize| {
        snaps
            .get(i)
            .map_or(ds.referenced.unwrap_or(0), |s| s.referenced)
    };
    let between = snaps.get(a + 1..b.min(snaps.len())).unwrap_or(&[]);
    let from_snap = snaps.get(a);
    let written = match from_snap {
        Some(f) => {
            let target = snaps.get(b).map_or(ds.name.as_str(), |s| s.name.as_str());
            let prop = format!("written@{}", f.short_name());
            let out = ctx
                .zfs
                .run("zfs", "get", &["-H", "-p", "-o", "value", &prop, target])?;
            out.success()
                .then(|| lines(&out.stdout).next().and_then(|l| parse_size(&text(l))))
                .flatten()
        }
        None => None,
    };
    let usage = ctx.zfs.ok(
        "zfs",
        "get",
        &[
            "-H",
            "-p",
            "-o",
            "name,property,value",
            "usedbysnapshots,usedbydataset,usedbychildren",
            &ds.name,
        ],
    )?;
    let usage = parse_get(&usage.stdout);
    let prop = |k: &str| {
        usage
            .get(&ds.name)
            .and_then(|p| p.get(k))
            .and_then(|v| parse_size(&text(v)))
    };
    let (r0, r1) = (refer(a), refer(b));
    ctx.output(
        json!({
            "dataset": ds.name,
            "from": selected_json(&snaps, from),
            "to": selected_json(&snaps, to),
            "referenced_from_bytes": r0,
            "referenced_to_bytes": r1,
            "referenced_delta_bytes": i128::from(r1) - i128::from(r0),
            "written_since_from_bytes": written,
            "written_note": if written.is_none() && from_snap.is_some() { Some("this ZFS has no `written@` property (OpenZFS has)") } else { None },
            "snapshots_between": between.len(),
            "snapshots_between_used_bytes": between.iter().map(|s| s.used).sum::<u64>(),
            "dataset_used_by_snapshots_bytes": prop("usedbysnapshots"),
            "dataset_used_by_data_bytes": prop("usedbydataset"),
            "dataset_used_by_children_bytes": prop("usedbychildren"),
        }),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, creation: i64) -> Snapshot {
        Snapshot {
            name: name.into(),
            createtxg: 0,
            creation,
            used: 0,
            referenced: 0,
        }
    }

    #[test]
    fn classes_collapse_timestamps() {
        assert_eq!(
            class_of("autosnap_2024-01-01_00:00:00_daily"),
            "autosnap_*_daily"
        );
        assert_eq!(
            class_of("zfs-auto-snap_hourly-2024-01-01-0000"),
            "zfs-auto-snap_hourly-*"
        );
        assert_eq!(class_of("daily-2024-05-01T00:00"), "daily-*");
        assert_eq!(class_of("auto-00042"), "auto-*");
        assert_eq!(class_of("before-upgrade"), "before-upgrade");
        assert_eq!(class_of("v1.2-rc"), "v*-rc");
    }

    #[test]
    fn a_stopped_job_is_a_finding() {
        let snaps: Vec<Snapshot> = (0..5)
            .map(|i| snap(&format!("t/h@daily-{i}"), i * 86_400))
            .collect();
        let refs: Vec<&Snapshot> = snaps.iter().collect();
        let mut ok = Vec::new();
        cadence("t/h", &refs, 4 * 86_400 + 3600, &mut ok);
        assert!(ok.is_empty());
        let mut late = Vec::new();
        let report = cadence("t/h", &refs, 10 * 86_400, &mut late);
        assert_eq!(late.len(), 1);
        assert!(
            late[0]["message"]
                .as_str()
                .unwrap()
                .contains("came every 1d 0h")
        );
        assert_eq!(report["classes"][0]["median_interval_seconds"], 86_400);
        assert_eq!(report["stale"], true);
        // One-off snapshots are not a schedule.
        let one = [snap("t/h@before-upgrade", 0)];
        let mut none = Vec::new();
        cadence(
            "t/h",
            &one.iter().collect::<Vec<_>>(),
            1_000_000_000,
            &mut none,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(duration(40), "40s");
        assert_eq!(duration(3 * 60), "3m");
        assert_eq!(duration(5 * 3600 + 12 * 60), "5h 12m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600), "3d 4h");
    }
}
