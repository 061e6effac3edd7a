//! The `mysql` pack: a MySQL or MariaDB server seen through its status
//! counters, `information_schema` and `performance_schema`, as a dedicated
//! account holding only monitoring privileges.
//!
//! - The wire protocol runs in-process ([`client`], `mysql_async`); the
//!   `mysql`/`mariadb` SQL shells are never run.
//! - Every session is made read-only (`SET SESSION TRANSACTION READ ONLY`)
//!   and given a server-side statement time limit that follows the probe's
//!   deadline before any query runs.
//! - Queries are `&'static str` constants of this module ([`client::My`]
//!   takes nothing else); parameters are bound values of prepared
//!   statements.
//!
//! Settings (`[packs.mysql]` in agent.toml):
//! - `socket = "/run/mysqld/mysqld.sock"` (the default) or
//!   `address = "127.0.0.1:3306"` (loopback only: the pack speaks no TLS);
//! - `user = "sonde"` (the default);
//! - `password_file = "/etc/sonde/mysql.password"`: without it the pack
//!   logs in with no password, which MariaDB accepts for an account
//!   `IDENTIFIED VIA unix_socket` when the agent's Unix user has the same
//!   name.

pub mod client;
pub mod databases;
pub mod digest;
pub mod processes;
pub mod replication;
pub mod server;

use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

use crate::database::loopback_address;
use crate::handler::{PackDef, ProbeHandler};
use crate::manifest::{ManifestError, Requirements};

pub const MANIFEST: &str = include_str!("../../mysql/pack.toml");

/// The socket used when neither `socket` nor `address` is configured.
pub const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// `[packs.mysql]` settings.
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
            Target::Tcp(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

impl Settings {
    /// The checked target.
    pub fn target(&self) -> Result<Target, String> {
        match (&self.socket, &self.address) {
            (Some(_), Some(_)) => {
                Err("set either `socket` or `address` under [packs.mysql], not both".into())
            }
            (Some(s), None) if !s.is_absolute() => Err(format!(
                "socket: {:?} is not an absolute path",
                s.display().to_string()
            )),
            (Some(s), None) => Ok(Target::Socket(s.clone())),
            (None, Some(a)) => {
                let (h, p) = loopback_address(a).map_err(|e| format!("address: {e}"))?;
                Ok(Target::Tcp(h, p))
            }
            (None, None) => Ok(Target::Socket(PathBuf::from(DEFAULT_SOCKET))),
        }
    }

    /// The account name.
    pub fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("sonde")
    }
}

/// Refuses unknown keys, a non-loopback address, odd user names and
/// relative paths.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    s.target()?;
    let user = s.user();
    if user.is_empty()
        || user.len() > 80
        || !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-$".contains(&b))
    {
        return Err(format!(
            "user: {user:?} is not an account name (letters, digits, _ . - $; at most 80)"
        ));
    }
    crate::database::check_password_file_path(s.password_file.as_deref())
}

/// The requirements follow the settings: the socket in use (none for
/// TCP), and the password file when one is set.
fn requirements_for(requires: &Requirements, settings: &Value) -> Requirements {
    let mut out = requires.clone();
    let Some(s) = crate::database::settings_or_default::<Settings>(settings) else {
        return out;
    };
    let Ok(target) = s.target() else {
        return out;
    };
    let socket = match &target {
        Target::Socket(socket) => Some(socket.as_path()),
        _ => None,
    };
    crate::database::require_socket_instead_of(&mut out, DEFAULT_SOCKET, socket);
    if let Some(file) = &s.password_file {
        crate::database::require_password_file(&mut out, file, "the account's");
    }
    out
}

/// Every SQL text this pack can send, and nothing else: the guarantee
/// tests compare a real server's general query log against this list.
pub fn queries() -> Vec<&'static str> {
    let mut q = vec![
        client::READ_ONLY_SESSION,
        client::VERSION,
        client::DRIVER_SETTINGS,
        client::MARIADB_TIMEOUT,
        client::MYSQL_TIMEOUT,
    ];
    q.extend_from_slice(server::QUERIES);
    q.extend_from_slice(databases::QUERIES);
    q.extend_from_slice(processes::QUERIES);
    q.extend_from_slice(replication::QUERIES);
    q.extend_from_slice(digest::QUERIES);
    q
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("server.info", Arc::new(server::info)),
        ("status.variables", Arc::new(server::status_variables)),
        ("databases.list", Arc::new(databases::list)),
        ("processlist", Arc::new(processes::processlist)),
        ("innodb.status", Arc::new(processes::innodb)),
        ("replication.status", Arc::new(replication::status)),
        ("queries.digest", Arc::new(digest::digest)),
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
        assert!(check_settings(&json!({"socket": "/run/mysqld/mysqld.sock"})).is_ok());
        assert!(
            check_settings(&json!({"address": "127.0.0.1:3306", "user": "sonde", "password_file": "/etc/sonde/my.pw"}))
                .is_ok()
        );
        for (bad, says) in [
            (json!({"address": "db.lan:3306"}), "loopback"),
            (json!({"address": "10.0.0.2:3306"}), "loopback"),
            (json!({"address": "127.0.0.1"}), "HOST:PORT"),
            (
                json!({"socket": "/x", "address": "127.0.0.1:1"}),
                "not both",
            ),
            (json!({"socket": "run/mysqld.sock"}), "absolute"),
            (json!({"user": "a b"}), "account name"),
            (json!({"user": "x'; DROP USER root; --"}), "account name"),
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
        let default = def.requirements(&Value::Null);
        assert_eq!(default.sockets, [DEFAULT_SOCKET]);
        assert!(default.hints[DEFAULT_SOCKET].contains("GRANT PROCESS"));
        let moved = def.requirements(&json!({"socket": "/tmp/my.sock"}));
        assert_eq!(moved.sockets, ["/tmp/my.sock"]);
        let tcp = def.requirements(
            &json!({"address": "127.0.0.1:3306", "password_file": "/etc/sonde/my.pw"}),
        );
        assert!(tcp.sockets.is_empty());
        assert_eq!(tcp.files, ["/etc/sonde/my.pw"]);
    }
}
