//! `agent_info`, `list_pools`, `pool_status`: what this machine's ZFS is,
//! and how its pools are.

use serde_json::{Value, json};
use sonde_packs::handler::{ProbeError, ProbeOutput};
use sonde_protocol::schema::ValidatedParams;

use super::{Ctx, finding, time_json};
use crate::model;
use crate::parse::{PoolRow, PoolStatus, lines, parse_pool_list, parse_status, scrub_finished};
use crate::zfs::{Zfs, command_error, is_unsupported};

/// Capacity at which a pool gets a warning, and an error.
pub const CAPACITY_WARNING: f64 = 80.0;
pub const CAPACITY_ERROR: f64 = 90.0;
/// Days after which a scrub is overdue (monthly scrubs, with slack).
pub const SCRUB_OVERDUE_DAYS: i64 = 35;

/// `zpool list`, exact where this ZFS can (`-p`), else human sizes.
pub fn pools(zfs: &Zfs<'_>) -> Result<Vec<PoolRow>, ProbeError> {
    let modern = zfs.run(
        "zpool",
        "list",
        &[
            "-H",
            "-p",
            "-o",
            "name,size,allocated,free,capacity,health,fragmentation",
        ],
    )?;
    if modern.success() {
        return Ok(parse_pool_list(&modern.stdout, false));
    }
    if !is_unsupported(&modern) {
        return Err(command_error("zpool", "list", &modern));
    }
    let old = zfs.ok(
        "zpool",
        "list",
        &["-H", "-o", "name,size,alloc,free,cap,health"],
    )?;
    Ok(parse_pool_list(&old.stdout, true))
}

pub fn agent_info(ctx: &Ctx<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let version = ctx.zfs.run("zfs", "version", &[])?;
    let openzfs = version.success();
    let pools: Vec<PoolRow> = pools(&ctx.zfs)?
        .into_iter()
        .filter(|p| ctx.settings.allows_pool(&p.name))
        .collect();
    let datasets = ctx.datasets(None)?;
    let with_contents: Vec<&str> = datasets
        .iter()
        .filter(|d| model::snapshot_dir(d).is_ok())
        .map(|d| d.name.as_str())
        .collect();
    let mounted = datasets
        .iter()
        .filter(|d| model::mountpoint(d).is_ok())
        .count();
    let user = crate::zfs::agent_user();
    let mut findings = Vec::new();
    if !openzfs {
        findings.push(finding(
            "info",
            "this is an older ZFS (no `zfs version`, e.g. zfs-fuse): no `zfs diff` (diffs compare the trees instead), no exact `zfs list` (the pack reads exact values with `zfs get -p`)",
        ));
    }
    if mounted > 0 && with_contents.is_empty() {
        findings.push(finding(
            "info",
            "no visible dataset exposes .zfs/snapshot: snapshot contents (history, diffs, deleted files) cannot be read here; pools, datasets, snapshots and live files can",
        ));
    }
    let version_text: Vec<String> = lines(&version.stdout)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    ctx.output(
        json!({
            "implementation": if openzfs { "OpenZFS" } else { "older ZFS without `zfs version` (e.g. zfs-fuse)" },
            "version": if openzfs { json!(version_text) } else { Value::Null },
            "pools": pools.iter().map(|p| &p.name).collect::<Vec<_>>(),
            "datasets_visible": datasets.len(),
            "datasets_mounted": mounted,
            "datasets_with_snapshot_contents": with_contents,
            "features": {
                "zfs_diff": openzfs,
                "snapshot_contents": !with_contents.is_empty(),
            },
            "settings": {
                "datasets": ctx.settings.datasets,
                "live": ctx.settings.live,
            },
            "user": user,
            "delegation": {
                "needed_for_diff": format!("zfs allow -u {user} diff POOL_OR_DATASET"),
                "note": "listing pools, datasets, snapshots and properties needs no delegation; snapshot and live files are read with the user's own file permissions",
            },
            "findings": findings,
        }),
        false,
    )
}

pub fn list_pools(ctx: &Ctx<'_>, _params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let pools: Vec<PoolRow> = pools(&ctx.zfs)?
        .into_iter()
        .filter(|p| ctx.settings.allows_pool(&p.name))
        .collect();
    let mut findings = Vec::new();
    for p in &pools {
        if p.health != "ONLINE" {
            findings.push(finding(
                "error",
                format!(
                    "pool {} is {}; see zfs.pool_status for the device that failed",
                    p.name, p.health
                ),
            ));
        }
        if let Some(cap) = p.capacity_percent {
            if cap >= CAPACITY_ERROR {
                findings.push(finding(
                    "error",
                    format!("pool {} is {cap}% full: ZFS slows down sharply and can fail writes near full; free space or add capacity", p.name),
                ));
            } else if cap >= CAPACITY_WARNING {
                findings.push(finding(
                    "warning",
                    format!(
                        "pool {} is {cap}% full (keep it below {CAPACITY_WARNING}%)",
                        p.name
                    ),
                ));
            }
        }
        if let Some(frag) = p.fragmentation_percent
            && frag >= 50.0
        {
            findings.push(finding(
                "info",
                format!(
                    "pool {} free space is {frag}% fragmented: writes get slower",
                    p.name
                ),
            ));
        }
    }
    ctx.output(json!({"pools": pools, "findings": findings}), false)
}

/// The findings of one pool's status.
fn status_findings(p: &PoolStatus, now: i64, findings: &mut Vec<Value>) -> Value {
    let name = &p.name;
    if let Some(state) = &p.state
        && state != "ONLINE"
    {
        findings.push(finding(
            "error",
            format!(
                "pool {name} is {state}: {}{}",
                p.status.as_deref().unwrap_or("no status text"),
                p.action
                    .as_deref()
                    .map(|a| format!(" Action: {a}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(errors) = &p.errors
        && errors != "No known data errors"
    {
        findings.push(finding(
            "error",
            format!(
                "pool {name}: {errors} (`zpool status -v {name}` as root lists the damaged files)"
            ),
        ));
    }
    for v in p.vdevs.iter().skip(1) {
        let counts = [v.read_errors, v.write_errors, v.checksum_errors];
        let total: u64 = counts.iter().flatten().sum();
        if total > 0 {
            findings.push(finding(
                "warning",
                format!(
                    "pool {name}: device {} has {} read, {} write and {} checksum errors",
                    v.name,
                    counts[0].unwrap_or(0),
                    counts[1].unwrap_or(0),
                    counts[2].unwrap_or(0)
                ),
            ));
        }
        if let Some(state) = &v.state
            && !matches!(state.as_str(), "ONLINE" | "AVAIL" | "INUSE")
        {
            findings.push(finding(
                if matches!(state.as_str(), "DEGRADED" | "OFFLINE") {
                    "warning"
                } else {
                    "error"
                },
                format!(
                    "pool {name}: device {} is {state}{}",
                    v.name,
                    v.note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    let scan = p.scan.as_deref().unwrap_or("");
    let last = scrub_finished(scan);
    let age_days = last.map(|t| (now - t).div_euclid(86_400));
    if scan.contains("resilver in progress") {
        findings.push(finding(
            "warning",
            format!("pool {name} is resilvering: {scan}"),
        ));
    } else if scan.contains("in progress") {
        findings.push(finding("info", format!("pool {name}: {scan}")));
    } else {
        match age_days {
            None => findings.push(finding(
                "warning",
                format!("pool {name} has no completed scrub on record; schedule `zpool scrub {name}` monthly"),
            )),
            Some(d) if d > SCRUB_OVERDUE_DAYS => findings.push(finding(
                "warning",
                format!("pool {name} was last scrubbed {d} days ago; scrub monthly (`zpool scrub {name}`, as root)"),
            )),
            Some(_) => {}
        }
    }
    json!({
        "name": p.name,
        "state": p.state,
        "status": p.status,
        "action": p.action,
        "scan": p.scan,
        "last_scrub": time_json(last),
        "last_scrub_age_days": age_days,
        "errors": p.errors,
        "vdevs": p.vdevs,
    })
}

pub fn pool_status(ctx: &Ctx<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let mut args = Vec::new();
    if let Some(pool) = params.str("pool") {
        if pool.contains('/') {
            return Err(ProbeError::InvalidInput(format!(
                "{pool} is a dataset name; give the pool (the part before the first /)"
            )));
        }
        if !ctx.settings.allows_pool(pool) {
            return Err(ctx.settings.outside(pool));
        }
        args.push(pool);
    }
    let out = ctx.zfs.ok("zpool", "status", &args)?;
    let mut findings = Vec::new();
    let pools: Vec<Value> = parse_status(&out.stdout)
        .iter()
        .filter(|p| ctx.settings.allows_pool(&p.name))
        .map(|p| status_findings(p, ctx.now, &mut findings))
        .collect();
    if let Some(pool) = params.str("pool")
        && pools.is_empty()
    {
        return Err(ProbeError::NotFound(format!("no pool {pool}")));
    }
    ctx.output(json!({"pools": pools, "findings": findings}), false)
}
