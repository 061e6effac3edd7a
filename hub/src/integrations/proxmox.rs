//! Proxmox VE: guests sorted by load, storage fill, failed backups
//! (`vzdump` tasks whose status is not `OK`), quorum and node state.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use super::builtin::{f64_of, finding, str_of};

fn ratio(v: &Value, used: &str, total: &str) -> Option<f64> {
    let t = f64_of(v, total)?;
    (t > 0.0).then(|| f64_of(v, used).unwrap_or(0.0) / t)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A task ended (has an end time) and its status is not `OK` (Proxmox
/// writes `OK`, `WARNINGS: n`, or the error text).
fn failed(task: &Value) -> bool {
    let status = str_of(task, "status");
    task.get("endtime").is_some()
        && !status.is_empty()
        && status != "OK"
        && !status.starts_with("WARNINGS")
}

pub fn finish(probe: &str, params: &Map<String, Value>, data: Value) -> Value {
    let items: Vec<Value> = data.as_array().cloned().unwrap_or_default();
    let mut findings = Vec::new();
    match probe {
        "nodes" => {
            for n in &items {
                if str_of(n, "status") != "online" {
                    findings.push(finding(
                        "critical",
                        format!("node {} is {}", str_of(n, "node"), str_of(n, "status")),
                    ));
                }
            }
            json!({"nodes": items, "findings": findings})
        }
        "guests" => {
            let mut guests: Vec<Value> = items
                .into_iter()
                .filter(|g| g.get("template").and_then(Value::as_i64).unwrap_or(0) == 0)
                .map(|mut g| {
                    let cores = f64_of(&g, "maxcpu").unwrap_or(0.0);
                    let cpu = f64_of(&g, "cpu").unwrap_or(0.0);
                    g["cpu_cores_used"] = json!(round3(cpu * cores));
                    if let Some(r) = ratio(&g, "mem", "maxmem") {
                        g["mem_ratio"] = json!(round3(r));
                    }
                    g
                })
                .collect();
            guests.sort_by(|a, b| {
                f64_of(b, "cpu_cores_used")
                    .unwrap_or(0.0)
                    .total_cmp(&f64_of(a, "cpu_cores_used").unwrap_or(0.0))
            });
            let running = guests
                .iter()
                .filter(|g| str_of(g, "status") == "running")
                .count();
            for g in &guests {
                if let Some(r) = f64_of(g, "mem_ratio")
                    && r > 0.95
                    && str_of(g, "status") == "running"
                {
                    findings.push(finding(
                        "warning",
                        format!(
                            "{} {} ({}) uses {:.0}% of its memory",
                            str_of(g, "type"),
                            g["vmid"],
                            str_of(g, "name"),
                            r * 100.0
                        ),
                    ));
                }
            }
            json!({"guests": guests, "running": running, "findings": findings})
        }
        "storage" => {
            let storage: Vec<Value> = items
                .into_iter()
                .map(|mut s| {
                    if let Some(r) = ratio(&s, "disk", "maxdisk") {
                        s["used_ratio"] = json!(round3(r));
                        let sev = if r >= 0.95 {
                            Some("critical")
                        } else if r >= 0.85 {
                            Some("warning")
                        } else {
                            None
                        };
                        if let Some(sev) = sev {
                            findings.push(finding(
                                sev,
                                format!(
                                    "storage {} on {} is {:.0}% full",
                                    str_of(&s, "storage"),
                                    str_of(&s, "node"),
                                    r * 100.0
                                ),
                            ));
                        }
                    }
                    if str_of(&s, "status") != "available" {
                        findings.push(finding(
                            "warning",
                            format!(
                                "storage {} on {} is {}",
                                str_of(&s, "storage"),
                                str_of(&s, "node"),
                                str_of(&s, "status")
                            ),
                        ));
                    }
                    s
                })
                .collect();
            json!({"storage": storage, "findings": findings})
        }
        "tasks" => {
            let errors_only = params
                .get("errors_only")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let kind = params.get("type").and_then(Value::as_str);
            let tasks: Vec<Value> = items
                .into_iter()
                .filter(|t| !errors_only || failed(t))
                .filter(|t| kind.is_none_or(|k| str_of(t, "type") == k))
                .collect();
            json!({"tasks": tasks, "findings": findings})
        }
        "failed_backups" => {
            let backups: Vec<&Value> = items
                .iter()
                .filter(|t| str_of(t, "type") == "vzdump")
                .collect();
            let mut last_ok: BTreeMap<String, i64> = BTreeMap::new();
            for t in &backups {
                if str_of(t, "status") == "OK" {
                    let end = t.get("endtime").and_then(Value::as_i64).unwrap_or(0);
                    let e = last_ok.entry(str_of(t, "id").to_owned()).or_insert(0);
                    *e = (*e).max(end);
                }
            }
            let failed: Vec<Value> = backups
                .iter()
                .filter(|t| failed(t))
                .map(|t| (*t).clone())
                .collect();
            for t in &failed {
                findings.push(finding(
                    "critical",
                    format!(
                        "backup of {} on {} failed: {}",
                        match str_of(t, "id") {
                            "" => "all guests",
                            id => id,
                        },
                        str_of(t, "node"),
                        str_of(t, "status")
                    ),
                ));
            }
            json!({
                "backups_seen": backups.len(),
                "failed": failed,
                "last_ok_endtime_by_guest": last_ok,
                "findings": findings,
            })
        }
        "cluster_status" => {
            for e in &items {
                match str_of(e, "type") {
                    "cluster" if e.get("quorate").and_then(Value::as_i64) == Some(0) => {
                        findings.push(finding(
                            "critical",
                            format!("cluster {} is not quorate", str_of(e, "name")),
                        ));
                    }
                    "node" if e.get("online").and_then(Value::as_i64) == Some(0) => {
                        findings.push(finding(
                            "critical",
                            format!("node {} is offline", str_of(e, "name")),
                        ));
                    }
                    _ => {}
                }
            }
            json!({"entries": items, "findings": findings})
        }
        "ha_status" => {
            for e in &items {
                let status = str_of(e, "status");
                let t = str_of(e, "type");
                if (t == "service"
                    && ["error", "fence", "recovery"]
                        .iter()
                        .any(|s| str_of(e, "state") == *s))
                    || (t == "quorum" && !status.contains("OK"))
                {
                    findings.push(finding(
                        "warning",
                        format!("HA {} {}: {}", t, str_of(e, "id"), status),
                    ));
                }
            }
            json!({"entries": items, "findings": findings})
        }
        _ => super::builtin::plain(data),
    }
}
