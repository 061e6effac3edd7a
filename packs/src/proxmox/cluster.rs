//! Cluster-wide state: quorum and nodes, HA, storage, Ceph.

use serde_json::{Value, json};
use sonde_protocol::schema::ValidatedParams;

use super::pvesh::{self, Answer};
use super::{num, percent, resources};
use crate::handler::{ProbeContext, ProbeError, ProbeOutput};
use crate::system::finding;

/// Storage use (percent) from which a finding is a warning, and critical.
pub const STORAGE_WARN: f64 = 80.0;
pub const STORAGE_CRIT: f64 = 90.0;
/// Node memory use (percent) worth a warning.
pub const NODE_MEM_WARN: f64 = 90.0;

pub fn status_probe(
    ctx: &ProbeContext<'_>,
    _: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let status = pvesh::get_data(ctx, "/cluster/status", &[])?;
    let nodes_res = resources(ctx, "node")?;
    let version = match pvesh::get(ctx, "/version", &[])? {
        Answer::Data(v) => v,
        Answer::ApiError(_) => Value::Null,
    };
    let entries = status.as_array().cloned().unwrap_or_default();
    let cluster = entries.iter().find(|e| e["type"] == "cluster");
    let mut findings = Vec::new();
    let quorate = cluster.and_then(|c| num(&c["quorate"])).map(|q| q > 0.0);
    if quorate == Some(false) {
        findings.push(finding(
            "critical",
            "the cluster has no quorum: /etc/pve is read-only, guests cannot be started or changed and HA cannot recover (check `pvecm status` and the corosync links)",
        ));
    }
    let mut nodes = Vec::new();
    for e in entries.iter().filter(|e| e["type"] == "node") {
        let name = e["name"].as_str().unwrap_or("");
        let res = nodes_res.iter().find(|r| r["node"] == name);
        let online = num(&e["online"]).map(|o| o > 0.0);
        let mem_percent = res.and_then(|r| percent(&r["mem"], &r["maxmem"]));
        let cpu_percent = res
            .and_then(|r| num(&r["cpu"]))
            .map(|c| (c * 1000.0).round() / 10.0);
        if online == Some(false) {
            findings.push(finding("warning", format!("node {name} is offline")));
        }
        if let Some(m) = mem_percent.filter(|m| *m >= NODE_MEM_WARN) {
            findings.push(finding(
                "warning",
                format!("node {name} uses {m}% of its memory"),
            ));
        }
        nodes.push(json!({
            "name": name,
            "nodeid": e["nodeid"],
            "ip": e["ip"],
            "online": online,
            "local": num(&e["local"]).map(|l| l > 0.0),
            "level": e["level"],
            "cpu_percent": cpu_percent,
            "maxcpu": res.map(|r| &r["maxcpu"]),
            "mem_bytes": res.map(|r| &r["mem"]),
            "maxmem_bytes": res.map(|r| &r["maxmem"]),
            "mem_percent": mem_percent,
            "rootfs_percent": res.and_then(|r| percent(&r["disk"], &r["maxdisk"])),
            "uptime_s": res.map(|r| &r["uptime"]),
        }));
    }
    Ok(ProbeOutput::new(json!({
        "pve_version": version["version"],
        "pve_release": version["release"],
        "clustered": cluster.is_some(),
        "cluster": cluster.map(|c| json!({
            "name": c["name"],
            "nodes": c["nodes"],
            "quorate": quorate,
            "config_version": c["version"],
        })),
        "nodes": nodes,
        "findings": findings,
    })))
}

/// HA service states that need an operator.
fn service_severity(state: &str) -> Option<&'static str> {
    match state {
        "error" | "fence" => Some("critical"),
        "recovery" | "freeze" | "migrate" | "relocate" => Some("warning"),
        _ => None,
    }
}

pub fn ha_probe(ctx: &ProbeContext<'_>, _: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let current = pvesh::get_data(ctx, "/cluster/ha/status/current", &[])?;
    let configured = pvesh::get_data(ctx, "/cluster/ha/resources", &[])?;
    let entries = current.as_array().cloned().unwrap_or_default();
    let configured = configured.as_array().cloned().unwrap_or_default();
    let mut findings = Vec::new();
    let quorum = entries.iter().find(|e| e["type"] == "quorum");
    if let Some(q) = quorum
        && num(&q["quorate"]).is_some_and(|v| v == 0.0)
    {
        findings.push(finding(
            "critical",
            format!("HA has no quorum: {}", q["status"].as_str().unwrap_or("")),
        ));
    }
    let master = entries.iter().find(|e| e["type"] == "master");
    if master.is_none() && !configured.is_empty() {
        findings.push(finding(
            "critical",
            "HA resources are configured but no CRM master is elected (is pve-ha-crm running on a quorate node?)",
        ));
    }
    if let Some(m) = master
        && m["status"]
            .as_str()
            .is_some_and(|s| s.contains("old timestamp"))
    {
        findings.push(finding(
            "warning",
            format!(
                "the HA master's status is stale: {}",
                m["status"].as_str().unwrap_or("")
            ),
        ));
    }
    let lrms: Vec<Value> = entries
        .iter()
        .filter(|e| e["type"] == "lrm")
        .map(|e| {
            let status = e["status"].as_str().unwrap_or("");
            if status.contains("old timestamp")
                || status.contains("dead")
                || status.contains("unable")
            {
                findings.push(finding(
                    "warning",
                    format!("HA LRM on {}: {status}", e["node"].as_str().unwrap_or("?")),
                ));
            }
            json!({"node": e["node"], "status": status})
        })
        .collect();
    let services: Vec<Value> = entries
        .iter()
        .filter(|e| e["type"] == "service")
        .map(|e| {
            let sid = e["sid"].as_str().unwrap_or_default();
            let state = e["state"].as_str().unwrap_or("");
            let requested = e["request_state"].as_str().unwrap_or("");
            if let Some(sev) = service_severity(state) {
                findings.push(finding(
                    sev,
                    format!(
                        "HA service {sid} on {} is in state {state}",
                        e["node"].as_str().unwrap_or("?")
                    ),
                ));
            } else if requested == "started" && state == "stopped" {
                findings.push(finding(
                    "warning",
                    format!("HA service {sid} should run but is stopped"),
                ));
            }
            let config = configured.iter().find(|c| c["sid"] == sid);
            json!({
                "sid": sid,
                "node": e["node"],
                "state": state,
                "crm_state": e["crm_state"],
                "request_state": e["request_state"],
                "status": e["status"],
                "group": config.map(|c| &c["group"]),
                "max_restart": config.map(|c| &c["max_restart"]),
                "max_relocate": config.map(|c| &c["max_relocate"]),
            })
        })
        .collect();
    Ok(ProbeOutput::new(json!({
        "enabled": !configured.is_empty(),
        "quorum": quorum.map(|q| json!({"status": q["status"], "quorate": q["quorate"]})),
        "master": master.map(|m| json!({"node": m["node"], "status": m["status"]})),
        "lrms": lrms,
        "services": services,
        "configured": configured.len(),
        "findings": findings,
    })))
}

pub fn storage_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let node = params.str("node");
    let mut findings = Vec::new();
    let mut list: Vec<Value> = resources(ctx, "storage")?
        .into_iter()
        .filter(|r| node.is_none_or(|n| r["node"] == n))
        .map(|r| {
            let name = r["storage"].as_str().unwrap_or("?");
            let on = r["node"].as_str().unwrap_or("?");
            let used = percent(&r["disk"], &r["maxdisk"]);
            let available = r["status"] == "available";
            if !available {
                findings.push(finding(
                    "warning",
                    format!("storage {name} on {on} is {} (unreachable share, missing pool or disabled)", r["status"].as_str().unwrap_or("unknown")),
                ));
            }
            match used {
                Some(p) if p >= STORAGE_CRIT => findings.push(finding("critical", format!("storage {name} on {on} is {p}% full"))),
                Some(p) if p >= STORAGE_WARN => findings.push(finding("warning", format!("storage {name} on {on} is {p}% full"))),
                _ => {}
            }
            json!({
                "storage": name,
                "node": on,
                "type": r["plugintype"],
                "status": r["status"],
                "shared": num(&r["shared"]).map(|s| s > 0.0),
                "content": r["content"].as_str().map(|c| c.split(',').collect::<Vec<_>>()),
                "used_bytes": r["disk"],
                "total_bytes": r["maxdisk"],
                "used_percent": used,
            })
        })
        .collect();
    list.sort_by(|a, b| {
        num(&b["used_percent"])
            .unwrap_or(-1.0)
            .total_cmp(&num(&a["used_percent"]).unwrap_or(-1.0))
    });
    Ok(ProbeOutput::new(
        json!({"count": list.len(), "storages": list, "findings": findings}),
    ))
}

/// An API error that means "this node has no Ceph".
fn ceph_absent(e: &str) -> bool {
    let e = e.to_ascii_lowercase();
    [
        "not installed",
        "not initialized",
        "not configured",
        "no such file",
        "ceph.conf",
        "binary not installed",
    ]
    .iter()
    .any(|w| e.contains(w))
}

pub fn ceph_probe(ctx: &ProbeContext<'_>, _: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let v = match pvesh::get(ctx, "/cluster/ceph/status", &[])? {
        Answer::Data(v) => v,
        Answer::ApiError(e) if ceph_absent(&e) => {
            return Ok(ProbeOutput::new(
                json!({"present": false, "reason": e, "findings": []}),
            ));
        }
        Answer::ApiError(e) => {
            return Err(ProbeError::Failed(format!(
                "`pvesh get /cluster/ceph/status`: {e}"
            )));
        }
    };
    let mut findings = Vec::new();
    let health = v["health"]["status"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let mut checks = Vec::new();
    if let Some(map) = v["health"]["checks"].as_object() {
        for (name, c) in map {
            let sev = c["severity"].as_str().unwrap_or("");
            let msg = c["summary"]["message"].as_str().unwrap_or("").to_owned();
            findings.push(finding(
                if sev == "HEALTH_ERR" {
                    "critical"
                } else {
                    "warning"
                },
                format!("Ceph {name}: {msg}"),
            ));
            checks
                .push(json!({"check": name, "severity": sev, "message": msg, "muted": c["muted"]}));
        }
    }
    if checks.is_empty() && health != "HEALTH_OK" {
        findings.push(finding("warning", format!("Ceph health is {health}")));
    }
    // Ceph ≥ 15 puts the counts directly under osdmap; older ones nest them.
    let osd = if v["osdmap"]["num_osds"].is_null() {
        &v["osdmap"]["osdmap"]
    } else {
        &v["osdmap"]
    };
    let (total, up, inn) = (
        num(&osd["num_osds"]),
        num(&osd["num_up_osds"]),
        num(&osd["num_in_osds"]),
    );
    if let (Some(t), Some(u)) = (total, up)
        && u < t
    {
        findings.push(finding(
            "warning",
            format!("{} of {t} Ceph OSDs are down", t - u),
        ));
    }
    let pg = &v["pgmap"];
    let pgs_by_state: Vec<Value> = pg["pgs_by_state"].as_array().cloned().unwrap_or_default();
    let not_clean: f64 = pgs_by_state
        .iter()
        .filter(|s| s["state_name"] != "active+clean")
        .filter_map(|s| num(&s["count"]))
        .sum();
    if not_clean > 0.0 {
        findings.push(finding(
            "warning",
            format!("{not_clean} placement groups are not active+clean"),
        ));
    }
    let used = percent(&pg["bytes_used"], &pg["bytes_total"]);
    if let Some(p) = used.filter(|p| *p >= STORAGE_WARN) {
        findings.push(finding(
            if p >= STORAGE_CRIT {
                "critical"
            } else {
                "warning"
            },
            format!("Ceph raw capacity is {p}% used"),
        ));
    }
    Ok(ProbeOutput::new(json!({
        "present": true,
        "fsid": v["fsid"],
        "health": health,
        "checks": checks,
        "monitors": {
            "count": v["monmap"]["mons"].as_array().map(Vec::len).or_else(|| v["monmap"]["num_mons"].as_u64().map(|n| n as usize)),
            "quorum": v["quorum_names"],
        },
        "osds": {"total": total, "up": up, "in": inn},
        "pgs": {"total": pg["num_pgs"], "by_state": pgs_by_state},
        "capacity": {
            "used_bytes": pg["bytes_used"],
            "total_bytes": pg["bytes_total"],
            "available_bytes": pg["bytes_avail"],
            "data_bytes": pg["data_bytes"],
            "used_percent": used,
        },
        "io": {
            "read_bytes_sec": pg["read_bytes_sec"],
            "write_bytes_sec": pg["write_bytes_sec"],
            "read_op_per_sec": pg["read_op_per_sec"],
            "write_op_per_sec": pg["write_op_per_sec"],
        },
        "findings": findings,
    })))
}
