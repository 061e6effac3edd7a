//! The `redis` pack: a Redis server seen through `INFO`, `SLOWLOG`,
//! `CLIENT LIST` and (opt-in) a bounded `SCAN`, as an ACL user allowed
//! those commands only.
//!
//! - The RESP protocol runs in-process ([`client`], the `redis` crate);
//!   `redis-cli` is never run.
//! - Commands come from a fixed table ([`client::Command`]): no `EVAL`, no
//!   `CONFIG`, no arbitrary command; a parameter is at most one argument
//!   of a table command (an `INFO` section from the manifest's enum, a
//!   database number), and the key-scan pattern never reaches the server
//!   at all (it is matched here, on scrubbed key names).
//!
//! Settings (`[packs.redis]` in agent.toml):
//! - `socket = "/run/redis/redis-server.sock"` or `address = "127.0.0.1:6379"`
//!   (the default; loopback only: the pack speaks no TLS);
//! - `user = "sonde"` and `password_file = "/etc/sonde/redis.password"`
//!   for an ACL user (or `password_file` alone for `requirepass`); neither
//!   for a server without authentication;
//! - `key_scan = true` turns on `keys.scan` (off by default: key names are
//!   data).

pub mod client;
pub mod clients;
pub mod info;
pub mod keys;
pub mod slowlog;

use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

use crate::database::loopback_address;
use crate::handler::{PackDef, ProbeHandler};
use crate::manifest::{ManifestError, Requirements};

pub const MANIFEST: &str = include_str!("../../redis/pack.toml");

/// Where the pack connects when nothing is configured.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:6379";

/// `[packs.redis]` settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub key_scan: bool,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Socket(PathBuf),
    Tcp(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Socket(p) => write!(f, "socket {}", p.display()),
            Target::Tcp(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            Target::Tcp(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

impl Settings {
    /// The checked target.
    pub fn target(&self) -> Result<Target, String> {
        match (&self.socket, &self.address) {
            (Some(_), Some(_)) => {
                Err("set either `socket` or `address` under [packs.redis], not both".into())
            }
            (Some(s), None) if !s.is_absolute() => Err(format!(
                "socket: {:?} is not an absolute path",
                s.display().to_string()
            )),
            (Some(s), None) => Ok(Target::Socket(s.clone())),
            (None, address) => {
                let a = address.as_deref().unwrap_or(DEFAULT_ADDRESS);
                let (h, p) = loopback_address(a).map_err(|e| format!("address: {e}"))?;
                Ok(Target::Tcp(h, p))
            }
        }
    }
}

/// Refuses unknown keys, a non-loopback address, odd user names, a user
/// without a password file, and relative paths.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    s.target()?;
    if let Some(user) = &s.user {
        if user.is_empty()
            || user.len() > 128
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-@:".contains(&b))
        {
            return Err(format!(
                "user: {user:?} is not an ACL user name (letters, digits, _ . - @ :; at most 128)"
            ));
        }
        if s.password_file.is_none() {
            return Err(
                "user: an ACL user needs its password in a file named by `password_file`".into(),
            );
        }
    }
    crate::database::check_password_file_path(s.password_file.as_deref())
}

/// The requirements follow the settings: the socket when one is used, and
/// the password file when one is set.
fn requirements_for(requires: &Requirements, settings: &Value) -> Requirements {
    let mut out = requires.clone();
    let Some(s) = crate::database::settings_or_default::<Settings>(settings) else {
        return out;
    };
    if let Ok(Target::Socket(socket)) = s.target() {
        let socket = socket.display().to_string();
        out.hints.insert(
            socket.clone(),
            format!("socket `{socket}`: Redis is not running here or its unixsocket is elsewhere; the agent's user must be able to connect to it (unixsocketperm, or membership of the socket's group, e.g. `usermod -aG redis sonde`)"),
        );
        out.sockets.push(socket);
    }
    if let Some(file) = &s.password_file {
        crate::database::require_password_file(&mut out, file, "the ACL user's");
    }
    out
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("info", Arc::new(info::info)),
        ("memory.status", Arc::new(info::memory)),
        ("keyspace", Arc::new(info::keyspace)),
        ("persistence.status", Arc::new(info::persistence)),
        ("replication.status", Arc::new(info::replication)),
        ("slowlog", Arc::new(slowlog::slowlog)),
        ("clients.list", Arc::new(clients::list)),
        ("keys.scan", Arc::new(keys::scan)),
    ];
    Ok(PackDef::builtin(MANIFEST, handlers, Some(check_settings))?
        .with_requirements_hook(requirements_for))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_checked() {
        assert!(check_settings(&Value::Null).is_ok());
        assert!(check_settings(&json!({"socket": "/run/redis/redis-server.sock"})).is_ok());
        assert!(
            check_settings(&json!({"address": "[::1]:6379", "user": "sonde", "password_file": "/etc/sonde/r.pw", "key_scan": true}))
                .is_ok()
        );
        for (bad, says) in [
            (json!({"address": "cache.lan:6379"}), "loopback"),
            (json!({"address": "0.0.0.0:6379"}), "loopback"),
            (
                json!({"socket": "/x", "address": "127.0.0.1:1"}),
                "not both",
            ),
            (json!({"socket": "redis.sock"}), "absolute"),
            (json!({"user": "sonde"}), "password_file"),
            (
                json!({"user": "a b", "password_file": "/x"}),
                "ACL user name",
            ),
            (json!({"password_file": "pw"}), "absolute"),
            (json!({"password": "inline"}), "password"),
        ] {
            let err = check_settings(&bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn requirements_follow_the_settings() {
        let def = pack().unwrap();
        assert!(def.requirements(&Value::Null).sockets.is_empty());
        let sock = def.requirements(&json!({"socket": "/run/redis/redis-server.sock"}));
        assert_eq!(sock.sockets, ["/run/redis/redis-server.sock"]);
        let pw = def.requirements(&json!({"password_file": "/etc/sonde/r.pw"}));
        assert_eq!(pw.files, ["/etc/sonde/r.pw"]);
    }
}
