//! UniFi Network: the classic controller endpoints `/api/s/{site}/stat/…`
//! with an API key (`X-API-KEY`). On a UniFi OS console the base URL is
//! `https://console/proxy/network`; on a self-hosted Network application
//! it is `https://controller:8443`.

use serde_json::{Map, Value, json};

use super::builtin::{finding, str_of};

/// The site (settings.site, default `default`).
pub fn site(settings: &Map<String, Value>) -> String {
    settings
        .get("site")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned()
}

pub fn check_settings(settings: &Map<String, Value>) -> Result<(), String> {
    match settings.get("site") {
        None => Ok(()),
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(())
        }
        Some(_) => {
            Err("settings.site must be a site id such as `default` (A-Z a-z 0-9 - _)".into())
        }
    }
}

pub fn finish(probe: &str, _params: &Map<String, Value>, data: Value) -> Value {
    let items: Vec<Value> = data.as_array().cloned().unwrap_or_default();
    let mut findings = Vec::new();
    match probe {
        "devices" => {
            for d in &items {
                if d.get("state").and_then(Value::as_i64) != Some(1) {
                    findings.push(finding(
                        "warning",
                        format!(
                            "device {} ({} {}) is not connected (state {})",
                            str_of(d, "name"),
                            str_of(d, "model"),
                            str_of(d, "mac"),
                            d.get("state").cloned().unwrap_or(Value::Null)
                        ),
                    ));
                }
                if d.get("upgradable").and_then(Value::as_bool) == Some(true) {
                    findings.push(finding(
                        "info",
                        format!(
                            "device {} has a firmware upgrade available",
                            str_of(d, "name")
                        ),
                    ));
                }
            }
            json!({"devices": items, "findings": findings})
        }
        "clients" => {
            let wired = items
                .iter()
                .filter(|c| c.get("is_wired").and_then(Value::as_bool) == Some(true))
                .count();
            json!({"clients": items, "wired": wired, "wireless": items.len() - wired, "findings": findings})
        }
        "alarms" => {
            for a in &items {
                findings.push(finding(
                    "warning",
                    format!(
                        "alarm {} at {}: {}",
                        str_of(a, "key"),
                        str_of(a, "datetime"),
                        str_of(a, "msg")
                    ),
                ));
            }
            json!({"alarms": items, "findings": findings})
        }
        "events" => json!({"events": items, "findings": findings}),
        "health" => {
            for s in &items {
                let status = str_of(s, "status");
                if !status.is_empty() && status != "ok" && status != "unknown" {
                    findings.push(finding(
                        if str_of(s, "subsystem") == "wan" {
                            "critical"
                        } else {
                            "warning"
                        },
                        format!("subsystem {} is {}", str_of(s, "subsystem"), status),
                    ));
                }
            }
            let wan = items
                .iter()
                .find(|s| str_of(s, "subsystem") == "wan")
                .cloned();
            json!({"subsystems": items, "wan": wan, "findings": findings})
        }
        _ => super::builtin::plain(data),
    }
}
