//! `smartctl --json` output → a disk's health: the verdict, the numbers
//! that predict failure (reallocated, pending and uncorrectable sectors;
//! NVMe spare, wear and media errors), temperature, power-on hours, the
//! self-test log, and findings. Field names are smartmontools' JSON
//! (`json_format_version` 1.0, smartctl 7.x).

use serde_json::{Value, json};

use crate::system::finding;

/// smartctl's exit status bits (man smartctl, RETURN VALUES).
pub const EXIT_BITS: &[(u8, &str)] = &[
    (0, "the command line did not parse"),
    (
        1,
        "the device could not be opened, or is in a low-power mode",
    ),
    (2, "a SMART or other command to the device failed"),
    (3, "SMART status check returned DISK FAILING"),
    (4, "pre-fail attributes are at or below their threshold"),
    (5, "attributes were at or below their threshold in the past"),
    (6, "the device error log contains errors"),
    (7, "the self-test log contains errors"),
];

/// The meanings of the bits set in `status`.
pub fn exit_meanings(status: i64) -> Vec<&'static str> {
    EXIT_BITS
        .iter()
        .filter(|(bit, _)| status & (1 << bit) != 0)
        .map(|(_, m)| *m)
        .collect()
}

/// NVMe critical warning bits (NVMe base spec, SMART / Health log byte 0).
pub const NVME_CRITICAL: &[(u8, &str)] = &[
    (0, "available spare is below its threshold"),
    (1, "temperature is outside its limits"),
    (2, "reliability is degraded by media or internal errors"),
    (3, "the media is read-only"),
    (4, "the volatile memory backup device failed"),
    (5, "the persistent memory region is read-only"),
];

/// ATA attributes that predict failure or explain errors: (id, key).
const ATA_KEYS: &[(u64, &str)] = &[
    (5, "reallocated_sectors"),
    (187, "reported_uncorrectable"),
    (188, "command_timeouts"),
    (196, "reallocation_events"),
    (197, "pending_sectors"),
    (198, "offline_uncorrectable"),
    (199, "udma_crc_errors"),
];

fn attribute(v: &Value, id: u64) -> Option<&Value> {
    v["ata_smart_attributes"]["table"]
        .as_array()?
        .iter()
        .find(|a| a["id"].as_u64() == Some(id))
}

fn raw(v: &Value, id: u64) -> Option<u64> {
    attribute(v, id)?["raw"]["value"].as_u64()
}

/// What kind of device the JSON describes.
fn protocol(v: &Value) -> &str {
    v["device"]["protocol"].as_str().unwrap_or("")
}

/// The messages smartctl printed (errors first in meaning).
pub fn messages(v: &Value) -> Vec<String> {
    v["smartctl"]["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x["string"].as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Why no SMART data came, when it is a permission matter, with the fix.
pub fn permission_problem(v: &Value, device: &str) -> Option<String> {
    let text = messages(v).join(" ");
    let denied = text.contains("Permission denied");
    let not_permitted = text.contains("Operation not permitted");
    if !denied && !not_permitted {
        return None;
    }
    let controller = device
        .strip_prefix("/dev/nvme")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if text.contains("open device") && denied && controller {
        return Some(format!(
            "the agent's user may not open {device}: an NVMe controller node is root-only; ask for its namespace instead ({device}n1, which group disk may open), though NVMe health logs still need CAP_SYS_ADMIN (see the pack's README)"
        ));
    }
    if text.contains("open device") && denied {
        return Some(format!(
            "the agent's user may not open {device}: add it to group disk (`usermod -aG disk sonde`, or SupplementaryGroups=disk in the unit) and restart sonde-agent"
        ));
    }
    let nvme = protocol(v) == "NVMe" || device.contains("nvme");
    Some(if nvme {
        format!(
            "{device} opened, but the kernel allows NVMe SMART/health log reads only with CAP_SYS_ADMIN. Group disk is not enough, and a capability set on smartctl (setcap) is ignored because the agent runs its programs with no_new_privs; the only way is an ambient capability for the whole agent service (AmbientCapabilities=CAP_SYS_ADMIN and CapabilityBoundingSet=CAP_SYS_ADMIN in the unit), which every program it runs inherits: weigh that before granting it"
        )
    } else {
        format!(
            "{device} opened, but the kernel allows ATA pass-through (SATA SMART) only with CAP_SYS_RAWIO. Group disk is not enough, and a capability set on smartctl (setcap) is ignored because the agent runs its programs with no_new_privs; the only way is an ambient capability for the whole agent service (AmbientCapabilities=CAP_SYS_RAWIO and CapabilityBoundingSet=CAP_SYS_RAWIO in the unit), which every program it runs inherits"
        )
    })
}

/// The disk was in standby and was not woken (`--nocheck standby`).
pub fn in_standby(v: &Value) -> bool {
    messages(v)
        .iter()
        .any(|m| m.contains("STANDBY") || m.contains("SLEEP") || m.contains("IDLE mode"))
}

fn self_tests(v: &Value) -> (Vec<Value>, Option<bool>) {
    let mut out = Vec::new();
    // ATA: ata_smart_self_test_log.standard.table (newest first).
    if let Some(t) = v["ata_smart_self_test_log"]["standard"]["table"].as_array() {
        for e in t {
            out.push(json!({
                "type": e["type"]["string"],
                "status": e["status"]["string"],
                "passed": e["status"]["passed"],
                "lifetime_hours": e["lifetime_hours"],
                "first_error_lba": e.get("lba"),
            }));
        }
    }
    // NVMe (smartctl 7.4+): nvme_self_test_log.table.
    if let Some(t) = v["nvme_self_test_log"]["table"].as_array() {
        for e in t {
            let result = e["self_test_result"]["value"].as_u64();
            out.push(json!({
                "type": e["self_test_code"]["string"],
                "status": e["self_test_result"]["string"],
                "passed": result.map(|r| r == 0),
                "lifetime_hours": e["power_on_hours"],
                "first_error_lba": e.get("lba"),
            }));
        }
    }
    // SCSI: scsi_self_test_0, scsi_self_test_1, …
    for i in 0..20 {
        let e = &v[format!("scsi_self_test_{i}")];
        if e.is_null() {
            break;
        }
        let result = e["result"]["value"].as_u64();
        out.push(json!({
            "type": e["code"]["string"],
            "status": e["result"]["string"],
            "passed": result.map(|r| r == 0),
            "lifetime_hours": e["power_on_time"]["hours"],
            "first_error_lba": e.get("lba_first_failure"),
        }));
    }
    let last_passed = out
        .iter()
        .find(|e| {
            // A test in progress has no verdict yet.
            !e["status"].as_str().is_some_and(|s| s.contains("progress"))
        })
        .and_then(|e| e["passed"].as_bool());
    (out, last_passed)
}

/// The disk's summary and findings. `device` names it in messages.
pub fn summarise(v: &Value, device: &str, max_tests: usize) -> (Value, Vec<Value>) {
    let mut findings = Vec::new();
    let exit = v["smartctl"]["exit_status"].as_i64().unwrap_or(0);
    let name = v["device"]["name"].as_str().unwrap_or(device).to_owned();
    let model = v["model_name"]
        .as_str()
        .or_else(|| v["scsi_model_name"].as_str())
        .or_else(|| v["scsi_product"].as_str())
        .map(str::to_owned);
    let shown = match &model {
        Some(m) => format!("{name} ({m})"),
        None => name.clone(),
    };

    if let Some(problem) = permission_problem(v, &name) {
        findings.push(finding(
            "warning",
            format!("no SMART data for {name}: {problem}"),
        ));
        return (
            json!({"device": name, "verdict": "unknown", "readable": false, "reason": problem, "messages": messages(v)}),
            findings,
        );
    }
    if in_standby(v) {
        findings.push(finding(
            "info",
            format!("{name} is spun down (standby) and was not woken; ask with wake = true to read it anyway"),
        ));
        return (
            json!({"device": name, "verdict": "unknown", "readable": false, "standby": true, "reason": "the disk is in standby and was not woken", "messages": messages(v)}),
            findings,
        );
    }
    let passed = v["smart_status"]["passed"].as_bool();
    if passed.is_none() && exit & 0b110 != 0 {
        let why = messages(v).join("; ");
        findings.push(finding(
            "warning",
            format!(
                "no SMART data for {shown}: {}",
                if why.is_empty() {
                    "smartctl could not read it".into()
                } else {
                    why.clone()
                }
            ),
        ));
        return (
            json!({"device": name, "model": model, "verdict": "unknown", "readable": false, "reason": why, "messages": messages(v)}),
            findings,
        );
    }

    let nvme = &v["nvme_smart_health_information_log"];
    let is_nvme = !nvme.is_null();
    let temperature = v["temperature"]["current"]
        .as_i64()
        .or_else(|| nvme["temperature"].as_i64());
    let power_on_hours = v["power_on_time"]["hours"]
        .as_u64()
        .or_else(|| nvme["power_on_hours"].as_u64());
    let mut ata = serde_json::Map::new();
    for (id, key) in ATA_KEYS {
        if let Some(r) = raw(v, *id) {
            ata.insert((*key).into(), json!(r));
        }
    }
    let failing_now: Vec<String> = v["ata_smart_attributes"]["table"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|a| a["when_failed"] == "now")
                .filter_map(|a| a["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let failed_past: Vec<String> = v["ata_smart_attributes"]["table"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|a| a["when_failed"] == "past")
                .filter_map(|a| a["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let (tests, last_test_passed) = self_tests(v);

    // Findings, most severe first.
    let mut verdict = "ok";
    let mut worse = |level: &'static str| {
        let rank = |l: &str| {
            ["ok", "warning", "failing"]
                .iter()
                .position(|x| *x == l)
                .unwrap_or(0)
        };
        if rank(level) > rank(verdict) {
            verdict = level;
        }
    };
    if passed == Some(false) || exit & (1 << 3) != 0 {
        worse("failing");
        findings.push(finding(
            "critical",
            format!("{shown} FAILS its SMART health check: back up its data now and replace it"),
        ));
    }
    if !failing_now.is_empty() {
        worse("failing");
        findings.push(finding(
            "critical",
            format!(
                "{shown}: pre-failure attributes at or below threshold now: {}",
                failing_now.join(", ")
            ),
        ));
    }
    let count = |k: &str| ata.get(k).and_then(Value::as_u64).unwrap_or(0);
    if count("pending_sectors") > 0 {
        worse("warning");
        findings.push(finding(
            "error",
            format!("{shown} has {} pending sectors (unreadable; data there may be lost): run a long self-test and check backups", count("pending_sectors")),
        ));
    }
    if count("offline_uncorrectable") > 0 {
        worse("warning");
        findings.push(finding(
            "error",
            format!(
                "{shown} has {} offline-uncorrectable sectors",
                count("offline_uncorrectable")
            ),
        ));
    }
    if count("reallocated_sectors") > 0 {
        worse("warning");
        findings.push(finding(
            if count("reallocated_sectors") >= 100 {
                "error"
            } else {
                "warning"
            },
            format!(
                "{shown} has reallocated {} sectors: watch whether the number grows",
                count("reallocated_sectors")
            ),
        ));
    }
    if count("reported_uncorrectable") > 0 {
        worse("warning");
        findings.push(finding(
            "warning",
            format!(
                "{shown} reported {} uncorrectable errors to the host",
                count("reported_uncorrectable")
            ),
        ));
    }
    if count("udma_crc_errors") > 0 {
        findings.push(finding(
            "info",
            format!("{shown} has {} interface CRC errors: usually a loose or bad SATA cable, not the disk", count("udma_crc_errors")),
        ));
    }
    if !failed_past.is_empty() {
        worse("warning");
        findings.push(finding(
            "warning",
            format!(
                "{shown}: attributes were at or below threshold in the past: {}",
                failed_past.join(", ")
            ),
        ));
    }
    if last_test_passed == Some(false) {
        worse("warning");
        let status = tests
            .iter()
            .find(|t| t["passed"] == false)
            .and_then(|t| t["status"].as_str())
            .unwrap_or("failed");
        findings.push(finding(
            "error",
            format!("{shown}: the last self-test did not pass ({status})"),
        ));
    }
    let mut nvme_summary = Value::Null;
    if is_nvme {
        let critical = nvme["critical_warning"].as_u64().unwrap_or(0);
        let spare = nvme["available_spare"].as_u64();
        let spare_threshold = nvme["available_spare_threshold"].as_u64();
        let used = nvme["percentage_used"].as_u64();
        let media = nvme["media_errors"].as_u64().unwrap_or(0);
        let decoded: Vec<&str> = NVME_CRITICAL
            .iter()
            .filter(|(bit, _)| critical & (1 << bit) != 0)
            .map(|(_, m)| *m)
            .collect();
        if critical != 0 {
            worse("failing");
            findings.push(finding(
                "critical",
                format!(
                    "{shown} raises NVMe critical warnings: {}",
                    decoded.join("; ")
                ),
            ));
        }
        if let (Some(s), Some(t)) = (spare, spare_threshold)
            && s < t
            && critical & 1 == 0
        {
            worse("failing");
            findings.push(finding(
                "critical",
                format!("{shown}: available spare {s}% is below its threshold {t}%"),
            ));
        }
        if let Some(u) = used {
            if u >= 100 {
                worse("warning");
                findings.push(finding(
                    "error",
                    format!("{shown} has used {u}% of its rated endurance: plan its replacement"),
                ));
            } else if u >= 80 {
                worse("warning");
                findings.push(finding(
                    "warning",
                    format!("{shown} has used {u}% of its rated endurance"),
                ));
            }
        }
        if media > 0 {
            worse("warning");
            findings.push(finding(
                "error",
                format!("{shown} logged {media} media and data integrity errors"),
            ));
        }
        nvme_summary = json!({
            "critical_warning": critical,
            "critical_warnings": decoded,
            "available_spare_percent": spare,
            "available_spare_threshold_percent": spare_threshold,
            "percentage_used": used,
            "media_errors": media,
            "error_log_entries": nvme["num_err_log_entries"],
            "unsafe_shutdowns": nvme["unsafe_shutdowns"],
            "data_units_written": nvme["data_units_written"],
            "written_bytes": nvme["data_units_written"].as_u64().map(|u| u.saturating_mul(512_000)),
            "data_units_read": nvme["data_units_read"],
            "warning_temp_time_min": nvme["warning_temp_time"],
            "critical_comp_time_min": nvme["critical_comp_time"],
        });
    }
    // SCSI/SAS: the grown defect list is the reallocation count.
    let grown = v["scsi_grown_defect_list"].as_u64();
    if let Some(g) = grown.filter(|g| *g > 0) {
        worse("warning");
        findings.push(finding(
            "warning",
            format!("{shown} has {g} grown defects (reallocated blocks)"),
        ));
    }
    if let Some(t) = temperature {
        let limit = v["nvme_composite_temperature_threshold"]["warning"]
            .as_i64()
            .unwrap_or(if is_nvme { 70 } else { 55 });
        if t >= limit {
            findings.push(finding(
                "warning",
                format!("{shown} runs at {t} °C (its warning level is {limit} °C): check cooling"),
            ));
        }
    }
    if tests.is_empty() && (v.get("ata_smart_self_test_log").is_some() || is_nvme) {
        findings.push(finding(
            "info",
            format!(
                "{shown} has no self-test on record: schedule regular short and long tests (smartd)"
            ),
        ));
    }

    let kind = if is_nvme {
        "nvme"
    } else if protocol(v) == "ATA" {
        if v["rotation_rate"].as_u64().is_some_and(|r| r > 0) {
            "hdd"
        } else {
            "ssd"
        }
    } else if protocol(v) == "SCSI" {
        "scsi"
    } else {
        "unknown"
    };
    let summary = json!({
        "device": name,
        "type": v["device"]["type"],
        "protocol": v["device"]["protocol"],
        "kind": kind,
        "model": model,
        "model_family": v["model_family"],
        "serial": v["serial_number"],
        "firmware": v["firmware_version"],
        "capacity_bytes": v["user_capacity"]["bytes"].as_u64().or_else(|| v["nvme_total_capacity"].as_u64()),
        "rotation_rpm": v["rotation_rate"],
        "readable": true,
        "verdict": verdict,
        "smart_passed": passed,
        "temperature_c": temperature,
        "power_on_hours": power_on_hours,
        "power_cycles": v["power_cycle_count"].as_u64().or_else(|| nvme["power_cycles"].as_u64()),
        "ata": ata,
        "failing_now": failing_now,
        "failed_in_past": failed_past,
        "nvme": nvme_summary,
        "scsi_grown_defects": grown,
        "self_tests": tests.iter().take(max_tests).cloned().collect::<Vec<_>>(),
        "last_self_test_passed": last_test_passed,
        "error_log_count": v["ata_smart_error_log"]["summary"]["count"],
        "exit_status": exit,
        "exit_status_meaning": exit_meanings(exit),
    });
    (summary, findings)
}

/// The full ATA attribute table (for `disk.details`).
pub fn attributes(v: &Value) -> Vec<Value> {
    v["ata_smart_attributes"]["table"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|a| {
                    json!({
                        "id": a["id"],
                        "name": a["name"],
                        "value": a["value"],
                        "worst": a["worst"],
                        "threshold": a["thresh"],
                        "prefailure": a["flags"]["prefailure"],
                        "when_failed": a["when_failed"],
                        "raw": a["raw"]["value"],
                        "raw_string": a["raw"]["string"],
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_bits_decode() {
        assert!(exit_meanings(0).is_empty());
        assert_eq!(
            exit_meanings(8 | 64),
            [
                "SMART status check returned DISK FAILING",
                "the device error log contains errors"
            ]
        );
    }

    #[test]
    fn nothing_readable_is_unknown_not_ok() {
        let v = json!({"smartctl": {"exit_status": 2, "messages": [{"string": "Smartctl open device: /dev/sdz failed: No such device", "severity": "error"}]}});
        let (s, f) = summarise(&v, "/dev/sdz", 5);
        assert_eq!(s["verdict"], "unknown");
        assert!(f[0]["message"].as_str().unwrap().contains("No such device"));
        let denied = json!({"smartctl": {"exit_status": 2, "messages": [{"string": "Smartctl open device: /dev/sda failed: Permission denied", "severity": "error"}]}});
        let (s, _) = summarise(&denied, "/dev/sda", 5);
        assert!(s["reason"].as_str().unwrap().contains("group disk"));
    }
}
