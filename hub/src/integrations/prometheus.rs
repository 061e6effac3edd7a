//! Prometheus: named queries only. A caller picks a query by name from
//! the fixed set below or from the list the operator approved for this
//! integration (`settings.queries`, changed only by removing and adding
//! the integration again, which needs approval); PromQL text never comes
//! from an MCP client.

use serde_json::{Map, Value, json};
use sonde_protocol::schema::{ParamKind, Pattern};

use super::builtin::{finding, str_of};
use super::manifest::ProbeDef;

/// Template values this kind derives.
pub const DERIVED: &[&str] = &["expr", "start", "end", "step"];

/// The fixed named queries (node exporter and Prometheus itself).
pub const FIXED: &[(&str, &str)] = &[
    ("up", "up"),
    ("targets_down", "up == 0"),
    (
        "cpu_busy_ratio",
        "1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))",
    ),
    ("load1", "node_load1"),
    (
        "memory_available_ratio",
        "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    ),
    (
        "filesystem_free_ratio",
        "node_filesystem_avail_bytes{fstype!~\"tmpfs|overlay|squashfs|ramfs|fuse.*\"} / node_filesystem_size_bytes{fstype!~\"tmpfs|overlay|squashfs|ramfs|fuse.*\"}",
    ),
    (
        "disk_io_busy_ratio",
        "rate(node_disk_io_time_seconds_total[5m])",
    ),
    (
        "network_errors_rate",
        "rate(node_network_receive_errs_total[5m]) + rate(node_network_transmit_errs_total[5m])",
    ),
    ("firing_alerts", "ALERTS{alertstate=\"firing\"}"),
    ("scrape_duration_seconds", "scrape_duration_seconds"),
];

/// Thresholds that turn a query's samples into findings.
const THRESHOLDS: &[(&str, &str, f64, &str)] = &[
    ("targets_down", "eq", 0.0, "target down"),
    (
        "filesystem_free_ratio",
        "lt",
        0.10,
        "filesystem less than 10% free",
    ),
    (
        "memory_available_ratio",
        "lt",
        0.10,
        "less than 10% memory available",
    ),
    ("cpu_busy_ratio", "gt", 0.90, "CPU more than 90% busy"),
];

/// Longest approved query and most approved queries.
const MAX_EXPR: usize = 4096;
const MAX_APPROVED: usize = 200;

fn approved(settings: &Map<String, Value>) -> Vec<(String, String)> {
    settings
        .get("queries")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn check_settings(settings: &Map<String, Value>) -> Result<(), String> {
    let Some(q) = settings.get("queries") else {
        return Ok(());
    };
    let map = q
        .as_object()
        .ok_or("settings.queries must be a table of name = \"PromQL\"")?;
    if map.len() > MAX_APPROVED {
        return Err(format!("at most {MAX_APPROVED} approved queries"));
    }
    for (name, expr) in map {
        if !super::manifest::is_word(name) {
            return Err(format!("query name {name:?} must be a lowercase word"));
        }
        if FIXED.iter().any(|(n, _)| n == name) {
            return Err(format!("query name {name:?} is one of the fixed queries"));
        }
        let expr = expr
            .as_str()
            .ok_or_else(|| format!("query {name:?} must be a PromQL string"))?;
        if expr.trim().is_empty() || expr.len() > MAX_EXPR || expr.chars().any(char::is_control) {
            return Err(format!(
                "query {name:?}: PromQL of 1 to {MAX_EXPR} characters, no control characters"
            ));
        }
    }
    Ok(())
}

/// The named-query parameter becomes an enum of what this integration
/// allows, so list_capabilities shows the choices.
pub fn adjust(def: &mut ProbeDef, settings: &Map<String, Value>) {
    if !matches!(
        def.name.as_str(),
        "prometheus.query" | "prometheus.query_range"
    ) {
        return;
    }
    let names: Vec<String> = FIXED
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(approved(settings).into_iter().map(|(n, _)| n))
        .collect();
    let described: Vec<String> = FIXED
        .iter()
        .map(|(n, e)| format!("{n} = {e}"))
        .chain(
            approved(settings)
                .into_iter()
                .map(|(n, e)| format!("{n} = {e} (operator-approved)")),
        )
        .collect();
    for p in &mut def.params {
        if p.name == "query" {
            p.kind = ParamKind::String {
                max_len: 64,
                pattern: Pattern::new("[a-z][a-z0-9_]{0,63}").ok(),
                values: Some(names.clone()),
            };
            p.description = format!("Named query: {}", described.join("; "));
        }
    }
}

fn expr_for(name: &str, settings: &Map<String, Value>) -> Option<String> {
    FIXED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, e)| e.to_string())
        .or_else(|| {
            approved(settings)
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e)
        })
}

pub fn prepare(
    probe: &str,
    params: &Map<String, Value>,
    settings: &Map<String, Value>,
    values: &mut Map<String, Value>,
) -> Result<(), String> {
    if !matches!(probe, "query" | "query_range") {
        return Ok(());
    }
    let name = params.get("query").and_then(Value::as_str).unwrap_or("");
    let expr = expr_for(name, settings).ok_or_else(|| {
        let mut all: Vec<String> = FIXED.iter().map(|(n, _)| n.to_string()).collect();
        all.extend(approved(settings).into_iter().map(|(n, _)| n));
        format!(
            "no named query {name:?} on this integration (it has: {}); the operator approves more with `sonde-hub integrations add … --query NAME=PROMQL`",
            all.join(", ")
        )
    })?;
    values.insert("expr".into(), json!(expr));
    if probe == "query_range" {
        let minutes = params.get("minutes").and_then(Value::as_i64).unwrap_or(60);
        let step = params
            .get("step_seconds")
            .and_then(Value::as_i64)
            .unwrap_or(60);
        if minutes * 60 / step.max(1) > 11_000 {
            return Err(format!(
                "{minutes} minutes at a {step}s step is more than 11000 points per series; raise step_seconds"
            ));
        }
        let end = sonde_protocol::time::now_ms() / 1000;
        values.insert("start".into(), json!(end - minutes * 60));
        values.insert("end".into(), json!(end));
        values.insert("step".into(), json!(step));
    }
    Ok(())
}

fn labels_text(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn finish(probe: &str, params: &Map<String, Value>, data: Value) -> Value {
    let mut findings = Vec::new();
    match probe {
        "query" => {
            let name = params.get("query").and_then(Value::as_str).unwrap_or("");
            if let Some((_, op, limit, what)) = THRESHOLDS.iter().find(|(n, ..)| *n == name) {
                for s in data.as_array().into_iter().flatten() {
                    let value = s
                        .get("value")
                        .and_then(|v| v.get(1))
                        .and_then(Value::as_str)
                        .and_then(|t| t.parse::<f64>().ok());
                    let Some(value) = value else { continue };
                    let hit = match *op {
                        "eq" => value == *limit,
                        "lt" => value < *limit,
                        _ => value > *limit,
                    };
                    if hit {
                        findings.push(finding(
                            "warning",
                            format!("{what}: {{{}}} = {value}", labels_text(&s["metric"])),
                        ));
                    }
                }
            }
            json!({"query": name, "series": data, "findings": findings})
        }
        "query_range" => {
            json!({"query": params.get("query"), "series": data, "findings": findings})
        }
        "alerts" => {
            for a in data.as_array().into_iter().flatten() {
                if str_of(a, "state") == "firing" {
                    let labels = &a["labels"];
                    findings.push(finding(
                        match str_of(labels, "severity") {
                            "critical" | "page" => "critical",
                            _ => "warning",
                        },
                        format!(
                            "alert {} firing on {} since {}",
                            str_of(labels, "alertname"),
                            str_of(labels, "instance"),
                            str_of(a, "activeAt")
                        ),
                    ));
                }
            }
            let firing = data
                .as_array()
                .map(|a| a.iter().filter(|x| str_of(x, "state") == "firing").count())
                .unwrap_or(0);
            json!({"alerts": data, "firing": firing, "findings": findings})
        }
        "targets" => {
            let mut down = 0;
            for t in data.as_array().into_iter().flatten() {
                if str_of(t, "health") != "up" {
                    down += 1;
                    findings.push(finding(
                        "warning",
                        format!(
                            "target {} (job {}) is {}: {}",
                            str_of(&t["labels"], "instance"),
                            str_of(&t["labels"], "job"),
                            str_of(t, "health"),
                            str_of(t, "lastError")
                        ),
                    ));
                }
            }
            json!({"targets": data, "down": down, "findings": findings})
        }
        _ => super::builtin::plain(data),
    }
}
