//! VMs and containers: the list with state and resources, their locks,
//! and one guest's configuration (scrubbed), pending changes and snapshots.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::pvesh::{self, Answer};
use super::{num, percent, resources, utc};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// Most guests one answer lists.
pub const MAX_GUESTS: usize = 2000;
/// A snapshot older than this (days) is worth a look: it pins space and
/// slows some storage down.
pub const OLD_SNAPSHOT_DAYS: i64 = 30;
/// Container root/mount-point use (percent) worth a warning.
pub const GUEST_DISK_WARN: f64 = 90.0;

/// What a lock means and what to check before clearing it.
pub fn lock_meaning(lock: &str) -> &'static str {
    match lock {
        "backup" => "a backup (vzdump) holds it; if no backup task runs, a crashed backup left it",
        "migrate" => "a migration holds it; if no migration task runs, one failed half-way",
        "snapshot" | "snapshot-delete" => {
            "a snapshot is being taken or removed; a leftover lock means that task failed"
        }
        "rollback" => "a snapshot rollback holds it",
        "clone" | "copy" => "the guest is being cloned",
        "create" => "the guest is being created or restored",
        "disk" => "a disk operation (move, resize) holds it",
        "mounted" => "the container's volumes are mounted on the host (`pct mount`)",
        "fstrim" => "an fstrim of the container runs",
        "suspending" | "suspended" => "the VM is (being) hibernated to disk",
        "destroyed" => "the guest is being destroyed",
        _ => "an operation holds it",
    }
}

fn guest_json(r: &Value) -> Value {
    let kind = r["type"].as_str().unwrap_or("");
    json!({
        "vmid": r["vmid"],
        "name": r["name"],
        "type": kind,
        "node": r["node"],
        "status": r["status"],
        "template": num(&r["template"]).is_some_and(|t| t > 0.0),
        "lock": r["lock"],
        "hastate": r["hastate"],
        "tags": r["tags"].as_str().map(|t| t.split([';', ',', ' ']).filter(|s| !s.is_empty()).collect::<Vec<_>>()),
        "pool": r["pool"],
        "uptime_s": r["uptime"],
        "cpu_percent": num(&r["cpu"]).map(|c| (c * 1000.0).round() / 10.0),
        "maxcpu": r["maxcpu"],
        "mem_bytes": r["mem"],
        "maxmem_bytes": r["maxmem"],
        "mem_percent": percent(&r["mem"], &r["maxmem"]),
        "disk_bytes": r["disk"],
        "maxdisk_bytes": r["maxdisk"],
        // VMs report disk use only through the guest agent; 0 means unknown.
        "disk_percent": if kind == "lxc" { percent(&r["disk"], &r["maxdisk"]) } else { None },
        "netin_bytes": r["netin"],
        "netout_bytes": r["netout"],
    })
}

fn guest_label(g: &Value) -> String {
    format!(
        "{} {} ({}) on {}",
        if g["type"] == "lxc" {
            "container"
        } else {
            "VM"
        },
        g["vmid"],
        g["name"].as_str().unwrap_or("unnamed"),
        g["node"].as_str().unwrap_or("?")
    )
}

pub fn list_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let kind = params.str("type");
    let node = params.str("node");
    let status = params.str("status");
    let templates = params.bool("templates").unwrap_or(false);
    let mut all: Vec<Value> = resources(ctx, "vm")?
        .iter()
        .filter(|r| matches!(r["type"].as_str(), Some("qemu" | "lxc")))
        .map(guest_json)
        .filter(|g| kind.is_none_or(|k| g["type"] == k))
        .filter(|g| node.is_none_or(|n| g["node"] == n))
        .filter(|g| status.is_none_or(|s| g["status"] == s))
        .filter(|g| templates || g["template"] != true)
        .collect();
    all.sort_by_key(|g| g["vmid"].as_u64().unwrap_or(0));
    let mut findings = Vec::new();
    for g in &all {
        if let Some(lock) = g["lock"].as_str() {
            findings.push(finding(
                "warning",
                format!(
                    "{} is locked ({lock}): {}",
                    guest_label(g),
                    lock_meaning(lock)
                ),
            ));
        }
        if g["hastate"] == "error" {
            findings.push(finding(
                "critical",
                format!("{} is in HA state error", guest_label(g)),
            ));
        }
        if g["status"] == "unknown" {
            findings.push(finding(
                "warning",
                format!(
                    "{}: state unknown (its node does not answer)",
                    guest_label(g)
                ),
            ));
        }
        if let Some(p) = num(&g["disk_percent"]).filter(|p| *p >= GUEST_DISK_WARN) {
            findings.push(finding(
                "warning",
                format!("{}: root disk {p}% full", guest_label(g)),
            ));
        }
    }
    let count = |f: &dyn Fn(&Value) -> bool| all.iter().filter(|g| f(g)).count();
    let counts = json!({
        "guests": all.len(),
        "vms": count(&|g| g["type"] == "qemu"),
        "containers": count(&|g| g["type"] == "lxc"),
        "running": count(&|g| g["status"] == "running"),
        "stopped": count(&|g| g["status"] == "stopped"),
        "locked": count(&|g| g["lock"].is_string()),
    });
    let truncated = all.len() > MAX_GUESTS;
    all.truncate(MAX_GUESTS);
    ProbeOutput::from_serialize(
        &json!({"counts": counts, "guests": all, "findings": findings}),
        truncated,
    )
}

/// Tasks still running (no end time, no status) from `/cluster/tasks`.
fn active_tasks(ctx: &ProbeContext<'_>) -> Result<Vec<Value>, ProbeError> {
    let v = pvesh::get_data(ctx, "/cluster/tasks", &[])?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["endtime"].is_null() && t["status"].is_null())
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

pub fn locks_probe(ctx: &ProbeContext<'_>, _: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let locked: Vec<Value> = resources(ctx, "vm")?
        .iter()
        .filter(|r| r["lock"].is_string())
        .map(guest_json)
        .collect();
    let active = if locked.is_empty() {
        Vec::new()
    } else {
        active_tasks(ctx)?
    };
    let mut findings = Vec::new();
    let list: Vec<Value> = locked
        .iter()
        .map(|g| {
            let lock = g["lock"].as_str().unwrap_or("");
            let vmid = g["vmid"].to_string();
            let holder = active.iter().find(|t| t["id"].as_str() == Some(vmid.as_str()) && t["node"] == g["node"]);
            if holder.is_none() {
                findings.push(finding(
                    "warning",
                    format!(
                        "{} is locked ({lock}) and no task of it runs: a stale lock blocks start, backup and migration; once you know why ({}), `{} unlock {vmid}` on {} clears it",
                        guest_label(g),
                        lock_meaning(lock),
                        if g["type"] == "lxc" { "pct" } else { "qm" },
                        g["node"].as_str().unwrap_or("its node"),
                    ),
                ));
            }
            json!({
                "vmid": g["vmid"],
                "name": g["name"],
                "type": g["type"],
                "node": g["node"],
                "status": g["status"],
                "lock": lock,
                "meaning": lock_meaning(lock),
                "held_by_task": holder.map(|t| json!({"upid": t["upid"], "type": t["type"], "user": t["user"], "started": utc(&t["starttime"])})),
            })
        })
        .collect();
    Ok(ProbeOutput::new(
        json!({"count": list.len(), "locked": list, "findings": findings}),
    ))
}

/// Config keys holding a secret the API does not mask itself.
const SECRET_KEYS: &[&str] = &["cipassword"];

/// Disk keys of a VM or container configuration.
fn is_disk_key(k: &str) -> bool {
    let idx = |p: &str| {
        k.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    ["scsi", "virtio", "sata", "ide", "mp", "efidisk", "tpmstate"]
        .iter()
        .any(|p| idx(p))
        || k == "rootfs"
}

/// One disk line: `local-zfs:vm-100-disk-0,discard=on,size=32G` → volume
/// and options.
fn disk_json(key: &str, value: &str) -> Value {
    let mut parts = value.split(',');
    let volume = parts.next().unwrap_or("");
    let mut opts = Map::new();
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        opts.insert(k.to_owned(), json!(v));
    }
    json!({
        "key": key,
        "volume": volume,
        "size": opts.get("size"),
        "media": opts.get("media"),
        "mountpoint": opts.get("mp"),
        "backup": opts.get("backup").map(|b| b != "0"),
        "replicate": opts.get("replicate").map(|b| b != "0"),
    })
}

pub fn config_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let vmid = params
        .i64("vmid")
        .ok_or_else(|| ProbeError::InvalidInput("vmid is required".into()))?;
    let guest = resources(ctx, "vm")?
        .into_iter()
        .find(|r| {
            r["vmid"].as_i64() == Some(vmid) && matches!(r["type"].as_str(), Some("qemu" | "lxc"))
        })
        .ok_or_else(|| {
            ProbeError::NotFound(format!(
                "no VM or container {vmid} in this cluster (guests.list lists them)"
            ))
        })?;
    let kind = guest["type"].as_str().unwrap_or("qemu");
    let node = guest["node"].as_str().unwrap_or("");
    if !pvesh::is_node(node) {
        return Err(ProbeError::Failed(format!(
            "guest {vmid} sits on a node whose name the pack cannot use: {node:?}"
        )));
    }
    let base = format!("/nodes/{node}/{kind}/{vmid}");
    let mut config = pvesh::get_data(ctx, &format!("{base}/config"), &[("current", "1".into())])?;
    if let Some(map) = config.as_object_mut() {
        for k in SECRET_KEYS {
            if let Some(v) = map.get_mut(*k)
                && v.as_str().is_some_and(|s| !s.bytes().all(|b| b == b'*'))
            {
                *v = json!("[REDACTED:proxmox_config_secret]");
            }
        }
        // Digest is a checksum for writers; not for readers.
        map.remove("digest");
    }
    ctx.secrets.scrub_value(&mut config);
    let g = guest_json(&guest);
    let mut findings = Vec::new();
    let disks: Vec<Value> = config
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| is_disk_key(k))
                .filter_map(|(k, v)| v.as_str().map(|s| disk_json(k, s)))
                .collect()
        })
        .unwrap_or_default();
    for d in &disks {
        if d["backup"] == false && d["media"] != "cdrom" {
            findings.push(finding(
                "info",
                format!(
                    "{}: disk {} ({}) is excluded from backups (backup=0)",
                    guest_label(&g),
                    d["key"].as_str().unwrap_or(""),
                    d["volume"].as_str().unwrap_or("")
                ),
            ));
        }
    }
    if let Some(lock) = config["lock"].as_str() {
        findings.push(finding(
            "warning",
            format!(
                "{} is locked ({lock}): {}",
                guest_label(&g),
                lock_meaning(lock)
            ),
        ));
    }
    let pending = if params.bool("pending").unwrap_or(true) {
        match pvesh::get(ctx, &format!("{base}/pending"), &[])? {
            Answer::Data(Value::Array(items)) => {
                let changes: Vec<Value> = items
                    .into_iter()
                    .filter(|i| !i["pending"].is_null() || !i["delete"].is_null())
                    .filter(|i| !SECRET_KEYS.contains(&i["key"].as_str().unwrap_or("")))
                    .map(|mut i| {
                        ctx.secrets.scrub_value(&mut i);
                        json!({"key": i["key"], "current": i["value"], "pending": i["pending"], "delete": i["delete"]})
                    })
                    .collect();
                if !changes.is_empty() {
                    findings.push(finding("info", format!("{} has {} pending configuration change(s), applied at its next restart", guest_label(&g), changes.len())));
                }
                Some(changes)
            }
            _ => None,
        }
    } else {
        None
    };
    let now_s = sonde_protocol::time::now_ms() / 1000;
    let snapshots: Option<Vec<Value>> = match pvesh::get(ctx, &format!("{base}/snapshot"), &[])? {
        Answer::Data(Value::Array(items)) => Some(
            items
                .into_iter()
                .filter(|s| s["name"] != "current")
                .map(|s| {
                    let age_days = s["snaptime"].as_i64().map(|t| (now_s - t) / 86_400);
                    if let Some(a) = age_days.filter(|a| *a >= OLD_SNAPSHOT_DAYS) {
                        findings.push(finding("info", format!("{}: snapshot {} is {a} days old (it pins the space of every block changed since)", guest_label(&g), s["name"].as_str().unwrap_or(""))));
                    }
                    json!({
                        "name": s["name"],
                        "parent": s["parent"],
                        "taken": utc(&s["snaptime"]),
                        "age_days": age_days,
                        "with_ram": num(&s["vmstate"]).map(|v| v > 0.0),
                        "description": s["description"],
                    })
                })
                .collect(),
        ),
        _ => None,
    };
    Ok(ProbeOutput::new(json!({
        "guest": g,
        "config": config,
        "disks": disks,
        "pending": pending,
        "snapshots": snapshots,
        "findings": findings,
    })))
}
