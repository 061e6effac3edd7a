//! The `system` pack: disks, memory, CPU, uptime, network and logs, read
//! in-process from `/proc` and `/sys` where possible, and through the
//! command runner (`ip`, `ping`, `journalctl`, `dmesg`) otherwise.
//!
//! Settings (`[packs.system]` in agent.toml):
//! - `log_files = ["/var/log/syslog", "/var/log/nginx/", …]`: the only files
//!   `logs.tail` reads: each entry is a file, or (ending in `/`) a directory
//!   whose regular files directly inside it may be read (symlinks there are
//!   not followed).

pub mod cpu;
pub mod disk;
pub mod journal;
pub mod logs;
pub mod memory;
pub mod network;

use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::handler::{PackDef, ProbeHandler};
use crate::manifest::ManifestError;

/// The manifest, compiled in.
pub const MANIFEST: &str = include_str!("../../system/pack.toml");

/// `[packs.system]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// What `logs.tail` may read: absolute file paths, and directories
    /// (ending in `/`) whose regular files directly inside may be read.
    #[serde(default)]
    pub log_files: Vec<String>,
}

/// Refuses unknown keys and `log_files` entries that are not plain
/// absolute paths.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    for entry in &s.log_files {
        if !entry.starts_with('/') {
            return Err(format!("log_files: {entry:?} is not an absolute path"));
        }
        let dots = entry
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
        if dots || entry.contains('\0') || entry == "/" {
            return Err(format!(
                "log_files: {entry:?} must be a plain absolute path (no empty, . or .. segments), e.g. \"/var/log/syslog\" or \"/var/log/nginx/\""
            ));
        }
    }
    Ok(())
}

/// A finding for `diagnose` reports.
pub(crate) fn finding(severity: &str, message: impl Into<String>) -> Value {
    json!({"severity": severity, "message": message.into()})
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("disk.usage", Arc::new(disk::usage)),
        ("memory.usage", Arc::new(memory::usage)),
        ("cpu.usage", Arc::new(cpu::usage)),
        ("uptime", Arc::new(cpu::uptime)),
        ("network.interfaces", Arc::new(network::interfaces)),
        ("network.ping", Arc::new(network::ping)),
        ("logs.journal", Arc::new(logs::journal)),
        ("logs.dmesg", Arc::new(logs::dmesg)),
        ("logs.tail", Arc::new(logs::tail)),
    ];
    PackDef::builtin(MANIFEST, handlers, Some(check_settings))
}
