//! The `proxmox` pack: a Proxmox VE node and its cluster, read through a
//! table of read-only API paths ([`pvesh`]: every read is checked as the
//! argv `pvesh get PATH … --output-format json`; no other verb, and neither
//! `qm` nor `pct`, is ever run), either by running `pvesh` or, with
//! `transport = "api"`, as an HTTPS GET with a read-only token ([`api`]).
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
//! Settings (`[packs.proxmox]` in agent.toml), see [`Settings`]:
//! `transport = "pvesh"` (default; needs root, so it answers with that
//! explanation under the unprivileged agent) or `"api"`: the HTTPS API with
//! a read-only token, which is what works unprivileged ([`api`]).

pub mod api;
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

/// How the pack reads the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `pvesh get … --output-format json` on this node.
    #[default]
    Pvesh,
    /// `GET https://api_host:api_port/api2/json/…` with an API token.
    Api,
}

/// `[packs.proxmox]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub transport: Transport,
    #[serde(default = "default_api_host")]
    pub api_host: String,
    #[serde(default = "default_api_port")]
    pub api_port: u16,
    /// SHA-256 fingerprint of the node's API certificate (`AB:CD:…`).
    #[serde(default)]
    pub api_fingerprint: Option<String>,
    /// `USER@REALM!NAME` of a read-only API token.
    #[serde(default)]
    pub api_token_id: Option<String>,
    /// A file holding the token's secret (readable by the agent only).
    #[serde(default)]
    pub api_token_file: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            transport: Transport::Pvesh,
            api_host: default_api_host(),
            api_port: default_api_port(),
            api_fingerprint: None,
            api_token_id: None,
            api_token_file: None,
        }
    }
}

fn default_api_host() -> String {
    "127.0.0.1".into()
}

/// pveproxy's port.
fn default_api_port() -> u16 {
    8006
}

/// Refuses unknown keys, and for the API transport a missing or malformed
/// fingerprint, token id or token file.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    if s.transport == Transport::Api {
        if !crate::ups::upsc::is_host(&s.api_host) {
            return Err(format!(
                "api_host: {:?} is not a host name or address",
                s.api_host
            ));
        }
        if s.api_port == 0 {
            return Err("api_port: 0 is not a port (pveproxy listens on 8006)".into());
        }
        if s.api_fingerprint
            .as_deref()
            .and_then(api::parse_fingerprint)
            .is_none()
        {
            return Err("api_fingerprint: the SHA-256 fingerprint of the node's API certificate is required (AB:CD:… as `pvenode cert info` shows it)".into());
        }
        if !s.api_token_id.as_deref().is_some_and(api::is_token_id) {
            return Err(
                "api_token_id: a token id USER@REALM!NAME is required (e.g. sonde@pve!agent)"
                    .into(),
            );
        }
        if !s.api_token_file.as_ref().is_some_and(|p| p.is_absolute()) {
            return Err(
                "api_token_file: an absolute path to the file holding the token secret is required"
                    .into(),
            );
        }
    }
    Ok(())
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
