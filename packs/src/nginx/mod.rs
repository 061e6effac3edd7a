//! The `nginx` pack: error and access logs (tails, and a summary over a
//! time window), `stub_status`, and the configuration, all read in-process.
//! No program is run: not `nginx -T` (see [`config`] for why), and the
//! status page is one GET to a loopback URL ([`stub`]).
//!
//! Settings (`[packs.nginx]` in agent.toml):
//! - `log_paths = ["/var/log/nginx/"]`: the only files the log probes
//!   read (files, or directories ending in `/` whose regular files directly
//!   inside may be read);
//! - `access_log`, `error_log`: the files read when a probe names none
//!   (`/var/log/nginx/access.log`, `/var/log/nginx/error.log`); each must
//!   be allowlisted;
//! - `access_log_format`: the `log_format` text of the access log, when
//!   the configuration cannot be read or names none (default: the format
//!   the configuration's `access_log` directive names, else `combined`);
//! - `stub_status_url`: `http://127.0.0.1[:port]/path` of a `stub_status`
//!   location (loopback only); without it `stub_status` says how to set it;
//! - `config_root = "/etc/nginx"`, `config_file = "/etc/nginx/nginx.conf"`:
//!   where the configuration is read (only beneath the root);
//! - `read_config = true`: `false` turns the configuration probes off;
//! - `log_group = "adm"`: the group that may read the logs (required of
//!   the agent's user; `""` when the logs need no group).

pub mod access;
pub mod config;
pub mod errorlog;
pub mod logs;
pub mod logtime;
pub mod servers;
pub mod stub;

use serde::Deserialize;
use serde_json::{Value, json};
use sonde_protocol::schema::ValidatedParams;
use std::path::PathBuf;
use std::sync::Arc;

use crate::handler::{PackDef, ProbeContext, ProbeError, ProbeHandler, ProbeOutput};
use crate::manifest::{ManifestError, Requirements};

pub const MANIFEST: &str = include_str!("../../nginx/pack.toml");

/// `[packs.nginx]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_log_paths")]
    pub log_paths: Vec<String>,
    #[serde(default = "default_access_log")]
    pub access_log: String,
    #[serde(default = "default_error_log")]
    pub error_log: String,
    #[serde(default)]
    pub access_log_format: Option<String>,
    #[serde(default)]
    pub stub_status_url: Option<String>,
    #[serde(default = "default_config_root")]
    pub config_root: PathBuf,
    #[serde(default = "default_config_file")]
    pub config_file: PathBuf,
    #[serde(default = "default_true")]
    pub read_config: bool,
    #[serde(default = "default_log_group")]
    pub log_group: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_paths: default_log_paths(),
            access_log: default_access_log(),
            error_log: default_error_log(),
            access_log_format: None,
            stub_status_url: None,
            config_root: default_config_root(),
            config_file: default_config_file(),
            read_config: true,
            log_group: default_log_group(),
        }
    }
}

fn default_log_paths() -> Vec<String> {
    vec!["/var/log/nginx/".into()]
}
fn default_access_log() -> String {
    "/var/log/nginx/access.log".into()
}
fn default_error_log() -> String {
    "/var/log/nginx/error.log".into()
}
fn default_config_root() -> PathBuf {
    PathBuf::from("/etc/nginx")
}
fn default_config_file() -> PathBuf {
    PathBuf::from("/etc/nginx/nginx.conf")
}
fn default_true() -> bool {
    true
}
fn default_log_group() -> String {
    "adm".into()
}

fn plain_absolute(entry: &str) -> bool {
    entry.starts_with('/')
        && entry != "/"
        && !entry.contains('\0')
        && !entry
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
}

/// Refuses unknown keys, paths that are not plain absolute paths, default
/// logs outside the allowlist, a status URL that is not loopback HTTP, a
/// main configuration file outside the root, a format that does not
/// compile, and a group name that is not one.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    for entry in &s.log_paths {
        if !plain_absolute(entry) {
            return Err(format!(
                "log_paths: {entry:?} must be a plain absolute path (no empty, . or .. segments), e.g. \"/var/log/nginx/\""
            ));
        }
    }
    for (key, path) in [("access_log", &s.access_log), ("error_log", &s.error_log)] {
        if logs::allowed(&s, path).is_none() {
            return Err(format!(
                "{key}: {path:?} is not allowed by log_paths ({})",
                s.log_paths.join(", ")
            ));
        }
    }
    if let Some(url) = &s.stub_status_url {
        stub::parse_url(url).map_err(|e| format!("stub_status_url: {e}"))?;
    }
    let root = s.config_root.to_string_lossy();
    let file = s.config_file.to_string_lossy();
    if !plain_absolute(&root) || !plain_absolute(&file) {
        return Err("config_root and config_file must be plain absolute paths".into());
    }
    if !s.config_file.starts_with(&s.config_root) {
        return Err(format!(
            "config_file {file:?} must be beneath config_root {root:?}"
        ));
    }
    if let Some(f) = &s.access_log_format {
        access::LogFormat::compile(f).map_err(|e| format!("access_log_format: {e}"))?;
    }
    let group_ok = s.log_group.len() <= 32
        && s.log_group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !group_ok {
        return Err(format!("log_group: {:?} is not a group name", s.log_group));
    }
    Ok(())
}

/// The group the settings name replaces `adm` (or none when `""`).
fn group_requirement(requires: &Requirements, settings: &Value) -> Requirements {
    let mut out = requires.clone();
    let Ok(s) = serde_json::from_value::<Settings>(settings.clone()) else {
        return out;
    };
    if s.log_group == "adm" {
        return out;
    }
    let hint = out.hints.remove("adm");
    out.groups.retain(|g| g != "adm");
    if !s.log_group.is_empty() {
        out.groups.push(s.log_group.clone());
        if let Some(h) = hint {
            out.hints
                .insert(s.log_group.clone(), h.replace("adm", &s.log_group));
        }
    }
    out
}

fn config_settings(ctx: &ProbeContext<'_>) -> Result<Settings, ProbeError> {
    let s: Settings = ctx.settings_as()?;
    if !s.read_config {
        return Err(ProbeError::Denied(
            "reading the nginx configuration is turned off (read_config = false under [packs.nginx])".into(),
        ));
    }
    Ok(s)
}

fn config_probe(
    ctx: &ProbeContext<'_>,
    params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let s = config_settings(ctx)?;
    let tree = config::read_tree(ctx, &s.config_root, &s.config_file)?;
    let only = params.str("file");
    let files: Vec<&config::ConfigFile> = match only {
        Some(f) => {
            let picked: Vec<_> = tree.files.iter().filter(|x| x.path == f).collect();
            if picked.is_empty() {
                return Err(ProbeError::NotFound(format!(
                    "{f} is not a file of the configuration tree (it has: {})",
                    tree.files
                        .iter()
                        .map(|x| x.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            picked
        }
        None => tree.files.iter().collect(),
    };
    ProbeOutput::from_serialize(
        &json!({
            "root": tree.root,
            "main": tree.main,
            "files": files,
            "skipped": tree.skipped,
            "redacted_values": tree.redacted_values,
            "note": "read from the files (what `nginx -T` prints), not from a running nginx: a change not yet reloaded shows here already",
        }),
        tree.truncated,
    )
}

fn servers_probe(
    ctx: &ProbeContext<'_>,
    _params: &ValidatedParams,
) -> Result<ProbeOutput, ProbeError> {
    let s = config_settings(ctx)?;
    let tree = config::read_tree(ctx, &s.config_root, &s.config_file)?;
    ProbeOutput::from_serialize(
        &servers::summarise(&tree, s.stub_status_url.is_some()),
        tree.truncated,
    )
}

fn stub_probe(ctx: &ProbeContext<'_>, params: &ValidatedParams) -> Result<ProbeOutput, ProbeError> {
    let s: Settings = ctx.settings_as()?;
    let Some(url) = &s.stub_status_url else {
        // Not configured is an answer, not a failure (diagnose runs this).
        return Ok(ProbeOutput::new(json!({
            "configured": false,
            "note": "no stub_status_url under [packs.nginx]: add a `location = /nginx_status { stub_status; allow 127.0.0.1; deny all; }` to a server on the loopback, then set stub_status_url = \"http://127.0.0.1/nginx_status\"",
            "findings": [],
        })));
    };
    let sample_ms = u64::try_from(params.i64("sample_ms").unwrap_or(0)).unwrap_or(0);
    Ok(ProbeOutput::new(stub::read(ctx, url, sample_ms)?))
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("error_log", Arc::new(logs::error_log)),
        ("access_log", Arc::new(logs::access_log)),
        ("access_summary", Arc::new(logs::access_summary)),
        ("logs.list", Arc::new(logs::list)),
        ("stub_status", Arc::new(stub_probe)),
        ("config", Arc::new(config_probe)),
        ("config.servers", Arc::new(servers_probe)),
    ];
    Ok(PackDef::builtin(MANIFEST, handlers, Some(check_settings))?
        .with_requirements_hook(group_requirement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(check_settings(&Value::Null).is_ok());
        assert!(
            check_settings(&json!({
                "log_paths": ["/srv/logs/"],
                "access_log": "/srv/logs/a.log",
                "error_log": "/srv/logs/e.log",
                "stub_status_url": "http://127.0.0.1:8080/status",
                "config_root": "/opt/nginx/conf",
                "config_file": "/opt/nginx/conf/nginx.conf",
            }))
            .is_ok()
        );
        for bad in [
            json!({"log_paths": ["var/log/"]}),
            json!({"log_paths": ["/var/log/../etc/"]}),
            json!({"log_paths": ["/srv/"]}),
            json!({"stub_status_url": "http://10.1.1.1/status"}),
            json!({"config_file": "/etc/passwd"}),
            json!({"config_root": "/"}),
            json!({"access_log_format": "no vars"}),
            json!({"log_group": "adm; rm"}),
            json!({"logpaths": []}),
        ] {
            assert!(check_settings(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_required_group_follows_the_settings() {
        let def = pack().unwrap();
        assert_eq!(def.requirements(&Value::Null).groups, ["adm"]);
        let www = def.requirements(&json!({"log_group": "www-data"}));
        assert_eq!(www.groups, ["www-data"]);
        assert!(www.hints["www-data"].contains("www-data"));
        assert!(
            def.requirements(&json!({"log_group": ""}))
                .groups
                .is_empty()
        );
    }
}
