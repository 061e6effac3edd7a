//! The built-in integrations: their manifests (compiled in, trusted with
//! the binary like built-in packs) and the little each adds to the generic
//! runner — values derived from validated parameters and settings before
//! the request (never from free caller text), and a summary with findings
//! after it.

use serde_json::{Map, Value, json};

use super::manifest::ProbeDef;
use super::{alertmanager, prometheus, proxmox, unifi};

/// (kind, manifest text).
pub const MANIFESTS: &[(&str, &str)] = &[
    (
        "prometheus",
        include_str!("../../../integrations/prometheus/integration.toml"),
    ),
    (
        "alertmanager",
        include_str!("../../../integrations/alertmanager/integration.toml"),
    ),
    (
        "proxmox",
        include_str!("../../../integrations/proxmox/integration.toml"),
    ),
    (
        "unifi",
        include_str!("../../../integrations/unifi/integration.toml"),
    ),
];

pub fn manifest(kind: &str) -> Option<&'static str> {
    MANIFESTS.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t)
}

/// Whether `kind` derives the template value `name` itself.
pub fn derives(kind: &str, name: &str) -> bool {
    match kind {
        "prometheus" => prometheus::DERIVED.contains(&name),
        "unifi" => name == "site",
        _ => false,
    }
}

/// Checks an integration's settings (at `add`).
pub fn check_settings(kind: &str, settings: &Map<String, Value>) -> Result<(), String> {
    let allowed: &[&str] = match kind {
        "prometheus" => &["queries"],
        "unifi" => &["site"],
        _ => &[],
    };
    if let Some(k) = settings.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "setting {k:?} is not one the {kind} integration takes ({})",
            if allowed.is_empty() {
                "none".into()
            } else {
                allowed.join(", ")
            }
        ));
    }
    match kind {
        "prometheus" => prometheus::check_settings(settings),
        "unifi" => unifi::check_settings(settings),
        _ => Ok(()),
    }
}

/// The probe as callers see it under these settings (e.g. the enum of
/// named Prometheus queries).
pub fn adjust(kind: &str, def: &mut ProbeDef, settings: &Map<String, Value>) {
    if kind == "prometheus" {
        prometheus::adjust(def, settings);
    }
}

/// The template's values: the validated parameters plus what the kind
/// derives from them and from its settings.
pub fn prepare(
    kind: &str,
    probe: &str,
    params: &Map<String, Value>,
    settings: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut values = params.clone();
    match kind {
        "prometheus" => prometheus::prepare(probe, params, settings, &mut values)?,
        "unifi" => {
            values.insert("site".into(), json!(unifi::site(settings)));
        }
        _ => {}
    }
    Ok(values)
}

/// The result an MCP client gets: the projected answer, summarised.
pub fn finish(kind: &str, probe: &str, params: &Map<String, Value>, data: Value) -> Value {
    match kind {
        "prometheus" => prometheus::finish(probe, params, data),
        "alertmanager" => alertmanager::finish(probe, params, data),
        "proxmox" => proxmox::finish(probe, params, data),
        "unifi" => unifi::finish(probe, params, data),
        _ => plain(data),
    }
}

/// A result without a summary: an object as the API gave it (projected),
/// anything else under `items`.
pub fn plain(data: Value) -> Value {
    match data {
        Value::Object(_) => data,
        other => json!({ "items": other }),
    }
}

/// A finding as runbooks collect them.
pub fn finding(severity: &str, message: String) -> Value {
    json!({"severity": severity, "message": message})
}

pub fn f64_of(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}
