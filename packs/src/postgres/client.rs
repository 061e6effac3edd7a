//! One read-only PostgreSQL session for one probe.
//!
//! [`session`] connects (deadline-bound, see [`crate::database::block_on`])
//! and hands the probe a [`Pg`], whose only query methods take the SQL as
//! `&'static str`: a query is a constant of this pack, and what a caller
//! supplies can only be a bound parameter. Rows come back as JSON objects
//! keyed by column name (the SQL's aliases define the result's shape).

use serde_json::{Map, Value};
use std::future::Future;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

use super::{Settings, parse_dsn, socket_of};
use crate::database::{block_on, millis_left, read_password_file};
use crate::handler::{ProbeContext, ProbeError};

/// Options sent in the startup packet: every transaction read-only, and
/// the server gives up on a statement at the probe's deadline.
pub fn startup_options(timeout_ms: u64) -> String {
    format!(
        "-c default_transaction_read_only=on -c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} -c idle_in_transaction_session_timeout={}",
        timeout_ms.saturating_add(5000)
    )
}

/// The statement run right after connecting (a constant, like every query).
pub const READ_ONLY_SESSION: &str = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY";

/// The server's version, read right after connecting.
pub const VERSION: &str = "SELECT current_setting('server_version_num')::int8";

/// A connected, read-only session.
pub struct Pg {
    client: tokio_postgres::Client,
    /// `server_version_num`, e.g. 150018.
    pub version_num: i64,
    /// The role the session logged in as.
    pub role: String,
    /// Where it is connected, for messages.
    pub target: String,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("version_num", &self.version_num)
            .finish_non_exhaustive()
    }
}

/// Where the settings point, for messages.
fn target(config: &tokio_postgres::Config) -> String {
    if let Some(socket) = socket_of(config) {
        return format!("socket {}", socket.display());
    }
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => config
            .get_hostaddrs()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
    };
    format!("{host}:{port}")
}

/// What a client error means for the operator.
pub fn error(e: &tokio_postgres::Error, target: &str, role: &str) -> ProbeError {
    if let Some(db) = e.as_db_error() {
        let message = db.message();
        let code = db.code();
        return if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            ProbeError::Denied(format!(
                "PostgreSQL refused: {message}. The pack's role needs pg_monitor: `GRANT pg_monitor TO {role};`"
            ))
        } else if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            ProbeError::Failed(format!(
                "PostgreSQL at {target} refused the login as role {role:?}: {message}. Create the role (`CREATE ROLE {role} LOGIN IN ROLE pg_monitor;`), and allow it in pg_hba.conf: peer authentication on the local socket when the agent runs as the Unix user {role:?}, or scram-sha-256 with `password_file` set"
            ))
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            ProbeError::NotFound(format!("PostgreSQL says: {message}"))
        } else if *code == SqlState::QUERY_CANCELED {
            ProbeError::Timeout
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            ProbeError::Failed(format!(
                "PostgreSQL refused the connection: {message} (every connection slot is taken; see connections.list once one frees up)"
            ))
        } else {
            let hint = db
                .hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            ProbeError::Failed(format!("PostgreSQL error {}: {message}{hint}", code.code()))
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            return match io.kind() {
                ErrorKind::NotFound => ProbeError::Unsupported(format!(
                    "no PostgreSQL server at {target} (it does not exist): is PostgreSQL installed and running? If it listens elsewhere, set `dsn` under [packs.postgres] in agent.toml"
                )),
                ErrorKind::ConnectionRefused => ProbeError::Failed(format!(
                    "no PostgreSQL server answers at {target} (connection refused): is it running? Check `systemctl status postgresql`; if it listens elsewhere, set `dsn` under [packs.postgres] in agent.toml"
                )),
                ErrorKind::PermissionDenied => ProbeError::Failed(format!(
                    "the agent's user may not connect to PostgreSQL at {target} ({io}); check the socket directory's permissions"
                )),
                ErrorKind::TimedOut | ErrorKind::WouldBlock => ProbeError::Timeout,
                _ => ProbeError::Failed(format!("cannot talk to PostgreSQL at {target}: {io}")),
            };
        }
        source = s.source();
    }
    if e.is_closed() {
        return ProbeError::Failed(format!(
            "the server at {target} closed the connection (is it PostgreSQL? was the session terminated?)"
        ));
    }
    ProbeError::Failed(format!("PostgreSQL at {target}: {e}"))
}

impl Pg {
    /// A query error, explained (the connection worked, so the target is
    /// known to be right).
    pub fn fail(&self, e: tokio_postgres::Error) -> ProbeError {
        error(&e, &self.target, &self.role)
    }

    /// Rows of a constant query, as JSON objects.
    pub async fn rows(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Map<String, Value>>, tokio_postgres::Error> {
        let rows = self.client.query(sql, params).await?;
        Ok(rows.iter().map(row_json).collect())
    }

    /// The single row of a constant query.
    pub async fn row(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Map<String, Value>, tokio_postgres::Error> {
        let row = self.client.query_one(sql, params).await?;
        Ok(row_json(&row))
    }
}

/// One column of a row as JSON (the pack's queries cast to these types).
fn cell(row: &Row, i: usize) -> Value {
    fn get<'a, T: tokio_postgres::types::FromSql<'a> + Into<Value>>(
        row: &'a Row,
        i: usize,
    ) -> Value {
        row.try_get::<_, Option<T>>(i)
            .ok()
            .flatten()
            .map_or(Value::Null, Into::into)
    }
    let ty = row.columns()[i].type_();
    match *ty {
        Type::BOOL => get::<bool>(row, i),
        Type::INT2 => get::<i16>(row, i),
        Type::INT4 => get::<i32>(row, i),
        Type::INT8 => get::<i64>(row, i),
        Type::OID => get::<u32>(row, i),
        Type::FLOAT4 => get::<f32>(row, i),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .ok()
            .flatten()
            .and_then(|f| serde_json::Number::from_f64((f * 1000.0).round() / 1000.0))
            .map_or(Value::Null, Value::Number),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
            get::<String>(row, i)
        }
        Type::INT4_ARRAY => get::<Vec<i32>>(row, i),
        Type::TEXT_ARRAY | Type::NAME_ARRAY => get::<Vec<String>>(row, i),
        _ => Value::Null,
    }
}

fn row_json(row: &Row) -> Map<String, Value> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name().to_owned(), cell(row, i)))
        .collect()
}

/// Connects with the pack's settings (to `database` instead of the DSN's
/// when given: a startup parameter, never SQL), makes the session
/// read-only, and runs `work` on it, all before the probe's deadline.
pub fn session<T, F, Fut>(
    ctx: &ProbeContext<'_>,
    database: Option<&str>,
    work: F,
) -> Result<T, ProbeError>
where
    F: FnOnce(Pg) -> Fut,
    Fut: Future<Output = Result<T, ProbeError>>,
{
    let settings: Settings = ctx.settings_as()?;
    let mut config = parse_dsn(&settings.dsn)
        .map_err(|e| ProbeError::Failed(format!("[packs.postgres] {e}")))?;
    if let Some(file) = &settings.password_file {
        config.password(read_password_file(ctx, file)?);
    }
    if let Some(db) = database {
        config.dbname(db);
    }
    config.options(startup_options(millis_left(ctx)));
    config.application_name("sonde-agent");
    let role = config
        .get_user()
        .map(str::to_owned)
        .unwrap_or_else(|| "sonde".into());
    let where_ = target(&config);
    block_on(ctx, async move {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| error(&e, &where_, &role))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(READ_ONLY_SESSION)
            .await
            .map_err(|e| error(&e, &where_, &role))?;
        let version_num = client
            .query_one(VERSION, &[])
            .await
            .map_err(|e| error(&e, &where_, &role))?
            .try_get::<_, i64>(0)
            .map_err(|e| error(&e, &where_, &role))?;
        if version_num < 120_000 {
            return Err(ProbeError::Unsupported(format!(
                "PostgreSQL {version_num} is older than 12, which this pack does not support"
            )));
        }
        work(Pg {
            client,
            version_num,
            role,
            target: where_,
        })
        .await
    })
}

/// A number field of a row.
pub fn num(row: &Map<String, Value>, key: &str) -> Option<f64> {
    row.get(key).and_then(Value::as_f64)
}

/// An integer field of a row.
pub fn int(row: &Map<String, Value>, key: &str) -> Option<i64> {
    row.get(key).and_then(Value::as_i64)
}

/// A text field of a row.
pub fn text<'a>(row: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}
