//! The `postgres` pack: a PostgreSQL server seen through its statistics
//! views, as a dedicated read-only role (member of `pg_monitor`).
//!
//! - The wire protocol runs in-process ([`client`], `tokio-postgres`); no
//!   `psql` (an SQL shell with shell escapes) is ever run.
//! - Every session is read-only twice over: `default_transaction_read_only`
//!   is on in the startup packet, then `SET SESSION CHARACTERISTICS AS
//!   TRANSACTION READ ONLY`; a server-side `statement_timeout` follows the
//!   probe's deadline.
//! - Queries are `&'static str` constants in this module ([`client::Pg`]
//!   takes nothing else); parameters are bound values of the extended
//!   protocol, which also refuses more than one statement per query.
//!
//! Settings (`[packs.postgres]` in agent.toml):
//! - `dsn = "host=/var/run/postgresql user=sonde dbname=postgres"`: where
//!   and as whom to connect (libpq key/value or `postgresql://` URL form);
//!   a socket directory or a loopback host only, no password, no options.
//! - `password_file = "/etc/sonde/postgres.password"`: for password (SCRAM)
//!   authentication; without it the pack relies on peer authentication
//!   over the local socket.

pub mod activity;
pub mod client;
pub mod databases;
pub mod replication;
pub mod server;
pub mod statements;

use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

use crate::database::is_loopback_host;
use crate::handler::{PackDef, ProbeHandler};
use crate::manifest::{ManifestError, Requirements};

pub const MANIFEST: &str = include_str!("../../postgres/pack.toml");

/// The DSN used when none is configured: the local socket, peer auth.
pub const DEFAULT_DSN: &str = "host=/var/run/postgresql user=sonde dbname=postgres";
/// The socket the default DSN connects to (what `[requires]` names).
pub const DEFAULT_SOCKET: &str = "/var/run/postgresql/.s.PGSQL.5432";

/// `[packs.postgres]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_dsn")]
    pub dsn: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dsn: default_dsn(),
            password_file: None,
        }
    }
}

fn default_dsn() -> String {
    DEFAULT_DSN.to_owned()
}

/// Parses and checks a DSN: one host, a socket directory or a loopback
/// address; no password (it belongs in `password_file`); no `options`
/// (the pack sets its own: the read-only session); no TLS requirement (the
/// pack speaks no TLS: it only ever talks to this machine).
pub fn parse_dsn(dsn: &str) -> Result<tokio_postgres::Config, String> {
    let config: tokio_postgres::Config = dsn
        .parse()
        .map_err(|e| format!("dsn: not a PostgreSQL connection string ({e})"))?;
    if config.get_password().is_some() {
        return Err(
            "dsn: remove the password from the DSN (agent.toml is hashed into the attestation and shown to operators); put it in a file named by `password_file` (mode 0600)".into(),
        );
    }
    if config.get_options().is_some() {
        return Err(
            "dsn: `options` are set by the pack itself (a read-only session with a statement timeout); remove them".into(),
        );
    }
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(
            "dsn: sslmode=require cannot be met: the pack speaks no TLS and only connects to this machine (the local socket or loopback)".into(),
        );
    }
    let hosts = config.get_hosts();
    if hosts.len() > 1 || config.get_ports().len() > 1 || config.get_hostaddrs().len() > 1 {
        return Err("dsn: name one host (and at most one port)".into());
    }
    for host in hosts {
        match host {
            tokio_postgres::config::Host::Tcp(h) if !is_loopback_host(h) => {
                return Err(format!(
                    "dsn: host {h:?} is not this machine: the pack connects without TLS, so only to the local socket directory (e.g. /var/run/postgresql) or a loopback address (127.0.0.1, ::1, localhost)"
                ));
            }
            tokio_postgres::config::Host::Unix(p) if !p.is_absolute() => {
                return Err(format!(
                    "dsn: socket directory {:?} is not absolute",
                    p.display().to_string()
                ));
            }
            _ => {}
        }
    }
    if let Some(addr) = config.get_hostaddrs().iter().find(|a| !a.is_loopback()) {
        return Err(format!("dsn: hostaddr {addr} is not a loopback address"));
    }
    if hosts.is_empty() && config.get_hostaddrs().is_empty() {
        return Err(
            "dsn: name the host: the socket directory (host=/var/run/postgresql) or a loopback address".into(),
        );
    }
    Ok(config)
}

/// Refuses unknown keys, a DSN the pack cannot use, and a relative
/// password file path.
pub fn check_settings(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let s: Settings = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    parse_dsn(&s.dsn)?;
    crate::database::check_password_file_path(s.password_file.as_deref())
}

/// The Unix socket a DSN connects to, if it names a socket directory.
pub fn socket_of(config: &tokio_postgres::Config) -> Option<PathBuf> {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    config.get_hosts().iter().find_map(|h| match h {
        tokio_postgres::config::Host::Unix(dir) => Some(dir.join(format!(".s.PGSQL.{port}"))),
        tokio_postgres::config::Host::Tcp(_) => None,
    })
}

/// The requirements follow the settings: the socket the DSN names (none
/// for a TCP DSN), and the password file when one is set.
fn requirements_for(requires: &Requirements, settings: &Value) -> Requirements {
    let mut out = requires.clone();
    let Some(s) = crate::database::settings_or_default::<Settings>(settings) else {
        return out;
    };
    let Ok(config) = parse_dsn(&s.dsn) else {
        return out;
    };
    crate::database::require_socket_instead_of(
        &mut out,
        DEFAULT_SOCKET,
        socket_of(&config).as_deref(),
    );
    if let Some(file) = &s.password_file {
        crate::database::require_password_file(&mut out, file, "the role's");
    }
    out
}

/// Every SQL text this pack can send, and nothing else: the guarantee
/// tests compare a real server's statement log against this list.
pub fn queries() -> Vec<&'static str> {
    vec![
        client::READ_ONLY_SESSION,
        client::VERSION,
        server::SERVER,
        server::SETTINGS_BY_NAME,
        server::SETTINGS_LIST,
        activity::SESSIONS,
        activity::LIMITS,
        activity::WAITING_LOCKS,
        activity::RUNNING,
        databases::DATABASES,
        databases::FREEZE,
        databases::XMIN_HOLDERS,
        databases::TABLES,
        databases::TABLE_COUNT,
        databases::VACUUMS,
        databases::CURRENT_DATABASE,
        databases::HAS_PGSTATTUPLE,
        databases::MEASURE,
        statements::EXTENSION,
        statements::STATEMENTS,
        statements::TOTALS,
        replication::ROLE,
        replication::STANDBYS,
        replication::SLOTS,
        replication::PRIMARY,
        replication::STANDBY,
        replication::RECEIVER,
    ]
}

pub fn pack() -> Result<PackDef, ManifestError> {
    let handlers: Vec<(&str, Arc<dyn ProbeHandler>)> = vec![
        ("server.info", Arc::new(server::info)),
        ("settings.list", Arc::new(server::settings)),
        ("databases.list", Arc::new(databases::list)),
        ("connections.list", Arc::new(activity::connections)),
        ("locks.blocking", Arc::new(activity::blocking)),
        ("queries.running", Arc::new(activity::running)),
        ("queries.slow", Arc::new(statements::slow)),
        ("replication.status", Arc::new(replication::status)),
        ("tables.health", Arc::new(databases::tables)),
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
        assert!(
            check_settings(&json!({"dsn": "host=/run/postgresql port=5433 user=sonde"})).is_ok()
        );
        assert!(check_settings(&json!({"dsn": "postgresql://sonde@127.0.0.1:5432/postgres", "password_file": "/etc/sonde/pg.pw"})).is_ok());
        for (bad, says) in [
            (json!({"dsn": "host=db.lan user=sonde"}), "not this machine"),
            (json!({"dsn": "host=10.0.0.5"}), "not this machine"),
            (
                json!({"dsn": "host=127.0.0.1 password=hunter2"}),
                "password_file",
            ),
            (
                json!({"dsn": "postgresql://sonde:hunter2@localhost/x"}),
                "password_file",
            ),
            (
                json!({"dsn": "host=/run/postgresql options='-c default_transaction_read_only=off'"}),
                "options",
            ),
            (json!({"dsn": "host=localhost sslmode=require"}), "TLS"),
            (json!({"dsn": "host=localhost,127.0.0.1"}), "one host"),
            (
                json!({"dsn": "host=localhost hostaddr=10.1.1.1"}),
                "hostaddr",
            ),
            (json!({"dsn": "user=sonde"}), "name the host"),
            (json!({"dsn": "host=run/postgresql"}), "not this machine"),
            (
                json!({"dsn": "nonsense"}),
                "not a PostgreSQL connection string",
            ),
            (json!({"password_file": "pw"}), "absolute"),
            (json!({"socket": "/x"}), "socket"),
        ] {
            let err = check_settings(&bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn requirements_follow_the_dsn_and_the_password_file() {
        let def = pack().unwrap();
        let default = def.requirements(&Value::Null);
        assert_eq!(default.sockets, [DEFAULT_SOCKET]);
        assert!(default.hints[DEFAULT_SOCKET].contains("CREATE ROLE sonde"));
        let moved = def.requirements(&json!({"dsn": "host=/tmp/pg port=5499 user=sonde"}));
        assert_eq!(moved.sockets, ["/tmp/pg/.s.PGSQL.5499"]);
        assert!(moved.hints["/tmp/pg/.s.PGSQL.5499"].contains("CREATE ROLE sonde"));
        let tcp = def.requirements(
            &json!({"dsn": "host=127.0.0.1 user=sonde", "password_file": "/etc/sonde/pg.pw"}),
        );
        assert!(tcp.sockets.is_empty());
        assert_eq!(tcp.files, ["/etc/sonde/pg.pw"]);
        assert!(tcp.hints["/etc/sonde/pg.pw"].contains("0600"));
    }
}
