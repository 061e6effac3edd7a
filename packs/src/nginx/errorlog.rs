//! Error-log lines: `2024/05/01 10:00:00 [error] 1234#1234: *5 message,
//! client: 203.0.113.7, server: example.org, request: "GET / HTTP/1.1",
//! upstream: "http://127.0.0.1:8080/", host: "example.org"`.
//!
//! The time is the server's local time without an offset, so it is kept as
//! written. Lines are parsed from scrubbed text.

use serde::Serialize;

/// nginx's levels, least severe first.
pub const LEVELS: &[&str] = &[
    "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg",
];

/// A level's rank in [`LEVELS`].
pub fn level_rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| *l == level)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorEntry {
    /// As written (local time, no offset).
    pub time: String,
    pub level: String,
    pub pid: Option<u32>,
    pub connection: Option<u64>,
    pub message: String,
    pub client: Option<String>,
    pub server: Option<String>,
    pub request: Option<String>,
    pub upstream: Option<String>,
    pub host: Option<String>,
}

/// The context nginx appends to a message, in the order it writes it.
const CONTEXT: &[&str] = &[
    "client", "server", "request", "upstream", "host", "referrer",
];

fn unquote(v: &str) -> String {
    v.trim()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v.trim())
        .to_owned()
}

/// Parses one line; `None` when it is not an nginx error-log line (a
/// continuation, a stack trace, another program's output).
pub fn parse_line(line: &str) -> Option<ErrorEntry> {
    if line.len() < 22 || !line.is_char_boundary(19) {
        return None;
    }
    let (time, rest) = line.split_at(19);
    let shape_ok = time.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'/',
        10 => b == b' ',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let rest = rest.strip_prefix(" [")?;
    let (level, rest) = rest.split_once("] ")?;
    level_rank(level)?;
    let (pid, rest) = match rest.split_once(": ") {
        Some((ids, r)) if ids.contains('#') => (ids.split('#').next()?.parse().ok(), r),
        _ => (None, rest),
    };
    let (connection, rest) = match rest.strip_prefix('*') {
        Some(r) => {
            let (n, r) = r.split_once(' ').unwrap_or((r, ""));
            (n.parse().ok(), r)
        }
        None => (None, rest),
    };
    // Context pairs start at the first ", client: " (or another key).
    let mut cut = rest.len();
    for key in CONTEXT {
        if let Some(i) = rest.find(&format!(", {key}: ")) {
            cut = cut.min(i);
        }
    }
    let message = rest[..cut].to_owned();
    let tail = &rest[cut..];
    let get = |key: &str| -> Option<String> {
        let marker = format!(", {key}: ");
        let start = tail.find(&marker)? + marker.len();
        let after = &tail[start..];
        let end = CONTEXT
            .iter()
            .filter_map(|k| after.find(&format!(", {k}: ")))
            .min()
            .unwrap_or(after.len());
        Some(unquote(&after[..end]))
    };
    Some(ErrorEntry {
        time: time.to_owned(),
        level: level.to_owned(),
        pid,
        connection,
        message,
        client: get("client"),
        server: get("server"),
        request: get("request"),
        upstream: get("upstream"),
        host: get("host"),
    })
}

/// Known trouble in error messages: (what to look for, severity, what it
/// means). Counted over the entries a probe returns.
pub const PATTERNS: &[(&str, &str, &str)] = &[
    (
        "upstream timed out",
        "warning",
        "upstreams are too slow to answer (proxy_read_timeout)",
    ),
    (
        "no live upstreams",
        "error",
        "every server of an upstream group is marked down",
    ),
    (
        "connect() failed",
        "error",
        "nginx cannot reach an upstream (is the application running?)",
    ),
    (
        "Too many open files",
        "error",
        "the file descriptor limit is reached (worker_rlimit_nofile, LimitNOFILE)",
    ),
    (
        "worker_connections are not enough",
        "error",
        "worker_connections is too low for the load",
    ),
    (
        "No space left on device",
        "critical",
        "a disk nginx writes to (logs, temp files, cache) is full",
    ),
    (
        "Permission denied",
        "warning",
        "nginx's worker cannot read a file or socket it needs",
    ),
    (
        "SSL_do_handshake() failed",
        "info",
        "TLS handshakes fail (old clients, scanners, certificate trouble)",
    ),
    (
        "client intended to send too large body",
        "info",
        "uploads are larger than client_max_body_size",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_parse_with_their_context() {
        let e = parse_line(r#"2024/05/01 10:00:03 [error] 1234#1234: *57 connect() failed (111: Connection refused) while connecting to upstream, client: 203.0.113.7, server: example.org, request: "GET /api HTTP/1.1", upstream: "http://127.0.0.1:8080/api", host: "example.org""#).unwrap();
        assert_eq!(e.level, "error");
        assert_eq!(e.pid, Some(1234));
        assert_eq!(e.connection, Some(57));
        assert_eq!(
            e.message,
            "connect() failed (111: Connection refused) while connecting to upstream"
        );
        assert_eq!(e.client.as_deref(), Some("203.0.113.7"));
        assert_eq!(e.request.as_deref(), Some("GET /api HTTP/1.1"));
        assert_eq!(e.upstream.as_deref(), Some("http://127.0.0.1:8080/api"));
        assert_eq!(e.host.as_deref(), Some("example.org"));
        let e = parse_line("2024/05/01 10:00:00 [notice] 99#99: signal process started").unwrap();
        assert_eq!(e.message, "signal process started");
        assert_eq!(e.connection, None);
        for bad in [
            "",
            "hello",
            "2024/05/01 10:00:00 [nope] 1#1: x",
            "2024-05-01 10:00:00 [error] 1#1: x",
            "2024/05/01 10:00:00 error 1#1: x",
            "2024/05/01 1é:00:00 [error] 1#1: x",
        ] {
            assert!(parse_line(bad).is_none(), "{bad}");
        }
    }
}
