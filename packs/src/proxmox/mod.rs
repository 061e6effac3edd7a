//! The `proxmox` pack: a Proxmox VE node and its cluster, read through
//! `pvesh get PATH --output-format json` only ([`pvesh`]: every argv checked
//! against a table of read-only API paths; no other verb, and neither `qm`
//! nor `pct`, is ever run).
//!
//! Probes: [`cluster`] (cluster and node status, HA, storage, Ceph),
//! [`guests`] (VMs and containers, locks, one guest's configuration),
//! [`tasks`] (recent tasks with failed backups first, one task's log).
//!
//! Proxmox VE cannot run on the development machine: the pack is tested
//! against recorded answers in the documented API formats
//! (packs/tests/fixtures/proxmox, see the README there), and the README
//! says what a real node needs.
//!
//! No settings.

pub mod cluster;
pub mod guests;
pub mod pvesh;
pub mod tasks;

use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use crate::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler};
use crate::manifest::ManifestError;

pub const MANIFEST: &str = include_str!("../../proxmox/pack.toml");

/// `[packs.proxmox]` takes no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    serde_json::from_value::<Settings>(value.clone())
        .map(|_| ())
        .map_err(|e| format!("the proxmox pack takes no settings: {e}"))
}

/// `/cluster/resources --type TYPE` as a list.
pub(crate) fn resources(ctx: &ProbeContext<'_>, kind: &str) -> Result<Vec<Value>, ProbeError> {
    let v = pvesh::get_data(ctx, "/cluster/resources", &[("type", kind.to_owned())])?;
    Ok(match v {
        Value::Array(a) => a.into_iter().filter(|r| r["type"] != "pool").collect(),
        _ => Vec::new(),
    })
}

/// A number field as f64 (the API answers integers, floats, and sometimes
/// numeric strings).
pub(crate) fn num(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `used / total` as a percentage with one decimal.
pub(crate) fn percent(used: &Value, total: &Value) -> Option<f64> {
    let (u, t) = (num(used)?, num(total)?);
    (t > 0.0).then(|| (u / t * 1000.0).round() / 10.0)
}

/// A Unix time in seconds as `YYYY-MM-DD HH:MM:SSZ` (UTC).
pub(crate) fn utc(secs: &Value) -> Option<String> {
    let s = secs.as_i64().or_else(|| secs.as_str()?.parse().ok())?;
    (s > 0).then(|| sonde_protocol::time::format_utc_ms(s.saturating_mul(1000)))
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("cluster.status", Arc::new(cluster::status_probe)),
        ("ha.status", Arc::new(cluster::ha_probe)),
        ("storage.usage", Arc::new(cluster::storage_probe)),
        ("ceph.status", Arc::new(cluster::ceph_probe)),
        ("guests.list", Arc::new(guests::list_probe)),
        ("guests.locks", Arc::new(guests::locks_probe)),
        ("guest.config", Arc::new(guests::config_probe)),
        ("tasks.recent", Arc::new(tasks::recent_probe)),
        ("task.log", Arc::new(tasks::log_probe)),
    ];
    PackDef::builtin(MANIFEST, handlers, Some(check_settings))
}
