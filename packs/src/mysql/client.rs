//! One read-only MySQL/MariaDB session for one probe.
//!
//! [`session`] connects (deadline-bound, see [`crate::database::block_on`]),
//! makes the session read-only, gives it a server-side statement time
//! limit, and hands the probe a [`My`], whose query methods take the SQL as
//! `&'static str` only. Rows come back as JSON objects keyed by column name.

use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{OptsBuilder, Params, Row};
use serde_json::{Map, Value};
use std::future::Future;

use super::{Settings, Target};
use crate::database::{block_on, millis_left, read_password_file};
use crate::handler::{ProbeContext, ProbeError};

/// Made read-only before anything else runs.
pub const READ_ONLY_SESSION: &str = "SET SESSION TRANSACTION READ ONLY";

/// Who the server is, and who we are.
pub const VERSION: &str = "SELECT VERSION() AS version, @@version_comment AS version_comment, CURRENT_USER() AS connected_as";

/// Sent by the client library itself right after connecting (it sizes
/// its packets by the answer); listed so the guarantee test knows it.
pub const DRIVER_SETTINGS: &str = "SELECT @@max_allowed_packet,@@wait_timeout";

/// MariaDB: every statement stops at the deadline (seconds, bound).
pub const MARIADB_TIMEOUT: &str = "SET SESSION max_statement_time = ?";
/// MySQL: SELECTs stop at the deadline (milliseconds, bound).
pub const MYSQL_TIMEOUT: &str = "SET SESSION max_execution_time = ?";

/// A connected, read-only session.
pub struct My {
    conn: mysql_async::Conn,
    /// `VERSION()`, e.g. `10.11.6-MariaDB-0+deb12u1`.
    pub version: String,
    pub version_comment: String,
    /// MariaDB rather than MySQL.
    pub mariadb: bool,
    /// `CURRENT_USER()`, e.g. `sonde@localhost`.
    pub account: String,
    /// Where it is connected, for messages.
    pub target: String,
    user: String,
}

impl std::fmt::Debug for My {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("My")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Server error codes the pack explains.
pub mod codes {
    pub const ACCESS_DENIED_LOGIN: u16 = 1045;
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const UNKNOWN_TABLE: u16 = 1109;
    pub const PARSE_ERROR: u16 = 1064;
    pub const MARIADB_STATEMENT_TIMEOUT: u16 = 1969;
    pub const MYSQL_EXECUTION_TIMEOUT: u16 = 3024;
    pub const PLUGIN_NOT_LOADED: u16 = 1524;
    pub const UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
}

/// The account lines an operator runs, for messages.
pub fn grant_hint(user: &str) -> String {
    format!(
        "`GRANT PROCESS, REPLICATION CLIENT, SHOW DATABASES ON *.* TO '{user}'@'localhost'; GRANT SELECT ON performance_schema.* TO '{user}'@'localhost'; GRANT SELECT ON mysql.innodb_table_stats TO '{user}'@'localhost';` (MariaDB 10.5.9+: also `GRANT SLAVE MONITOR ON *.* TO '{user}'@'localhost';`)"
    )
}

/// The server's error code, if the error came from the server.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// What a client error means for the operator.
pub fn error(e: &mysql_async::Error, target: &str, user: &str) -> ProbeError {
    use std::io::ErrorKind;
    match e {
        mysql_async::Error::Server(s) => match s.code {
            codes::ACCESS_DENIED_LOGIN => ProbeError::Failed(format!(
                "the server at {target} refused the login as {user:?}: {}. Create the account (see the pack's README: `CREATE USER '{user}'@'localhost' IDENTIFIED BY …` or `IDENTIFIED VIA unix_socket` on MariaDB) and name its password file in `password_file` under [packs.mysql]",
                s.message
            )),
            codes::DB_ACCESS_DENIED
            | codes::TABLE_ACCESS_DENIED
            | codes::SPECIFIC_ACCESS_DENIED => ProbeError::Denied(format!(
                "the server refused: {}. The account needs {}",
                s.message,
                grant_hint(user)
            )),
            codes::TOO_MANY_CONNECTIONS => ProbeError::Failed(format!(
                "the server refused the connection: {} (every connection slot is taken)",
                s.message
            )),
            codes::MARIADB_STATEMENT_TIMEOUT | codes::MYSQL_EXECUTION_TIMEOUT => {
                ProbeError::Timeout
            }
            code => ProbeError::Failed(format!("server error {code}: {}", s.message)),
        },
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => match io.kind() {
            ErrorKind::NotFound => ProbeError::Unsupported(format!(
                "no MySQL/MariaDB server at {target} (it does not exist): is it installed and running? If it listens elsewhere, set `socket` or `address` under [packs.mysql] in agent.toml"
            )),
            ErrorKind::ConnectionRefused => ProbeError::Failed(format!(
                "no MySQL/MariaDB server answers at {target} (connection refused): is it running? Check `systemctl status mariadb` (or mysql); if it listens elsewhere, set `socket` or `address` under [packs.mysql]"
            )),
            ErrorKind::PermissionDenied => ProbeError::Failed(format!(
                "the agent's user may not connect to {target} ({io}); check the socket's permissions"
            )),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => ProbeError::Timeout,
            _ => ProbeError::Failed(format!("cannot talk to the server at {target}: {io}")),
        },
        mysql_async::Error::Driver(mysql_async::DriverError::UnknownAuthPlugin { name }) => {
            ProbeError::Unsupported(format!(
                "the server at {target} asks for the authentication plugin {name:?}, which the pack does not speak: give the account a password (mysql_native_password, caching_sha2_password or ed25519 are fine) or, on MariaDB, unix_socket"
            ))
        }
        other => ProbeError::Failed(format!("MySQL/MariaDB at {target}: {other}")),
    }
}

impl My {
    /// A query error, explained.
    pub fn fail(&self, e: mysql_async::Error) -> ProbeError {
        error(&e, &self.target, &self.user)
    }

    /// Rows of a constant query without parameters (text protocol: `SHOW`
    /// statements are not all preparable).
    pub async fn query(
        &mut self,
        sql: &'static str,
    ) -> Result<Vec<Map<String, Value>>, mysql_async::Error> {
        let rows: Vec<Row> = self.conn.query(sql).await?;
        Ok(rows.iter().map(row_json).collect())
    }

    /// Rows of a constant query with bound parameters (a prepared
    /// statement).
    pub async fn exec(
        &mut self,
        sql: &'static str,
        params: impl Into<Params> + Send,
    ) -> Result<Vec<Map<String, Value>>, mysql_async::Error> {
        let rows: Vec<Row> = self.conn.exec(sql, params).await?;
        Ok(rows.iter().map(row_json).collect())
    }

    /// The first row of a constant query without parameters.
    pub async fn first(
        &mut self,
        sql: &'static str,
    ) -> Result<Map<String, Value>, mysql_async::Error> {
        Ok(self
            .query(sql)
            .await?
            .into_iter()
            .next()
            .unwrap_or_default())
    }
}

fn is_numeric(t: ColumnType) -> Option<bool> {
    use ColumnType::*;
    match t {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG
        | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => Some(true),
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE | MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            Some(false)
        }
        _ => None,
    }
}

/// A text value as a JSON number when it is one.
fn number(text: &str, integer: bool) -> Option<Value> {
    if integer && let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(Value::from(u));
    }
    text.parse::<f64>()
        .ok()
        .and_then(|f| serde_json::Number::from_f64((f * 1000.0).round() / 1000.0))
        .map(Value::Number)
}

fn cell(value: Option<&mysql_async::Value>, ty: ColumnType) -> Value {
    use mysql_async::Value as V;
    match value {
        None | Some(V::NULL) => Value::Null,
        Some(V::Int(i)) => Value::from(*i),
        Some(V::UInt(u)) => Value::from(*u),
        Some(V::Float(f)) => number(&f.to_string(), false).unwrap_or(Value::Null),
        Some(V::Double(f)) => number(&f.to_string(), false).unwrap_or(Value::Null),
        Some(V::Bytes(b)) => {
            let text = String::from_utf8_lossy(b);
            match is_numeric(ty) {
                Some(integer) => {
                    number(&text, integer).unwrap_or_else(|| Value::from(text.as_ref()))
                }
                None => Value::from(text.into_owned()),
            }
        }
        Some(V::Date(y, mo, d, h, mi, s, us)) => Value::from(format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}",
            if *us > 0 {
                format!(".{us:06}")
            } else {
                String::new()
            }
        )),
        Some(V::Time(neg, d, h, m, s, _)) => {
            let secs =
                i64::from(*d) * 86400 + i64::from(*h) * 3600 + i64::from(*m) * 60 + i64::from(*s);
            Value::from(if *neg { -secs } else { secs })
        }
    }
}

fn row_json(row: &Row) -> Map<String, Value> {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.name_str().into_owned(),
                cell(row.as_ref(i), c.column_type()),
            )
        })
        .collect()
}

/// Connects with the pack's settings, makes the session read-only, sets
/// the statement time limit, and runs `work`, all before the deadline.
pub fn session<T, F, Fut>(ctx: &ProbeContext<'_>, work: F) -> Result<T, ProbeError>
where
    F: FnOnce(My) -> Fut,
    Fut: Future<Output = Result<T, ProbeError>>,
{
    let settings: Settings = ctx.settings_as()?;
    let target = settings
        .target()
        .map_err(|e| ProbeError::Failed(format!("[packs.mysql] {e}")))?;
    let user = settings.user().to_owned();
    let password = match &settings.password_file {
        Some(file) => Some(read_password_file(ctx, file)?),
        None => None,
    };
    let mut opts = OptsBuilder::default()
        .user(Some(user.clone()))
        .pass(password)
        .db_name(None::<String>)
        .prefer_socket(false)
        .stmt_cache_size(0);
    match &target {
        Target::Socket(p) => opts = opts.socket(Some(p.display().to_string())),
        Target::Tcp(h, p) => opts = opts.ip_or_hostname(h.clone()).tcp_port(*p),
    }
    let where_ = target.to_string();
    let millis = millis_left(ctx);
    block_on(ctx, async move {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| error(&e, &where_, &user))?;
        conn.query_drop(READ_ONLY_SESSION)
            .await
            .map_err(|e| error(&e, &where_, &user))?;
        let row: Option<Row> = conn
            .query_first(VERSION)
            .await
            .map_err(|e| error(&e, &where_, &user))?;
        let row = row.map(|r| row_json(&r)).unwrap_or_default();
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let version = text("version");
        let mariadb = version.contains("MariaDB");
        // Best effort: an old server without the variable still answers
        // within the client-side deadline.
        let limit = if mariadb {
            conn.exec_drop(MARIADB_TIMEOUT, (millis as f64 / 1000.0,))
                .await
        } else {
            conn.exec_drop(MYSQL_TIMEOUT, (millis,)).await
        };
        if let Err(e) = limit
            && server_code(&e) != Some(codes::UNKNOWN_SYSTEM_VARIABLE)
        {
            return Err(error(&e, &where_, &user));
        }
        let my = My {
            conn,
            version,
            version_comment: text("version_comment"),
            mariadb,
            account: text("connected_as"),
            target: where_,
            user,
        };
        work(my).await
    })
}

/// A number field of a row.
pub fn num(row: &Map<String, Value>, key: &str) -> Option<f64> {
    row.get(key).and_then(|v| match v {
        Value::String(s) => s.parse().ok(),
        v => v.as_f64(),
    })
}

/// A text field of a row.
pub fn text<'a>(row: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}
