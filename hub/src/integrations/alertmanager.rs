//! Alertmanager (API v2): alerts grouped by severity and by target.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use super::builtin::{finding, str_of};

/// The target an alert is about: `instance`, else `target`, `host`,
/// `node`, else `job`.
fn target_of(labels: &Value) -> String {
    ["instance", "target", "host", "node", "job"]
        .iter()
        .map(|k| str_of(labels, k))
        .find(|s| !s.is_empty())
        .unwrap_or("(none)")
        .to_owned()
}

fn grouped(alerts: &[Value]) -> (Value, Value) {
    let mut by_severity: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut by_target: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in alerts {
        let labels = &a["labels"];
        let name = json!(str_of(labels, "alertname"));
        let severity = match str_of(labels, "severity") {
            "" => "none".to_owned(),
            s => s.to_owned(),
        };
        by_severity.entry(severity).or_default().push(name.clone());
        by_target.entry(target_of(labels)).or_default().push(name);
    }
    let counted = |m: BTreeMap<String, Vec<Value>>| {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, json!({"count": v.len(), "alerts": v})))
                .collect(),
        )
    };
    (counted(by_severity), counted(by_target))
}

pub fn finish(probe: &str, _params: &Map<String, Value>, data: Value) -> Value {
    let alerts: Vec<Value> = data.as_array().cloned().unwrap_or_default();
    match probe {
        "alerts" | "silenced" => {
            let (by_severity, by_target) = grouped(&alerts);
            let mut findings = Vec::new();
            if probe == "alerts" {
                for a in &alerts {
                    let labels = &a["labels"];
                    let state = a["status"]["state"].as_str().unwrap_or("");
                    if state != "active" {
                        continue;
                    }
                    findings.push(finding(
                        match str_of(labels, "severity") {
                            "critical" | "page" => "critical",
                            _ => "warning",
                        },
                        format!(
                            "{} on {} since {}: {}",
                            str_of(labels, "alertname"),
                            target_of(labels),
                            str_of(a, "startsAt"),
                            str_of(&a["annotations"], "summary")
                        ),
                    ));
                }
            }
            json!({
                "count": alerts.len(),
                "by_severity": by_severity,
                "by_target": by_target,
                "alerts": alerts,
                "findings": findings,
            })
        }
        "silences" => {
            let active = alerts
                .iter()
                .filter(|s| s["status"]["state"] == "active")
                .count();
            json!({"silences": alerts, "active": active, "findings": []})
        }
        _ => super::builtin::plain(data),
    }
}
