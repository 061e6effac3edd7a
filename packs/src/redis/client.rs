//! One Redis connection for one probe, able to send only the commands of
//! a fixed table.
//!
//! [`Command`] is the table: each variant is one read-only command with
//! its argument shape fixed here. [`Rc::run`] takes a `Command`, never a
//! command name or an argument list, so nothing a caller supplies can
//! become a command; the only caller-supplied arguments are an `INFO`
//! section name picked from [`INFO_SECTIONS`] and numbers.

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo,
};
use std::future::Future;
use std::time::Duration;

use super::{Settings, Target};
use crate::database::{block_on, read_password_file};
use crate::handler::{ProbeContext, ProbeError};

/// The `INFO` sections a probe may ask for (the manifest's enum is a
/// subset).
pub const INFO_SECTIONS: &[&str] = &[
    "default",
    "all",
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "latencystats",
    "keyspace",
];

/// Every command this pack can send (name and subcommand), and nothing
/// else: the guarantee test compares what a real server saw (MONITOR)
/// against this list. `AUTH` is sent by the client library when a
/// password is configured (MONITOR shows it with its arguments redacted).
pub const COMMAND_TABLE: &[&str] = &[
    "AUTH",
    "INFO",
    "SELECT",
    "SCAN",
    "TYPE",
    "SLOWLOG GET",
    "SLOWLOG LEN",
    "CLIENT LIST",
];

/// A command of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `INFO <section>`; the section is one of [`INFO_SECTIONS`].
    Info(&'static str),
    /// `SELECT <db>`.
    Select(u16),
    /// `SCAN <cursor> COUNT <count>` (no MATCH: patterns are matched by
    /// the pack on scrubbed names).
    Scan { cursor: u64, count: u32 },
    /// `TYPE <key>`, for a key SCAN just returned.
    Type(&'a [u8]),
    /// `SLOWLOG GET <n>`.
    SlowlogGet(u32),
    /// `SLOWLOG LEN`.
    SlowlogLen,
    /// `CLIENT LIST`.
    ClientList,
}

impl Command<'_> {
    /// The command as the server receives it.
    pub fn to_cmd(&self) -> redis::Cmd {
        match *self {
            Command::Info(section) => {
                let mut c = redis::cmd("INFO");
                c.arg(section);
                c
            }
            Command::Select(db) => {
                let mut c = redis::cmd("SELECT");
                c.arg(db);
                c
            }
            Command::Scan { cursor, count } => {
                let mut c = redis::cmd("SCAN");
                c.arg(cursor).arg("COUNT").arg(count);
                c
            }
            Command::Type(key) => {
                let mut c = redis::cmd("TYPE");
                c.arg(key);
                c
            }
            Command::SlowlogGet(n) => {
                let mut c = redis::cmd("SLOWLOG");
                c.arg("GET").arg(n);
                c
            }
            Command::SlowlogLen => {
                let mut c = redis::cmd("SLOWLOG");
                c.arg("LEN");
                c
            }
            Command::ClientList => {
                let mut c = redis::cmd("CLIENT");
                c.arg("LIST");
                c
            }
        }
    }

    /// The ACL permission the command needs (for messages).
    pub fn acl(&self) -> &'static str {
        match self {
            Command::Info(_) => "+info",
            Command::Select(_) => "+select",
            Command::Scan { .. } => "+scan",
            Command::Type(_) => "+type and read access to keys (%R~*)",
            Command::SlowlogGet(_) => "+slowlog|get",
            Command::SlowlogLen => "+slowlog|len",
            Command::ClientList => "+client|list",
        }
    }
}

/// The section name of the table for `name`, if it is one.
pub fn info_section(name: &str) -> Option<&'static str> {
    INFO_SECTIONS.iter().copied().find(|s| *s == name)
}

/// A connected session.
pub struct Rc {
    conn: MultiplexedConnection,
    pub target: String,
    user: String,
}

impl std::fmt::Debug for Rc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rc")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The ACL line of the README, for messages.
pub fn acl_hint(user: &str) -> String {
    format!(
        "`ACL SETUSER {user} on >PASSWORD resetchannels -@all +info +slowlog|get +slowlog|len +client|list +select +scan +type %R~*` (then `ACL SAVE` or add it to the ACL file)"
    )
}

/// What a client error means for the operator.
pub fn error(
    e: &redis::RedisError,
    target: &str,
    user: &str,
    command: Option<&Command<'_>>,
) -> ProbeError {
    let code = e.code().unwrap_or("");
    match code {
        "NOPERM" => {
            return ProbeError::Denied(format!(
                "Redis refused: {}. The ACL user needs {} — the full line: {}",
                e.detail().unwrap_or("no permission"),
                command.map_or("the pack's commands", |c| c.acl()),
                acl_hint(user)
            ));
        }
        "WRONGPASS" | "NOAUTH" => {
            return ProbeError::Failed(format!(
                "Redis at {target} refused the login as {user:?}: {}. Create the user ({}) and put its password in the file named by `password_file` under [packs.redis]",
                e.detail().unwrap_or(code),
                acl_hint(user)
            ));
        }
        "LOADING" => {
            return ProbeError::Failed(format!(
                "Redis at {target} is loading its dataset into memory; ask again when it is done"
            ));
        }
        _ => {}
    }
    if e.is_timeout() {
        return ProbeError::Timeout;
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return ProbeError::Failed(format!(
            "Redis at {target} refused the login as {user:?} (wrong user name or password). Create the user ({}) and put its password in the file named by `password_file` under [packs.redis]",
            acl_hint(user)
        ));
    }
    // The client library keeps its I/O error private: its text carries the
    // OS error number.
    let shown = e.to_string();
    if e.is_io_error() {
        if shown.contains("(os error 2)") {
            return ProbeError::Unsupported(format!(
                "no Redis server at {target} (it does not exist): is Redis running, with `unixsocket` set? Otherwise set `address` under [packs.redis]"
            ));
        }
        if shown.contains("(os error 111)") || e.is_connection_refusal() {
            return ProbeError::Failed(format!(
                "no Redis server answers at {target} (connection refused): is it running? Check `systemctl status redis-server`; if it listens elsewhere, set `socket` or `address` under [packs.redis]"
            ));
        }
        if shown.contains("(os error 13)") {
            return ProbeError::Failed(format!(
                "the agent's user may not connect to {target} (permission denied): add it to the socket's group (e.g. `usermod -aG redis sonde`) or set unixsocketperm"
            ));
        }
    }
    if e.is_io_error() || e.is_connection_dropped() {
        return ProbeError::Failed(format!(
            "the server at {target} closed the connection (is it Redis? does it require TLS?): {e}"
        ));
    }
    ProbeError::Failed(format!("Redis at {target}: {e}"))
}

impl Rc {
    /// Runs one command of the table.
    pub async fn run(&mut self, command: Command<'_>) -> Result<redis::Value, ProbeError> {
        command
            .to_cmd()
            .query_async::<redis::Value>(&mut self.conn)
            .await
            .map_err(|e| error(&e, &self.target, &self.user, Some(&command)))
    }

    /// `INFO <section>` as text.
    pub async fn info(&mut self, section: &'static str) -> Result<String, ProbeError> {
        let v = self.run(Command::Info(section)).await?;
        Ok(text_of(&v).unwrap_or_default())
    }
}

/// The text of a bulk, simple or verbatim string reply.
pub fn text_of(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        redis::Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// Connects with the pack's settings and runs `work`, all before the
/// probe's deadline.
pub fn session<T, F, Fut>(ctx: &ProbeContext<'_>, work: F) -> Result<T, ProbeError>
where
    F: FnOnce(Rc) -> Fut,
    Fut: Future<Output = Result<T, ProbeError>>,
{
    let settings: Settings = ctx.settings_as()?;
    let target = settings
        .target()
        .map_err(|e| ProbeError::Failed(format!("[packs.redis] {e}")))?;
    let mut redis_info = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(user) = &settings.user {
        redis_info = redis_info.set_username(user);
    }
    if let Some(file) = &settings.password_file {
        redis_info = redis_info.set_password(read_password_file(ctx, file)?);
    }
    let addr = match &target {
        Target::Socket(p) => ConnectionAddr::Unix(p.clone()),
        Target::Tcp(h, p) => ConnectionAddr::Tcp(h.clone(), *p),
    };
    let info: ConnectionInfo = addr
        .into_connection_info()
        .map_err(|e| ProbeError::Failed(format!("[packs.redis] {e}")))?
        .set_redis_settings(redis_info);
    let user = settings.user.clone().unwrap_or_else(|| "default".into());
    let where_ = target.to_string();
    let left = ctx.time_left().max(Duration::from_millis(1));
    block_on(ctx, async move {
        let client = redis::Client::open(info).map_err(|e| error(&e, &where_, &user, None))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(left))
            .set_response_timeout(Some(left));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| error(&e, &where_, &user, None))?;
        work(Rc {
            conn,
            target: where_,
            user,
        })
        .await
    })
}
