//! What the database packs (`postgres`, `mysql`, `redis`) share: the
//! password file, the deadline every client call runs under, which hosts
//! they may reach, and the redaction of credentials that servers echo back
//! (statement texts, command arguments).
//!
//! Decisions:
//! - **Clients run in-process on a single-threaded tokio runtime** built
//!   for one probe ([`block_on`]); the whole exchange (connect,
//!   authenticate, every query) runs under one `timeout_at(deadline)`, so a
//!   server that accepts and then stays silent, or drips bytes, is cut off
//!   at the probe's deadline, not at some per-read timeout.
//! - **Passwords live in a file the operator names** (`password_file`),
//!   read on every call, never in agent.toml (the config is hashed into the
//!   attestation and shown to operators). The file must be a regular file
//!   that neither group nor others can read (mode 0600 or 0400), and it is
//!   refused if it is one of the agent's own files.
//! - **No TLS**: the agent runs on the machine it observes, so the packs
//!   connect to a Unix socket or to a loopback address only
//!   ([`is_loopback_host`]); a setting that points elsewhere is refused
//!   when the config is loaded. Nothing ever crosses a network in clear.
//! - **Credentials echoed by servers are redacted by the pack** before the
//!   agent's scrubber sees the result: string literals after `PASSWORD`,
//!   `IDENTIFIED BY` and friends in statement texts
//!   ([`redact_sql_secrets`]), and the arguments of `AUTH`, `HELLO … AUTH`,
//!   `ACL SETUSER` and `CONFIG SET requirepass` in Redis command lines
//!   ([`redact_redis_args`]). A statement cut short by the server (query
//!   text size limits) is redacted to its end.

use regex::Regex;
use std::borrow::Cow;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::handler::{ProbeContext, ProbeError};
use crate::manifest::Requirements;

/// Settings as a requirements hook sees them: the defaults when none are
/// set, `None` when they do not parse (the settings check reports that).
pub fn settings_or_default<T: serde::de::DeserializeOwned + Default>(
    settings: &serde_json::Value,
) -> Option<T> {
    if settings.is_null() {
        return Some(T::default());
    }
    serde_json::from_value(settings.clone()).ok()
}

/// `password_file` must be an absolute path.
pub fn check_password_file_path(path: Option<&Path>) -> Result<(), String> {
    match path {
        Some(p) if !p.is_absolute() => Err(format!(
            "password_file: {:?} is not an absolute path",
            p.display().to_string()
        )),
        _ => Ok(()),
    }
}

/// Replaces the manifest's default socket (and its hint) with `socket`, the
/// one the settings connect to; drops it when they connect over TCP.
pub fn require_socket_instead_of(out: &mut Requirements, default: &str, socket: Option<&Path>) {
    let hint = out.hints.remove(default);
    out.sockets.retain(|x| x != default);
    if let Some(socket) = socket {
        let socket = socket.display().to_string();
        if let Some(hint) = hint {
            out.hints
                .insert(socket.clone(), hint.replace(default, &socket));
        }
        out.sockets.push(socket);
    }
}

/// Requires the password file, with the hint that says how to make it;
/// `whose` names the password (`the role's`, `the account's`, …).
pub fn require_password_file(out: &mut Requirements, file: &Path, whose: &str) {
    let file = file.display().to_string();
    out.hints.insert(
        file.clone(),
        format!("file `{file}`: create it with {whose} password on one line, owned by the agent's user, mode 0600 (`chown sonde {file} && chmod 600 {file}`)"),
    );
    out.files.push(file);
}

/// Longest password file read.
pub const MAX_PASSWORD_FILE: usize = 4096;

/// Reads the password from `path`: the file's first line (without its line
/// ending). Refuses files that group or others can read, that are not
/// regular files, or that belong to the agent. The password never appears
/// in an error.
pub fn read_password_file(ctx: &ProbeContext<'_>, path: &Path) -> Result<String, ProbeError> {
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO must not block the probe.
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ProbeError::Failed(format!(
                "the password file {shown} does not exist: create it (one line, the password), owned by the agent's user, mode 0600"
            )),
            std::io::ErrorKind::PermissionDenied => ProbeError::Failed(format!(
                "the agent's user cannot read the password file {shown}: `chown sonde {shown} && chmod 600 {shown}`"
            )),
            _ => ProbeError::Failed(format!("cannot open the password file {shown}: {e}")),
        })?;
    ctx.secrets.check_file(&file, &shown)?;
    let meta = file
        .metadata()
        .map_err(|e| ProbeError::Failed(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return Err(ProbeError::Failed(format!(
            "the password file {shown} is not a regular file"
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(ProbeError::Denied(format!(
            "the password file {shown} can be read by others (mode {:04o}): run `chmod 600 {shown}`; it is not used until then",
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PASSWORD_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ProbeError::Failed(format!("cannot read the password file {shown}: {e}")))?;
    if bytes.len() > MAX_PASSWORD_FILE {
        return Err(ProbeError::Failed(format!(
            "the password file {shown} is larger than {MAX_PASSWORD_FILE} bytes: it should hold one line, the password"
        )));
    }
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(ProbeError::Failed(format!(
            "the password file {shown} is empty: its first line must be the password"
        )));
    }
    String::from_utf8(line.to_vec())
        .map_err(|_| ProbeError::Failed(format!("the password file {shown} is not UTF-8 text")))
}

/// Runs `fut` to completion on a runtime of its own, cut off at the probe's
/// deadline ([`ProbeError::Timeout`]).
pub fn block_on<T>(
    ctx: &ProbeContext<'_>,
    fut: impl std::future::Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    if ctx.expired() {
        return Err(ProbeError::Timeout);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| ProbeError::Failed(format!("cannot start the database client: {e}")))?;
    let deadline = tokio::time::Instant::from_std(ctx.deadline);
    let result = rt.block_on(async { tokio::time::timeout_at(deadline, fut).await });
    // Tasks still running (a connection driver) are dropped, not awaited.
    rt.shutdown_timeout(Duration::from_millis(100));
    result.unwrap_or(Err(ProbeError::Timeout))
}

/// Milliseconds left before the deadline, at least 1 (for server-side
/// statement timeouts).
pub fn millis_left(ctx: &ProbeContext<'_>) -> u64 {
    u64::try_from(ctx.time_left().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `localhost`, `127.0.0.0/8`, `::1` (bracketed or not).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Splits `HOST:PORT` (`[::1]:6379` for IPv6) and checks that the host is
/// a loopback address.
pub fn loopback_address(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{address:?}: the port must be 1..=65535"))?;
    if !is_loopback_host(host) {
        return Err(format!(
            "{address:?} is not a loopback address: the pack connects without TLS, so only to this machine (127.0.0.1, ::1, localhost) or its Unix socket"
        ));
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_owned(), port))
}

/// At most `max` characters of `text`; `…` marks a cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// The redaction marker used by the packs.
pub const REDACTED: &str = "[REDACTED]";

fn sql_secret_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // A keyword that introduces a credential, then a quoted literal
        // (which may run to the end of a cut statement).
        let intro = r#"(?:\bPASSWORD(?:\s+FOR\s+\S+)?(?:\s*=\s*PASSWORD\s*\(\s*|\s*=\s*|\s*\(\s*|\s+)|\bIDENTIFIED\s+(?:(?:WITH|VIA)\s+[A-Za-z0-9_`'"]+\s+)?(?:BY|USING|AS)\s+(?:PASSWORD\s*\(\s*)?)"#;
        let literal = r#"(?:E?'(?:[^'\\]|\\.|'')*(?:'|$)|"(?:[^"\\]|\\.|"")*(?:"|$)|\$[A-Za-z_]*\$(?s:.*?)(?:\$[A-Za-z_]*\$|$))"#;
        Regex::new(&format!("(?i)(?P<intro>{intro})(?P<secret>{literal})"))
            .expect("the SQL secret pattern compiles")
    })
}

/// `text` (an SQL statement) with the literal after each credential
/// keyword replaced by `'[REDACTED]'`: `ALTER ROLE x PASSWORD '…'`,
/// `CREATE USER … IDENTIFIED BY '…'`, `SET PASSWORD = PASSWORD('…')`,
/// `IDENTIFIED VIA ed25519 USING PASSWORD('…')`, `OPTIONS (password '…')`.
pub fn redact_sql_secrets(text: &str) -> Cow<'_, str> {
    sql_secret_regex().replace_all(text, |c: &regex::Captures<'_>| {
        format!("{}'{REDACTED}'", &c["intro"])
    })
}

/// Redis `CONFIG SET` parameters whose values are credentials.
const REDIS_SECRET_CONFIGS: &[&str] = &[
    "requirepass",
    "masterauth",
    "masteruser",
    "tls-key-file-pass",
    "tls-client-key-file-pass",
];

/// A Redis command line (as SLOWLOG or MONITOR shows it) with credential
/// arguments replaced by `[REDACTED]`.
pub fn redact_redis_args(args: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let lower: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let mut out = args.to_vec();
    let secret = REDACTED.as_bytes().to_vec();
    let cmd = lower.first().map(String::as_str).unwrap_or("");
    let sub = lower.get(1).map(String::as_str).unwrap_or("");
    match (cmd, sub) {
        ("auth", _) => {
            for a in out.iter_mut().skip(1) {
                a.clone_from(&secret);
            }
        }
        ("hello", _) | ("migrate", _) => {
            let mut i = 1;
            while i < out.len() {
                match lower[i].as_str() {
                    "auth" if cmd == "hello" => {
                        for a in out.iter_mut().skip(i + 2).take(1) {
                            a.clone_from(&secret);
                        }
                        i += 3;
                    }
                    "auth" => {
                        for a in out.iter_mut().skip(i + 1).take(1) {
                            a.clone_from(&secret);
                        }
                        i += 2;
                    }
                    "auth2" => {
                        for a in out.iter_mut().skip(i + 2).take(1) {
                            a.clone_from(&secret);
                        }
                        i += 3;
                    }
                    _ => i += 1,
                }
            }
        }
        ("acl", "setuser") => {
            for a in out.iter_mut().skip(3) {
                if matches!(a.first(), Some(b'>' | b'<' | b'#' | b'!')) {
                    a.truncate(1);
                    a.extend_from_slice(&secret);
                }
            }
        }
        ("config", "set") => {
            let mut i = 2;
            while i + 1 < out.len() {
                if REDIS_SECRET_CONFIGS.contains(&lower[i].as_str()) {
                    out[i + 1].clone_from(&secret);
                }
                i += 2;
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sql_credentials_are_redacted_in_every_dialect() {
        let cases = [
            (
                "ALTER ROLE bob PASSWORD 'hunter2'",
                "ALTER ROLE bob PASSWORD '[REDACTED]'",
            ),
            (
                "alter user bob with encrypted password 'md5abc'",
                "alter user bob with encrypted password '[REDACTED]'",
            ),
            (
                "CREATE ROLE x LOGIN PASSWORD E'it''s\\'secret' VALID UNTIL 'infinity'",
                "CREATE ROLE x LOGIN PASSWORD '[REDACTED]' VALID UNTIL 'infinity'",
            ),
            (
                "CREATE USER 'a'@'%' IDENTIFIED BY 's3cr3t'",
                "CREATE USER 'a'@'%' IDENTIFIED BY '[REDACTED]'",
            ),
            (
                "ALTER USER a IDENTIFIED WITH mysql_native_password BY \"pw\"",
                "ALTER USER a IDENTIFIED WITH mysql_native_password BY '[REDACTED]'",
            ),
            (
                "CREATE USER a IDENTIFIED VIA ed25519 USING PASSWORD('pw')",
                "CREATE USER a IDENTIFIED VIA ed25519 USING PASSWORD('[REDACTED]')",
            ),
            (
                "SET PASSWORD FOR 'a'@'%' = PASSWORD('pw')",
                "SET PASSWORD FOR 'a'@'%' = PASSWORD('[REDACTED]')",
            ),
            ("SET PASSWORD = 'pw'", "SET PASSWORD = '[REDACTED]'"),
            (
                "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'pw')",
                "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '[REDACTED]')",
            ),
            (
                "ALTER ROLE bob PASSWORD $$dollar$$",
                "ALTER ROLE bob PASSWORD '[REDACTED]'",
            ),
            // Cut short by the server's query text limit: redacted to the end.
            (
                "ALTER ROLE bob PASSWORD 'hunter2-and-mo",
                "ALTER ROLE bob PASSWORD '[REDACTED]'",
            ),
            ("SELECT 'password' AS x", "SELECT 'password' AS x"),
            ("SELECT pg_sleep(1)", "SELECT pg_sleep(1)"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_sql_secrets(input), want, "{input}");
        }
        assert!(matches!(
            redact_sql_secrets("SELECT 1"),
            Cow::Borrowed("SELECT 1")
        ));
    }

    #[test]
    fn redis_credentials_are_redacted() {
        let args =
            |s: &str| -> Vec<Vec<u8>> { s.split(' ').map(|a| a.as_bytes().to_vec()).collect() };
        let shown = |v: Vec<Vec<u8>>| -> String {
            v.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let cases = [
            ("AUTH pw", "AUTH [REDACTED]"),
            ("auth user pw", "auth [REDACTED] [REDACTED]"),
            (
                "HELLO 3 AUTH user pw SETNAME x",
                "HELLO 3 AUTH user [REDACTED] SETNAME x",
            ),
            (
                "ACL SETUSER sonde on >pw #abc +info ~*",
                "ACL SETUSER sonde on >[REDACTED] #[REDACTED] +info ~*",
            ),
            (
                "CONFIG SET requirepass pw maxmemory 1gb",
                "CONFIG SET requirepass [REDACTED] maxmemory 1gb",
            ),
            (
                "MIGRATE h 1 k 0 5 AUTH pw",
                "MIGRATE h 1 k 0 5 AUTH [REDACTED]",
            ),
            (
                "MIGRATE h 1 k 0 5 AUTH2 u pw KEYS a",
                "MIGRATE h 1 k 0 5 AUTH2 u [REDACTED] KEYS a",
            ),
            ("GET auth", "GET auth"),
        ];
        for (input, want) in cases {
            assert_eq!(shown(redact_redis_args(&args(input))), want, "{input}");
        }
        assert!(redact_redis_args(&[]).is_empty());
    }

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["10.0.0.1", "db.lan", "0.0.0.0", "", "::", "[::2]"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
        assert_eq!(
            loopback_address("[::1]:6379").unwrap(),
            ("::1".to_owned(), 6379)
        );
        assert_eq!(
            loopback_address("127.0.0.1:3306").unwrap(),
            ("127.0.0.1".to_owned(), 3306)
        );
        assert!(loopback_address("192.168.1.2:6379").is_err());
        assert!(loopback_address("localhost").is_err());
        assert!(loopback_address("localhost:0").is_err());
        assert!(loopback_address("localhost:99999").is_err());
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn password_files_must_be_private_regular_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let guard = crate::SecretGuard::standard();
        let ctx = ProbeContext {
            deadline: std::time::Instant::now() + Duration::from_secs(5),
            runner: &crate::exec::SystemRunner::default(),
            settings: &serde_json::Value::Null,
            secrets: &guard,
        };
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-value\nignored\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password_file(&ctx, &file).unwrap(), "s3cret-value");
        std::fs::write(&file, "crlf\r\n").unwrap();
        assert_eq!(read_password_file(&ctx, &file).unwrap(), "crlf");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_password_file(&ctx, &file).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains("crlf"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("empty"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert!(
            read_password_file(&ctx, &dir.path().join("empty"))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = read_password_file(&ctx, &dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read_password_file(&ctx, &fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        // The agent's own files are refused by identity.
        let own = dir.path().join("agent.key");
        std::fs::write(&own, "key").unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o600)).unwrap();
        let guard = crate::SecretGuard::new(
            crate::scrub::Scrubber::shared_defaults(),
            crate::secrets::ProtectedFiles::scan([own.clone()]),
        );
        let ctx = ProbeContext {
            secrets: &guard,
            ..ctx
        };
        assert!(matches!(
            read_password_file(&ctx, &own),
            Err(ProbeError::Denied(_))
        ));
    }

    #[test]
    fn the_deadline_cuts_off_a_silent_future() {
        let guard = crate::SecretGuard::standard();
        let ctx = ProbeContext {
            deadline: std::time::Instant::now() + Duration::from_millis(200),
            runner: &crate::exec::SystemRunner::default(),
            settings: &serde_json::Value::Null,
            secrets: &guard,
        };
        let started = std::time::Instant::now();
        let r: Result<(), ProbeError> = block_on(&ctx, std::future::pending());
        assert_eq!(r, Err(ProbeError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
